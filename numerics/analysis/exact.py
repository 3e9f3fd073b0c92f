"""The paper's exact Algorithm 1 (THEORY.md sections 5, 6), compiled: one MDP
at a time, one Adam step per frame, at Section 4.1's scale (10,000 MDPs x
1,000 frames, Adam 1e-3 x 0.99 every 10 MDPs) in minutes on one core
(``icrl-verify train --protocol paper``).

The frame loop runs in the numba kernels of ``numerics.core.compiled``; this
module draws the data and carries the state.  Every random number comes
from the same ``torch.Generator`` in the order the torch trainer
(``numerics.analysis.train.train`` with ``batch_mdps = 1``) consumes it:
per MDP ``j``, ``MDPDistribution.sample(1, gen)`` (the MDP and its
features), ``numerics.core.stream.initial_state`` (``w ~ Unif(-1,1)^d``,
then ``s_0 ~ rho0``), then ``U = torch.rand(frames, 2n+1, generator=gen)``,
row ``f`` being frame ``f``'s ``2n+1`` uniforms (``numerics.core.compiled``
explains why this equals the torch stream's successive draws).  The initial
block is ``build_model``'s (Xavier-normal gain 0.1 from the generator
seeded ``seed + 2_000_003``).  So the compiled run sees the very MDPs,
features, initial ``w``, ``s_0``, uniforms and initial weights of the torch
trainer at the same seed; the teacher's ``w`` is computed in another
summation order (they agree to ~1e-16), so the two runs take the same
actions unless two ``Q_w`` values tie to within rounding; a compiled run
itself is bitwise reproducible, and a resumed one equals an uninterrupted
one bitwise (everything carried between MDPs is in :class:`ExactState` and
its checkpoint).
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from numerics.analysis.recovery import recovery_summary
from numerics.analysis.train import TrainConfig, evaluate, init_generator
from numerics.core import compiled as K
from numerics.core.models import build_model
from numerics.core.runtime import Interrupted, interrupted, torch_threads
from numerics.core.stream import initial_state
from numerics.io.exact_checkpoint import load_exact_checkpoint, save_exact_checkpoint
from numerics.io.models import save_model
from numerics.io.report import versions
from theory.errors import InputError

#: Section 4.1's protocol (THEORY.md section 6): one MDP per Adam step
#: sequence, 10,000 MDPs x 1,000 frames, Adam 1e-3 x 0.99 every 10 MDPs.
PAPER_SCALE = dict(mdps=10_000, frames=1_000, batch_mdps=1, lr=1e-3, lr_decay=0.99, lr_every=10)

#: Default checkpoint period of the exact protocol, in MDPs (100 MDPs =
#: 100,000 Adam steps, about 2 s of compiled work; a checkpoint is ~0.3 MB).
CHECKPOINT_EVERY = 100

#: The arrays of an :class:`ExactState` checkpoint.
_ARRAYS = ("params", "exp_avg", "exp_avg_sq", "gen_state", "P0", "V0", "curve")


def paper_config(**overrides) -> TrainConfig:
    """A ``TrainConfig`` at Section 4.1's protocol (:data:`PAPER_SCALE`), ``overrides`` applied."""
    return TrainConfig(**{**PAPER_SCALE, **overrides})


def check_exact_config(cfg: TrainConfig, device="cpu"):
    """:class:`InputError` naming the field when ``cfg`` is not a run the
    compiled kernels implement (the SARSA structure, the block, one MDP per
    step, float64 on the CPU)."""
    if not K.supports(cfg.record):
        raise InputError("algorithm", f"the compiled exact protocol implements the SARSA prompt and teacher "
                                      f"(Section 4.1); {cfg.record.name!r} differs")
    if cfg.model != "lsa":
        raise InputError("model", f"the compiled exact protocol trains the lsa block; got {cfg.model!r}")
    if cfg.batch_mdps != 1:
        raise InputError("batch-mdps", f"the exact protocol takes one MDP at a time; got {cfg.batch_mdps}")
    if torch.device(device).type != "cpu":
        raise InputError("device", f"the exact protocol runs compiled on the CPU; got {device}")


@dataclass
class ExactState:
    """Everything a run carries from one MDP to the next (explicit data, so
    a checkpoint is this object): the flat live parameters, Adam's moments
    and step count, the data generator's state, the next MDP index, the mean
    training loss of each finished MDP, the full initial ``P, V`` the live
    blocks are embedded in, and the seconds spent so far."""

    params: np.ndarray
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    step: float
    next_mdp: int
    gen_state: torch.Tensor
    P0: torch.Tensor
    V0: torch.Tensor
    curve: list = field(default_factory=list)
    elapsed: float = 0.0


def init_exact(cfg: TrainConfig) -> ExactState:
    """Initial state of a run of ``cfg``: the block of ``build_model`` from
    the generator seeded ``seed + 2_000_003``, zero Adam moments, the data
    generator seeded ``seed``."""
    check_exact_config(cfg)
    model = build_model("lsa", cfg.record, cfg.d, cfg.n, cfg.parameterization, gen=init_generator(cfg, "cpu"))
    P, V = (t.detach().clone() for t in model.full_weights())
    params = K.flatten_blocks(_index(cfg), P, V, cfg.parameterization)
    gen = torch.Generator().manual_seed(cfg.seed)
    return ExactState(params, np.zeros_like(params), np.zeros_like(params), 0.0, 0, gen.get_state(), P, V)


def _index(cfg: TrainConfig):
    return cfg.record.spec.index(cfg.d)


def draw_mdp(cfg: TrainConfig, gen: torch.Generator):
    """One MDP's data, drawn from ``gen`` as the torch trainer draws it
    (module docstring): ``(F, T_cdf, R, gamma, w0, s0, U)`` as numpy
    (``S x A x d``, ``S x A x S``, ``S x A x S``, float, ``d``, int,
    ``frames x (2n+1)``)."""
    mdp, F = cfg.distribution().sample(1, gen)
    theta, s0 = initial_state(cfg.record, mdp, F, gen)
    U = torch.rand(cfg.frames, 2 * cfg.n + 1, generator=gen, dtype=F.dtype)
    return (F[0].numpy(), mdp.T.cumsum(-1)[0].numpy(), mdp.R[0].contiguous().numpy(), float(mdp.gamma[0]),
            theta[0].numpy().copy(), int(s0[0]), U.numpy())


def run_exact(cfg: TrainConfig, state: ExactState, stop_after: int | None = None, progress=None,
              kernel=None) -> ExactState:
    """Continue Algorithm 1 from ``state`` up to MDP ``stop_after``
    (default: all ``cfg.mdps``), in place; returns ``state``.

    ``kernel``: the frame loop (default the compiled production kernel of
    ``cfg.parameterization``; tests pass a faulty one).  ``progress(k)`` is
    called after each MDP with ``k = cfg.frames`` (Adam steps).
    """
    check_exact_config(cfg)
    kernel = kernel or K.RUN_MDP[cfg.parameterization]
    gen = torch.Generator()
    gen.set_state(state.gen_state)
    ws = K.Workspace.new(*cfg.sizes, cfg.n, state.params.shape[0])
    losses = np.zeros(cfg.frames)
    end = cfg.mdps if stop_after is None else min(cfg.mdps, stop_after)
    t0 = time.perf_counter()
    alpha = float(cfg.alpha)
    for j in range(state.next_mdp, end):
        F, T_cdf, R, gamma, w, s0, U = draw_mdp(cfg, gen)
        lr = cfg.lr_at(j)
        _, state.step = kernel(F, T_cdf, R, gamma, w, s0, U, cfg.epsilon, alpha, state.params, state.exp_avg,
                               state.exp_avg_sq, state.step, lr, K.ADAM_BETA1, K.ADAM_BETA2, K.ADAM_EPS, losses,
                               *ws.arrays())
        state.curve.append(float(losses.sum()) / cfg.frames)
        if not math.isfinite(state.curve[-1]):
            raise FloatingPointError(f"training diverged at MDP {j} (loss {state.curve[-1]}); lower --lr")
        state.next_mdp = j + 1
        if progress is not None:
            progress(cfg.frames)
        if interrupted() is not None:       # SIGINT / SIGTERM: stop at this MDP boundary
            break
    state.gen_state = gen.get_state()
    state.elapsed += time.perf_counter() - t0
    return state


def warm_up(cfg: TrainConfig, kernel=None):
    """Compile (or load from numba's disk cache) the frame loop of ``cfg``
    by running it on zero frames of a throwaway MDP, so that a run's timing
    is the loop's own (the run's generator is not touched)."""
    state = init_exact(cfg)
    F, T_cdf, R, gamma, w, s0, U = draw_mdp(dataclasses.replace(cfg, frames=1), torch.Generator().manual_seed(0))
    ws = K.Workspace.new(*cfg.sizes, cfg.n, state.params.shape[0])
    (kernel or K.RUN_MDP[cfg.parameterization])(
        F, T_cdf, R, gamma, w, s0, U[:0], cfg.epsilon, float(cfg.alpha), state.params, state.exp_avg,
        state.exp_avg_sq, 0.0, cfg.lr, K.ADAM_BETA1, K.ADAM_BETA2, K.ADAM_EPS, np.zeros(0), *ws.arrays())


def exact_weights(cfg: TrainConfig, state: ExactState) -> tuple[torch.Tensor, torch.Tensor]:
    """Full ``(P, V)`` (``D x D``) of ``state``: the live blocks written into
    the initial weights (whose other entries never change)."""
    return K.embed_blocks(_index(cfg), state.params, cfg.parameterization, state.P0, state.V0)


def exact_model(cfg: TrainConfig, state: ExactState):
    """An ``LSABlock`` (``numerics.core.models.build_model``) holding ``state``'s weights."""
    model = build_model("lsa", cfg.record, cfg.d, cfg.n, cfg.parameterization, init=False)
    return model.set_weights(*exact_weights(cfg, state))


def save_state(path: str, cfg: TrainConfig, state: ExactState):
    """Checkpoint ``state`` (``numerics.io.exact_checkpoint``)."""
    arrays = dict(params=state.params, exp_avg=state.exp_avg, exp_avg_sq=state.exp_avg_sq,
                  gen_state=state.gen_state.numpy(), P0=state.P0.numpy(), V0=state.V0.numpy(),
                  curve=np.asarray(state.curve, dtype=np.float64))
    save_exact_checkpoint(path, cfg.as_dict(), arrays,
                          dict(next_mdp=state.next_mdp, step=state.step, elapsed_s=state.elapsed))


def load_state(path: str, cfg: TrainConfig) -> ExactState:
    """The state checkpointed at ``path`` for ``cfg`` (:class:`InputError`
    ``resume`` if it is missing, foreign, of another config or malformed)."""
    a, h = load_exact_checkpoint(path, cfg.as_dict(), _ARRAYS)
    size = K.num_params(_index(cfg), cfg.parameterization)
    D = _index(cfg).D
    ok = (all(a[k].shape == (size,) and a[k].dtype == np.float64 for k in ("params", "exp_avg", "exp_avg_sq"))
          and a["P0"].shape == (D, D) and a["V0"].shape == (D, D) and a["gen_state"].dtype == np.uint8
          and isinstance(h.get("next_mdp"), int) and 0 <= h["next_mdp"] <= cfg.mdps
          and a["curve"].shape == (h["next_mdp"],) and isinstance(h.get("step"), (int, float)))
    if not ok:
        raise InputError("resume", f"{path}: arrays or header do not fit this run (a damaged checkpoint?)")
    return ExactState(a["params"].copy(), a["exp_avg"].copy(), a["exp_avg_sq"].copy(), float(h["step"]),
                      h["next_mdp"], torch.from_numpy(a["gen_state"].copy()), torch.from_numpy(a["P0"].copy()),
                      torch.from_numpy(a["V0"].copy()), [float(x) for x in a["curve"]], float(h.get("elapsed_s", 0.0)))


def checkpoint_path(out_dir: str) -> str:
    return os.path.join(out_dir, "checkpoint.npz")


def train_exact(cfg: TrainConfig, *, out_dir: str | None = None, checkpoint_every: int = 0, resume: bool = False,
                progress=None, stop_after: int | None = None, kernel=None) -> tuple[ExactState, dict]:
    """Run (or continue) Algorithm 1 exactly; returns ``(state, info)``.

    ``checkpoint_every`` K > 0 writes ``out_dir/checkpoint.npz`` after every
    K MDPs; ``resume`` starts from it.  ``stop_after``: stop after that many
    MDPs in total (an interruption, for tests).  ``info``: ``steps`` (Adam
    steps in this call), ``seconds`` (this call's loop), ``completed``.
    SIGINT / SIGTERM (:func:`numerics.core.runtime.interruptible`): stop
    after the current MDP, checkpoint (when ``out_dir`` is given) and raise
    :class:`~numerics.core.runtime.Interrupted`.
    """
    check_exact_config(cfg)
    if checkpoint_every and out_dir is None:
        raise InputError("out", "checkpoints need an output directory")
    if resume:
        if out_dir is None:
            raise InputError("resume", "needs --out DIR holding checkpoint.npz")
        state = load_state(checkpoint_path(out_dir), cfg)
    else:
        state = init_exact(cfg)
    end = cfg.mdps if stop_after is None else min(cfg.mdps, stop_after)
    warm_up(cfg, kernel)
    start, t0 = state.next_mdp, time.perf_counter()
    while state.next_mdp < end:
        nxt = end if not checkpoint_every else min(end, (state.next_mdp // checkpoint_every + 1) * checkpoint_every)
        run_exact(cfg, state, stop_after=nxt, progress=progress, kernel=kernel)
        signum = interrupted()
        if signum is not None and state.next_mdp < end:
            path = None
            if out_dir is not None:
                path = checkpoint_path(out_dir)
                save_state(path, cfg, state)
            raise Interrupted(signum, path)
        if checkpoint_every and state.next_mdp < cfg.mdps:
            save_state(checkpoint_path(out_dir), cfg, state)
    info = dict(steps=(state.next_mdp - start) * cfg.frames, seconds=time.perf_counter() - t0,
                completed=state.next_mdp == cfg.mdps)
    return state, info


def train_exact_block(cfg: TrainConfig | None = None, *, out_dir: str | None = None, checkpoint_every: int = 0,
                      resume: bool = False, progress=None, threads: int | None = 1, **overrides) -> dict:
    """Algorithm 1 exactly (``cfg`` with ``overrides``; default
    :func:`paper_config`), then the held-out loss and structure recovery:
    the result dict of ``numerics.analysis.train.train_block`` (same keys;
    ``frames_per_s`` = Adam steps per second of the compiled loop), plus
    ``protocol`` ("paper"), ``steps`` and ``numba``.  Writes nothing unless
    ``out_dir`` is given (then ``out_dir/lsa.npz`` + metadata, and
    checkpoints if asked)."""
    cfg = dataclasses.replace(cfg or paper_config(), **overrides)
    load_start = os.getloadavg()[0]
    state, info = train_exact(cfg, out_dir=out_dir, checkpoint_every=checkpoint_every, resume=resume,
                              progress=progress)
    model = exact_model(cfg, state)
    with torch_threads(threads):
        ev = evaluate(model, cfg, torch.device("cpu"))
    rec = recovery_summary(model, cfg)
    steps = state.next_mdp * cfg.frames
    res = dict(final_loss=ev["loss"], identity_loss=ev["identity_loss"],
               distance_to_manifold=rec["distance_to_manifold"], scale_c=rec["scale_c"], weights=None, model=model,
               curve=list(state.curve), seconds=info["seconds"], total_seconds=state.elapsed,
               frames_per_s=steps / max(state.elapsed, 1e-12), mdp_frames_per_s=steps / max(state.elapsed, 1e-12),
               config=cfg.as_dict(), recovery=rec, protocol="paper", steps=steps, numba=K.NUMBA_VERSION,
               load_average=[load_start, os.getloadavg()[0]], cores=os.cpu_count())
    if out_dir is not None:
        meta = dict(config=cfg.as_dict(), protocol="paper", seed=cfg.seed, versions=dict(versions(), numba=K.NUMBA_VERSION),
                    loss_curve=res["curve"], final_loss=ev["loss"], identity_loss=ev["identity_loss"],
                    distance_to_manifold=res["distance_to_manifold"], scale_c=res["scale_c"],
                    train_seconds=state.elapsed, steps=steps, device="cpu", load_average=res["load_average"],
                    cores=res["cores"])
        res["weights"] = save_model(os.path.join(out_dir, "lsa.npz"), model, meta)
    return res
