"""icrl-verify train: teacher mimicking (Algorithm 1, THEORY.md section 5),
batched over MDPs.

Per MDP: draw the MDP and its features, w ~ Unif(-1,1)^q, s_0 ~ rho0; per
frame: sample a window epsilon-greedy in Q_w, build the prompt, take one Adam
step on 1/2 || TF(H) - teacher(H) ||^2, then w <- teacher output and
s_0 <- s_n.  Here --batch-mdps B MDPs run side by side and each frame takes
one step on the mean of the B prompt losses (a minibatch of Algorithm 1;
B = 1 is Algorithm 1 itself).  The learning rate decays by --lr-decay every
--lr-every MDPs.  See docs/training.md for why this is the same algorithm
and what the default CPU scale is.

Writes DIR/MODEL.npz (for the block: arrays P and V, readable by
icrl-verify check --weights) with DIR/MODEL.npz.json (config, seed, versions,
loss curve), checkpoints DIR/checkpoint.npz every --checkpoint-every MDP
batches (--resume continues from it to the same numbers as an uninterrupted
run), and the report reports/training/NAME.md (+ .json, .png).  Exit 0 when
the block recovers the construction (or a baseline trained), 1 when the
block ends more than 5% from the optimal manifold, 2 on bad input.
"""
from __future__ import annotations

import os

from numerics.analysis.train import CPU_SCALE, TrainConfig, train_block
from numerics.commands import wang as wang_cmd
from numerics.commands.cli import config_of, emit, plain_name, progress_bar
from numerics.core.block import PARAMETERIZATIONS
from numerics.core.models import MODEL_KINDS
from numerics.core.tolerances import STRUCTURE_RECOVERY_RTOL
from numerics.io.commandline import reproduce_command
from numerics.io.config import add_common, device_from_args, finite_float, positive_int
from numerics.render import training as render
from theory.errors import InputError


def add_arguments(p):
    add_common(p, mdps=CPU_SCALE["mdps"])
    g = p.add_argument_group("training (defaults: the CPU scale of docs/training.md)")
    g.add_argument("--model", choices=MODEL_KINDS, default="lsa",
                   help="lsa: the linear self-attention block; mlp / lstm: non-attention baselines (lsa)")
    g.add_argument("--parameterization", choices=PARAMETERIZATIONS, default="reduced",
                   help="block parameters: reduced (P12, Vbar21) or full (P, V) (reduced)")
    g.add_argument("--frames", type=positive_int, default=CPU_SCALE["frames"],
                   help=f"frames (optimizer steps) per MDP ({CPU_SCALE['frames']}; Section 4.1: 1000)")
    g.add_argument("--batch-mdps", type=positive_int, default=CPU_SCALE["batch_mdps"],
                   help=f"MDPs processed side by side, one step per frame on their mean loss ({CPU_SCALE['batch_mdps']}; "
                        "1 = Algorithm 1 literally)")
    g.add_argument("--lr", type=finite_float, default=CPU_SCALE["lr"], help=f"Adam learning rate ({CPU_SCALE['lr']:g})")
    g.add_argument("--lr-decay", type=finite_float, default=CPU_SCALE["lr_decay"],
                   help=f"multiply the learning rate by this every --lr-every MDPs ({CPU_SCALE['lr_decay']:g})")
    g.add_argument("--lr-every", type=positive_int, default=CPU_SCALE["lr_every"],
                   help=f"decay period, in MDPs ({CPU_SCALE['lr_every']}; Section 4.1: 10)")
    g.add_argument("--hidden", type=positive_int, default=None, help="hidden width of the mlp (128) / lstm (64)")
    g.add_argument("--eval-mdps", type=positive_int, default=64, help="held-out MDPs for the final loss (64)")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", default=None,
                   help="directory for the weights (<model>.npz + .json) and checkpoints (runs/train/<name>)")
    o.add_argument("--name", default=None, help="report name (ALGORITHM-MODEL[-full])")
    o.add_argument("--report-dir", metavar="DIR", default=os.path.join("reports", "training"),
                   help="where <name>.md, .json and .png go (reports/training)")
    o.add_argument("--no-report", action="store_true", help="write no report (weights and checkpoints only)")
    o.add_argument("--checkpoint-every", type=int, default=10, metavar="K",
                   help="checkpoint every K MDP batches, 0 = never (10)")
    o.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.npz (same config required)")
    o.add_argument("--threads", type=positive_int, default=1,
                   help="torch intra-op threads (1: the tensors of one step are small, more threads only contend)")
    wang_cmd.add_train_arguments(p)


def config_from_args(args) -> TrainConfig:
    if args.checkpoint_every < 0:
        raise InputError("checkpoint-every", f"must be >= 0, got {args.checkpoint_every}")
    return TrainConfig(algorithm=args.algorithm, states=args.states, actions=args.actions, gamma=args.gamma,
                       gamma_range=tuple(args.gamma_range) if args.gamma_range else None, features=args.features,
                       feature_seed=args.seed, n=args.context, epsilon=args.epsilon, alpha=args.alpha,
                       beta=args.beta, model=args.model, parameterization=args.parameterization, hidden=args.hidden,
                       mdps=args.mdps, frames=args.frames, batch_mdps=args.batch_mdps, lr=args.lr,
                       lr_decay=args.lr_decay, lr_every=args.lr_every, seed=args.seed, eval_mdps=args.eval_mdps)


def default_name(cfg: TrainConfig) -> str:
    return f"{cfg.algorithm}-{cfg.model}" + ("-full" if cfg.model == "lsa" and cfg.parameterization == "full" else "")


def run(args) -> int:
    if args.layout == "wang2025":
        return wang_cmd.run_train(args)
    cfg = config_from_args(args)
    device = device_from_args(args)
    name = plain_name(args.name or default_name(cfg))
    out = args.out or os.path.join("runs", "train", name)
    command = reproduce_command("train", args, add_arguments)
    with progress_bar(total=cfg.mdps, desc=f"train {name}", disable=args.json, unit="MDP") as bar:
        res = train_block(cfg, device=device, out_dir=out, checkpoint_every=args.checkpoint_every,
                          resume=args.resume, progress=bar.update, threads=args.threads)
    report = None
    if not args.no_report:
        render.write(res, cfg, name, args.report_dir, command, config_of(args), device)
        report = os.path.join(args.report_dir, name + ".md")
    lines = [f"train {name}: {cfg.mdps} MDPs x {cfg.frames} frames, batch {cfg.batch_mdps}, "
             f"{res['total_seconds']:.1f} s ({res['mdp_frames_per_s']:.0f} MDP-frames/s)",
             f"held-out loss {res['final_loss']:.3e} (identity map {res['identity_loss']:.3e})"]
    recovered = True
    if cfg.model == "lsa":
        recovered = res["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL
        lines.append(f"relative distance to M* {res['distance_to_manifold']:.3%} at c = {res['scale_c']:.4g}: "
                     + ("RECOVERED" if recovered else f"NOT RECOVERED (threshold {STRUCTURE_RECOVERY_RTOL:.0%})"))
    lines.append(f"weights: {res['weights']}" + (f"; report: {report}" if report else ""))
    result = {k: res[k] for k in ("final_loss", "distance_to_manifold", "scale_c", "weights")}
    result.update(identity_loss=res["identity_loss"], recovered=recovered, report=report,
                  seconds=res["total_seconds"], frames_per_s=res["frames_per_s"],
                  mdp_frames_per_s=res["mdp_frames_per_s"])
    emit(lines, result, args.json)
    return 0 if recovered else 1
