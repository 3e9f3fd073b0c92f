"""icrl-verify families: write an MDP batch file from any source, or compare
richness across MDP families (docs/families.md).

--write-batch FILE.npz writes --batch MDPs (arrays T, R, gamma, rho0,
features) drawn with --seed from the source the options name (the Section
4.1 options, e.g. --features dense-shared, or --family NAME, or
--distribution MODULE:FUNCTION): the file --mdp-batch reads.

--compare runs the richness analysis, a short gradient-flow training run
(measured vs predicted local rate) and, for families that are not
identifiable, a variant that removes their invariances, for Section 4.1,
the Boyan chain, Darkroom and one user batch file (--user-batch; default: a
dense-shared S = 3, A = 2, gamma 0.5 batch written next to the report), and
writes reports/families/NAME.md and .json.  Exit 0 on success, 2 on bad input.
"""
from __future__ import annotations

import os

import torch

from numerics.analysis import budget
from numerics.analysis.families import compare
from numerics.analysis.scale import benchmark
from numerics.commands.cli import add_max_memory, at_boundary, config_of, emit, plain_name, progress_bar
from numerics.core.distributions import MDPDistribution
from numerics.io.commandline import reproduce_command
from numerics.io.config import add_common, positive_int
from numerics.io.mdp_batch import write_mdp_batch
from numerics.io.options import COUNT, Folder, Name, Path, Text
from numerics.io.sources import MDPSource, add_source_options, source_from_args
from numerics.render import families as render
from theory import algorithms
from theory.errors import InputError


def add_arguments(p):
    add_common(p, mdps=40, algorithms=("sarsa",))
    add_source_options(p)
    p.add_argument("--write-batch", type=Path(), metavar="FILE.npz", default=None,
                   help="write --batch MDPs of the chosen source to FILE.npz (the --mdp-batch format) and stop")
    p.add_argument("--batch", type=positive_int, default=100, help="MDPs in the written batch (100)")
    p.add_argument("--compare", action="store_true", help="compare richness across families (the report)")
    p.add_argument("--user-batch", type=Path(), metavar="FILE.npz", default=None,
                   help="the user batch in the comparison (default: write a dense-shared S=3, A=2, gamma 0.5 batch)")
    p.add_argument("--frames", type=positive_int, default=10, help="frames per MDP in each richness sample (10)")
    p.add_argument("--bootstrap", type=COUNT, default=5, help="bootstrap replicates for each mu interval (5)")
    p.add_argument("--darkroom-grid", type=positive_int, default=3, help="comparison: Darkroom grid (3)")
    p.add_argument("--darkroom-features", choices=("onehot", "coords"), default="coords",
                   help="comparison: Darkroom features (coords; onehot at grid 5 needs the matrix-free route, "
                        "see icrl-verify richness --family darkroom)")
    p.add_argument("--benchmark", action="store_true",
                   help="richness of Darkroom 5x5 and 9x9, FrozenLake 8x8, the Boyan chain and Section 4.1 at their "
                        "own size, each in its own process with its wall time and peak memory "
                        "(reports/families/benchmark.md)")
    p.add_argument("--benchmark-timeout", type=positive_int, default=900,
                   help="--benchmark: seconds each family may take before it is stopped (900)")
    p.add_argument("--only", type=Text(), nargs="+", default=None, metavar="TEXT",
                   help="--benchmark: only the families whose label contains one of these texts")
    p.add_argument("--name", type=Name(), default=None, help="report name (comparison, or benchmark)")
    p.add_argument("--out", type=Folder(), default=os.path.join("reports", "families"), help="report folder (reports/families)")
    add_max_memory(p)


def _guard_compare(args):
    """Exit 2 before the comparison when a richness sample (Section 4.1 at
    --states x --actions, Darkroom at --darkroom-grid) would not fit under
    ``--max-memory`` or the four analyses would take more than ``--max-time``."""
    record = algorithms.get("sarsa")
    prompts, limit = args.mdps * args.frames, budget.max_memory(args.max_memory)
    G = args.darkroom_grid
    sizes = {"Section 4.1": (args.states * args.actions, "--states/--actions"),
             "Darkroom": (5 * G * G if args.darkroom_features == "onehot" else 15, "--darkroom-grid"),
             "Boyan": (4, ""), "user batch": (6, "")}
    budget.guard(budget.mdp_batch(1, G * G, 5, sizes["Darkroom"][0]), limit,
                 f"families: one Darkroom MDP at grid {G:,} ({G * G:,} states x 5 actions)",
                 "use a smaller --darkroom-grid")
    work = budget.Work()
    for label, (d, option) in sizes.items():
        budget.guard_hessian(record, d, prompts, args.context, limit, f"families: richness of {label} (d = {d}), "
                             f"{prompts:,} prompts,", bootstrap=args.bootstrap, states_option=option or "--states")
        one = budget.richness_work(record, d, prompts, args.context, args.bootstrap)
        work = work.merged(one.scaled(1, f"{label}: "))
    budget.guard_time(work, budget.max_time(args.max_time), f"families --compare of 4 richness analyses of "
                      f"{prompts:,} prompts with {args.bootstrap} bootstrap replicates",
                      "use fewer --mdps/--frames/--bootstrap or smaller --states/--actions/--darkroom-grid/--context")


def run(args) -> int:
    source = source_from_args(args)
    budget.guard_source(source, args)
    if args.write_batch:
        dist = source.distribution()
        budget.guard(budget.mdp_batch(args.batch, dist.states, dist.actions, dist.d),
                     budget.max_memory(args.max_memory), f"a batch of {args.batch:,} MDPs x {dist.states} states x "
                     f"{dist.actions} actions (d = {dist.d})", "use a smaller --batch or --states/--actions")
        gen = torch.Generator().manual_seed(args.seed)
        mdp, F = dist.sample(args.batch, gen)
        write_mdp_batch(args.write_batch, mdp, F)
        emit([f"wrote {args.batch} MDPs ({dist.describe()}) to {args.write_batch}"],
             dict(path=args.write_batch, mdps=args.batch, d=int(F.shape[-1])), args.json)
        return 0
    if args.benchmark:
        name = plain_name(args.name or "benchmark")
        with progress_bar(total=None, desc="families at benchmark scale", disable=args.json) as bar:
            res = benchmark(args.out, timeout=args.benchmark_timeout, extra=[], progress=at_boundary(bar.update),
                            only=args.only)
        command = reproduce_command("families", args, add_arguments)
        report = render.write_benchmark(res, args.out, name, command, config_of(args))
        lines = [f"{r['label']}: {(r['result'] or {}).get('verdict', 'not computed')} in {r['seconds']:.0f} s"
                 for r in res["rows"]] + [f"report: {report}"]
        emit(lines, dict(rows=res["rows"], report=report), args.json)
        return 0
    if not args.compare:
        raise InputError("usage", "families: give --write-batch FILE.npz, --compare or --benchmark")
    if args.bootstrap < 0:
        raise InputError("bootstrap", f"must be >= 0, got {args.bootstrap}")
    name = plain_name(args.name or "comparison")
    _guard_compare(args)
    user = args.user_batch
    if user is None:
        user = os.path.join(args.out, "user-dense-shared-S3A2.npz")
        small = MDPDistribution(states=3, actions=2, gamma=0.5, features="dense-shared", feature_seed=args.seed)
        mdp, F = small.sample(args.batch, torch.Generator().manual_seed(args.seed))
        write_mdp_batch(user, mdp, F)
    users = MDPSource.batch(user).distribution()
    gr = (0.3, 0.95)
    s41 = MDPDistribution(states=args.states, actions=args.actions, gamma=args.gamma, features=args.features,
                          feature_seed=args.seed)
    entries = [
        (f"Section 4.1 ({args.states} states, {args.actions} actions, {args.features} features)", s41, None, ""),
        ("Boyan chain (13 states, Boyan features)", _family("boyan", gamma=0.9, states=13, features="boyan"),
         _family("boyan", gamma=0.9, gamma_range=gr, states=13, features="random"),
         f"gamma ~ Unif{gr} per chain and fresh Unif(-1,1)^4 features per chain"),
        (f"Darkroom ({args.darkroom_grid}x{args.darkroom_grid}, {args.darkroom_features} features)",
         _family("darkroom", gamma=0.9, grid=args.darkroom_grid, features=args.darkroom_features, goals="uniform"),
         _family("darkroom", gamma=0.9, gamma_range=gr, grid=args.darkroom_grid, features=args.darkroom_features,
                 goals="uniform"),
         f"gamma ~ Unif{gr} per MDP"),
        (f"user batch {os.path.basename(user)}", users,
         MDPDistribution(states=users.states, actions=users.actions, gamma_range=(0.3, 0.7), features="dense"),
         "fresh dense features per MDP and gamma ~ Unif(0.3, 0.7)"),
    ]
    with progress_bar(total=None, desc="families", disable=args.json) as bar:
        res = compare(entries, mdps=args.mdps, frames=args.frames, bootstrap=args.bootstrap, seed=args.seed,
                      progress=at_boundary(bar.update))
    command = reproduce_command("families", args, add_arguments)
    report = render.write(res, args.out, name, command, config_of(args))
    lines = [f"{r['label']}: {r['verdict']} (kernel {r['kernel_dim']} = {r['symmetry_dim']} + "
             f"{r['data_invariance_dim']} + {r['nonflat_dim']}), mu = {r['mu']:.4g}" for r in res["rows"]]
    lines.append(f"report: {report}")
    emit(lines, dict(rows=res["rows"], report=report), args.json)
    return 0


def _family(name: str, **params):
    return MDPSource.of_family(name, **params).distribution()
