"""icrl-verify richness: is the training distribution rich?  The Hessian
of the teacher-mimicking loss on the optimal set, its kernel classified, and
the local rate it predicts (THEORY.md section 5, Theorem 3.2).

On a fixed sample of prompts drawn as in Algorithm 1, at the construction
theta* (from theory), the Hessian is the Gauss-Newton matrix E[J^T J] in
closed form.  Its kernel K is split into (a) the tangent of the symmetries
(scaling; full parameterisation: the never-read entries of Prop 3.1 and the
antisymmetric part of P22), (b) data invariances: directions that stay
exactly flat, (c) the non-flat rest, along which the loss rises at quartic
order.

Verdict: identifiable (K = (a)), morse-bott (K = (a) + (b)), fails (some
(c)).  mu = smallest eigenvalue off K, with a parametric-bootstrap 95%
interval (fresh MDP samples of the same size from the distribution);
predicted local rate of the loss 2 mu.  Exit 0 for identifiable or
morse-bott, 1 for fails, 2 for bad input.
"""
from __future__ import annotations

import math
import os

from numerics.analysis import budget
from numerics.analysis.richness import (
    BIG_BOOTSTRAP,
    BOOTSTRAP_SEED_OFFSET,
    MATRIX_FREE_ABOVE,
    MATRIX_FREE_REACH,
    SOLVERS,
    richness,
)
from numerics.analysis.spectrum import DENSE_EIGH_LIMIT
from numerics.analysis.tabular import structured_applies, tabular_richness
from numerics.commands.cli import add_max_memory, at_boundary, emit, plain_name, progress_bar
from numerics.core.block import PARAMETERIZATIONS
from numerics.core.runtime import check_interrupt
from numerics.io.commandline import reproduce_command
from numerics.io.config import add_common, finite_float, positive_int
from numerics.io.options import COUNT, Folder, Name
from numerics.io.sources import add_source_options, source_config, source_from_args
from numerics.render import richness as render
from theory import algorithms
from theory.errors import InputError


def add_arguments(p):
    add_common(p, mdps=100)
    p.add_argument("--parameterization", choices=PARAMETERIZATIONS, default="reduced",
                   help="reduced (P12, Vbar21) or full (P, V) (default reduced)")
    p.add_argument("--frames", type=positive_int, default=20, help="frames (prompts) per MDP in the sample (20)")
    p.add_argument("--prompts", type=positive_int, default=None,
                   help="total prompts; overrides --frames with ceil(PROMPTS / MDPS)")
    p.add_argument("--bootstrap", type=COUNT, default=None,
                   help="replicates of the parametric bootstrap for the mu interval: each draws a fresh sample "
                        "of the same size (MDPs x frames) from the distribution, seed SEED + "
                        f"{BOOTSTRAP_SEED_OFFSET} + k (default 20; {BIG_BOOTSTRAP} above {DENSE_EIGH_LIMIT} reduced "
                        "parameters, e.g. d = 36, to stay under a minute; 0 skips the interval)")
    add_source_options(p)
    p.add_argument("--solver", choices=SOLVERS, default="auto",
                   help="spectrum of E[J^T J]: dense (forms it), matrix-free (closed-form J^T J v, closed-form "
                        "invariances deflated, LOBPCG), structured (one-hot SARSA features: exact eigenvalue counts "
                        "by inertia of a block factorisation, grows the sample until it is adequate, else "
                        "'undersampled', exit 3), auto (structured for one-hot features above "
                        f"{DENSE_EIGH_LIMIT} reduced parameters, else matrix-free above {MATRIX_FREE_ABOVE}, else dense)")
    p.add_argument("--time-limit", type=finite_float, default=1800.0,
                   help="seconds the matrix-free eigensolver may take before giving up with exit 2; the "
                        "structured route stops growing its sample past it ('undersampled') (1800)")
    p.add_argument("--max-prompts", type=positive_int, default=64_000,
                   help="structured route: largest sample it grows to before saying 'undersampled' (64000)")
    p.add_argument("--name", type=Name(), default=None, help="report name (default: ALGORITHM-FEATURES-PARAMETERIZATION)")
    p.add_argument("--out", type=Folder(), default=os.path.join("reports", "richness"), help="report folder (reports/richness)")
    add_max_memory(p)


def resolve_solver(args, record, dist) -> str:
    """The route for the spectrum: ``--solver``, or with ``auto`` the dense
    route up to :data:`MATRIX_FREE_ABOVE` reduced parameters and the
    matrix-free one above it, up to :data:`MATRIX_FREE_REACH` (the largest
    size it has been tried at, docs/richness.md).  Beyond that reach ``auto``
    takes the dense route again, whose memory guard then decides (it refuses
    at once where the dense Hessian does not fit, instead of an eigensolver
    running until ``--time-limit``)."""
    if args.solver != "auto":
        return args.solver
    count = record.spec.index(dist.d).reduced_count()
    if count > DENSE_EIGH_LIMIT and args.parameterization == "reduced" and structured_applies(record, dist):
        return "structured"
    if MATRIX_FREE_ABOVE < count <= MATRIX_FREE_REACH and args.parameterization == "reduced":
        return "matrix-free"
    return "dense"


def run(args) -> int:
    source = source_from_args(args)
    budget.guard_source(source, args)
    dist = source.distribution()
    record = algorithms.get(args.algorithm)
    frames = math.ceil(args.prompts / args.mdps) if args.prompts else args.frames
    if args.bootstrap is None:
        big = record.spec.index(dist.d).reduced_count() > DENSE_EIGH_LIMIT
        args.bootstrap = BIG_BOOTSTRAP if big else 20
    if args.bootstrap < 0:
        raise InputError("bootstrap", f"must be >= 0, got {args.bootstrap}")
    name = plain_name(args.name or f"{args.algorithm}-{source.label}-{args.parameterization}")
    solver = resolve_solver(args, record, dist)
    if solver == "structured":
        return _run_structured(args, record, source, name)
    if solver == "dense":
        budget.guard_hessian(record, dist.d, args.mdps * frames, args.context, budget.max_memory(args.max_memory),
                             f"richness at {dist.states} states x {dist.actions} actions (d = {dist.d}), "
                             f"{args.mdps * frames} prompts,", bootstrap=args.bootstrap,
                             parameterization=args.parameterization,
                             note=f"; --solver matrix-free avoids the dense matrix (tried up to "
                                  f"{MATRIX_FREE_REACH:,} reduced parameters, where it needs more than 10 "
                                  f"minutes: docs/richness.md)")
    if solver == "dense":
        budget.guard_time(budget.richness_work(record, dist.d, args.mdps * frames, args.context, args.bootstrap),
                          budget.max_time(args.max_time),
                          f"richness at {dist.states} states x {dist.actions} actions (d = {dist.d}), "
                          f"{args.mdps * frames:,} prompts, {args.bootstrap} bootstrap replicates",
                          "use fewer --mdps/--frames/--prompts/--bootstrap or smaller --states/--actions/--context")
    with progress_bar(total=None, desc="richness (eigensolver iterations, bootstrap replicates)",
                      disable=args.json) as bar:
        res = richness(dist, record, args.parameterization, mdps=args.mdps, frames=frames, n=args.context,
                       epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                       bootstrap=args.bootstrap, progress=at_boundary(bar.update), keep=True, solver=solver,
                       time_limit=args.time_limit)
    check_interrupt()
    command = reproduce_command("richness", args, add_arguments)
    report = render.write(res, args.out, name, command, source_config(args, source))
    res["report"] = report
    public = {k: res[k] for k in ("parameterization", "parameters", "kernel_dim", "symmetry_dim",
                                  "data_invariance_dim", "nonflat_dim", "mu", "mu_ci95", "verdict", "report")}
    public["prompts"] = res["details"]["prompts"]
    lines = [f"richness {args.algorithm} ({args.parameterization}): {dist.describe()}",
             f"kernel {res['kernel_dim']} = symmetry {res['symmetry_dim']} + data invariances "
             f"{res['data_invariance_dim']} + non-flat {res['nonflat_dim']}",
             f"mu = {res['mu']:.6g}, 95% CI [{res['mu_ci95'][0]:.6g}, {res['mu_ci95'][1]:.6g}], predicted rate 2 mu = "
             f"{res['predicted_rate']:.6g}",
             f"verdict: {res['verdict']}", f"report: {report}"]
    emit(lines, public, args.json)
    return 1 if res["verdict"] == "fails" else 0


def _run_structured(args, record, source, name) -> int:
    """The structured route (numerics.analysis.tabular): a verdict only for an
    adequate sample; exit 3 for 'undersampled' or 'unresolved'."""
    dist = source.distribution()
    if args.parameterization != "reduced":
        raise InputError("solver", "the structured route handles the reduced parameterization; use --solver dense")
    largest = max(args.prompts or 0, args.max_prompts)
    # a lower bound: drawing the largest sample the route may grow to (its
    # factorisations come on top; --time-limit stops the growth itself)
    budget.guard_time(budget.check_work(record, largest, args.mdps, dist.states, dist.actions, dist.d, args.context),
                      budget.max_time(args.max_time),
                      f"richness (structured route) growing its sample up to {largest:,} prompts of "
                      f"{dist.states} states x {dist.actions} actions (d = {dist.d})",
                      "use a smaller --max-prompts/--prompts or --context")
    with progress_bar(total=None, desc="richness (sample sizes, bootstrap replicates)", disable=args.json) as bar:
        res = tabular_richness(dist, record, mdps=args.mdps, frames=args.frames, n=args.context,
                               epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                               bootstrap=args.bootstrap, prompts=args.prompts, max_prompts=args.max_prompts,
                               time_limit=args.time_limit, max_memory=budget.max_memory(args.max_memory),
                               labels=source.pair_labels(dist.actions), progress=at_boundary(bar.update))
    check_interrupt()
    command = reproduce_command("richness", args, add_arguments)
    report = render.write_structured(res, args.out, name, command, source_config(args, source))
    res["report"] = report
    public = {k: res[k] for k in ("parameterization", "parameters", "kernel_dim", "symmetry_dim",
                                  "data_invariance_dim", "nonflat_dim", "mu", "mu_ci95", "verdict", "prompts",
                                  "closed_form_kernel", "report")}
    dt = res["details"]
    ad, cf = dt["adequacy"], dt["closed_form"]
    last = dt["ladder"][-1]
    kern = "not computed" if res["kernel_dim"] is None else f"{res['kernel_dim']:,}"
    lines = [f"richness {args.algorithm} (reduced, structured route): {dist.describe()}",
             f"prompts {res['prompts']:,} ({last['mdps']:,} MDPs); kernel {kern}; closed form: scaling + "
             f"{cf['invariance_dim']:,} invariances = {cf['expected_kernel']:,}"]
    if res["verdict"] == "undersampled":
        lines.append(f"undersampled: {ad['reason']} (least-covered visited state-action: {last['coverage_min']} MDPs, "
                     f"needed {ad['coverage_needed']}); no verdict")
    else:
        lines.append(f"mu = {res['mu']:.6g}, 95% CI [{res['mu_ci95'][0]:.6g}, {res['mu_ci95'][1]:.6g}]")
    lines += [f"verdict: {res['verdict']}", f"report: {report}"]
    emit(lines, public, args.json)
    if res["verdict"] in ("undersampled", "unresolved"):
        return 3
    return 1 if res["verdict"] == "fails" else 0
