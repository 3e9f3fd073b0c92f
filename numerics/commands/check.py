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
--weights); 2 on bad input.  An mrp record (Wang et al.'s td-preconditioned,
td-lambda, rg, avg-reward, or an mrp construction file): every entry the
construction must keep is compared exactly, the carried row and the read-out
one layer at a time against that layer's rounding bound, and an iteration
that diverges (values past 1e6 times the window's size) exits 1 naming the
layer where it starts.  A softmax record (Xie et al. 2026: softmax-td,
softmax-td-shift, or a construction file of kind softmax): every layer's value
rows against weighted softmax TD by an independent per-state reference, the
same verdicts (docs/check.md, Softmax records).
"""
from __future__ import annotations

from dataclasses import replace

from numerics.analysis import budget
import shlex
import time

import torch

from numerics.analysis import check_softmax as CS
from numerics.analysis.check import check_against_loop, draw_windows, random_preconditioners, run_check
from numerics.commands.cli import add_max_memory, emit, progress_bar
from numerics.commands.records import add_record_arguments, mark_defaults, pick, record_from_args
from numerics.core.tolerances import ARGMAX_TIE_RTOL, DECIDABLE_RTOL, DTYPE, FAILS, HOLDS, UNDECIDABLE
from numerics.io.config import add_common, device_from_args, finite_float, positive_int
from numerics.io.mdp_file import load_mdp_file
from numerics.io.models import load_layer_weights, load_preconditioner, load_softmax_weights, load_weights
from numerics.io.options import Path, Text
from numerics.io.sources import add_source_options, source_from_args
from theory import algorithms
from theory.errors import InputError


def add_arguments(p):
    add_common(p, mdps=100, algorithms=algorithms.names())
    p.add_argument("--prompts", type=positive_int, default=10_000, help="number of prompts to check (10000)")
    p.add_argument("--weights", type=Path(), metavar="FILE.npz", default=None,
                   help="check these weights (arrays P and V, each D x D) instead of the construction")
    p.add_argument("--mdp", type=Path(), metavar="FILE.npz", default=None,
                   help="check on these MDPs (arrays T, R, gamma, optional rho0, features; see docs/check.md) "
                        "instead of sampled ones")
    add_max_memory(p)
    add_source_options(p)
    add_record_arguments(p)
    add_layer_check_arguments(p)


def check_inputs(args):
    """What ``check`` runs on, from its options (the command and its sweep
    cells): ``(record, dist, device, mdp, F, d)``; ``mdp`` and ``F`` are the
    ``--mdp`` file's or None."""
    record = record_from_args(args, kinds=("mdp",))
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
    record = record_from_args(args)
    if record.spec.kind == "softmax":
        return run_softmax_check(args, record)
    if record.data == "mrp":
        return run_layer_check(args, record)
    record, dist, device, mdp, F, d = check_inputs(args)
    B, S, A = (mdp.batch, mdp.states, mdp.actions) if mdp is not None else (args.mdps, dist.states, dist.actions)
    budget.guard(budget.check(record, B, S, A, d, args.context), budget.max_memory(args.max_memory),
                 f"check of {B} MDPs x {S} states x {A} actions (d = {d}), n = {args.context},",
                 "use fewer --mdps or smaller --states/--actions/--context")
    budget.guard_time(budget.check_work(record, args.prompts, B, S, A, d, args.context), budget.max_time(args.max_time),
                      f"check of {args.prompts:,} prompts ({B} MDPs x {S} states x {A} actions, d = {d}, "
                      f"n = {args.context})", "use fewer --prompts or smaller --states/--actions/--context")
    weights = load_weights(args.weights, record.spec.weight_shape(d), device=device) if args.weights else None
    with progress_bar(total=args.prompts, desc=f"check {record.name}", disable=args.json) as bar:
        res = run_check(record, dist, prompts=args.prompts, mdps=args.mdps, n=args.context,
                        epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                        weights=weights, device=device, progress=bar.update, mdp=mdp, features=F)
    src = args.weights or f"construction ({record.theorem})"
    what = f"MDPs from {args.mdp}" if args.mdp else dist.describe()
    lines = [f"check {record.name}: {res.prompts} prompts, {what}, n = {args.context}",
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


#: The verdict's line of ``check`` of an mrp record.
WANG_VERDICT_LINES = {
    "holds": "HOLDS: the L-layer block computes L steps of batch TD on every window",
    "fails": "FAILS: counterexample below",
    "diverges": "DIVERGES: the iteration grows past the stated bound (below); not judged to hold",
    "undecidable": "NOT DECIDABLE in float64: a layer's rounding is not small against its TD step (below)",
}

#: Wang et al.'s values of the shared options for an mrp record (used when the option was not given).
CHECK_DEFAULTS = dict(states=10, gamma=0.9, alpha=1.0, context=100, mdps=30)


# ==================================================================== layer-by-layer (mrp) records

def add_layer_check_arguments(p):
    g = p.add_argument_group("layer-by-layer records (--algorithm td-preconditioned, td-lambda, rg, avg-reward or an "
                             "mrp construction file; Wang et al. 2025's defaults there: states 10, gamma 0.9, alpha 1, "
                             "context 100, mdps 30)")
    g.add_argument("--layers", type=positive_int, default=3,
                   help="number of layers L (the record's own depth: 3 for Wang et al.'s)")
    g.add_argument("--features-dim", type=positive_int, default=3, help="feature dimension d (3)")
    g.add_argument("--preconditioner", type=Text(), default="identity", metavar="identity|random|FILE.npz",
                   help="the teacher's C: identity (C = alpha I, tied layers), random (one generic C_l = alpha (I + "
                        "0.3 "
                        "G_l / sqrt(d)) per layer, untied, from --seed) or FILE.npz with array C, (d, d) or (L, d, d) "
                        "(identity)")
    g.add_argument("--lam", type=finite_float, default=0.5, help="TD(lambda)'s lambda (0.5)")
    g.add_argument("--mask", choices=("context", "none"), default="context",
                   help="the block's mask: context (theirs: the query is never a key or value) or none (context)")
    g.add_argument("--mrp", choices=("random", "boyan"), default="random",
                   help="random MRPs (Dirichlet rows, Unif(-1,1) rewards) or their Boyan chain (random)")
    s = p.add_argument_group("softmax records (--algorithm softmax-td, softmax-td-shift or a construction file of kind "
                             "softmax; Xie et al. 2026; the defaults above apply, the step is --alpha)")
    s.add_argument("--untied", action="store_true",
                   help="one step per layer, alpha_l = alpha exp(0.3 g_l), g_l standard normal from --seed, and one "
                        "(A, V) per layer (default: tied, alpha every layer)")
    s.add_argument("--case", choices=CS.CASES, default="general",
                   help="features: general (Unif(-1,1)^d), tabular (sqrt(tau) e_s, d = states; also compared with "
                        "batch tabular TD) or linear (eps Unif(-1,1)^d; also the error against linear TD over eps = "
                        "0.4 .. 0.05 and its slope) (general)")
    s.add_argument("--tau", type=finite_float, default=CS.TABULAR_TAU,
                   help=f"the tabular case's tau ({CS.TABULAR_TAU:g})")
    s.add_argument("--eps", type=finite_float, default=0.1, help="the linear case's feature scale of the check (0.1)")
    mark_defaults(p, tuple(CHECK_DEFAULTS) + ("layers", "mask"))


def _preconditioners(args, d, layers, alpha, gen):
    spec = args.preconditioner
    if spec == "identity":
        return alpha * torch.eye(d, dtype=DTYPE).expand(layers, d, d).clone(), True
    if spec == "random":
        return random_preconditioners(layers, d, gen, scale=alpha), False
    return load_preconditioner(spec, d, layers)


def _check_config(args, record) -> dict:
    if record.spec.kind == "linear" and (args.untied or args.case != "general"):
        raise InputError("untied" if args.untied else "case", "--untied and --case are for softmax records (a linear "
                                                               "record's untied layers: --preconditioner random)")
    cfg = {k: pick(args, k, v) for k, v in CHECK_DEFAULTS.items()}
    cfg.update(algorithm=record.name, construction=getattr(args, "construction", None),
               layers=pick(args, "layers", record.spec.depth), features_dim=args.features_dim, seed=args.seed,
               preconditioner=args.preconditioner, mask=args.mask, mrp=args.mrp,
               lam=args.lam if record.uses_lambda else None, weights=args.weights, features=args.features,
               gamma_range=list(args.gamma_range) if args.gamma_range else None)
    if str(getattr(args, "device", "cpu")) != "cpu":
        raise InputError("device", "an mrp record is checked on the CPU (the check is a float64 loop per window)")
    if getattr(args, "mdp", None):
        raise InputError("mdp", "MDP files are not read for an mrp record (it draws MRPs: --mrp random|boyan)")
    if args.features not in ("dense", "dense-shared"):
        raise InputError("features", f"an mrp record draws Unif(-1,1) features (dense or dense-shared), "
                                     f"got {args.features}")
    if not (0 <= cfg["gamma"] < 1):
        raise InputError("gamma", f"must satisfy 0 <= gamma < 1, got {cfg['gamma']}")
    if record.uses_lambda and not (0 <= args.lam <= 1):
        raise InputError("lam", f"must be in [0, 1], got {args.lam}")
    if args.mrp == "boyan" and cfg["states"] < 2:
        raise InputError("states", f"a Boyan chain needs at least 2 states, got {cfg['states']}")
    return cfg


def _divergence_lines(res) -> list[str]:
    """The line of a layer-by-layer check whose iteration diverges (none if it does not)."""
    v = res.divergence
    if not v:
        return []
    return [f"the iteration diverges from layer {v['layer']} (window {v['prompt']}: values {v['magnitude']:.3g} > "
            f"{v['ratio_bound']:g} x the window's size {v['window_size']:.3g})"]


def _undecidable_lines(res) -> list[str]:
    """The line of a layer-by-layer check with an undecidable quantity (none if the verdict says more)."""
    u = res.undecidable_example
    if not u or res.verdict == "diverges":
        return []
    return [f"not decidable on {res.undecidable} quantities: window {u['prompt']}, layer {u['layer']}, rounding bound "
            f"{u['bound']:.3e} vs the step's terms {u['signal']:.3e}; {u['suggestion']}"]


def _command_line(parts, cfg) -> str:
    """The reproduce command: ``parts`` and the options every layer-by-layer
    check shares when they differ from their defaults (mask, features, weights)."""
    if cfg["mask"] != "context":
        parts += ["--mask", cfg["mask"]]
    if cfg["features"] != "dense":
        parts += ["--features", cfg["features"]]
    if cfg["weights"]:
        parts += ["--weights", cfg["weights"]]
    return shlex.join(str(x) for x in parts)


def _check_command(cfg) -> str:
    parts = ["icrl-verify", "check", *(["--construction", cfg["construction"]] if cfg["construction"] else
                                       ["--algorithm", cfg["algorithm"]]),
             "--layers", cfg["layers"], "--context", cfg["context"], "--features-dim", cfg["features_dim"],
             "--states", cfg["states"], "--mdps", cfg["mdps"], "--alpha", cfg["alpha"], "--seed", cfg["seed"],
             "--preconditioner", cfg["preconditioner"], "--mrp", cfg["mrp"]]
    parts += ["--gamma-range", *cfg["gamma_range"]] if cfg["gamma_range"] else ["--gamma", cfg["gamma"]]
    if cfg["lam"] is not None:
        parts += ["--lam", cfg["lam"]]
    return _command_line(parts, cfg)


def _softmax_config(args, record) -> dict:
    cfg = _check_config(args, record)
    cfg.update(untied=args.untied, case=args.case, tau=args.tau if args.case == "tabular" else None,
               eps=args.eps if args.case == "linear" else None,
               mask=str(pick(args, "mask", record.spec.mask)))      # a file's own mask unless --mask is given
    if args.preconditioner != "identity":
        raise InputError("preconditioner", "a softmax record's step is --alpha (untied: --untied), not a "
                                           "preconditioner")
    if cfg["gamma_range"]:
        raise InputError("gamma-range", "a softmax construction holds gamma in its weights; give one --gamma")
    if args.case == "tabular":
        if not (0 < args.tau <= 700):
            raise InputError("tau", f"must be in (0, 700] (exp(tau) finite), got {args.tau}")
        cfg["features_dim"] = cfg["states"]
    if args.case == "linear" and not (0 < args.eps <= 1):
        raise InputError("eps", f"must be in (0, 1], got {args.eps}")
    if not cfg["alpha"] > 0:
        raise InputError("alpha", f"must be positive, got {cfg['alpha']}")
    return cfg


def _softmax_command(cfg) -> str:
    parts = ["icrl-verify", "check", *(["--construction", cfg["construction"]] if cfg["construction"] else
                                       ["--algorithm", cfg["algorithm"]]),
             "--layers", cfg["layers"], "--context", cfg["context"], "--states", cfg["states"], "--mdps", cfg["mdps"],
             "--alpha", cfg["alpha"], "--gamma", cfg["gamma"], "--seed", cfg["seed"], "--mrp", cfg["mrp"]]
    if cfg["case"] != "tabular":
        parts += ["--features-dim", cfg["features_dim"]]
    if cfg["case"] != "general":
        parts += ["--case", cfg["case"]] + (["--tau", cfg["tau"]] if cfg["case"] == "tabular" else
                                            ["--eps", cfg["eps"]])
    if cfg["untied"]:
        parts.append("--untied")
    return _command_line(parts, cfg)


def run_softmax_check(args, record) -> int:
    """``check`` of a softmax record: every layer's value rows against weighted
    softmax TD (``numerics.analysis.check_softmax``)."""
    cfg = _softmax_config(args, record)
    d, L, n, B, S = cfg["features_dim"], cfg["layers"], cfg["context"], cfg["mdps"], cfg["states"]
    what = f"check of {B} MRPs x {S} states, d = {d}, n = {n}, {L} layers"
    shrink = "use fewer --mdps or smaller --states/--features-dim/--context/--layers"
    budget.guard(budget.softmax_check(B, S, d, n, L), budget.max_memory(args.max_memory), what + ",", shrink)
    extra = 1 if args.case == "general" else 1 + len(CS.LINEAR_EPS) if args.case == "linear" else 2
    budget.guard_time(budget.softmax_check_work(B * extra, S, d, n, L), budget.max_time(args.max_time), what, shrink)
    gen = torch.Generator().manual_seed(cfg["seed"])
    alphas = CS.untied_alphas(L, cfg["alpha"], gen) if cfg["untied"] else [float(cfg["alpha"])] * L
    weights, tied = None, not cfg["untied"]
    if cfg["weights"]:
        A, V, tied = load_softmax_weights(cfg["weights"], record, d, L)
        weights = (A, V)
    t0 = time.perf_counter()
    mdp, sw = CS.draw(cfg["mrp"], B, S, d, n, cfg["gamma"], gen, case=args.case, tau=args.tau,
                      shared_features=cfg["features"] == "dense-shared")
    if args.case == "linear":
        sw = CS.softmax_windows(mdp, args.eps * sw.F, sw.states)
    with progress_bar(total=B, desc=f"check {record.name}", disable=args.json) as bar:
        res = CS.check_softmax(record, sw, alphas, layers=L, tied=tied, weights=weights, mask=cfg["mask"],
                               progress=bar.update)
    special = None
    if args.case == "tabular":
        special = CS.tabular_case(record, B, S, n, L, cfg["gamma"], alphas, gen, kind=cfg["mrp"], tau=args.tau,
                                  tied=not cfg["untied"])
    elif args.case == "linear":
        special = CS.linear_case(record, B, S, d, n, L, cfg["gamma"], alphas, gen, kind=cfg["mrp"],
                                 tied=not cfg["untied"])
    out = res.as_dict() | {"layout": record.layout.name, "seconds": round(time.perf_counter() - t0, 3),
                           "weights": cfg["weights"], "command": _softmax_command(cfg), "config": cfg,
                           "special_case": special, "theorem": record.theorem, "statement": record.statement}
    src = cfg["weights"] or f"construction ({record.theorem})"
    steps = (f"alpha = {cfg['alpha']:g}" if tied and not cfg["untied"] else
             f"alpha_l from {min(alphas):.3g} to {max(alphas):.3g}")
    lines = [f"check {record.name}: {res.prompts} windows of {cfg['mrp']} MRPs ({S} states), L = {L} "
             f"{'tied' if res.tied else 'untied'} layers ({res.form or 'softmax'}), n = {n}, d = {d}, mask {res.mask}, "
             f"features {args.case}",
             f"weights: {src}; teacher: {L} iterations of weighted softmax TD ({steps}) by an independent "
             f"per-state reference",
             f"max relative error (current and target rows after every layer) = {res.max_rel_error:.3e}; each "
             f"layer's own error at most {res.worst_error_over_bound:.3g} of its rounding bound; features and "
             f"rewards compared exactly (docs/check.md, Softmax records)",
             WANG_VERDICT_LINES[res.verdict].replace("batch TD", "weighted softmax TD")]
    if special is not None and special["case"] == "tabular":
        lines.append(f"tabular case (tau = {special['tau']:g}, exp(-tau) = {special['non_match_weight']:.2g}): the "
                     f"block against batch tabular TD, max relative error {special['max_rel_error']:.3e} "
                     f"({'within' if special['holds'] else 'ABOVE'} {special['rtol']:g})")
    elif special is not None:
        c, s_ = special["centered"], special["symmetric"]
        lines.append(f"linear case (eps = {', '.join(f'{e:g}' for e in special['eps'])}): error against linear TD "
                     f"with features [1; eps psi], direction [1; eps (psi - mean)]: "
                     f"{', '.join(f'{e:.2e}' for e in c['max_abs_error'])}, slope {c['slope']:.3f} "
                     f"({'O(eps^4)' if special['holds'] else 'NOT O(eps^4)'}); with centred features on both "
                     f"sides: slope {s_['slope']:.3f}")
    lines += _divergence_lines(res)
    if res.counterexample:
        c = res.counterexample
        lines.append(f"counterexample: window {c['prompt']}, after layer {c['layer']}, {c['quantity']} row "
                     f"{c['row']}, column {c['column']} (state {c['state']}): block {c['got']:.17g}, reference "
                     f"{c['want']:.17g} (bound {c['bound']:.3g}; {c['why']}); reproduce: {out['command']}")
    else:
        lines += _undecidable_lines(res)
    emit(lines, out, args.json)
    special_ok = special is None or special["holds"]
    return 0 if res.holds and special_ok else 1


def run_layer_check(args, record) -> int:
    """``check`` of an mrp record: every layer against the teacher applied layer by layer."""
    cfg = _check_config(args, record)
    d, L, n = cfg["features_dim"], cfg["layers"], cfg["context"]
    budget.guard(budget.layer_check(cfg["mdps"], cfg["states"], d, n, L), budget.max_memory(args.max_memory),
                 f"check of {cfg['mdps']} MRPs x {cfg['states']} states, d = {d}, n = {n}, "
                 f"{L} layers,", "use fewer --mdps or smaller --states/--features-dim/--context/--layers")
    budget.guard_time(budget.layer_check_work(cfg["mdps"], cfg["states"], d, n, L), budget.max_time(args.max_time),
                      f"check of {cfg['mdps']} MRPs x {cfg['states']} states, d = {d}, n = {n}, "
                      f"{L} layers", "use fewer --mdps or smaller --states/--features-dim/--context/--layers")
    gen = torch.Generator().manual_seed(cfg["seed"])
    Cs, tied = _preconditioners(args, d, L, cfg["alpha"], gen)
    weights = None
    if cfg["weights"]:
        P, V, tied = load_layer_weights(cfg["weights"], record, d, L)
        weights = (P, V)
    if cfg["gamma_range"]:
        lo, hi = cfg["gamma_range"]
        if not (0 <= lo <= hi < 1):
            raise InputError("gamma-range", f"need 0 <= LO <= HI < 1, got {lo} {hi}")
        gamma = lo + (hi - lo) * torch.rand(cfg["mdps"], generator=gen, dtype=DTYPE)
    else:
        gamma = cfg["gamma"]
    t0 = time.perf_counter()
    win = draw_windows(cfg["mrp"], cfg["mdps"], cfg["states"], d, n, gamma, gen,
                       shared_features=cfg["features"] == "dense-shared")
    with progress_bar(total=cfg["mdps"], desc=f"check {record.name}", disable=args.json) as bar:
        res = check_against_loop(record, win, Cs, layers=L, tied=tied, lam=cfg["lam"], weights=weights,
                                 mask=cfg["mask"], progress=bar.update)
    out = res.as_dict() | {"layout": record.layout.name, "seconds": round(time.perf_counter() - t0, 3),
                           "weights": cfg["weights"], "command": _check_command(cfg), "config": cfg}
    src = cfg["weights"] or f"construction ({record.title}, C from --preconditioner {cfg['preconditioner']})"
    lines = [f"check {record.name}: {res.prompts} windows of {cfg['mrp']} MRPs ({cfg['states']} states), "
             f"L = {L} {'tied' if tied else 'untied'} layers, n = {n}, d = {d}, mask {res.mask}",
             f"weights: {src}; teacher: {L} steps of batch {record.title} by an independent loop",
             f"max relative error (read-out, carried row, untouched entries, after every layer) = "
             f"{res.max_rel_error:.3e}; each layer's own error at most {res.worst_error_over_bound:.3g} of its "
             f"rounding bound; untouched entries compared exactly (docs/check.md, Tolerances)",
             WANG_VERDICT_LINES[res.verdict]]
    lines += _divergence_lines(res)
    if res.counterexample:
        c = res.counterexample
        where = "read-out" if c["quantity"] == "value" else f"{c['quantity']} entry {c['entry']}"
        rows = f"rows changed: {c['rows']}" if c["quantity"] == "untouched" else f"row {c['rows'][0]}"
        lines.append(f"counterexample: window {c['prompt']}, after layer {c['layer']}, {where} ({rows}): block {c['block']:.17g}, loop {c['loop']:.17g} (relative error "
                     f"{c['relative_error']:.3g}; {c['why']}); reproduce: {out['command']}")
    else:
        lines += _undecidable_lines(res)
    emit(lines, out, args.json)
    return 0 if res.holds else 1
