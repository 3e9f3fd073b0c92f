"""``--family darkroom``: the Dark Room of Laskin et al. 2022 (Algorithm
Distillation, ICLR 2023) and Lee et al. 2023 (Decision-Pretrained
Transformer, NeurIPS): a ``G x G`` grid, actions up / down / left / right /
stay (deterministic, walls clip), a hidden goal cell drawn per MDP, reward 1
on arriving at (or staying on) the goal, 0 elsewhere; start uniform over
cells; features one-hot per (cell, action) (d = 5 G^2) or coordinates
(one-hot action x (1, x, y), d = 15)."""
from __future__ import annotations

import numpy as np
import torch

from numerics.io.families import Family, Param, gammas, register
from numerics.io.options import Choice, Integer

FEATURES = ("onehot", "coords")
GOAL_DISTRIBUTIONS = ("uniform", "half")
#: up, down, left, right, stay as (row, column) moves.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))
ACTIONS = ("up", "down", "left", "right", "stay")


def darkroom_table(grid: int) -> np.ndarray:
    """Deterministic next cell ``next[s, a]`` of the ``grid x grid`` room."""
    nxt = np.zeros((grid * grid, 5), dtype=np.int64)
    for s in range(grid * grid):
        r, c = divmod(s, grid)
        for a, (dr, dc) in enumerate(MOVES):
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
    g = gammas(gen, batch, gamma, gamma_range)
    nxt = darkroom_table(grid)
    T1 = np.zeros((S, 5, S))
    T1[np.arange(S)[:, None], np.arange(5)[None, :], nxt] = 1.0
    T = np.broadcast_to(T1, (batch, S, 5, S))
    R = (nxt[None, :, :] == goal[:, None, None]).astype(np.float64)           # reward on reaching the goal
    F = np.broadcast_to(darkroom_features(grid, features), (batch, S, 5, S * 5 if features == "onehot" else 15))
    return dict(T=np.ascontiguousarray(T), R=R, gamma=g, rho0=np.full((batch, S), 1.0 / S),
                features=np.ascontiguousarray(F))


def sizes(params: dict) -> tuple[int, int, int]:
    G = int(params["grid"])
    return G * G, 5, (5 * G * G if params["features"] == "onehot" else 15)


def labels(params: dict, actions: int):
    """``k -> '(row,col) action'`` for one-hot features (``k = s A + a``)."""
    if params["features"] != "onehot":
        return None
    G = params["grid"]
    return lambda k: f"({k // actions // G},{k // actions % G}) {ACTIONS[k % actions]}"


FAMILY = register(Family(
    name="darkroom", summary="Laskin et al. 2022, Lee et al. 2023", generate=darkroom, sizes=sizes, labels=labels,
    params=(Param("grid", Integer(minimum=1), 5, "grid size G (d = 5 G^2 one-hot)", flag="--grid"),
            Param("features", Choice(FEATURES), "onehot", "one-hot per (cell, action), or coords: one-hot action "
                  "x (1, x, y)", flag="--family-features"),
            Param("goals", Choice(GOAL_DISTRIBUTIONS), "uniform",
                  "goal cell uniform over all cells, or over the top half", flag="--goals"))))
