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

--protocol paper runs the paper's exact Algorithm 1 instead (one MDP at a
time, one Adam step per frame) as a compiled loop, at Section 4.1's scale by
default (10,000 MDPs x 1,000 frames, Adam 1e-3 x 0.99 every 10 MDPs): about
10^7 steps in minutes on one core (docs/training.md).  --seeds K trains the
seeds --seed .. --seed+K-1 in parallel processes (one per core).

Writes DIR/MODEL.npz (for the block: arrays P and V, readable by
icrl-verify check --weights) with DIR/MODEL.npz.json (config, seed, versions,
loss curve), checkpoints DIR/checkpoint.npz every --checkpoint-every MDP
batches (--resume continues from it to the same numbers as an uninterrupted
run), and the report reports/training/NAME.md (+ .json, .png); with --seeds
K > 1 each seed S writes DIR/seed-S/.  Exit 0 when the block recovers the
construction (or a baseline trained), 1 when the block ends more than 5%
from the optimal manifold, 2 on bad input or a run whose estimated memory
is above --max-memory; Ctrl-C (SIGINT) / SIGTERM stop at the next MDP
batch (MDP), write DIR/checkpoint.npz and exit 130 / 143 (resume with
--resume).
"""
from __future__ import annotations

import os
import shlex

from numerics.analysis import budget
from numerics.analysis.exact import CHECKPOINT_EVERY, PAPER_SCALE, check_exact_config
from numerics.analysis.seeds import PROTOCOLS, default_workers, run_seeds, seed_configs
from numerics.analysis.train import (
    CPU_SCALE,
    LAYERS_CPU_SCALE,
    LAYERS_PAPER_SCALE,
    LayersTrainConfig,
    TrainConfig,
    train_layers,
)
from numerics.commands.cli import add_max_memory, at_boundary, config_of, emit, plain_name, progress_bar
from numerics.commands.records import (
    _Default,
    add_record_arguments,
    mark_defaults,
    pick,
    record_from_args,
)
from numerics.core.block import PARAMETERIZATIONS
from numerics.core.models import MODEL_KINDS
from numerics.core.runtime import check_interrupt
from numerics.core.tolerances import STRUCTURE_RECOVERY_RTOL
from numerics.io.commandline import reproduce_command
from numerics.io.config import add_common, device_from_args, finite_float, positive_int
from numerics.io.models import save_weights
from numerics.io.options import COUNT, Folder, Name
from numerics.io.sources import add_source_options, source_from_args
from numerics.render import training as render
from numerics.render.training import relative
from theory import algorithms
from theory.errors import InputError

#: The scale options whose defaults depend on --protocol (docs/training.md).
SCALES = {"minibatch": CPU_SCALE, "paper": PAPER_SCALE}

#: Default --checkpoint-every per protocol: MDP batches (minibatch), MDPs (paper).
CHECKPOINTS = {"minibatch": 10, "paper": CHECKPOINT_EVERY}


def _scale_help(key: str, what: str) -> str:
    c, q = CPU_SCALE[key], PAPER_SCALE[key]
    return f"{what} ({c:g}; --protocol paper: {q:g})"


def add_arguments(p):
    add_common(p, mdps=CPU_SCALE["mdps"], algorithms=algorithms.names())
    add_source_options(p)
    for action in p._actions:               # --mdps: its default depends on --protocol
        if action.dest == "mdps":
            action.default, action.help = None, _scale_help("mdps", "number of MDPs")
    g = p.add_argument_group("training (defaults: the CPU scale of docs/training.md, or the paper's with "
                             "--protocol paper)")
    g.add_argument("--protocol", choices=PROTOCOLS, default="minibatch",
                   help="minibatch: --batch-mdps MDPs per Adam step (torch); paper: the paper's exact Algorithm 1, "
                        "one MDP at a time, compiled, at Section 4.1's scale (minibatch)")
    g.add_argument("--model", choices=MODEL_KINDS, default="lsa",
                   help="lsa: the linear self-attention block; mlp / lstm: non-attention baselines (lsa)")
    g.add_argument("--parameterization", choices=PARAMETERIZATIONS, default="reduced",
                   help="block parameters: reduced (P12, Vbar21) or full (P, V) (reduced)")
    g.add_argument("--frames", type=positive_int, default=None,
                   help=_scale_help("frames", "frames (optimizer steps) per MDP"))
    g.add_argument("--batch-mdps", type=positive_int, default=None,
                   help=_scale_help("batch_mdps", "MDPs processed side by side, one step per frame on their mean "
                                                  "loss; 1 = Algorithm 1 literally"))
    g.add_argument("--lr", type=finite_float, default=None, help=_scale_help("lr", "Adam learning rate"))
    g.add_argument("--lr-decay", type=finite_float, default=None,
                   help=_scale_help("lr_decay", "multiply the learning rate by this every --lr-every MDPs"))
    g.add_argument("--lr-every", type=positive_int, default=None, help=_scale_help("lr_every", "decay period, in MDPs"))
    g.add_argument("--hidden", type=positive_int, default=None, help="hidden width of the mlp (128) / lstm (64)")
    g.add_argument("--eval-mdps", type=positive_int, default=64, help="held-out MDPs for the final loss (64)")
    g.add_argument("--seeds", type=positive_int, default=1,
                   help="train the seeds --seed .. --seed+K-1, in parallel processes (1; an mrp record: 10, "
                        "trained side by side)")
    g.add_argument("--workers", type=positive_int, default=None,
                   help="processes for --seeds (one per seed, at most one per available core)")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Folder(), metavar="DIR", default=None,
                   help="directory for the weights (<model>.npz + .json) and checkpoints (runs/train/<name>; "
                        "with --seeds K > 1, DIR/seed-S for each seed)")
    o.add_argument("--name", type=Name(), default=None, help="report name (ALGORITHM-MODEL[-full][-paper])")
    o.add_argument("--report-dir", type=Folder(), metavar="DIR", default=os.path.join("reports", "training"),
                   help="where <name>.md, .json and .png go (reports/training)")
    o.add_argument("--no-report", action="store_true", help="write no report (weights and checkpoints only)")
    o.add_argument("--checkpoint-every", type=COUNT, default=None, metavar="K",
                   help=f"checkpoint every K MDP batches ({CHECKPOINTS['minibatch']}; --protocol paper: every K MDPs, "
                        f"{CHECKPOINTS['paper']}); 0 = never")
    o.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.npz (same config required)")
    o.add_argument("--threads", type=positive_int, default=1,
                   help="torch intra-op threads (1: the tensors of one step are small, more threads only contend)")
    add_max_memory(o)
    add_record_arguments(p)
    add_layer_train_arguments(p)


def _scale(args, key: str):
    v = getattr(args, key)
    return SCALES[args.protocol][key] if v is None else v


def config_from_args(args, source=None, record=None) -> TrainConfig:
    """The run's configuration; ``source``: the MDP source already resolved
    from ``args`` (:func:`source_from_args` otherwise); ``record`` (a
    construction file's) travels by value instead of the ``--algorithm`` name."""
    source = source_from_args(args) if source is None else source
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise InputError("checkpoint-every", f"must be >= 0, got {args.checkpoint_every}")
    return TrainConfig(algorithm=args.algorithm if record is None else record, states=args.states, actions=args.actions, gamma=args.gamma,
                       gamma_range=tuple(args.gamma_range) if args.gamma_range else None, features=args.features,
                       feature_seed=args.seed, n=args.context, epsilon=args.epsilon, alpha=args.alpha,
                       beta=args.beta, model=args.model, parameterization=args.parameterization, hidden=args.hidden,
                       mdps=_scale(args, "mdps"), frames=_scale(args, "frames"), batch_mdps=_scale(args, "batch_mdps"),
                       lr=_scale(args, "lr"), lr_decay=_scale(args, "lr_decay"), lr_every=_scale(args, "lr_every"),
                       seed=args.seed, eval_mdps=args.eval_mdps, source=None if source.is_default else source)


def default_name(cfg: TrainConfig, protocol: str = "minibatch") -> str:
    full = cfg.model == "lsa" and cfg.parameterization == "full"
    return f"{cfg.record.name}-{cfg.model}" + ("-full" if full else "") + ("-paper" if protocol == "paper" else "")


def run(args) -> int:
    record = record_from_args(args)
    if record.spec.kind == "softmax":
        raise InputError("algorithm", f"{record.name!r} is a softmax record; train does not run the softmax kind yet "
                                      f"(issue 21, Theorem 3)")
    if record.data == "mrp":
        return run_layer_train(args, record)
    source = source_from_args(args)
    budget.guard_source(source, args)
    cfg = config_from_args(args, source, record if args.construction else None)
    device = device_from_args(args)
    if args.protocol == "paper":
        check_exact_config(cfg, device)
    name = plain_name(args.name or default_name(cfg, args.protocol))
    out = args.out or os.path.join("runs", "train", name)
    command = reproduce_command("train", args, add_arguments)
    workers = args.workers or default_workers(args.seeds)
    _guard(cfg, args, workers)
    cfgs = seed_configs(cfg, args.seeds)
    outs = [out] if args.seeds == 1 else [os.path.join(out, f"seed-{c.seed}") for c in cfgs]
    every = CHECKPOINTS[args.protocol] if args.checkpoint_every is None else args.checkpoint_every
    paper = args.protocol == "paper"
    total = args.seeds * cfg.mdps * (cfg.frames if paper else 1)
    with progress_bar(total=total, desc=f"train {name}", disable=args.json, unit="step" if paper else "MDP",
                      unit_scale=paper) as bar:
        results = run_seeds(args.protocol, cfgs, out_dirs=outs, workers=workers, device=device,
                            checkpoint_every=every, resume=args.resume, progress=bar.update, threads=args.threads)
    check_interrupt()        # a signal after the last batch boundary: stop before the report
    if args.seeds > 1:
        return _report_seeds(args, results, cfgs, name, command, device, workers)
    res = results[0]
    report = None
    if not args.no_report:
        render.write(res, cfg, name, args.report_dir, command, _resolved(args, cfg), device)
        report = os.path.join(args.report_dir, name + ".md")
    lines = [f"train {name}: {cfg.mdps} MDPs x {cfg.frames} frames, batch {cfg.batch_mdps}"
             + (" (the paper's exact protocol, compiled)" if paper else "")
             + f", {res['total_seconds']:.1f} s ({res['frames_per_s']:,.0f} Adam steps/s, "
             f"{res['mdp_frames_per_s']:,.0f} MDP-frames/s)",
             f"held-out loss {res['final_loss']:.3e} (identity map {res['identity_loss']:.3e})"]
    recovered = True
    if cfg.model == "lsa":
        recovered = res["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL
        lines.append(f"relative distance to M* {relative(res['distance_to_manifold'])} at c = {res['scale_c']:.4g}: "
                     + ("RECOVERED" if recovered else f"NOT RECOVERED (threshold {STRUCTURE_RECOVERY_RTOL:.0%})"))
    lines.append(f"weights: {res['weights']}" + (f"; report: {report}" if report else ""))
    result = {k: res[k] for k in ("final_loss", "distance_to_manifold", "scale_c", "weights")}
    result.update(identity_loss=res["identity_loss"], recovered=recovered, report=report,
                  seconds=res["total_seconds"], frames_per_s=res["frames_per_s"],
                  mdp_frames_per_s=res["mdp_frames_per_s"], protocol=args.protocol)
    emit(lines, result, args.json)
    return 0 if recovered else 1


def _guard(cfg: TrainConfig, args, workers: int):
    """Exit 2 before training when ``workers`` runs side by side would need
    more memory than ``--max-memory``, or the seeds more time than
    ``--max-time`` (``numerics.analysis.budget``)."""
    (S, A, d), n = cfg.sizes, cfg.n
    if args.protocol == "paper":
        one = budget.exact(cfg.record, cfg.eval_mdps, S, A, d, n, cfg.frames)
    else:
        one = budget.train(cfg.record, min(cfg.batch_mdps, cfg.mdps), cfg.eval_mdps, S, A, d, n,
                           cfg.hidden or 0, cfg.model)
    est = budget.Estimate({k: workers * v for k, v in one.parts.items()})
    budget.guard(est, budget.max_memory(args.max_memory),
                 f"train ({args.protocol}) at {S} states x {A} actions (d = {d}), n = {n}, batch "
                 f"{min(cfg.batch_mdps, cfg.mdps)}, {cfg.eval_mdps} held-out MDPs"
                 + (f", {workers} seeds at once" if workers > 1 else "") + ",",
                 "use smaller --context/--states/--actions, fewer --batch-mdps/--eval-mdps"
                 + (" or fewer --workers" if workers > 1 else ""))
    work = budget.train_work(cfg.record, cfg.mdps, cfg.frames, S, A, d, n, cfg.eval_mdps, args.seeds, args.protocol,
                             cfg.hidden or 0, cfg.model)
    budget.guard_time(work.scaled(1.0 / min(workers, args.seeds, os.cpu_count() or 1)), budget.max_time(args.max_time),
                      f"train ({args.protocol}) of {args.seeds} seed(s) x {cfg.mdps:,} MDPs x {cfg.frames:,} frames at "
                      f"{S} states x {A} actions (d = {d}), n = {n}",
                      "use fewer --seeds/--mdps/--frames/--eval-mdps or smaller --context/--states/--actions")


def _resolved(args, cfg: TrainConfig) -> dict:
    """The options for the report header, with the protocol's scale defaults filled in."""
    return dict(config_of(args), mdps=cfg.mdps, frames=cfg.frames, batch_mdps=cfg.batch_mdps, lr=cfg.lr,
                lr_decay=cfg.lr_decay, lr_every=cfg.lr_every,
                checkpoint_every=CHECKPOINTS[args.protocol] if args.checkpoint_every is None else args.checkpoint_every)


def _report_seeds(args, results, cfgs, name, command, device, workers) -> int:
    """``--seeds K > 1``: one line per seed, the report of all of them."""
    report = None
    if not args.no_report:
        render.write_seeds(results, cfgs, name, args.report_dir, command, _resolved(args, cfgs[0]), device,
                           args.protocol, workers)
        report = os.path.join(args.report_dir, name + ".md")
    lsa = cfgs[0].model == "lsa"
    rows, lines = [], [f"train {name}: {len(cfgs)} seeds in {workers} process(es), {cfgs[0].mdps} MDPs x "
                       f"{cfgs[0].frames} frames each, protocol {args.protocol}"]
    for c, r in zip(cfgs, results):
        rec = (r["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL) if lsa else True
        rows.append(dict(seed=c.seed, final_loss=r["final_loss"], identity_loss=r["identity_loss"],
                         distance_to_manifold=r["distance_to_manifold"], scale_c=r["scale_c"], weights=r["weights"],
                         recovered=rec, seconds=r["total_seconds"], frames_per_s=r["frames_per_s"]))
        lines.append(f"  seed {c.seed}: held-out loss {r['final_loss']:.3e}"
                     + (f", distance to M* {relative(r['distance_to_manifold'])} at c = {r['scale_c']:.4g}" if lsa else "")
                     + f", {r['total_seconds']:.1f} s ({r['frames_per_s']:,.0f} Adam steps/s); {r['weights']}")
    recovered = all(r["recovered"] for r in rows)
    if lsa:
        lines.append("RECOVERED on every seed" if recovered else
                     f"NOT RECOVERED on some seed (threshold {STRUCTURE_RECOVERY_RTOL:.0%})")
    if report:
        lines.append(f"report: {report}")
    emit(lines, dict(seeds=rows, recovered=recovered, report=report, protocol=args.protocol, workers=workers), args.json)
    return 0 if recovered else 1


#: Wang et al.'s values of the shared options for an mrp record, per command (used when the option was not given).
TRAIN_DEFAULTS = dict(states=10, gamma=0.9, context=30, lr=1e-3, mdps=LAYERS_CPU_SCALE["mrps"], seeds=10)
#: Options of the mdp records that an mrp record does not use: given, they are an error.
TRAIN_UNUSED = ("model", "parameterization", "features")


# ==================================================================== layer-by-layer (mrp) records

def add_layer_train_arguments(p):
    g = p.add_argument_group(
        "mrp records, Wang et al. 2025's Figure 2 (Boyan chains, their objective; defaults there: states 10, "
        f"gamma 0.9, context 30, lr 1e-3, mdps {LAYERS_CPU_SCALE['mrps']} MRPs per seed (their scale: "
        f"{LAYERS_PAPER_SCALE['mrps']}))")
    g.add_argument("--layers", type=positive_int, default=3,
                   help="number of layers L (the record's own depth: 3 for Wang et al.'s)")
    g.add_argument("--features-dim", type=positive_int, default=4, help="feature dimension d (4)")
    g.add_argument("--untied", action="store_true", help="one (P, V) per layer (their 'sequential' mode); "
                                                         "default: the record's own (tied for Wang et al.'s, their "
                                                         "'auto' mode)")
    g.add_argument("--minibatches", type=positive_int, default=5, help="Adam steps per MRP (5)")
    g.add_argument("--window-steps", type=positive_int, default=64,
                   help="sliding-window TD errors per minibatch (64: 65 prompts)")
    g.add_argument("--weight-decay", type=finite_float, default=1e-6, help="Adam weight decay (1e-6)")
    g.add_argument("--log-every", type=positive_int, default=50, help="MRPs between points of the curves (50)")
    mark_defaults(p, tuple(TRAIN_DEFAULTS) + TRAIN_UNUSED + ("layers",))


def _train_config(args, record) -> LayersTrainConfig:
    for dest in TRAIN_UNUSED:
        if not isinstance(getattr(args, dest), _Default):
            raise InputError(dest, "not used for an mrp record (their block: full P and V, Unif(-1,1) features)")
    if str(args.device) != "cpu":
        raise InputError("device", "an mrp record trains on the CPU")
    for dest in ("resume", "gamma_range"):
        if getattr(args, dest):
            raise InputError(dest.replace("_", "-"), "not supported for an mrp record")
    ours = {k: pick(args, k, v) for k, v in TRAIN_DEFAULTS.items()}
    layers = pick(args, "layers", record.spec.depth)
    tied = (not args.untied) and record.spec.tied
    return LayersTrainConfig(states=ours["states"], d=args.features_dim, n=ours["context"],
                           layers=layers, tied=tied, gamma=ours["gamma"], algorithm=record,
                           lr=ours["lr"], weight_decay=args.weight_decay, mrps=ours["mdps"],
                           minibatches=args.minibatches,
                           steps=args.window_steps, seeds=ours["seeds"], seed=args.seed, eval_mrps=args.eval_mdps,
                           log_every=args.log_every)


def train_command(cfg: LayersTrainConfig, extra=(), construction=None) -> str:
    parts = ["icrl-verify", "train", *(["--construction", construction] if construction else
                                       ["--algorithm", cfg.record.name]), "--states", cfg.states, "--features-dim", cfg.d,
             "--context", cfg.n, "--layers", cfg.layers, "--gamma", cfg.gamma, "--lr", cfg.lr,
             "--weight-decay", cfg.weight_decay, "--mdps", cfg.mrps, "--minibatches", cfg.minibatches,
             "--window-steps", cfg.steps, "--seeds", cfg.seeds, "--seed", cfg.seed, "--eval-mdps", cfg.eval_mrps,
             "--log-every", cfg.log_every] + (["--untied"] if not cfg.tied else []) + list(extra)
    return shlex.join(str(x) for x in parts)


def scale_note(cfg: LayersTrainConfig) -> str:
    if cfg.mrps >= LAYERS_PAPER_SCALE["mrps"] and cfg.minibatches == 5 and cfg.steps == 64:
        return "their scale (Figure 2: 4,000 MRPs x 5 minibatches)."
    return (f"a CPU scale ({cfg.mrps} of their {LAYERS_PAPER_SCALE['mrps']} MRPs; docs/wang2025.md gives the measured "
            f"cost; their scale: --mdps {LAYERS_PAPER_SCALE['mrps']}).")


def run_layer_train(args, record) -> int:
    """``train`` of an mrp record: Wang et al.'s Figure 2 experiment on its construction."""
    cfg = _train_config(args, record)
    stem = "wang2025-td" if record.name == "td-preconditioned" else record.name
    name = args.name or (stem + ("-untied" if not cfg.tied else ""))
    if not name or "/" in name or name.startswith("."):
        raise InputError("name", f"must be a plain file name, got {name!r}")
    out = args.out or os.path.join("runs", "train", name)
    extra = ["--name", name] if args.name else []
    command = train_command(cfg, extra, args.construction)
    budget.guard(budget.layer_train(cfg.seeds, cfg.steps, cfg.eval_mrps, cfg.states, cfg.d, cfg.n, cfg.layers),
                 budget.max_memory(args.max_memory),
                 f"train of {cfg.seeds} seeds, {cfg.states} states, d = {cfg.d}, n = {cfg.n}, "
                 f"{cfg.layers} layers,", "use fewer --seeds/--eval-mdps or smaller --context/--features-dim/--states")
    budget.guard_time(budget.layer_train_work(cfg.seeds, cfg.steps, args.minibatches, cfg.eval_mrps, cfg.states, cfg.d,
                                             cfg.n, cfg.layers), budget.max_time(args.max_time),
                      f"train of {cfg.seeds} seeds x {cfg.steps} window steps, {cfg.states} states, "
                      f"d = {cfg.d}, n = {cfg.n}, {cfg.layers} layers",
                      "use fewer --seeds/--window-steps/--minibatches/--eval-mdps or smaller "
                      "--context/--features-dim/--states/--layers")
    with progress_bar(total=cfg.mrps, desc=f"train {name}", disable=args.json, unit="MRP") as bar:
        res = train_layers(cfg, progress=at_boundary(bar.update), threads=args.threads)
    P, V = res["P"], res["V"]
    for s in range(cfg.seeds):
        Ps, Vs = (P[s], V[s]) if cfg.tied else (P[:, s], V[:, s])
        save_weights(os.path.join(out, f"seed-{cfg.seed + s}.npz"), Ps, Vs)
    res["weights_dir"] = out
    report = None
    if not args.no_report:
        render.write_layers(res, name, args.report_dir, command, cfg.as_dict() | {"name": name, "out": out},
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
    result = dict(layout=record.layout.name, algorithm=record.name, recovered=res["recovered"], distance_upper95=res["distance_upper95"],
                  threshold=res["recovery_threshold"], final=f, seconds=res["seconds"], report=report,
                  weights=out, command=command, config=cfg.as_dict())
    emit(lines, result, args.json)
    return 0 if res["recovered"] else 1
