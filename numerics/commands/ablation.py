"""icrl-verify ablation: the richness ablation.  Train the block by teacher
mimicking on narrow and rich MDP distributions and show where the weights end
up, next to each distribution's richness verdict.

Distributions (same states, actions, gamma, n, teacher): onehot-fixed-gamma
(one-hot features, one fixed gamma: narrow, every context column is
orthogonal to (gamma 1, -1, 0)); onehot-gamma-range (gamma drawn per MDP);
dense-shared (one dense feature draw shared by every MDP); section-4.1
(dense features drawn afresh per MDP).  For each, several seeds with the same
budget; per seed the held-out loss, the relative distance of (P12, Vbar21)
to M*, the fitted c, and the offset from M* split along the extra kernel of
the Hessian at the construction (the data invariances of a morse-bott
verdict) and the rest.  Prediction of Theorem 3.2's richness condition:
identifiable distributions end on M*; Morse-Bott ones end on the larger
zero-loss set, off M* along the invariances.  Exit 0 when every run is
consistent with its verdict, 1 otherwise, 2 on bad input.
"""
from __future__ import annotations

import os

import numpy as np

from numerics.analysis import budget
from numerics.analysis.ablation import ABLATION_SCALE, DISTRIBUTIONS, classify_run, consistent, run_ablation
from numerics.analysis.train import TrainConfig
from numerics.commands.cli import add_max_memory, at_boundary, config_of, emit, progress_bar
from numerics.core.runtime import check_interrupt
from numerics.io.commandline import reproduce_command
from numerics.io.config import device_from_args, finite_float, positive_int
from numerics.io.options import STEP, Folder, Path, Text
from numerics.render import ablation as render
from theory import algorithms
from theory.errors import InputError


def add_arguments(p):
    s = ABLATION_SCALE
    g = p.add_argument_group("distribution sizes and teacher (small defaults: a few minutes)")
    g.add_argument("--algorithm", choices=[a for a in algorithms.names("mdp") if len(algorithms.get(a).layout.readout_blocks) == 1], default="sarsa",
                   help="teacher (sarsa)")
    g.add_argument("--states", type=positive_int, default=s["states"], help=f"states ({s['states']})")
    g.add_argument("--actions", type=positive_int, default=s["actions"], help=f"actions ({s['actions']})")
    g.add_argument("--gamma", type=finite_float, default=0.5, help="the fixed discount (0.5)")
    g.add_argument("--context", type=positive_int, default=s["n"], help=f"window length n ({s['n']})")
    g.add_argument("--epsilon", type=finite_float, default=0.1, help="epsilon-greedy exploration (0.1)")
    g.add_argument("--alpha", type=STEP, default=0.2, help="critic step size (0.2)")
    g.add_argument("--distributions", type=Text(), nargs="+", default=None, metavar="NAME",
                   help="subset of: " + ", ".join(d[0] for d in DISTRIBUTIONS) + " (all)")
    t = p.add_argument_group("training budget (the same for every distribution)")
    t.add_argument("--seeds", type=positive_int, default=2, help="seeds per distribution: 0..K-1 (2)")
    t.add_argument("--mdps", type=positive_int, default=s["mdps"], help=f"MDPs ({s['mdps']})")
    t.add_argument("--frames", type=positive_int, default=s["frames"], help=f"frames per MDP ({s['frames']})")
    t.add_argument("--batch-mdps", type=positive_int, default=s["batch_mdps"], help=f"MDPs per step ({s['batch_mdps']})")
    t.add_argument("--lr", type=finite_float, default=s["lr"], help=f"Adam learning rate ({s['lr']:g})")
    t.add_argument("--lr-decay", type=finite_float, default=s["lr_decay"], help=f"decay factor ({s['lr_decay']:g})")
    t.add_argument("--lr-every", type=positive_int, default=s["lr_every"], help=f"decay period in MDPs ({s['lr_every']})")
    t.add_argument("--config", type=Path(), metavar="FILE.toml", default=None, help="read options from a TOML file")
    t.add_argument("--device", type=Text(), default="cpu", help="torch device (cpu, cuda)")
    t.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads while training (1)")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Folder(), metavar="DIR", default=os.path.join("reports", "ablation"),
                   help="report directory: ablation.md, .json, .png (reports/ablation)")
    o.add_argument("--no-report", action="store_true", help="print only")
    add_max_memory(o)
    p.add_argument("--json", action="store_true", help="print one JSON object with the result as the last line")


def _guard(base: TrainConfig, args):
    """Exit 2 before training when one run (training, then the richness
    analysis of its distribution on 200 MDPs x 10 frames) would need more
    than ``--max-memory``, or all runs more time than ``--max-time``."""
    S, A, d, n = base.states, base.actions, base.d, base.n
    est = budget.train(base.record, min(base.batch_mdps, base.mdps), base.eval_mdps, S, A, d, n)
    for k, v in budget.hessian(base.record, d, 200 * 10, n).parts.items():
        est.add(f"richness: {k}", v)
    budget.guard(est, budget.max_memory(args.max_memory),
                 f"ablation at {S} states x {A} actions (d = {d}), n = {n}, batch {base.batch_mdps},",
                 "use smaller --states/--actions/--context or fewer --batch-mdps")
    runs = args.seeds * len(args.distributions or DISTRIBUTIONS)
    one = budget.train_work(base.record, base.mdps, base.frames, S, A, d, n, base.eval_mdps) \
        .merged(budget.richness_work(base.record, d, 200 * 10, n))
    budget.guard_time(one.scaled(runs), budget.max_time(args.max_time),
                      f"ablation of {runs} runs ({base.mdps:,} MDPs x {base.frames:,} frames each) at {S} states x "
                      f"{A} actions (d = {d}), n = {n}", "use fewer --seeds/--mdps/--frames/--distributions or "
                      "smaller --states/--actions/--context")


def run(args) -> int:
    device = device_from_args(args)
    base = TrainConfig(**{**ABLATION_SCALE, **dict(
        algorithm=args.algorithm, states=args.states, actions=args.actions, gamma=args.gamma, n=args.context,
        epsilon=args.epsilon, alpha=args.alpha, mdps=args.mdps, frames=args.frames, batch_mdps=args.batch_mdps,
        lr=args.lr, lr_decay=args.lr_decay, lr_every=args.lr_every)})
    chosen = args.distributions or [d[0] for d in DISTRIBUTIONS]
    for nm in chosen:
        if nm not in [d[0] for d in DISTRIBUTIONS]:
            raise InputError("distributions", f"unknown {nm!r}; expected some of {', '.join(d[0] for d in DISTRIBUTIONS)}")
    _guard(base, args)
    command = reproduce_command("ablation", args, add_arguments)
    with progress_bar(total=len(chosen) * args.seeds, desc="ablation", disable=args.json, unit="run") as bar:
        res = run_ablation(base, seeds=tuple(range(args.seeds)), distributions=chosen, device=device,
                           progress=at_boundary(bar.update), threads=args.threads)
    check_interrupt()
    report = None if args.no_report else render.write(res, args.out, command, config_of(args))
    lines = []
    for row in res["rows"]:
        d = [r["distance_to_manifold"] for r in row["runs"]]
        inv = [r["invariance_component"] for r in row["runs"]]
        lines.append(f"{row['name']:20s} verdict {str(row['verdict']):13s} extra kernel {row['extra_kernel_dim']:3d}  "
                     f"distance to M* {np.mean(d):.2e} [{min(d):.2e}, {max(d):.2e}]  along extra kernel {np.mean(inv):.2e}  "
                     + ", ".join(classify_run(r) for r in row["runs"]))
    ok = consistent(res)
    lines.append(("CONSISTENT" if ok else "INCONSISTENT") + " with the richness analysis: no zero-loss end point "
                 "off M* outside the extra kernel" + (f"; report: {report}" if report else ""))
    out = {"rows": res["rows"], "consistent": ok, "report": report}
    emit(lines, out, args.json)
    return 0 if ok else 1
