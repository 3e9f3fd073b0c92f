"""Teacher mimicking (Algorithm 1, THEORY.md section 5), batched over MDPs
(the computation behind ``icrl-verify train``).

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
import math
import os
import time
from dataclasses import dataclass

import torch

from numerics.analysis.recovery import recovery_summary
from numerics.core.block import PARAMETERIZATIONS, mimic_loss
from numerics.core.distributions import FEATURE_KINDS, MDPDistribution
from numerics.core.models import MODEL_KINDS, build_model
from numerics.core.runtime import Interrupted, interrupted, torch_threads
from numerics.core.stream import Stream
from numerics.core.tolerances import DTYPE
from numerics.io.checkpoint import load_checkpoint, save_checkpoint
from numerics.io.models import save_model
from numerics.io.report import versions
from numerics.io.sources import MDPSource
from theory import algorithms
from theory.errors import InputError

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
    #: a non-default MDP source (``numerics.io.sources.MDPSource``: a named
    #: family, a batch file, a generator), carried by value to worker
    #: processes; None: the Section 4.1 options above.
    source: MDPSource | None = None

    def __post_init__(self):
        algorithms.get(self.algorithm)   # InputError naming the field for an unknown name
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
        if self.source is not None and (not isinstance(self.source, MDPSource) or self.source.is_default):
            raise InputError("source", f"expected a family, batch or generator MDPSource (the Section 4.1 options "
                                       f"are the config's own fields), got {self.source!r}")
        self.distribution()  # validates sizes, gamma

    @property
    def mdp_source(self) -> MDPSource:
        """Where this run's MDPs come from (``source``, else the Section 4.1 fields)."""
        if self.source is not None:
            return self.source
        return MDPSource.section41(MDPDistribution(
            states=self.states, actions=self.actions, gamma=self.gamma,
            gamma_range=tuple(self.gamma_range) if self.gamma_range else None, features=self.features,
            state_features=(self.record.features == "state"), feature_seed=self.feature_seed))

    def distribution(self):
        return self.mdp_source.distribution()

    @property
    def record(self) -> algorithms.Algorithm:
        return algorithms.get(self.algorithm)

    def stream(self, num: int, gen: torch.Generator, device) -> Stream:
        """Algorithm 1's stream for ``num`` fresh MDPs of this distribution."""
        mdp, F = self.distribution().sample(num, gen, device=device)
        return Stream(self.record, mdp, F, n=self.n, epsilon=self.epsilon,
                      steps={"alpha": self.alpha, "beta": self.beta}, gen=gen)

    @property
    def d(self) -> int:
        return self.distribution().d

    @property
    def sizes(self) -> tuple[int, int, int]:
        """``(states, actions, d)`` of this run's MDPs (its source's, not
        the Section 4.1 fields when another source is named)."""
        dist = self.distribution()
        return dist.states, dist.actions, dist.d

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
        """Plain data (reports, weight files, checkpoints)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["gamma_range"] = list(self.gamma_range) if self.gamma_range else None
        out["source"] = self.source.as_dict() if self.source is not None else None
        return out

    @staticmethod
    def from_dict(d: dict) -> "TrainConfig":
        """The config of :meth:`as_dict` (a family by its registered name)."""
        d = dict(d)
        if d.get("gamma_range") is not None:
            d["gamma_range"] = tuple(d["gamma_range"])
        if d.get("source") is not None:
            d["source"] = MDPSource.from_dict(d["source"])
        return TrainConfig(**d)






# ------------------------------------------------------------------ training

def checkpoint_path(out_dir: str) -> str:
    return os.path.join(out_dir, "checkpoint.npz")


def make_optimizer(model, lr: float) -> torch.optim.Optimizer:
    """Adam with PyTorch's defaults (betas 0.9, 0.999, eps 1e-8), as Section 4.1."""
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=False)


def evaluate(model, cfg: TrainConfig, device, num_mdps: int | None = None) -> dict:
    """Held-out teacher-mimicking loss on ``eval_mdps`` fresh MDPs, every
    frame ``0..frames-1`` (the training population), plus the loss of the
    identity map ``w -> w`` on the same prompts for scale."""
    num = num_mdps or cfg.eval_mdps
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1_000_003)
    stream = cfg.stream(num, gen, device)
    tot = ident = 0.0
    with torch.no_grad():
        for _ in range(cfg.frames):
            fr = stream.next()
            X, wt, target = fr.X, fr.wt, fr.target
            tot += float(mimic_loss(model.readout(X, wt), target))
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

    SIGINT / SIGTERM under :func:`numerics.core.runtime.interruptible`: the
    run stops after the current MDP batch, writes ``out_dir/checkpoint.npz``
    (when ``out_dir`` is given) and raises
    :class:`~numerics.core.runtime.Interrupted` naming it.
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
        start, curve, elapsed = load_checkpoint(checkpoint_path(out_dir), cfg.as_dict(), model, opt, gen)
    end = cfg.num_batches if stop_after is None else min(cfg.num_batches, stop_after)
    t0 = time.perf_counter()
    steps = mdp_frames = 0
    for k in range(start, end):
        for g in opt.param_groups:
            g["lr"] = cfg.lr_at(k)
        B = cfg.batch_size(k)
        stream = cfg.stream(B, gen, device)
        acc = torch.zeros((), dtype=DTYPE, device=device)
        for _ in range(cfg.frames):
            fr = stream.next()
            loss = mimic_loss(model.readout(fr.X, fr.wt), fr.target)
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
            save_checkpoint(checkpoint_path(out_dir), cfg.as_dict(), model, opt, gen, k + 1, curve,
                            elapsed + time.perf_counter() - t0)
        signum = interrupted()
        if signum is not None and k + 1 < end:     # SIGINT / SIGTERM: stop at this batch boundary
            path = None
            if out_dir is not None:
                path = checkpoint_path(out_dir)
                save_checkpoint(path, cfg.as_dict(), model, opt, gen, k + 1, curve, elapsed + time.perf_counter() - t0)
            raise Interrupted(signum, path)
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

