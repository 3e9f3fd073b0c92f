"""``--layout wang2025`` of ``icrl-verify check``, ``prove`` and ``train``, and
``prove --stacked``: Wang et al. (ICLR 2025) through the same commands
(argparse and printing only; the computation is in ``numerics.analysis`` and
``theory``).

The shared options of the value layouts keep their meaning; where Wang et
al.'s setting differs and the option was not given (on the command line or
in ``--config``), their value is used: ``--algorithm td``, ``--states 10``,
``--gamma 0.9``, ``--alpha 1`` (``C = I``), ``--context 100`` and ``--mdps 30``
for ``check`` (their verification sizes), ``--context 30``, ``--lr 1e-3`` and
``--mdps`` (MRPs per seed) for ``train`` (their Figure 2).  Every report and
JSON result records the values used, and the reproducing command writes
them all out.
"""
from __future__ import annotations

import os
import shlex
import time

import torch

from numerics.analysis import budget
from numerics.analysis.wang_check import check_against_loop, draw_windows, random_preconditioners
from numerics.analysis.wang_train import CPU_SCALE, PAPER_SCALE, WangTrainConfig, train_wang
from numerics.commands.cli import at_boundary, config_of, emit, progress_bar
from numerics.core.tolerances import DTYPE
from numerics.io.config import finite_float, positive_int
from numerics.io.files import atomic_write
from numerics.io.options import Text
from numerics.io.report import run_header
from numerics.io.wang_weights import load_preconditioner, load_wang_weights, save_wang_weights
from numerics.render import wang_training
from theory import stacked, wang_prove
from theory import wang as W
from theory.errors import InputError

LAYOUTS = ("paper", "wang2025")

#: The verdict's line of ``check --layout wang2025``.
WANG_VERDICT_LINES = {
    "holds": "HOLDS: the L-layer block computes L steps of batch TD on every window",
    "fails": "FAILS: counterexample below",
    "diverges": "DIVERGES: the iteration grows past the stated bound (below); not judged to hold",
    "undecidable": "NOT DECIDABLE in float64: a layer's rounding is not small against its TD step (below)",
}

#: Wang et al.'s values of the shared options, per command (used when the option was not given).
CHECK_DEFAULTS = dict(algorithm="td", states=10, gamma=0.9, alpha=1.0, context=100, mdps=30)
PROVE_DEFAULTS = dict(algorithm="td")
TRAIN_DEFAULTS = dict(algorithm="td", states=10, gamma=0.9, context=30, lr=1e-3, mdps=CPU_SCALE["mrps"], seeds=10)
#: Options of the value layouts that --layout wang2025 does not use: given, they are an error.
TRAIN_UNUSED = ("model", "parameterization", "features")


class _Default:
    """Marks a parser default, so that the Wang path can tell it from a given value."""


class _DefaultInt(int, _Default):
    pass


class _DefaultFloat(float, _Default):
    pass


class _DefaultStr(str, _Default):
    pass


def mark_defaults(p, dests):
    """Replace the defaults of ``dests`` by equal values that remember they are defaults."""
    for action in p._actions:
        v = action.default
        if action.dest in dests and not isinstance(v, bool):
            kind = _DefaultInt if isinstance(v, int) else _DefaultFloat if isinstance(v, float) else \
                _DefaultStr if isinstance(v, str) else None
            if kind is not None:
                action.default = kind(v)


def pick(args, dest: str, ours):
    """The given value of ``dest``, or Wang et al.'s value ``ours`` when it was
    not given (a marked default, or None for options whose default depends on
    another option, like train's scale under --protocol)."""
    v = getattr(args, dest)
    return ours if v is None or isinstance(v, _Default) else v


def add_layout_argument(p):
    p.add_argument("--layout", choices=LAYOUTS, default="paper",
                   help="paper: Liang & Lai's layouts (value, actor-critic; chosen by --algorithm); wang2025: Wang et "
                        "al.'s L-layer masked TD (docs/wang2025.md) (paper)")


# ==================================================================== check

def add_check_arguments(p):
    add_layout_argument(p)
    g = p.add_argument_group("Wang et al. 2025 (--layout wang2025; --algorithm td, td-lambda, rg, avg-reward; "
                             "defaults there: states 10, gamma 0.9, alpha 1, context 100, mdps 30)")
    g.add_argument("--layers", type=positive_int, default=3, help="number of layers L (3)")
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
    mark_defaults(p, CHECK_DEFAULTS)


def _preconditioners(args, d, layers, alpha, gen):
    spec = args.preconditioner
    if spec == "identity":
        return alpha * torch.eye(d, dtype=DTYPE).expand(layers, d, d).clone(), True
    if spec == "random":
        return random_preconditioners(layers, d, gen, scale=alpha), False
    return load_preconditioner(spec, d, layers)


def _check_config(args) -> dict:
    record = W.get(pick(args, "algorithm", CHECK_DEFAULTS["algorithm"]))
    cfg = {k: pick(args, k, v) for k, v in CHECK_DEFAULTS.items()}
    cfg.update(algorithm=record.name, layers=args.layers, features_dim=args.features_dim, seed=args.seed,
               preconditioner=args.preconditioner, mask=args.mask, mrp=args.mrp,
               lam=args.lam if record.uses_lambda else None, weights=args.weights, features=args.features,
               gamma_range=list(args.gamma_range) if args.gamma_range else None)
    if str(getattr(args, "device", "cpu")) != "cpu":
        raise InputError("device", "--layout wang2025 runs on the CPU (the check is a float64 loop per window)")
    if getattr(args, "mdp", None):
        raise InputError("mdp", "MDP files are not read with --layout wang2025 (it draws MRPs: --mrp random|boyan)")
    if args.features not in ("dense", "dense-shared"):
        raise InputError("features", f"--layout wang2025 draws Unif(-1,1) features (dense or dense-shared), "
                                     f"got {args.features}")
    if not (0 <= cfg["gamma"] < 1):
        raise InputError("gamma", f"must satisfy 0 <= gamma < 1, got {cfg['gamma']}")
    if record.uses_lambda and not (0 <= args.lam <= 1):
        raise InputError("lam", f"must be in [0, 1], got {args.lam}")
    if args.mrp == "boyan" and cfg["states"] < 2:
        raise InputError("states", f"a Boyan chain needs at least 2 states, got {cfg['states']}")
    return cfg


def _check_command(cfg) -> str:
    parts = ["icrl-verify", "check", "--layout", "wang2025", "--algorithm", cfg["algorithm"],
             "--layers", cfg["layers"], "--context", cfg["context"], "--features-dim", cfg["features_dim"],
             "--states", cfg["states"], "--mdps", cfg["mdps"], "--alpha", cfg["alpha"], "--seed", cfg["seed"],
             "--preconditioner", cfg["preconditioner"], "--mrp", cfg["mrp"]]
    parts += ["--gamma-range", *cfg["gamma_range"]] if cfg["gamma_range"] else ["--gamma", cfg["gamma"]]
    if cfg["lam"] is not None:
        parts += ["--lam", cfg["lam"]]
    if cfg["mask"] != "context":
        parts += ["--mask", cfg["mask"]]
    if cfg["features"] != "dense":
        parts += ["--features", cfg["features"]]
    if cfg["weights"]:
        parts += ["--weights", cfg["weights"]]
    return shlex.join(str(x) for x in parts)


def run_check(args) -> int:
    cfg = _check_config(args)
    record = W.get(cfg["algorithm"])
    d, L, n = cfg["features_dim"], cfg["layers"], cfg["context"]
    budget.guard(budget.wang_check(cfg["mdps"], cfg["states"], d, n, L), budget.max_memory(args.max_memory),
                 f"check --layout wang2025 of {cfg['mdps']} MRPs x {cfg['states']} states, d = {d}, n = {n}, "
                 f"{L} layers,", "use fewer --mdps or smaller --states/--features-dim/--context/--layers")
    budget.guard_time(budget.wang_check_work(cfg["mdps"], cfg["states"], d, n, L), budget.max_time(args.max_time),
                      f"check --layout wang2025 of {cfg['mdps']} MRPs x {cfg['states']} states, d = {d}, n = {n}, "
                      f"{L} layers", "use fewer --mdps or smaller --states/--features-dim/--context/--layers")
    gen = torch.Generator().manual_seed(cfg["seed"])
    Cs, tied = _preconditioners(args, d, L, cfg["alpha"], gen)
    weights = None
    if cfg["weights"]:
        P, V, tied = load_wang_weights(cfg["weights"], record, d, L)
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
    with progress_bar(total=cfg["mdps"], desc=f"check wang2025 {record.name}", disable=args.json) as bar:
        res = check_against_loop(record, win, Cs, layers=L, tied=tied, lam=cfg["lam"], weights=weights,
                                 mask=cfg["mask"], progress=bar.update)
    out = res.as_dict() | {"layout": "wang2025", "seconds": round(time.perf_counter() - t0, 3),
                           "weights": cfg["weights"], "command": _check_command(cfg), "config": cfg}
    src = cfg["weights"] or f"construction ({record.title}, C from --preconditioner {cfg['preconditioner']})"
    lines = [f"check wang2025 {record.name}: {res.prompts} windows of {cfg['mrp']} MRPs ({cfg['states']} states), "
             f"L = {L} {'tied' if tied else 'untied'} layers, n = {n}, d = {d}, mask {res.mask}",
             f"weights: {src}; teacher: {L} steps of batch {record.title} by an independent loop",
             f"max relative error (read-out, carried row, untouched entries, after every layer) = "
             f"{res.max_rel_error:.3e}; each layer's own error at most {res.worst_error_over_bound:.3g} of its "
             f"rounding bound; untouched entries compared exactly (docs/check.md, Tolerances)",
             WANG_VERDICT_LINES[res.verdict]]
    if res.divergence:
        v = res.divergence
        lines.append(f"the iteration diverges from layer {v['layer']} (window {v['prompt']}: values "
                     f"{v['magnitude']:.3g} > {v['ratio_bound']:g} x the window's size {v['window_size']:.3g})")
    if res.counterexample:
        c = res.counterexample
        where = "read-out" if c["quantity"] == "value" else f"{c['quantity']} entry {c['entry']}"
        rows = f"rows changed: {c['rows']}" if c["quantity"] == "untouched" else f"row {c['rows'][0]}"
        lines.append(f"counterexample: window {c['prompt']}, after layer {c['layer']}, {where} ({rows}): block {c['block']:.17g}, loop {c['loop']:.17g} (relative error "
                     f"{c['relative_error']:.3g}; {c['why']}); reproduce: {out['command']}")
    elif res.undecidable_example and res.verdict != "diverges":
        u = res.undecidable_example
        lines.append(f"not decidable on {res.undecidable} quantities: window {u['prompt']}, layer {u['layer']}, "
                     f"rounding bound {u['bound']:.3e} vs the step's terms {u['signal']:.3e}; {u['suggestion']}")
    emit(lines, out, args.json)
    return 0 if res.holds else 1


# ==================================================================== prove

def add_prove_arguments(p):
    add_layout_argument(p)
    p.add_argument("--stacked", action="store_true",
                   help="decide whether L stacked copies of Theorem 3.1's block compute L batch steps (every L): "
                        "proven, or refuted with an exact counterexample (value-layout algorithms)")
    mark_defaults(p, PROVE_DEFAULTS)


def algorithm_choices(base):
    """``--algorithm`` choices: the paper's and Wang et al.'s."""
    return tuple(dict.fromkeys(tuple(base) + W.names()))


def prove_choices(base):
    """``--algorithm`` choices of ``prove``: the paper's, Wang et al.'s, ``all``."""
    return tuple(dict.fromkeys(tuple(base) + W.names() + ("all",)))


def run_prove(args) -> int:
    """``prove --layout wang2025`` or ``prove --stacked``."""
    if args.weights:
        raise InputError("weights", "--weights is for the paper's layouts; --layout wang2025 and --stacked prove the "
                                    "constructions")
    if args.stacked and args.layout == "wang2025":
        raise InputError("stacked", "--stacked decides Liang & Lai's block; it does not combine with --layout wang2025")
    algorithm = str(args.algorithm) if args.stacked else pick(args, "algorithm", PROVE_DEFAULTS["algorithm"])
    if args.stacked:
        names = stacked.STACKABLE if algorithm == "all" else (algorithm,)
        decide, render, prefix = stacked.decide, stacked.render, "stacked-"
        ok_key = "holds"
    else:
        names = W.names() if algorithm == "all" else (W.get(algorithm).name,)
        decide, render, prefix = wang_prove.prove, wang_prove.render, "wang2025-"
        ok_key = "general"
    results, lines = [], []
    with progress_bar(total=len(names), desc="prove", disable=args.json) as bar:
        for name in names:
            res = decide(name)
            command = shlex.join(["icrl-verify", "prove"] + (["--stacked"] if args.stacked else
                                                             ["--layout", "wang2025"]) + ["--algorithm", name])
            report = os.path.join(args.out, prefix + name + ".md")
            atomic_write(report, render(res, run_header(command, config_of(args) | {"algorithm": name})))
            out = (dict(res) if args.stacked else wang_prove.summary(res)) | {"report": report, "command": command}
            results.append(out)
            if args.stacked:
                lines.append(f"prove --stacked {name}: {'PROVEN' if res['holds'] else 'REFUTED'} (one block on the "
                             f"whole prompt: {'proven' if res['one_block'] else 'NOT proven'}); report {report}")
                if res["counterexample"]:
                    lines.append(f"  counterexample: {res['counterexample']}")
            else:
                refused = sum(f["general_refused"] and f["concrete_refused"] for f in res["faults"])
                lines.append(f"prove wang2025 {name}: {'PROVEN' if res['general'] else 'NOT PROVEN'} (one layer, every "
                             f"d and n; base case; induction: every L; concrete sizes) in {res['seconds']:.1f} s; "
                             f"planted faults refused {refused}/{len(res['faults'])}; report {report}")
                if res["residual"]:
                    lines.append(f"  residual: {res['residual']}")
            bar.update(1)
    ok = all(r[ok_key] for r in results) and all(r.get("faults_refused", True) for r in results)
    obj = results[0] if len(results) == 1 else {"algorithms": results, "all_proven": ok}
    emit(lines, obj, args.json)
    return 0 if ok else 1


# ==================================================================== train

def add_train_arguments(p):
    add_layout_argument(p)
    g = p.add_argument_group(
        "Wang et al. 2025, Figure 2 (--layout wang2025: Boyan chains, their objective; defaults there: states 10, "
        f"gamma 0.9, context 30, lr 1e-3, mdps {CPU_SCALE['mrps']} MRPs per seed (their scale: "
        f"{PAPER_SCALE['mrps']}))")
    g.add_argument("--layers", type=positive_int, default=3, help="number of layers L (3)")
    g.add_argument("--features-dim", type=positive_int, default=4, help="feature dimension d (4)")
    g.add_argument("--untied", action="store_true", help="one (P, V) per layer (their 'sequential' mode); "
                                                         "default tied (their 'auto' mode)")
    g.add_argument("--minibatches", type=positive_int, default=5, help="Adam steps per MRP (5)")
    g.add_argument("--window-steps", type=positive_int, default=64,
                   help="sliding-window TD errors per minibatch (64: 65 prompts)")
    g.add_argument("--weight-decay", type=finite_float, default=1e-6, help="Adam weight decay (1e-6)")
    g.add_argument("--log-every", type=positive_int, default=50, help="MRPs between points of the curves (50)")
    mark_defaults(p, tuple(TRAIN_DEFAULTS) + TRAIN_UNUSED)


def _train_config(args) -> WangTrainConfig:
    algorithm = pick(args, "algorithm", TRAIN_DEFAULTS["algorithm"])
    if algorithm != "td":
        raise InputError("algorithm", f"--layout wang2025 trains their TD(0) transformer (td), got {algorithm!r}")
    for dest in TRAIN_UNUSED:
        if not isinstance(getattr(args, dest), _Default):
            raise InputError(dest, "not used with --layout wang2025 (their block: full P and V, Unif(-1,1) features)")
    if str(args.device) != "cpu":
        raise InputError("device", "--layout wang2025 trains on the CPU")
    for dest in ("resume", "gamma_range"):
        if getattr(args, dest):
            raise InputError(dest.replace("_", "-"), "not supported with --layout wang2025")
    ours = {k: pick(args, k, v) for k, v in TRAIN_DEFAULTS.items()}
    return WangTrainConfig(states=ours["states"], d=args.features_dim, n=ours["context"],
                           layers=args.layers, tied=not args.untied, gamma=ours["gamma"],
                           lr=ours["lr"], weight_decay=args.weight_decay, mrps=ours["mdps"],
                           minibatches=args.minibatches,
                           steps=args.window_steps, seeds=ours["seeds"], seed=args.seed, eval_mrps=args.eval_mdps,
                           log_every=args.log_every)


def train_command(cfg: WangTrainConfig, extra=()) -> str:
    parts = ["icrl-verify", "train", "--layout", "wang2025", "--states", cfg.states, "--features-dim", cfg.d,
             "--context", cfg.n, "--layers", cfg.layers, "--gamma", cfg.gamma, "--lr", cfg.lr,
             "--weight-decay", cfg.weight_decay, "--mdps", cfg.mrps, "--minibatches", cfg.minibatches,
             "--window-steps", cfg.steps, "--seeds", cfg.seeds, "--seed", cfg.seed, "--eval-mdps", cfg.eval_mrps,
             "--log-every", cfg.log_every] + (["--untied"] if not cfg.tied else []) + list(extra)
    return shlex.join(str(x) for x in parts)


def scale_note(cfg: WangTrainConfig) -> str:
    if cfg.mrps >= PAPER_SCALE["mrps"] and cfg.minibatches == 5 and cfg.steps == 64:
        return "their scale (Figure 2: 4,000 MRPs x 5 minibatches)."
    return (f"a CPU scale ({cfg.mrps} of their {PAPER_SCALE['mrps']} MRPs; docs/wang2025.md gives the measured cost; "
            f"their scale: --mdps {PAPER_SCALE['mrps']}).")


def run_train(args) -> int:
    cfg = _train_config(args)
    name = args.name or ("wang2025-td" + ("-untied" if not cfg.tied else ""))
    if not name or "/" in name or name.startswith("."):
        raise InputError("name", f"must be a plain file name, got {name!r}")
    out = args.out or os.path.join("runs", "train", name)
    extra = ["--name", name] if args.name else []
    command = train_command(cfg, extra)
    budget.guard(budget.wang_train(cfg.seeds, cfg.steps, cfg.eval_mrps, cfg.states, cfg.d, cfg.n, cfg.layers),
                 budget.max_memory(args.max_memory),
                 f"train --layout wang2025 of {cfg.seeds} seeds, {cfg.states} states, d = {cfg.d}, n = {cfg.n}, "
                 f"{cfg.layers} layers,", "use fewer --seeds/--eval-mdps or smaller --context/--features-dim/--states")
    budget.guard_time(budget.wang_train_work(cfg.seeds, cfg.steps, args.minibatches, cfg.eval_mrps, cfg.states, cfg.d,
                                             cfg.n, cfg.layers), budget.max_time(args.max_time),
                      f"train --layout wang2025 of {cfg.seeds} seeds x {cfg.steps} window steps, {cfg.states} states, "
                      f"d = {cfg.d}, n = {cfg.n}, {cfg.layers} layers",
                      "use fewer --seeds/--window-steps/--minibatches/--eval-mdps or smaller "
                      "--context/--features-dim/--states/--layers")
    with progress_bar(total=cfg.mrps, desc=f"train {name}", disable=args.json, unit="MRP") as bar:
        res = train_wang(cfg, progress=at_boundary(bar.update), threads=args.threads)
    P, V = res["P"], res["V"]
    for s in range(cfg.seeds):
        Ps, Vs = (P[s], V[s]) if cfg.tied else (P[:, s], V[:, s])
        save_wang_weights(os.path.join(out, f"seed-{cfg.seed + s}.npz"), Ps, Vs)
    res["weights_dir"] = out
    report = None
    if not args.no_report:
        wang_training.write(res, name, args.report_dir, command, cfg.as_dict() | {"name": name, "out": out},
                            scale_note(cfg))
        report = os.path.join(args.report_dir, name + ".md")
    f = res["final"]
    fmt = lambda k: f"{f[k]['mean']:.3g} [{f[k]['ci95'][0]:.3g}, {f[k]['ci95'][1]:.3g}]"
    lines = [f"train {name}: {cfg.seeds} seeds x {cfg.mrps} MRPs x {cfg.minibatches} minibatches "
             f"({res['adam_steps']} Adam steps per seed), {res['seconds']:.0f} s",
             f"structure (sign-aligned): V written entry {fmt('written_entry')} vs others {fmt('others_mean_abs_V')}; "
             f"tr P[phi,phi] {fmt('trace_phi_phi')}, tr P[phi,gphi] {fmt('trace_phi_gphi')} vs others "
             f"{fmt('others_mean_abs_P')}",
             f"functional: value difference {fmt('value_difference')}, sensitivity cosine "
             f"{fmt('sensitivity_cosine')}, implied-weight cosine {fmt('implied_weight_cosine')}; fitted alpha "
             f"{fmt('alpha_fitted')}",
             f"distance to the construction family {fmt('distance')}: "
             + ("RECOVERED" if res["recovered"] else f"NOT RECOVERED (threshold {res['recovery_threshold']:.0%} on the "
                                                     "upper end of the 95% interval)"),
             f"weights: {out}/seed-*.npz" + (f"; report: {report}" if report else "")]
    result = dict(layout="wang2025", recovered=res["recovered"], distance_upper95=res["distance_upper95"],
                  threshold=res["recovery_threshold"], final=f, seconds=res["seconds"], report=report,
                  weights=out, command=command, config=cfg.as_dict())
    emit(lines, result, args.json)
    return 0 if res["recovered"] else 1
