"""``icrl-verify train``: teacher mimicking (Algorithm 1, THEORY.md section 5),
batched over MDPs.

Per MDP: draw the MDP and its features, ``w ~ Unif(-1,1)^q``,
``s_0 ~ rho0``; per frame: sample a window epsilon-greedy in ``Q_w``, build
the prompt, take one Adam step on ``1/2 || TF(H) - teacher(H) ||^2``, then
``w <- teacher output`` and ``s_0 <- s_n``.  Here ``--batch-mdps B`` MDPs run
side by side and each frame takes one step on the mean of the ``B`` prompt
losses (a minibatch of Algorithm 1; ``B = 1`` is Algorithm 1 itself).  The
learning rate decays by ``--lr-decay`` every ``--lr-every`` MDPs, counted in
MDPs.  See docs/training.md for why this is the same algorithm and what the
default CPU scale is.

Writes ``DIR/<model>.npz`` (for the block: arrays ``P`` and ``V``, readable
by ``icrl-verify check --weights``) with ``DIR/<model>.npz.json`` (config,
seed, versions, loss curve), checkpoints ``DIR/checkpoint.npz`` every
``--checkpoint-every`` MDP batches (``--resume`` continues from it to the
same numbers as an uninterrupted run), and the report
``reports/training/<name>.md`` (+ ``.json``, ``.png``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import zipfile
from dataclasses import dataclass

import numpy as np
import torch

from numerics import DTYPE
from numerics.algorithms import behaviour_probs
from numerics.io import atomic_savez, torch_threads
from numerics.distributions import FEATURE_KINDS, MDPDistribution
from numerics.errors import InputError
from numerics.mdp import MDP
from numerics.models import MODEL_KINDS, PARAMETERIZATIONS, build_model, model_arrays, save_model
from numerics.prompts import build_context
from numerics.sampler import Window, initial_state
from numerics.teachers import teacher_update, window_features
from theory.constructions import ALGORITHMS

#: Default CPU scale (the acceptance configuration of issue 5; docs/training.md).
CPU_SCALE = dict(mdps=6_400, frames=100, batch_mdps=64, lr=2e-3, lr_decay=0.98, lr_every=64)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (same config => same numbers).

    Distribution and teacher: Section 4.1 defaults (THEORY.md section 6).
    ``mdps`` MDPs in batches of ``batch_mdps``, ``frames`` frames each; Adam
    with learning rate ``lr * lr_decay ** (mdps_done // lr_every)``.
    Held-out evaluation: ``eval_mdps`` fresh MDPs (seed ``seed + 1_000_003``)
    over ``frames`` frames each.  Data stream: seed ``seed``; initial
    weights: seed ``seed + 2_000_003`` (:func:`init_generator`).
    """

    algorithm: str = "sarsa"
    states: int = 9
    actions: int = 4
    gamma: float = 0.5
    gamma_range: tuple[float, float] | None = None
    features: str = "dense"
    feature_seed: int = 0
    n: int = 20
    epsilon: float = 0.1
    alpha: float = 0.2
    beta: float = 0.2
    model: str = "lsa"
    parameterization: str = "reduced"
    hidden: int | None = None
    mdps: int = CPU_SCALE["mdps"]
    frames: int = CPU_SCALE["frames"]
    batch_mdps: int = CPU_SCALE["batch_mdps"]
    lr: float = CPU_SCALE["lr"]
    lr_decay: float = CPU_SCALE["lr_decay"]
    lr_every: int = CPU_SCALE["lr_every"]
    seed: int = 0
    eval_mdps: int = 64

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise InputError("algorithm", f"unknown {self.algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
        if self.model not in MODEL_KINDS:
            raise InputError("model", f"unknown {self.model!r}; expected one of {', '.join(MODEL_KINDS)}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise InputError("parameterization", f"unknown {self.parameterization!r}; expected reduced or full")
        for name in ("mdps", "frames", "batch_mdps", "lr_every", "eval_mdps", "n"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(name.replace("_", "-"), f"must be a positive integer, got {v!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError("lr", f"must be a positive finite number, got {self.lr}")
        if not (0 < self.lr_decay <= 1):
            raise InputError("lr-decay", f"must be in (0, 1], got {self.lr_decay}")
        if not (0 <= self.epsilon <= 1):
            raise InputError("epsilon", f"must be in [0, 1], got {self.epsilon}")
        if self.features not in FEATURE_KINDS:
            raise InputError("features", f"unknown {self.features!r}; expected one of {', '.join(FEATURE_KINDS)}")
        self.distribution()  # validates sizes, gamma

    def distribution(self) -> MDPDistribution:
        return MDPDistribution(states=self.states, actions=self.actions, gamma=self.gamma,
                               gamma_range=tuple(self.gamma_range) if self.gamma_range else None,
                               features=self.features, state_features=(self.algorithm == "td"),
                               feature_seed=self.feature_seed)

    @property
    def d(self) -> int:
        return self.distribution().d

    @property
    def num_batches(self) -> int:
        return math.ceil(self.mdps / self.batch_mdps)

    def batch_size(self, k: int) -> int:
        """MDPs in batch ``k`` (the last one may be smaller)."""
        return min(self.batch_mdps, self.mdps - k * self.batch_mdps)

    def lr_at(self, k: int) -> float:
        """Learning rate of batch ``k``: decayed by MDPs processed before it."""
        return self.lr * self.lr_decay ** ((k * self.batch_mdps) // self.lr_every)

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["gamma_range"] = list(self.gamma_range) if self.gamma_range else None
        return out

    @staticmethod
    def from_dict(d: dict) -> "TrainConfig":
        d = dict(d)
        if d.get("gamma_range") is not None:
            d["gamma_range"] = tuple(d["gamma_range"])
        return TrainConfig(**d)


# --------------------------------------------------------------------- data

def fast_window(algorithm: str, mdp: MDP, F: torch.Tensor, T_cdf: torch.Tensor, s0: torch.Tensor,
                theta: torch.Tensor, n: int, epsilon: float, gen: torch.Generator) -> Window:
    """:func:`numerics.sampler.sample_window` with the behaviour policy
    evaluated once per window at every state (``theta`` is fixed within a
    window) and the transition CDFs ``T_cdf`` precomputed per MDP batch.

    It draws the same uniforms in the same order and compares them with the
    same cumulative sums, so it returns the same window (tested).
    """
    B = mdp.batch
    bidx = torch.arange(B, device=s0.device)
    pi_cdf = behaviour_probs(algorithm, F, theta, epsilon).cumsum(-1)        # B x S x A

    def draw(cdf):
        u = torch.rand(cdf.shape[:-1], generator=gen, dtype=cdf.dtype, device=cdf.device)
        return (cdf < u.unsqueeze(-1)).sum(-1).clamp_max(cdf.shape[-1] - 1)

    s, a, r = [s0], [draw(pi_cdf[bidx, s0])], []
    for _ in range(n):
        nxt = draw(T_cdf[bidx, s[-1], a[-1]])
        r.append(mdp.R[bidx, s[-1], a[-1], nxt])
        s.append(nxt)
        a.append(draw(pi_cdf[bidx, nxt]))
    return Window(torch.stack(s, 1), torch.stack(a, 1), torch.stack(r, 1))


class FrameStream:
    """Algorithm 1's prompts for one batch of MDPs: each :meth:`next` returns
    ``(X, w~, teacher)`` for the current frame and advances
    ``w <- teacher``, ``s_0 <- s_n``."""

    def __init__(self, cfg: TrainConfig, num: int, gen: torch.Generator, device):
        self.cfg, self.gen = cfg, gen
        self.mdp, self.F = cfg.distribution().sample(num, gen, device=device)
        self.T_cdf = self.mdp.T.cumsum(-1)
        self.theta, self.s0 = initial_state(cfg.algorithm, self.mdp, self.F, gen)

    def next(self):
        c = self.cfg
        win = fast_window(c.algorithm, self.mdp, self.F, self.T_cdf, self.s0, self.theta, c.n, c.epsilon, self.gen)
        feats = window_features(c.algorithm, self.F, win, self.theta, c.epsilon)
        X, wt = build_context(c.algorithm, self.F, win, self.theta, self.mdp.gamma, c.epsilon, feats=feats)
        target = teacher_update(c.algorithm, self.F, win, self.theta, self.mdp.gamma, c.epsilon, c.alpha, c.beta,
                                feats=feats)
        self.theta, self.s0 = target, win.s[:, -1]
        return X, wt, target


def mimic_loss(model, X, wt, target) -> torch.Tensor:
    """Mean over prompts of ``1/2 || TF(H) - teacher ||^2`` (THEORY.md section 5)."""
    return 0.5 * ((model.readout(X, wt) - target) ** 2).sum(-1).mean()


# --------------------------------------------------------------- checkpoints

def _checkpoint_path(out_dir: str) -> str:
    return os.path.join(out_dir, "checkpoint.npz")


def save_checkpoint(path: str, cfg: TrainConfig, model, opt: torch.optim.Optimizer, gen: torch.Generator,
                    next_batch: int, curve: list, elapsed: float):
    """One ``.npz`` (written atomically): model arrays, Adam moments and
    step counts, the generator state, and a JSON header as a byte array."""
    arrays = {f"model/{k}": v for k, v in model_arrays(model).items()}
    params = list(model.parameters())
    for i, p in enumerate(params):
        st = opt.state.get(p)
        if st:
            arrays[f"opt/{i}/exp_avg"] = st["exp_avg"].detach().cpu().numpy()
            arrays[f"opt/{i}/exp_avg_sq"] = st["exp_avg_sq"].detach().cpu().numpy()
            arrays[f"opt/{i}/step"] = np.asarray(st["step"].detach().cpu().numpy())
    arrays["gen_state"] = gen.get_state().cpu().numpy()
    header = dict(config=cfg.as_dict(), next_batch=next_batch, curve=curve, elapsed_s=elapsed,
                  lr=opt.param_groups[0]["lr"])
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    atomic_savez(path, **arrays)


def load_checkpoint(path: str, cfg: TrainConfig, model, opt: torch.optim.Optimizer, gen: torch.Generator):
    """Restore a checkpoint into ``model``, ``opt`` and ``gen``; returns
    ``(next_batch, curve, elapsed)``.  The run's config must equal the
    checkpoint's (else :class:`InputError` naming the first difference)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError("resume", f"no checkpoint {path}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError("resume", f"{path} is not a readable checkpoint ({e})") from None
    if "header" not in arrays or "gen_state" not in arrays:
        raise InputError("resume", f"{path} is not a training checkpoint (no header)")
    try:
        header = json.loads(arrays["header"].tobytes().decode())
        saved = header["config"]
        return _restore(path, header, saved, arrays, cfg, model, opt, gen)
    except (KeyError, ValueError, TypeError, RuntimeError, UnicodeDecodeError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError("resume", f"{path} is not a valid checkpoint for this run ({type(e).__name__}: {e})") from None


def _restore(path, header, saved, arrays, cfg, model, opt, gen):
    now = cfg.as_dict()
    diff = [k for k in now if saved.get(k) != now[k]]
    if diff:
        k = diff[0]
        raise InputError("resume", f"checkpoint {path} was written with {k} = {saved.get(k)!r}, this run has {now[k]!r}")
    dev = next(model.parameters()).device
    with torch.no_grad():
        if cfg.model == "lsa":
            P = torch.as_tensor(arrays["model/P"], device=dev)
            V = torch.as_tensor(arrays["model/V"], device=dev)
            model.set_weights(P, V)
        else:
            model.load_state_dict({k[len("model/"):]: torch.as_tensor(v, device=dev)
                                   for k, v in arrays.items() if k.startswith("model/")})
    params = list(model.parameters())
    state = {}
    for i, p in enumerate(params):
        if f"opt/{i}/exp_avg" in arrays:
            state[i] = {"step": torch.as_tensor(arrays[f"opt/{i}/step"]),
                        "exp_avg": torch.as_tensor(arrays[f"opt/{i}/exp_avg"], device=dev),
                        "exp_avg_sq": torch.as_tensor(arrays[f"opt/{i}/exp_avg_sq"], device=dev)}
    sd = opt.state_dict()
    sd["state"] = state
    sd["param_groups"][0]["lr"] = header["lr"]
    opt.load_state_dict(sd)
    gen.set_state(torch.as_tensor(arrays["gen_state"], dtype=torch.uint8))
    return header["next_batch"], header["curve"], header["elapsed_s"]


# ------------------------------------------------------------------ training

def make_optimizer(model, lr: float) -> torch.optim.Optimizer:
    """Adam with PyTorch's defaults (betas 0.9, 0.999, eps 1e-8), as Section 4.1."""
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=False)


def evaluate(model, cfg: TrainConfig, device, num_mdps: int | None = None) -> dict:
    """Held-out teacher-mimicking loss on ``eval_mdps`` fresh MDPs, every
    frame ``0..frames-1`` (the training population), plus the loss of the
    identity map ``w -> w`` on the same prompts for scale."""
    num = num_mdps or cfg.eval_mdps
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1_000_003)
    stream = FrameStream(cfg, num, gen, device)
    tot = ident = 0.0
    with torch.no_grad():
        for _ in range(cfg.frames):
            X, wt, target = stream.next()
            tot += float(mimic_loss(model, X, wt, target))
            ident += float(0.5 * ((wt[:, 1:] - target) ** 2).sum(-1).mean())
    return {"loss": tot / cfg.frames, "identity_loss": ident / cfg.frames}


def init_generator(cfg: TrainConfig, device) -> torch.Generator:
    """The generator of the model's initial weights, seeded ``seed + 2_000_003``:
    separate from the data generator (seeded ``seed``), so the block, the MLP
    and the LSTM trained with one seed see the very same prompts."""
    return torch.Generator(device=device).manual_seed(cfg.seed + 2_000_003)


def train(cfg: TrainConfig, device="cpu", out_dir: str | None = None, checkpoint_every: int = 0,
          resume: bool = False, progress=None, stop_after: int | None = None, threads: int | None = 1):
    """Run Algorithm 1 (batched) with ``threads`` intra-op threads
    (:func:`torch_threads`); see :func:`_train`."""
    with torch_threads(threads):
        return _train(cfg, device, out_dir, checkpoint_every, resume, progress, stop_after)


def _train(cfg: TrainConfig, device="cpu", out_dir: str | None = None, checkpoint_every: int = 0,
           resume: bool = False, progress=None, stop_after: int | None = None):
    """Run Algorithm 1 (batched); returns ``(model, info)``.

    ``checkpoint_every`` K > 0 writes ``out_dir/checkpoint.npz`` after every
    K MDP batches; ``resume`` restarts from it.  ``stop_after`` stops after
    that many batches in total (used to test interruption).  ``info`` has
    ``curve`` (mean training loss of each MDP batch), ``seconds``,
    ``frames`` (optimizer steps taken in this call), ``mdp_frames``.
    """
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model = build_model(cfg.model, cfg.algorithm, cfg.d, cfg.n, cfg.parameterization, gen=init_generator(cfg, device),
                        device=device, **({"hidden": cfg.hidden} if cfg.hidden is not None else {}))
    opt = make_optimizer(model, cfg.lr_at(0))
    start, curve, elapsed = 0, [], 0.0
    if checkpoint_every and out_dir is None:
        raise InputError("out", "checkpoints need an output directory")
    if resume:
        if out_dir is None:
            raise InputError("resume", "needs --out DIR holding checkpoint.npz")
        start, curve, elapsed = load_checkpoint(_checkpoint_path(out_dir), cfg, model, opt, gen)
    end = cfg.num_batches if stop_after is None else min(cfg.num_batches, stop_after)
    t0 = time.perf_counter()
    steps = mdp_frames = 0
    for k in range(start, end):
        for g in opt.param_groups:
            g["lr"] = cfg.lr_at(k)
        B = cfg.batch_size(k)
        stream = FrameStream(cfg, B, gen, device)
        acc = torch.zeros((), dtype=DTYPE, device=device)
        for _ in range(cfg.frames):
            X, wt, target = stream.next()
            loss = mimic_loss(model, X, wt, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc += loss.detach()
        curve.append(float(acc) / cfg.frames)
        if not math.isfinite(curve[-1]):
            raise FloatingPointError(f"training diverged at MDP batch {k} (loss {curve[-1]}); lower --lr")
        steps += cfg.frames
        mdp_frames += cfg.frames * B
        if progress is not None:
            progress(B)
        if checkpoint_every and (k + 1) % checkpoint_every == 0 and k + 1 < cfg.num_batches:
            save_checkpoint(_checkpoint_path(out_dir), cfg, model, opt, gen, k + 1, curve,
                            elapsed + time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    info = dict(curve=curve, seconds=seconds, total_seconds=elapsed + seconds, frames=steps, mdp_frames=mdp_frames,
                completed=(end == cfg.num_batches), next_batch=end)
    return model, info


def train_block(cfg: TrainConfig | None = None, *, device="cpu", out_dir: str | None = None,
                checkpoint_every: int = 0, resume: bool = False, progress=None, threads: int | None = 1,
                **overrides) -> dict:
    """Train (``cfg`` with ``overrides`` applied) and measure structure
    recovery.  Writes nothing unless ``out_dir`` is given (then the weights
    ``out_dir/<model>.npz`` + metadata, and checkpoints if asked).

    Returns a dict: ``final_loss`` (held-out, :func:`evaluate`),
    ``identity_loss``, ``distance_to_manifold`` and ``scale_c`` (None for
    the baselines), ``weights`` (path or None), ``model`` (the module),
    ``P12``, ``Vbar21`` (tensors, LSA only), ``curve``, ``seconds``,
    ``frames_per_s`` (optimizer steps / s) and ``mdp_frames_per_s``,
    ``config`` (dict).  ``threads``: torch intra-op threads during the call
    (:func:`torch_threads`; restored afterwards).
    """
    from numerics.io import versions
    from numerics.recovery import recovery_summary
    cfg = dataclasses.replace(cfg or TrainConfig(), **overrides)
    model, info = train(cfg, device=device, out_dir=out_dir, checkpoint_every=checkpoint_every, resume=resume,
                        progress=progress, threads=threads)
    with torch_threads(threads):
        ev = evaluate(model, cfg, torch.device(device))
    rec = recovery_summary(model, cfg) if cfg.model == "lsa" else {}
    res = dict(final_loss=ev["loss"], identity_loss=ev["identity_loss"],
               distance_to_manifold=rec.get("distance_to_manifold"), scale_c=rec.get("scale_c"),
               weights=None, model=model, curve=info["curve"], seconds=info["seconds"],
               total_seconds=info["total_seconds"],
               frames_per_s=info["frames"] / max(info["seconds"], 1e-12),
               mdp_frames_per_s=info["mdp_frames"] / max(info["seconds"], 1e-12),
               config=cfg.as_dict(), recovery=rec)
    if out_dir is not None:
        path = os.path.join(out_dir, f"{cfg.model}.npz")
        meta = dict(config=cfg.as_dict(), seed=cfg.seed, versions=versions(), loss_curve=info["curve"],
                    final_loss=ev["loss"], identity_loss=ev["identity_loss"],
                    distance_to_manifold=res["distance_to_manifold"], scale_c=res["scale_c"],
                    train_seconds=info["total_seconds"], device=str(device))
        res["weights"] = save_model(path, model, meta)
    return res


# ---------------------------------------------------------------------- CLI

def reproduce_command(command: str, args, add_arguments) -> str:
    """``icrl-verify COMMAND`` with every option that differs from its default."""
    from numerics.config import ArgumentParser
    p = ArgumentParser(prog="icrl-verify " + command)
    add_arguments(p)
    defaults = vars(p.parse_args([]))
    parts = [f"icrl-verify {command}"]
    for action in p._actions:
        k = action.dest
        if k in ("help", "config") or k not in vars(args):
            continue
        v = getattr(args, k)
        if v == defaults.get(k):
            continue
        flag = action.option_strings[0]
        if isinstance(v, bool):
            parts.append(flag)
        elif isinstance(v, (list, tuple)):
            parts.append(flag + " " + " ".join(str(x) for x in v))
        else:
            parts.append(f"{flag} {v}")
    return " ".join(parts)


def add_arguments(p):
    from numerics.config import add_common, finite_float, positive_int
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


def plot_curve(curve, path: str, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from numerics.io import atomic_savefig
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(np.arange(1, len(curve) + 1), np.maximum(np.asarray(curve), 1e-300))
    ax.set_xlabel("MDP batch")
    ax.set_ylabel("mean training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=80)
    plt.close(fig)


def write_report(res: dict, cfg: TrainConfig, name: str, report_dir: str, command: str, args, device) -> dict:
    """``report_dir/<name>.md`` + ``.json`` + ``-curve.png`` (+ ``-heatmaps.png`` for the block)."""
    from numerics.io import atomic_write, atomic_write_json, run_header
    from numerics.recovery import plot_heatmaps
    from numerics.tolerances import STRUCTURE_RECOVERY_RTOL
    base = os.path.join(report_dir, name)
    plot_curve(res["curve"], base + "-curve.png", f"{name}: training loss per MDP batch")
    pngs = [os.path.basename(base) + "-curve.png"]
    if cfg.model == "lsa":
        plot_heatmaps(res["model"], cfg, base + "-heatmaps.png")
        pngs.append(os.path.basename(base) + "-heatmaps.png")
    dist = cfg.distribution()
    lines = [f"# Training report: {name}", run_header(command, args),
             f"Teacher mimicking (Algorithm 1, THEORY.md section 5) of **{cfg.algorithm}** by the **{cfg.model}** model"
             + (f" ({cfg.parameterization} parameterisation)" if cfg.model == "lsa" else "") + ".",
             "", f"- Distribution: {dist.describe()}; n = {cfg.n}, epsilon = {cfg.epsilon}, alpha = {cfg.alpha}"
             + (f", beta = {cfg.beta}" if cfg.algorithm == "actor-critic" else "") + ".",
             f"- Scale: {cfg.mdps} MDPs x {cfg.frames} frames, {cfg.batch_mdps} MDPs per optimiser step "
             f"({cfg.num_batches * cfg.frames} Adam steps); lr {cfg.lr:g} x {cfg.lr_decay:g} every {cfg.lr_every} MDPs; "
             f"seed {cfg.seed}; device {device}.",
             f"- Time: {res['total_seconds']:.1f} s of training; {res['frames_per_s']:.1f} optimiser steps/s, "
             f"{res['mdp_frames_per_s']:.0f} MDP-frames/s.",
             "", "## Result", "",
             f"- Held-out loss (1/2 ||TF(H) - teacher||^2, {cfg.eval_mdps} fresh MDPs x {cfg.frames} frames): "
             f"**{res['final_loss']:.3e}** (the identity map w -> w scores {res['identity_loss']:.3e}).",
             ]
    if cfg.model == "lsa":
        rec = res["recovery"]
        ok = rec["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL
        lines += [f"- Relative distance of (P12, Vbar21) to M* = {{(c P12*, Vbar21*/c)}}: "
                  f"**{rec['distance_to_manifold']:.3%}** at fitted c = {rec['scale_c']:.4g} "
                  f"(threshold {STRUCTURE_RECOVERY_RTOL:.0%}: {'RECOVERED' if ok else 'NOT RECOVERED'}).",
                  f"- Per block: |P12 - c P12*| / |c P12*| = {rec['p12_rel_error']:.3%}, "
                  f"|Vbar21 - Vbar21*/c| / |Vbar21*/c| = {rec['vbar21_rel_error']:.3%}."]
        if rec["p22_norm"] is not None:
            lines.append(f"- Full parameterisation: |P22| = {rec['p22_norm']:.3e} (symmetric part "
                         f"{rec['p22_sym_norm']:.3e}), |Vbar22| = {rec['vbar22_norm']:.3e}. The construction has both "
                         "at zero; together they make the cubic term (1/n) Vbar22 w~ w~^T P22 w~ of Lemma C.1, which "
                         "sees only the symmetric part of P22 (its antisymmetric part is never read), and which is "
                         "quartic in the loss: no exponential pull towards zero (THEORY.md section 5).")
        lines += ["", "Construction blocks come from `theory/` (numerics.constructions); the distance is the exact "
                  "minimum over c of either sign (numerics.manifold.distance_to_manifold), divided by the norm of the "
                  "closest point of M*.", "", f"![heatmaps]({pngs[1]})"]
    else:
        lines.append("- No structure to recover: the baseline has no (P12, Vbar21).")
    lines += ["", f"![loss curve]({pngs[0]})", "",
              f"Weights: `{res['weights']}` (+ `.json` metadata)." if res["weights"] else "Weights: not saved.", ""]
    summary = {k: res[k] for k in ("final_loss", "identity_loss", "distance_to_manifold", "scale_c", "weights",
                                   "seconds", "total_seconds", "frames_per_s", "mdp_frames_per_s")}
    summary.update(name=name, command=command, config=cfg.as_dict(), device=str(device),
                   recovery=res["recovery"], loss_curve=res["curve"], pngs=pngs)
    atomic_write_json(base + ".json", summary)
    atomic_write(base + ".md", "\n".join(lines))
    return summary


def run(args) -> int:
    from numerics.cli import emit, progress_bar
    from numerics.config import device_from_args
    from numerics.tolerances import STRUCTURE_RECOVERY_RTOL
    cfg = config_from_args(args)
    device = device_from_args(args)
    name = args.name or default_name(cfg)
    if os.sep in name or name.startswith("."):
        raise InputError("name", f"must be a plain file name, got {name!r}")
    out = args.out or os.path.join("runs", "train", name)
    command = reproduce_command("train", args, add_arguments)
    with progress_bar(total=cfg.mdps, desc=f"train {name}", disable=args.json, unit="MDP") as bar:
        res = train_block(cfg, device=device, out_dir=out, checkpoint_every=args.checkpoint_every,
                          resume=args.resume, progress=bar.update, threads=args.threads)
    report = None
    if not args.no_report:
        write_report(res, cfg, name, args.report_dir, command, args, device)
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
