"""icrl-verify protocols: the paper's exact Algorithm 1 beside the minibatch
variant.  Reads two trained blocks (icrl-verify train --protocol paper, and
icrl-verify train), then reports for each the relative distance of
(P12, Vbar21) to M* and the fitted c, the held-out loss on one common
held-out set, and closed-loop control on the same unseen MDPs as the teacher,
the constructed block and the oracle (95% intervals over seeds), rolled out
until the curves flatten: the round at which each method reaches 0.9 of the
oracle's normalised return.  The protocols agree when both blocks recover
the construction and the paired 95% interval of their final control
difference lies within +-0.02 (equivalent); they differ when a block does not
recover or the interval lies entirely outside +-0.02; otherwise control
equivalence is inconclusive at that size.  Writes reports/training/protocols.md
(+ .json, .png).  Exit 0 when the protocols agree, 1 otherwise, 2 on bad input.
"""
from __future__ import annotations

import os

from numerics.analysis import budget
from numerics.analysis.protocols import NAMES, compare_protocols
from numerics.analysis.train import TrainConfig
from numerics.commands.cli import add_max_memory, at_boundary, config_of, emit, plain_name, progress_bar
from numerics.core.runtime import check_interrupt
from numerics.core.tolerances import NEAR_ORACLE_LEVEL
from numerics.io.commandline import reproduce_command
from numerics.io.config import finite_float, positive_int
from numerics.io.models import load_model
from numerics.io.options import SEED, Folder, Name, Path
from numerics.render import protocols as render
from numerics.render.training import relative
from theory.errors import InputError

DEFAULTS = {"exact": os.path.join("runs", "train", "sarsa-lsa-paper", "lsa.npz"),
            "minibatch": os.path.join("runs", "train", "sarsa-lsa", "lsa.npz")}
HOW = {"exact": "icrl-verify train --protocol paper", "minibatch": "icrl-verify train"}


def add_arguments(p):
    g = p.add_argument_group("the two trained blocks (model files written by icrl-verify train)")
    g.add_argument("--exact", type=Path(), metavar="FILE.npz", default=DEFAULTS["exact"],
                   help=f"block trained by the exact protocol ({DEFAULTS['exact']})")
    g.add_argument("--minibatch", type=Path(), metavar="FILE.npz", default=DEFAULTS["minibatch"],
                   help=f"block trained by the minibatch protocol ({DEFAULTS['minibatch']})")
    c = p.add_argument_group("comparison")
    c.add_argument("--seeds", type=positive_int, default=10, help="control seeds (10)")
    c.add_argument("--mdps", type=positive_int, default=100, help="unseen MDPs per control seed (100)")
    c.add_argument("--rounds", type=positive_int, default=2000, help="control rounds (2000)")
    c.add_argument("--level", type=finite_float, default=NEAR_ORACLE_LEVEL,
                   help=f"fraction of the oracle's normalised return to reach ({NEAR_ORACLE_LEVEL:g})")
    c.add_argument("--eval-mdps", type=positive_int, default=64, help="MDPs of the common held-out set (64)")
    c.add_argument("--eval-frames", type=positive_int, default=1000, help="frames of the common held-out set (1000)")
    c.add_argument("--seed", type=SEED, default=0, help="seed of the held-out set and the control MDPs (0)")
    c.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (1)")
    c.add_argument("--config", type=Path(), metavar="FILE.toml", default=None, help="read options from a TOML file")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Folder(), metavar="DIR", default=os.path.join("reports", "training"),
                   help="report directory (reports/training)")
    o.add_argument("--name", type=Name(), default="protocols", help="report name (protocols)")
    o.add_argument("--no-report", action="store_true", help="print only")
    add_max_memory(o)
    p.add_argument("--json", action="store_true", help="print one JSON object with the result as the last line")


def _load(which: str, path: str):
    if not os.path.exists(path):
        raise InputError(which, f"no model file {path}; train one with `{HOW[which]} --out DIR` and pass DIR/lsa.npz")
    model, meta = load_model(path)
    if meta["model"]["kind"] != "lsa":
        raise InputError(which, f"{path} holds a {meta['model']['kind']} model, not an LSA block")
    if not isinstance(meta.get("config"), dict):
        raise InputError(which, f"{path}.json lacks the training config (written by icrl-verify train)")
    try:
        cfg = TrainConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise InputError(which, f"{path}.json: training config not readable ({e})") from None
    return model.eval(), cfg, meta


def _guard(cfg: TrainConfig, args):
    """Exit 2 before computing when the held-out evaluation or the control
    loop at the trained blocks' sizes would need more than ``--max-memory``
    or more time than ``--max-time``."""
    S, A, d, n = cfg.states, cfg.actions, cfg.d, cfg.n
    est = budget.control(cfg.record, args.mdps, S, A, d, n, args.rounds, methods=4)
    for k, v in budget.check(cfg.record, args.eval_mdps, S, A, d, n).parts.items():
        est.add(f"held-out set: {k}", v)
    budget.guard(est, budget.max_memory(args.max_memory),
                 f"protocols at {S} states x {A} actions (d = {d}), n = {n}, {args.mdps} control MDPs x "
                 f"{args.rounds} rounds, {args.eval_mdps} held-out MDPs,", "use fewer --mdps/--rounds/--eval-mdps")
    work = budget.control_work(cfg.record, args.seeds, args.mdps, args.rounds, S, A, d, n, methods=4)
    work.add("held-out loss (eval mdps x eval frames x context x m)",
             2.0 * budget.stream_ops(cfg.record, args.eval_mdps, n, S, A, d) * args.eval_frames)
    budget.guard_time(work, budget.max_time(args.max_time),
                      f"protocols: {args.seeds} seeds x {args.mdps} MDPs x {args.rounds} rounds and {args.eval_mdps} "
                      f"held-out MDPs x {args.eval_frames} frames at {S} states x {A} actions (d = {d}), n = {n}",
                      "use fewer --seeds/--mdps/--rounds/--eval-mdps/--eval-frames")


def run(args) -> int:
    if args.seed < 0:
        raise InputError("seed", f"must be >= 0, got {args.seed}")
    if args.seeds < 2:
        raise InputError("seeds", f"need at least 2 seeds for an interval over seeds, got {args.seeds}")
    name = plain_name(args.name)
    loaded = {k: _load(k, getattr(args, k)) for k in NAMES}
    _guard(loaded["exact"][1], args)
    command = reproduce_command("protocols", args, add_arguments)
    with progress_bar(total=args.seeds * (args.rounds + 1), desc="control", disable=args.json, unit="round") as bar:
        res = compare_protocols({k: v[0] for k, v in loaded.items()}, {k: v[1] for k, v in loaded.items()},
                                {k: v[2] for k, v in loaded.items()}, seeds=args.seeds, mdps=args.mdps,
                                rounds=args.rounds, seed=args.seed, level=args.level, eval_mdps=args.eval_mdps,
                                eval_frames=args.eval_frames, threads=args.threads, progress=at_boundary(bar.update))
    check_interrupt()
    report = None
    if not args.no_report:
        render.write(res, args.out, name, command, config_of(args))
        report = os.path.join(args.out, name + ".md")
    st, M, R = res["structure"], res["control"]["methods"], res["control"]["rounds"]
    lines = [f"{k}: distance to M* {relative(st[k]['distance_to_manifold'])} at c = {st[k]['scale_c']:.4g}; held-out loss "
             f"{res['heldout'][k]['loss']:.3e}; return after {R} rounds {M[k]['final_normalized_return']:.4f}; "
             f"rounds to {args.level:g} of the oracle: {res['rounds_to_level'][k]['mean_curve']}" for k in NAMES]
    lines.append(f"teacher: return after {R} rounds {M['teacher']['final_normalized_return']:.4f}; rounds to "
                 f"{args.level:g} of the oracle: {res['rounds_to_level']['teacher']['mean_curve']}")
    d = res["exact_minus_minibatch"][R]
    lines.append(f"exact - minibatch after {R} rounds: {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] "
                 f"(control {res['control_equivalence']}); the protocols: {render.verdict(res).upper()}")
    if report:
        lines.append(f"report: {report}")
    out = {k: res[k] for k in ("structure", "heldout", "rounds_to_level", "exact_minus_minibatch", "agree_structure",
                               "agree_control", "control_equivalence", "agree", "differ", "level", "seconds")}
    out["final"] = {m: {"return": v["final_normalized_return"], "ci95": v["ci95"]} for m, v in M.items()}
    out["report"] = report
    emit(lines, out, args.json)
    return 0 if res["agree"] else 1
