"""``--family frozenlake``: random FrozenLake maps
(``gymnasium.envs.toy_text.frozen_lake.generate_random_map``, one map per
MDP, frozen-tile probability ``p``), slippery or not, as Gymnasium's
transition table (terminal states absorbing,
:func:`numerics.io.envs.table_to_mdp`); one-hot (cell, action) features."""
from __future__ import annotations

import numpy as np
import torch
from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv, generate_random_map

from numerics.io.envs import table_to_mdp
from numerics.io.families import Family, Param, gammas, register
from numerics.io.options import Choice, Integer, Real
from theory.errors import InputError

ACTIONS = ("left", "down", "right", "up")


def frozenlake(seed: int, batch: int, *, size: int = 4, frozen: float = 0.8, slippery: bool = True,
               gamma: float = 0.9, gamma_range=None) -> dict:
    """Random FrozenLake maps through Gymnasium, one-hot features."""
    rng = np.random.default_rng(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    g = gammas(gen, batch, gamma, gamma_range)
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


def sizes(params: dict) -> tuple[int, int, int]:
    """The map's cells and the absorbing state of its terminal tiles."""
    S = int(params["size"]) ** 2 + 1
    return S, 4, 4 * S


def check(params: dict):
    if not params["frozen"] > 0:
        raise InputError("frozen", f"must be in (0, 1], got {params['frozen']}")


def labels(params: dict, actions: int):
    """``k -> '(row,col) action'`` (``k = s A + a``), the absorbing state last."""
    G = params["size"]
    return lambda k: (f"({k // actions // G},{k // actions % G}) {ACTIONS[k % actions]}" if k // actions < G * G
                      else f"terminal {ACTIONS[k % actions]}")


FAMILY = register(Family(
    name="frozenlake", summary="Gymnasium random maps", generate=frozenlake, sizes=sizes, check=check, labels=labels,
    params=(Param("size", Integer(minimum=2), 4, "map size", flag="--lake-size"),
            Param("frozen", Real(minimum=0.0, maximum=1.0), 0.8, "probability of a frozen tile", flag="--frozen"),
            Param("slippery", Choice(("yes", "no")), True, "slippery ice", flag="--slippery",
                  values=(("yes", True), ("no", False))))))
