"""``--family ring``: the worked example of docs/architecture.md, "How to add
an MDP family".  This file is written exactly as a module of
``numerics/io/families/`` is: copied there as ``ring.py`` it is a built-in
family (``property_tests/test_add_family.py`` does that in a temporary copy
of the package's search path); imported from here it is a user's family.

A ring of ``S`` cells, actions left / right; a move succeeds with a
probability ``p ~ Unif(0.6, 0.9)`` drawn per MDP, else the agent stays;
reward 1 on arriving at (or staying on) a goal cell drawn per MDP, 0
elsewhere; start uniform; one-hot (cell, action) features, d = 2 S.
"""
from __future__ import annotations

import numpy as np
import torch

from numerics.core.tolerances import DTYPE
from numerics.io.families import Family, Param, gammas, onehot_labels, register
from numerics.io.options import Integer


def ring(seed: int, batch: int, *, states: int = 5, gamma: float = 0.9, gamma_range=None) -> dict:
    """``batch`` rings of ``states`` cells (the arrays of ``--mdp-batch``)."""
    gen = torch.Generator().manual_seed(int(seed))
    g = gammas(gen, batch, gamma, gamma_range)
    p = (0.6 + 0.3 * torch.rand(batch, generator=gen, dtype=DTYPE)).numpy()
    goal = torch.randint(states, (batch,), generator=gen).numpy()
    S, b = states, np.arange(batch)[:, None]
    T = np.zeros((batch, S, 2, S))
    for a, step in enumerate((-1, 1)):
        cells = np.arange(S)
        T[:, cells, a, (cells + step) % S] += p[:, None]
        T[:, cells, a, cells] += 1 - p[:, None]
    R = np.zeros((batch, S, 2, S))
    R[b, :, :, goal[:, None]] = 1.0                      # reward on arriving at the goal
    F = np.broadcast_to(np.eye(2 * S).reshape(S, 2, 2 * S), (batch, S, 2, 2 * S))
    return dict(T=T, R=R, gamma=g, rho0=np.full((batch, S), 1.0 / S), features=np.ascontiguousarray(F))


def sizes(params: dict) -> tuple[int, int, int]:
    return params["states"], 2, 2 * params["states"]


FAMILY = register(Family(
    name="ring", summary="the worked example of docs/architecture.md", generate=ring, sizes=sizes,
    labels=onehot_labels, params=(Param("states", Integer(minimum=2), 5, "cells on the ring"),)))
