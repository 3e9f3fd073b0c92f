"""icrl-verify check: run the block on sampled prompts and compare its read-out
with the teacher update.

The teacher is the independent reference (numerics.reference: the textbook
update from the raw window, sharing nothing with the prompt builder); for
SARSA-structured records on the CPU the compiled path compares with its own
textbook loop over the raw window.  Prompts whose argmax (expected SARSA,
Q-learning) is a near tie are left out and counted.

MDPs and windows are drawn as in Algorithm 1 (the behaviour policy of the
current parameters, w <- teacher output, s_0 <- s_n); every frame of every
MDP is one prompt.  The block uses the constructed weights (Theorem 3.1 or
3.3, taken from theory) or --weights FILE.npz (arrays P and V).  Each
read-out entry is judged against its own float64 rounding bound, computed
from the magnitudes that enter it (docs/check.md, Tolerances).  Exit 0 when
the read-out equals the teacher on every prompt within those bounds; 1 with
a counterexample (verdict fails), or when the bounds are not small against
the teacher update (verdict undecidable: decide the weights with prove
--weights); 2 on bad input.  --layout wang2025: every entry the
construction must keep is compared exactly, the carried row and the read-out
one layer at a time against that layer's rounding bound, and an iteration
that diverges (values past 1e6 times the window's size) exits 1 naming the
layer where it starts.
"""
from __future__ import annotations

from dataclasses import replace

from numerics.analysis import budget
from numerics.analysis.check import run_check
from numerics.commands import wang as wang_cmd
from numerics.commands.cli import add_max_memory, emit, progress_bar
from numerics.core.tolerances import ARGMAX_TIE_RTOL, DECIDABLE_RTOL, FAILS, HOLDS, UNDECIDABLE
from numerics.io.config import add_common, device_from_args, positive_int
from numerics.io.mdp_file import load_mdp_file
from numerics.io.models import load_weights
from numerics.io.options import Path
from numerics.io.sources import add_source_options, source_from_args
from theory import algorithms
from theory.errors import InputError


def add_arguments(p):
    add_common(p, mdps=100, algorithms=wang_cmd.algorithm_choices(algorithms.names()))
    p.add_argument("--prompts", type=positive_int, default=10_000, help="number of prompts to check (10000)")
    p.add_argument("--weights", type=Path(), metavar="FILE.npz", default=None,
                   help="check these weights (arrays P and V, each D x D) instead of the construction")
    p.add_argument("--mdp", type=Path(), metavar="FILE.npz", default=None,
                   help="check on these MDPs (arrays T, R, gamma, optional rho0, features; see docs/check.md) "
                        "instead of sampled ones")
    add_max_memory(p)
    add_source_options(p)
    wang_cmd.add_check_arguments(p)


def check_inputs(args):
    """What ``check`` runs on, from its options (the command and its sweep
    cells): ``(record, dist, device, mdp, F, d)``; ``mdp`` and ``F`` are the
    ``--mdp`` file's or None."""
    record = algorithms.get(args.algorithm)
    source = source_from_args(args)
    budget.guard_source(source, args)
    if args.mdp and not source.is_default:
        raise InputError("mdp", "--mdp and --family / --mdp-batch / --distribution both name the MDPs; give one")
    dist = source.distribution()
    device = device_from_args(args)
    mdp, F = load_mdp_file(args.mdp, device=device) if args.mdp else (None, None)
    if mdp is not None and F is None and (mdp.states, mdp.actions) != (dist.states, dist.actions):
        dist = replace(dist, states=mdp.states, actions=mdp.actions)
    d = F.shape[-1] if F is not None else dist.d
    return record, dist, device, mdp, F, d


def run(args) -> int:
    if args.layout == "wang2025":
        return wang_cmd.run_check(args)
    record, dist, device, mdp, F, d = check_inputs(args)
    B, S, A = (mdp.batch, mdp.states, mdp.actions) if mdp is not None else (args.mdps, dist.states, dist.actions)
    budget.guard(budget.check(record, B, S, A, d, args.context), budget.max_memory(args.max_memory),
                 f"check of {B} MDPs x {S} states x {A} actions (d = {d}), n = {args.context},",
                 "use fewer --mdps or smaller --states/--actions/--context")
    budget.guard_time(budget.check_work(record, args.prompts, B, S, A, d, args.context), budget.max_time(args.max_time),
                      f"check of {args.prompts:,} prompts ({B} MDPs x {S} states x {A} actions, d = {d}, "
                      f"n = {args.context})", "use fewer --prompts or smaller --states/--actions/--context")
    weights = load_weights(args.weights, record.spec.weight_shape(d), device=device) if args.weights else None
    with progress_bar(total=args.prompts, desc=f"check {args.algorithm}", disable=args.json) as bar:
        res = run_check(record, dist, prompts=args.prompts, mdps=args.mdps, n=args.context,
                        epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                        weights=weights, device=device, progress=bar.update, mdp=mdp, features=F)
    src = args.weights or f"construction ({record.theorem})"
    what = f"MDPs from {args.mdp}" if args.mdp else dist.describe()
    lines = [f"check {args.algorithm}: {res.prompts} prompts, {what}, n = {args.context}",
             f"weights: {src}",
             f"max |TF(H) - teacher| = {res.max_abs_error:.3e}; at most {res.worst_error_over_bound:.3g} of each "
             f"entry's own rounding bound (bound at the worst entry {res.tolerance:.3e}; docs/check.md, Tolerances)",
             f"teacher: {res.teacher}; {res.near_ties} prompt(s) with a near tie of the argmax "
             f"(gap <= {ARGMAX_TIE_RTOL:g}) left out of the comparison",
             VERDICT_LINES[res.verdict]]
    if res.counterexample:
        c = res.counterexample
        lines.append(f"counterexample: mdp {c['mdp_index']}, frame {c['frame']}, seed {c['seed']}, "
                     f"|error| {c['abs_error']:.3e} > its rounding bound {c['tolerance']:.3e}")
        if "window" in c:
            lines.append(f"  window s = {c['window']['s']}, a = {c['window']['a']}; theta[:4] = "
                         f"{[round(v, 6) for v in c['theta'][:4]]}")
        lines.append(f"  expected[:4] = {[round(v, 6) for v in c['expected'][:4]]}  got[:4] = {[round(v, 6) for v in c['got'][:4]]}")
    if res.undecidable_example and not res.counterexample:
        u = res.undecidable_example
        lines.append(f"not decidable on {res.undecidable} prompt(s): rounding bound {u['bound']:.3e} vs the teacher "
                     f"update's terms {u['signal']:.3e} (ratio {u['bound_over_signal']:.3g} > {DECIDABLE_RTOL:g}; "
                     f"worst at mdp {u['mdp_index']}, frame {u['frame']})")
        lines.append(f"  {u['suggestion']}")
    emit(lines, res.as_dict(), args.json)
    return 0 if res.holds else 1


#: The verdict's line.
VERDICT_LINES = {
    HOLDS: "HOLDS: the block's read-out equals the teacher update on every prompt",
    FAILS: "FAILS: counterexample below",
    UNDECIDABLE: "NOT DECIDABLE in float64: the rounding of these weights is not small against the update (below)",
}
