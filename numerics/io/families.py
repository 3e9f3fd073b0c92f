"""Named MDP families from the in-context RL literature (docs/families.md).

Each family is a generator ``(seed, batch) -> dict`` of the batch arrays of
:mod:`numerics.io.mdp_batch` (``T``, ``R``, ``gamma``, ``rho0``,
``features``), with its parameters bound; :func:`family_distribution` wraps
it as a :class:`~numerics.io.mdp_batch.GeneratorDistribution`.  The
``section41`` family is the built-in :class:`MDPDistribution` itself.

* ``boyan``: Boyan's chain (Boyan 2002, "Technical update: least-squares
  temporal difference learning", Machine Learning 49) as randomised by
  Wang et al. 2025 (ICLR, "Transformers can learn temporal difference
  methods for in-context reinforcement learning", their ``MRP/boyan.py``,
  :func:`numerics.core.mrp.boyan_chains`): one action, ``S`` states (13 as
  in Boyan 2002), forward jumps of 1 or 2 with random probabilities,
  random restart row, rewards ``Unif(-1, 1)`` per state; features Boyan's
  four interpolated features (shared, d = 4) or Wang et al.'s ``Unif(-1, 1)``
  features drawn per chain.
* ``darkroom``: the Dark Room of Laskin et al. 2022 (Algorithm
  Distillation, ICLR 2023) and Lee et al. 2023 (Decision-Pretrained
  Transformer, NeurIPS): a ``G x G`` grid, actions up / down / left / right /
  stay (deterministic, walls clip), a hidden goal cell drawn per MDP,
  reward 1 on arriving at (or staying on) the goal, 0 elsewhere; start
  uniform over cells; features one-hot per (cell, action) (d = 5 G^2) or
  coordinates (one-hot action x (1, x, y), d = 15).
* ``frozenlake``: random FrozenLake maps
  (``gymnasium.envs.toy_text.frozen_lake.generate_random_map``, one map per
  MDP, frozen-tile probability ``p``), slippery or not, as Gymnasium's
  transition table (terminal states absorbing, :func:`table_to_mdp`);
  one-hot (cell, action) features.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv, generate_random_map

from numerics.core.distributions import MDPDistribution
from numerics.core.mrp import boyan_chains
from numerics.core.tolerances import DTYPE
from numerics.io.envs import table_to_mdp
from numerics.io.mdp_batch import GeneratorDistribution
from theory.errors import InputError

FAMILIES = ("section41", "boyan", "darkroom", "frozenlake")
BOYAN_FEATURES = ("boyan", "random")
DARKROOM_FEATURES = ("onehot", "coords")
GOAL_DISTRIBUTIONS = ("uniform", "half")
#: up, down, left, right, stay as (row, column) moves.
DARKROOM_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))


def _gammas(gen: torch.Generator, batch: int, gamma: float, gamma_range) -> np.ndarray:
    if gamma_range is None:
        return np.full(batch, float(gamma))
    lo, hi = gamma_range
    return (lo + (hi - lo) * torch.rand(batch, generator=gen, dtype=DTYPE)).numpy()


def boyan_features(states: int) -> np.ndarray:
    """Boyan (2002)'s features: four anchors at states ``S-1``, and three more
    equally spaced down to ``0`` (for S = 13: 12, 8, 4, 0), linear
    interpolation between neighbouring anchors; ``S x 4``."""
    anchors = np.linspace(states - 1, 0, 4)
    Phi = np.zeros((states, 4))
    for s in range(states):
        for k in range(3):
            hi, lo = anchors[k], anchors[k + 1]
            if lo <= s <= hi:
                t = (hi - s) / (hi - lo)
                Phi[s, k], Phi[s, k + 1] = 1 - t, t
                break
    return Phi


def boyan(seed: int, batch: int, *, states: int = 13, gamma: float = 0.9, gamma_range=None,
          features: str = "boyan", dim: int = 4) -> dict:
    """Wang et al. (2025)'s random Boyan chains, one action (``A = 1``)."""
    gen = torch.Generator().manual_seed(int(seed))
    g = _gammas(gen, batch, gamma, gamma_range)
    mdp = boyan_chains(batch, states, gen, torch.as_tensor(g, dtype=DTYPE))
    if features == "boyan":
        F = np.broadcast_to(boyan_features(states)[None, :, None, :], (batch, states, 1, 4))
    else:
        F = (2 * torch.rand(batch, states, 1, dim, generator=gen, dtype=DTYPE) - 1).numpy()
    return dict(T=mdp.T.numpy(), R=mdp.R.numpy(), gamma=g, rho0=mdp.rho0.numpy(), features=np.ascontiguousarray(F))


def darkroom_table(grid: int) -> np.ndarray:
    """Deterministic next cell ``next[s, a]`` of the ``grid x grid`` room."""
    nxt = np.zeros((grid * grid, 5), dtype=np.int64)
    for s in range(grid * grid):
        r, c = divmod(s, grid)
        for a, (dr, dc) in enumerate(DARKROOM_MOVES):
            nxt[s, a] = min(max(r + dr, 0), grid - 1) * grid + min(max(c + dc, 0), grid - 1)
    return nxt


def darkroom_features(grid: int, kind: str) -> np.ndarray:
    """``S x 5 x d``: one-hot per (cell, action), or one-hot action times
    ``(1, x, y)`` with ``x, y`` in ``[0, 1]``."""
    S = grid * grid
    if kind == "onehot":
        return np.eye(S * 5).reshape(S, 5, S * 5)
    F = np.zeros((S, 5, 15))
    for s in range(S):
        r, c = divmod(s, grid)
        scale = max(grid - 1, 1)
        for a in range(5):
            F[s, a, 3 * a:3 * a + 3] = (1.0, c / scale, r / scale)
    return F


def darkroom(seed: int, batch: int, *, grid: int = 5, gamma: float = 0.9, gamma_range=None,
             features: str = "onehot", goals: str = "uniform") -> dict:
    """Dark Room (Laskin et al. 2022; Lee et al. 2023): goal ~ ``goals``
    (``uniform`` over all cells, or ``half``: the top half of the rows, the
    split AD and DPT hold out the rest for testing)."""
    gen = torch.Generator().manual_seed(int(seed))
    S = grid * grid
    cells = S if goals == "uniform" else max(grid // 2, 1) * grid
    goal = torch.randint(cells, (batch,), generator=gen).numpy()
    g = _gammas(gen, batch, gamma, gamma_range)
    nxt = darkroom_table(grid)
    T1 = np.zeros((S, 5, S))
    T1[np.arange(S)[:, None], np.arange(5)[None, :], nxt] = 1.0
    T = np.broadcast_to(T1, (batch, S, 5, S))
    R = (nxt[None, :, :] == goal[:, None, None]).astype(np.float64)           # reward on reaching the goal
    F = np.broadcast_to(darkroom_features(grid, features), (batch, S, 5, S * 5 if features == "onehot" else 15))
    return dict(T=np.ascontiguousarray(T), R=R, gamma=g, rho0=np.full((batch, S), 1.0 / S),
                features=np.ascontiguousarray(F))


def frozenlake(seed: int, batch: int, *, size: int = 4, frozen: float = 0.8, slippery: bool = True,
               gamma: float = 0.9, gamma_range=None) -> dict:
    """Random FrozenLake maps through Gymnasium, one-hot features."""
    rng = np.random.default_rng(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    g = _gammas(gen, batch, gamma, gamma_range)
    Ts, Rs, rhos = [], [], []
    for b in range(batch):
        desc = generate_random_map(size=size, p=frozen, seed=int(rng.integers(2 ** 31 - 1)))
        env = FrozenLakeEnv(desc=desc, is_slippery=slippery)
        tab = table_to_mdp(env.P, env.observation_space.n, env.action_space.n, env.initial_state_distrib,
                           float(g[b]), name="FrozenLake")
        Ts.append(tab.restart.T[0].numpy())
        Rs.append(tab.restart.R[0].numpy())
        rhos.append(tab.restart.rho0[0].numpy())
    T = np.stack(Ts)
    S, A = T.shape[1], T.shape[2]
    F = np.broadcast_to(np.eye(S * A).reshape(S, A, S * A), (batch, S, A, S * A))
    return dict(T=T, R=np.stack(Rs), gamma=g, rho0=np.stack(rhos), features=np.ascontiguousarray(F))


def family_distribution(name: str, *, gamma: float, gamma_range=None, dist: MDPDistribution | None = None,
                        **params):
    """The distribution of family ``name`` with ``params`` (Section 4.1:
    ``dist``, the built-in distribution of the common options)."""
    if name not in FAMILIES:
        raise InputError("family", f"unknown {name!r}; expected one of {', '.join(FAMILIES)}")
    if name == "section41":
        return dist
    fn = {"boyan": boyan, "darkroom": darkroom, "frozenlake": frozenlake}[name]
    _check_params(name, params)
    shown = ", ".join(f"{k} {v}" for k, v in params.items())
    g = f"gamma ~ Unif{tuple(gamma_range)}" if gamma_range else f"gamma {gamma}"
    bound = functools.partial(fn, gamma=gamma, gamma_range=tuple(gamma_range) if gamma_range else None, **params)
    out = GeneratorDistribution(bound, f"family {name}", field="family")
    out.description = f"family {name} ({shown}, {g}), {out.states} states, {out.actions} actions, d = {out.d}"
    out.family = name
    out.params = dict(params)
    return out


#: Action names of the families with named actions.
DARKROOM_ACTIONS = ("up", "down", "left", "right", "stay")
FROZENLAKE_ACTIONS = ("left", "down", "right", "up")


def pair_labels(dist):
    """``k -> 'cell (row, col) action'`` for one-hot Darkroom and FrozenLake
    (``k = s A + a``, the order of their one-hot features), ``'s3 a1'``
    otherwise; ``None`` where the feature order is not ``s A + a``."""
    name = getattr(dist, "family", None)
    A = dist.actions
    if name == "darkroom" and getattr(dist, "params", {}).get("features") == "onehot":
        G = dist.params["grid"]
        return lambda k: f"({k // A // G},{k // A % G}) {DARKROOM_ACTIONS[k % A]}"
    if name == "frozenlake":
        G = dist.params.get("size", 4)
        return lambda k: (f"({k // A // G},{k // A % G}) {FROZENLAKE_ACTIONS[k % A]}" if k // A < G * G
                          else f"terminal {FROZENLAKE_ACTIONS[k % A]}")
    if getattr(dist, "features", None) == "onehot":
        return lambda k: f"s{k // A} a{k % A}"
    return None
def family_sizes(name: str, params: dict) -> tuple[int, int, int]:
    """``(states, actions, d)`` of one MDP of family ``name`` with
    ``params``, by arithmetic alone (before anything is generated: a size
    guard reads it)."""
    if name == "boyan":
        return int(params.get("states", 13)), 1, 4
    if name == "darkroom":
        G = int(params.get("grid", 5))
        return G * G, 5, (5 * G * G if params.get("features", "onehot") == "onehot" else 15)
    if name == "frozenlake":
        n = int(params.get("size", 4))
        return n * n, 4, 4 * n * n
    raise InputError("family", f"unknown {name!r}; expected one of {', '.join(FAMILIES)}")


def _check_params(name: str, params: dict):
    def pos(key, lo=1):
        v = params.get(key)
        if v is not None and (not isinstance(v, int) or v < lo):
            raise InputError(key.replace("_", "-"), f"must be an integer >= {lo}, got {v!r}")
    if name == "boyan":
        pos("states", 2)
        if params.get("features") not in BOYAN_FEATURES:
            raise InputError("family-features", f"boyan features: expected one of {', '.join(BOYAN_FEATURES)}")
    if name == "darkroom":
        pos("grid", 1)
        if params.get("features") not in DARKROOM_FEATURES:
            raise InputError("family-features", f"darkroom features: expected one of {', '.join(DARKROOM_FEATURES)}")
        if params.get("goals") not in GOAL_DISTRIBUTIONS:
            raise InputError("goals", f"expected one of {', '.join(GOAL_DISTRIBUTIONS)}")
    if name == "frozenlake":
        pos("size", 2)
        fr = params.get("frozen")
        if fr is not None and not (0 < fr <= 1):
            raise InputError("frozen", f"must be in (0, 1], got {fr}")
