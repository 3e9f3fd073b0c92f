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

import numpy as np
import torch
from scipy import stats

from numerics.analysis.recovery import recovery_summary
from numerics.core.block import PARAMETERIZATIONS, forward, mimic_loss, readout_entry
from numerics.core.distributions import FEATURE_KINDS, MDPDistribution
from numerics.core.models import MODEL_KINDS, build_model
from numerics.core.mrp import Windows, boyan_chains, stationary_of, uniform_features, walk
from numerics.core.prompts import evaluation_prompt
from numerics.core.runtime import Interrupted, interrupted, torch_threads
from numerics.core.stream import Stream
from numerics.core.tolerances import DTYPE, WANG_RECOVERY_RTOL
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

    #: a registered name, or the record itself (what a worker process is
    #: handed: records travel by value, :mod:`numerics.io.records`)
    algorithm: str | algorithms.Algorithm = "sarsa"
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
        """Plain data (reports, weight files, checkpoints): the algorithm by its name."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["algorithm"] = self.record.name
        out["gamma_range"] = list(self.gamma_range) if self.gamma_range else None
        out["source"] = self.source.as_dict() if self.source is not None else None
        return out

    def with_record(self) -> "TrainConfig":
        """This configuration holding its algorithm's record rather than a
        name: what crosses a process boundary (a fresh process's registry
        lacks a user's records)."""
        return dataclasses.replace(self, algorithm=self.record)

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
    model = build_model(cfg.model, cfg.record, cfg.d, cfg.n, cfg.parameterization, gen=init_generator(cfg, device),
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


def train_record(record, progress=None, threads: int | None = 1, **options) -> dict:
    """``train(record, ...)`` for every record: an ``mdp`` record by teacher
    mimicking (:func:`train_block`, ``options`` the fields of
    :class:`TrainConfig` and its keywords), an ``mrp`` record by Wang et al.'s
    Figure 2 objective (:func:`train_layers`, ``options`` the fields of
    :class:`LayersTrainConfig`).  The record travels by value."""
    record = algorithms.get(record)
    if record.data == "mrp":
        options = {"layers": record.spec.depth, "tied": record.spec.tied, **options}
        return train_layers(LayersTrainConfig(algorithm=record, **options), progress=progress, threads=threads)
    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    registered = record.name in algorithms.names() and algorithms.get(record.name) == record
    cfg = TrainConfig(algorithm=record.name if registered else record,
                      **{k: v for k, v in options.items() if k in keys})
    return train_block(cfg, progress=progress, threads=threads, **{k: v for k, v in options.items() if k not in keys})


# ==================================================================== layer-by-layer (mrp) records
# Wang et al.'s Figure 2 experiment (docs/wang2025.md section 5): an L-layer
# masked linear transformer trained on Boyan chains with their objective, the
# mean squared TD error of its own value predictions (the computation behind
# ``icrl-verify train`` of an mrp record).
#
# Per seed and per MRP: fresh features ``phi(s) ~ Unif(-1, 1)^d`` and a fresh
# Boyan chain; ``minibatches`` times: a fresh trajectory ``s_0 ~ mu`` of
# ``n + 2 + steps`` states gives ``steps + 1`` sliding-window prompts (prompt
# ``t``: context transitions ``s_t .. s_{t+n}``, query ``s_{t+n+1}``) and one Adam
# step on
#
#     (1/steps) sum_t ( r(s_{t+n+1}) + gamma v(Z_{t+1}).detach() - v(Z_t) )^2,
#
# ``v(Z) = -Z_L[-1, -1]``.  Alongside, their "batch TD with a fitted step
# size": the TD(0) construction with ``C = alpha I`` (one ``alpha`` per seed,
# shared by the layers, initialised at 1) trained by its own Adam on the same
# loss and data (evaluated in weight space, :func:`td_values`).  Weights ``P``,
# ``V`` (``D x D`` tied, or ``L x D x D``) start
# Xavier-normal with gain 0.1 (0.1 / L untied), as theirs.
#
# Seeds run side by side: each seed has its own data generator and its own
# weights; Adam is elementwise, so the summed loss gives every seed exactly the
# update it would get alone.  Float64 (theirs: float32).
#
# Measures (:func:`structure_measures`, :func:`functional_measures`), per
# seed, with 95% Student-t intervals over seeds: theirs (the written entry of
# ``V`` against the rest; the traces of ``P``'s (phi, phi) and (phi, gamma phi')
# blocks after sign alignment; the value difference to batch TD with the
# fitted step size; the cosine between the sensitivities to ``phi_q``; the
# implied-weight similarity) and ours: the distance to the construction
# family modulo its symmetries (:func:`family_distance`), which decides
# whether training recovered the construction (``WANG_RECOVERY_RTOL``).

#: Their Figure 2 at full scale (4,000 MRPs x 5 minibatches = 20,000 Adam steps per seed, 10 seeds).
LAYERS_PAPER_SCALE = dict(mrps=4000)
#: The default CPU scale (docs/wang2025.md: measured cost).
LAYERS_CPU_SCALE = dict(mrps=1000)
#: MRPs drawn per call of a seed's generator (the random stream depends on it, so it is fixed).
LAYERS_CHUNK = 50


@dataclass(frozen=True)
class LayersTrainConfig:
    """Everything that determines a run (same config, same numbers)."""

    states: int = 10
    d: int = 4
    n: int = 30
    layers: int = 3
    tied: bool = True
    gamma: float = 0.9
    lr: float = 1e-3
    weight_decay: float = 1e-6
    mrps: int = LAYERS_CPU_SCALE["mrps"]
    minibatches: int = 5
    steps: int = 64
    seeds: int = 10
    seed: int = 0
    init_gain: float = 0.1
    eval_mrps: int = 64
    log_every: int = 50
    curve_mrps: int = 8
    #: the record trained (a name or the record itself, passed by value): an mrp record with TD(0)'s layout and
    #: teacher (the measures read its (phi, phi), (phi, gamma phi') blocks and the written reward entry)
    algorithm: object = "td-preconditioned"

    def __post_init__(self):
        rec = self.record
        if (rec.data != "mrp" or rec.direction != "phi" or rec.centered or len(rec.spec.heads) != 1
                or rec.layout.context != (("phi", "d"), ("gphi_next", "d"), ("r", 1))
                or rec.layout.readout != (("r", -1),)):
            raise InputError("algorithm", f"train of an mrp record learns TD(0) on the layout [phi; gamma phi'; r] "
                                          f"with read-out -Z[-1, -1] (as td-preconditioned); {rec.name!r} is not one")
        for name in ("states", "d", "n", "layers", "mrps", "minibatches", "steps", "seeds", "eval_mrps", "log_every",
                     "curve_mrps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(name.replace("_", "-"), f"must be a positive integer, got {v!r}")
        if self.states < 2:
            raise InputError("states", f"a Boyan chain needs at least 2 states, got {self.states}")
        if self.seeds < 2:
            raise InputError("seeds", f"95% intervals over seeds need at least 2 seeds, got {self.seeds}")
        if not (0 <= self.gamma < 1):
            raise InputError("gamma", f"must satisfy 0 <= gamma < 1, got {self.gamma}")
        for name in ("lr", "init_gain"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise InputError(name.replace("_", "-"), f"must be a positive finite number, got {v}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InputError("weight-decay", f"must be a finite number >= 0, got {self.weight_decay}")

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["algorithm"] = self.record.name
        return out

    @property
    def record(self):
        return algorithms.get(self.algorithm)

    def spec(self):
        return self.record.spec_at(self.layers, self.tied)

    @property
    def D(self) -> int:
        return int(self.record.layout.D(self.d))

    @property
    def adam_steps(self) -> int:
        return self.mrps * self.minibatches


# ---- data ----------------------------------------------------------------------------------

def _seed_of(cfg, s: int, stream: int) -> int:
    """Seed of seed index ``s``'s generator for one stream (0 training data, 1
    held-out measures, 2 initial weights, 3 the curves' chains): index ``s``
    of base seed ``b`` is index 0 of base seed ``b + 1000 s``."""
    return cfg.seed + 1000 * s + 1_000_003 * stream


def draw_chunk(cfg: LayersTrainConfig, gens, K: int, traj_len: int, trajectories: int):
    """``K`` MRPs per seed (each seed from its own generator): features
    ``seeds x K x S x d``, Boyan rewards ``seeds x K x S``, transitions
    ``seeds x K x S x S`` and ``trajectories`` trajectories of ``traj_len``
    states per MRP, ``seeds x K x trajectories x traj_len``."""
    Fs, rs, Ts, mus, us = [], [], [], [], []
    for g in gens:
        F = uniform_features(K, cfg.states, cfg.d, g)
        mdp = boyan_chains(K, cfg.states, g, cfg.gamma)
        Fs.append(F)
        rs.append(mdp.R[:, :, 0, 0])
        Ts.append(mdp.T[:, :, 0, :])
        mus.append(mdp.rho0)
        us.append(torch.rand(K, trajectories, traj_len, generator=g, dtype=DTYPE))
    F, r, T, mu, u = (torch.stack(x) for x in (Fs, rs, Ts, mus, us))
    S_, K_, J, Tl = u.shape
    Tb = T[:, :, None].expand(S_, K_, J, cfg.states, cfg.states).reshape(-1, cfg.states, cfg.states)
    mub = mu[:, :, None].expand(S_, K_, J, cfg.states).reshape(-1, cfg.states)
    states = walk(Tb, mub, u.reshape(-1, Tl)).reshape(S_, K_, J, Tl)
    return F, r, T, mu, states


def sliding_windows(F, r, states, n: int, gamma: float) -> tuple[Windows, torch.Tensor]:
    """Prompts ``t = 0..T-n-2`` of one trajectory per leading index: context
    transitions ``s_t .. s_{t+n}``, query ``s_{t+n+1}``; and the reward of each
    query state, ``r(s_{t+n+1})`` (their ``prompt.step()``).  ``F``: ``B x S x d``,
    ``r``: ``B x S``, ``states``: ``B x T``.  Windows are flattened to
    ``B * (T - n - 1)`` prompts (batch-major)."""
    B, Tl = states.shape
    count = Tl - n - 1
    idx = torch.arange(count)[:, None] + torch.arange(n + 2)[None, :]          # count x (n+2)
    S = states[:, idx]                                                           # B x count x (n+2)
    b = torch.arange(B)[:, None, None]
    phi = F[b, S[..., :n]]
    phi_next = F[b, S[..., 1:n + 1]]
    rew = r[b, S[..., :n]]
    q = F[torch.arange(B)[:, None], S[..., n + 1]]
    rq = r[torch.arange(B)[:, None], S[..., n + 1]]
    flat = lambda x: x.reshape(B * count, *x.shape[2:])
    win = Windows(flat(phi), flat(phi_next), flat(rew), flat(q), torch.full((B * count,), float(gamma), dtype=DTYPE))
    return win, rq


# ---- models ----------------------------------------------------------------------------------

def init_weights(cfg: LayersTrainConfig, gens):
    """Xavier-normal (gain 0.1, or 0.1 / L untied) ``P``, ``V``, each seed from
    its own generator: ``seeds x D x D`` (tied) or ``L x seeds x D x D``."""
    D = cfg.D
    gain = cfg.init_gain if cfg.tied else cfg.init_gain / cfg.layers
    std = gain * math.sqrt(2.0 / (D + D))
    shape = (D, D) if cfg.tied else (cfg.layers, D, D)
    draws = [(std * torch.randn(*shape, generator=g, dtype=DTYPE), std * torch.randn(*shape, generator=g, dtype=DTYPE))
             for g in gens]
    axis = 0 if cfg.tied else 1
    return torch.stack([p for p, _ in draws], axis), torch.stack([v for _, v in draws], axis)


def values(cfg: LayersTrainConfig, P, V, Z):
    """``v(Z) = -Z_L[-1, -1]`` per seed: ``Z`` is ``seeds x B x D x (n+1)``."""
    spec = cfg.spec()
    Pb, Vb = P.unsqueeze(-3), V.unsqueeze(-3)                      # a prompt axis to broadcast over
    return readout_entry(cfg.record.layout, forward(spec, Pb, Vb, Z, cfg.d))


def td_values(cfg: LayersTrainConfig, alpha, win: Windows, seeds: int):
    """Their hard-coded transformer (the TD(0) construction with ``C = alpha I``,
    tied) evaluated in weight space: ``w_L . phi_q`` with ``w_L`` from
    :func:`batch_td_weights` (the construction equals it exactly, proven by
    ``icrl-verify prove --algorithm td-preconditioned`` and checked by ``check``);
    ``seeds x (prompts per seed)``, differentiable in ``alpha``."""
    per = win.batch // seeds
    w = batch_td_weights(win, alpha.repeat_interleave(per), cfg.layers)
    return (w * win.phi_q).sum(-1).reshape(seeds, per)


def mstde(cfg, v: torch.Tensor, rq: torch.Tensor) -> torch.Tensor:
    """Their loss per seed: ``v``, ``rq``: ``seeds x J x (steps + 1)``; mean over
    the ``steps`` TD errors with the next prompt's value detached, then over ``J``."""
    tde = rq[..., :-1] + cfg.gamma * v[..., 1:].detach() - v[..., :-1]
    return (tde ** 2).mean(-1).mean(-1)


# ---- measures --------------------------------------------------------------------------------

def _align(P, V):
    """Their sign alignment: both times ``sign(V[-1, -1])`` (the layer is
    invariant under ``(P, V) -> (-P, -V)``)."""
    s = torch.where(V[..., -1, -1] >= 0, 1.0, -1.0).to(DTYPE)[..., None, None]
    return s * P, s * V


def structure_measures(P, V, d: int) -> dict:
    """Their Figure 2 structure measures per layer (leading axes kept), in our
    notation (their ``P`` = our ``V``, their ``Q`` = our ``P``), after sign
    alignment: ``written_entry`` (``V[-1, -1]``), ``others_mean_abs_V`` (mean
    ``|V_ij|`` over the other ``D^2 - 1`` entries), ``trace_phi_phi``,
    ``trace_phi_gphi`` (traces of ``P[:d, :d]`` and ``P[:d, d:2d]``; the
    construction: ``-tr C``, ``+tr C``), ``others_mean_abs_P`` (mean ``|P_ij|``
    off the diagonals of those two blocks, ``D^2 - 2d`` entries) and
    ``others_P_theirs`` (their formula, which subtracts the two *signed*
    traces from ``sum |P|``: nonzero on the construction)."""
    Pa, Va = _align(P, V)
    D = P.shape[-1]
    tr1 = torch.diagonal(Pa[..., :d, :d], dim1=-2, dim2=-1).sum(-1)
    tr2 = torch.diagonal(Pa[..., :d, d:2 * d], dim1=-2, dim2=-1).sum(-1)
    diag_abs = (torch.diagonal(Pa[..., :d, :d], dim1=-2, dim2=-1).abs().sum(-1)
                + torch.diagonal(Pa[..., :d, d:2 * d], dim1=-2, dim2=-1).abs().sum(-1))
    total = Pa.abs().sum((-1, -2))
    others_V = (Va.abs().sum((-1, -2)) - Va[..., -1, -1].abs()) / (D * D - 1)
    return dict(written_entry=Va[..., -1, -1], others_mean_abs_V=others_V,
                trace_phi_phi=tr1, trace_phi_gphi=tr2, others_mean_abs_P=(total - diag_abs) / (D * D - 2 * d),
                others_P_theirs=(total - tr1 - tr2) / (D * D - 2 * d))


def family_distance(P, V, d: int) -> dict:
    """Distance of learned weights to the TD(0) construction family
    ``F = {(P(A), v E_rr)}``, ``P(A)`` zero except ``-A`` on (phi, phi) and
    ``+A`` on (phi, gamma phi') (``A = C^T`` for any preconditioner), ``E_rr``
    the written entry.  ``F`` is a linear space closed under the layer's
    symmetries (scaling ``(cP, V/c)`` and the sign), and each relative
    residual below is invariant under them: ``rel_P = |P - proj_F P| / |P|``,
    ``rel_V = |V - proj V| / |V|`` (norms over all layers of the stack);
    ``distance = max(rel_P, rel_V)``.  Also ``distance_identity``: the same to
    the subfamily ``A = a I`` (``C`` a multiple of the identity, their
    hard-coded TD), and the implied preconditioner's mean diagonal
    ``step = v tr(A) / d`` (per layer)."""
    X, Y = P[..., :d, :d], P[..., :d, d:2 * d]
    A = (Y - X) / 2
    proj = torch.zeros_like(P)
    proj[..., :d, :d] = -A
    proj[..., :d, d:2 * d] = A
    a = torch.diagonal(A, dim1=-2, dim2=-1).mean(-1)
    eye = torch.eye(d, dtype=P.dtype)
    proj_i = torch.zeros_like(P)
    proj_i[..., :d, :d] = -a[..., None, None] * eye
    proj_i[..., :d, d:2 * d] = a[..., None, None] * eye
    projV = torch.zeros_like(V)
    projV[..., -1, -1] = V[..., -1, -1]
    layer_axes = (0,) if P.ndim == 4 else ()                          # untied: L x seeds x D x D

    def rel(M, Mp):
        num = ((M - Mp) ** 2).sum((-1, -2))
        den = (M ** 2).sum((-1, -2))
        if layer_axes:
            num, den = num.sum(0), den.sum(0)
        return (num / den.clamp_min(1e-300)).sqrt()

    rel_V = rel(V, projV)
    rel_P, rel_Pi = rel(P, proj), rel(P, proj_i)
    return dict(rel_P=rel_P, rel_V=rel_V, distance=torch.maximum(rel_P, rel_V),
                distance_identity=torch.maximum(rel_Pi, rel_V), step=V[..., -1, -1] * a)


def batch_td_weights(win: Windows, alpha: torch.Tensor, layers: int) -> torch.Tensor:
    """``w_L`` of ``L`` steps of batch TD(0) with ``C = alpha I`` from ``w_0 = 0``
    in matrix form, ``w <- w + (alpha/n) Phi^T (r + gamma Phi' w - Phi w)``
    (``win`` batched; ``alpha`` one per window)."""
    phi, phin, r = win.phi, win.phi_next, win.r
    n = phi.shape[1]
    w = torch.zeros(phi.shape[0], phi.shape[2], dtype=DTYPE)
    for _ in range(layers):
        delta = r + win.gamma[:, None] * (phin @ w[..., None]).squeeze(-1) - (phi @ w[..., None]).squeeze(-1)
        w = w + alpha[:, None] / n * (phi.transpose(1, 2) @ delta[..., None]).squeeze(-1)
    return w


def _cos(a, b):
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-300)


def functional_measures(cfg: LayersTrainConfig, P, V, alpha, F, r, T, mu, states) -> dict:
    """Their functional measures on held-out MRPs (one context window each),
    per seed (mean over the MRPs): ``value_difference`` ``sum_s d(s) (v_td(s) -
    v_tf(s))^2``; ``sensitivity_cosine`` ``sum_s d(s) cos(dv_tf/dphi_q,
    dv_td/dphi_q)`` at ``phi_q = phi(s)`` (autograd; for batch TD the gradient
    is ``w_L``); ``implied_weight_cosine`` ``cos(w_tf, w_L)`` with ``w_tf`` the
    ``d``-weighted least-squares fit of ``v_tf`` over the states.  ``d`` is the
    stationary distribution, ``v_td`` batch TD with the fitted step size.
    Inputs: ``seeds x E x ...`` held-out draws (:func:`draw_chunk`), one
    trajectory per MRP."""
    Sd, E = F.shape[:2]
    S, d, n = cfg.states, cfg.d, cfg.n
    win0, _ = sliding_windows(F.reshape(Sd * E, S, d), r.reshape(Sd * E, S), states.reshape(Sd * E, -1)[:, :n + 2],
                              n, cfg.gamma)
    # every state as the query: seeds x E x S prompts
    rep = lambda x: x.repeat_interleave(S, 0)
    q = F.reshape(Sd * E * S, d).clone().requires_grad_(True)
    win = Windows(rep(win0.phi), rep(win0.phi_next), rep(win0.r), q, rep(win0.gamma))
    Z = evaluation_prompt(cfg.record, win).reshape(Sd, E * S, cfg.D, n + 1)
    v_tf = values(cfg, P.detach(), V.detach(), Z)                                    # seeds x E*S
    (g,) = torch.autograd.grad(v_tf.sum(), q)
    v_tf, g = v_tf.detach().reshape(Sd, E, S), g.reshape(Sd, E, S, d)
    w_td = batch_td_weights(win0, alpha.detach().repeat_interleave(E), cfg.layers).reshape(Sd, E, d)
    Fm = F.reshape(Sd, E, S, d)
    v_td = (Fm @ w_td[..., None]).squeeze(-1)
    dist = stationary_of(T.reshape(Sd * E, S, S)).reshape(Sd, E, S)
    vd = (dist * (v_td - v_tf) ** 2).sum(-1)
    ss = (dist * _cos(g, w_td[:, :, None, :])).sum(-1)
    Dg = dist[..., None] * Fm
    w_tf = torch.linalg.solve(Fm.transpose(-1, -2) @ Dg, (Dg.transpose(-1, -2) @ v_tf[..., None])).squeeze(-1)
    iws = _cos(w_tf, w_td)
    return dict(value_difference=vd.mean(-1), sensitivity_cosine=ss.mean(-1), implied_weight_cosine=iws.mean(-1))


def t_interval(x: np.ndarray):
    """Mean and 95% Student-t interval over the first axis (seeds)."""
    k = x.shape[0]
    mean = x.mean(0)
    half = stats.t.ppf(0.975, k - 1) * x.std(0, ddof=1) / math.sqrt(k)
    return mean, mean - half, mean + half


def their_pattern(final: dict) -> dict:
    """Their Figure 2 reading, each decided on the 95% intervals over seeds:
    the written entry of ``V`` above the mean ``|V|`` of the rest, the (phi, phi)
    trace of ``P`` negative and the (phi, gamma phi') trace positive, and the
    sensitivity similarity above 1/2."""
    lo = lambda k: final[k]["ci95"][0]
    hi = lambda k: final[k]["ci95"][1]
    return {"written entry above the rest": bool(lo("written_entry") > hi("others_mean_abs_V")),
            "tr P[phi, phi] < 0": bool(hi("trace_phi_phi") < 0),
            "tr P[phi, gamma phi'] > 0": bool(lo("trace_phi_gphi") > 0),
            "sensitivity similarity > 1/2": bool(lo("sensitivity_cosine") > 0.5)}


def _summaries(per_seed: dict) -> dict:
    out = {}
    for k, v in per_seed.items():
        a = np.asarray(v, dtype=float)
        mean, lo, hi = t_interval(a)
        out[k] = dict(mean=mean.tolist(), ci95=[lo.tolist(), hi.tolist()], per_seed=a.tolist())
    return out


# ---- training ----------------------------------------------------------------------------------

def train_layers(cfg: LayersTrainConfig, progress=None, threads: int | None = 1, snapshots=()) -> dict:
    """Train ``cfg.seeds`` seeds side by side; returns the weights, the fitted
    step sizes, the curves and the final measures (per seed and 95% intervals).
    ``snapshots``: MRP counts at which to keep a copy of ``P``, ``V`` and
    ``alpha`` (returned under ``"snapshots"``, by count; the run itself is
    unchanged, and the data are drawn ``LAYERS_CHUNK`` MRPs at a time, so a
    snapshot at a multiple ``m`` of it is the run of ``mrps = m``)."""
    with torch_threads(threads):
        return _train_layers(cfg, progress, tuple(snapshots))


def _heldout(cfg, stream: int, count: int, traj_len: int):
    gens = [torch.Generator().manual_seed(_seed_of(cfg, s, stream)) for s in range(cfg.seeds)]
    F, r, T, mu, states = draw_chunk(cfg, gens, count, traj_len, 1)
    return F, r, T, mu, states[:, :, 0]


def heldout_draws(cfg: LayersTrainConfig):
    """The held-out chains of the final measures (``cfg.eval_mrps`` per seed,
    one trajectory each; the same draws for the same config)."""
    return _heldout(cfg, 1, cfg.eval_mrps, cfg.n + 2 + cfg.steps)


def _measure(cfg, P, V, alpha, held) -> dict:
    st = structure_measures(P, V, cfg.d)
    fam = family_distance(P, V, cfg.d)
    fn = functional_measures(cfg, P, V, alpha, *held)
    reduce = (lambda x: x.mean(0)) if not cfg.tied else (lambda x: x)     # untied: mean over layers
    out = {k: reduce(v) for k, v in st.items()}
    out["step_implied"] = reduce(fam.pop("step"))
    out.update(fam)
    out.update(fn)
    out["alpha_fitted"] = alpha.detach()
    return {k: v.detach().numpy() for k, v in out.items()}


def heldout_loss(cfg, P, V, alpha, held) -> dict:
    """Their loss on held-out trajectories (one per held-out MRP): the
    transformer, batch TD with the fitted step size, and the zero predictor."""
    F, r, T, mu, states = held
    Sd, E = F.shape[:2]
    win, rq = sliding_windows(F.reshape(Sd * E, cfg.states, cfg.d), r.reshape(Sd * E, cfg.states),
                              states.reshape(Sd * E, -1), cfg.n, cfg.gamma)
    Z = evaluation_prompt(cfg.record, win).reshape(Sd, -1, cfg.D, cfg.n + 1)
    J = E
    rq = rq.reshape(Sd, J, -1)
    with torch.no_grad():
        v_tf = values(cfg, P, V, Z).reshape(Sd, J, -1)
        v_td = td_values(cfg, alpha, win, Sd).reshape(Sd, J, -1)
    zero = torch.zeros_like(v_tf)
    return {k: mstde(cfg, v, rq).numpy() for k, v in (("transformer", v_tf), ("batch_td", v_td), ("zero", zero))}


def _train_layers(cfg: LayersTrainConfig, progress, snapshots=()) -> dict:
    t0 = time.perf_counter()
    gens = [torch.Generator().manual_seed(_seed_of(cfg, s, 0)) for s in range(cfg.seeds)]
    P0, V0 = init_weights(cfg, [torch.Generator().manual_seed(_seed_of(cfg, s, 2)) for s in range(cfg.seeds)])
    P, V = P0.clone().requires_grad_(True), V0.clone().requires_grad_(True)
    alpha = torch.ones(cfg.seeds, dtype=DTYPE, requires_grad=True)
    opt = torch.optim.Adam([P, V], lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_td = torch.optim.Adam([alpha], lr=cfg.lr, weight_decay=cfg.weight_decay)
    traj_len = cfg.n + 2 + cfg.steps
    curve_held = _heldout(cfg, 3, cfg.curve_mrps, traj_len)
    curve, losses = [], []
    snaps = {}
    done = 0
    while done < cfg.mrps:
        K = min(LAYERS_CHUNK, cfg.mrps - done)
        F, r, T, mu, states = draw_chunk(cfg, gens, K, traj_len, cfg.minibatches)
        for k in range(K):
            for m in range(cfg.minibatches):
                win, rq = sliding_windows(F[:, k], r[:, k], states[:, k, m], cfg.n, cfg.gamma)
                Z = evaluation_prompt(cfg.record, win).reshape(cfg.seeds, 1, cfg.steps + 1, cfg.D, cfg.n + 1)
                rq = rq.reshape(cfg.seeds, 1, -1)
                Zs = Z.reshape(cfg.seeds, cfg.steps + 1, cfg.D, cfg.n + 1)
                loss = mstde(cfg, values(cfg, P, V, Zs).reshape(cfg.seeds, 1, -1), rq)
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
                loss_td = mstde(cfg, td_values(cfg, alpha, win, cfg.seeds).reshape(cfg.seeds, 1, -1), rq)
                opt_td.zero_grad()
                loss_td.sum().backward()
                opt_td.step()
                losses.append(loss.detach().numpy())
            done += 1
            if done in snapshots:
                snaps[done] = dict(P=P.detach().clone(), V=V.detach().clone(), alpha=alpha.detach().clone())
            if done % cfg.log_every == 0 or done == cfg.mrps:
                m_ = _measure(cfg, P.detach(), V.detach(), alpha.detach(), curve_held)
                curve.append(dict(mrps=done, **{k: v.tolist() for k, v in m_.items()},
                                  train_loss=np.mean(losses[-cfg.minibatches * cfg.log_every:], 0).tolist()))
            if progress is not None:
                progress(1)
    seconds = time.perf_counter() - t0
    held = heldout_draws(cfg)
    final = _measure(cfg, P.detach(), V.detach(), alpha.detach(), held)
    final.update({f"heldout_loss_{k}": v for k, v in heldout_loss(cfg, P.detach(), V.detach(), alpha.detach(),
                                                                   held).items()})
    summary = _summaries(final)
    upper = summary["distance"]["ci95"][1]
    extra = {"snapshots": snaps} if snapshots else {}
    return dict(config=cfg.as_dict(), P=P.detach(), V=V.detach(), alpha=alpha.detach(), curve=curve, **extra,
                final=summary, pattern=their_pattern(summary), recovered=bool(upper < WANG_RECOVERY_RTOL),
                recovery_threshold=WANG_RECOVERY_RTOL,
                distance_upper95=float(upper), seconds=seconds, adam_steps=cfg.adam_steps,
                steps_per_s=cfg.adam_steps / seconds)
