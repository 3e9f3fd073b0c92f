"""``--family boyan``: Boyan's chain (Boyan 2002, "Technical update:
least-squares temporal difference learning", Machine Learning 49) as
randomised by Wang et al. 2025 (ICLR, "Transformers can learn temporal
difference methods for in-context reinforcement learning", their
``MRP/boyan.py``, :func:`numerics.core.mrp.boyan_chains`): one action,
``S`` states (13 as in Boyan 2002), forward jumps of 1 or 2 with random
probabilities, random restart row, rewards ``Unif(-1, 1)`` per state;
features Boyan's four interpolated features (shared, d = 4) or Wang et
al.'s ``Unif(-1, 1)`` features drawn per chain."""
from __future__ import annotations

import numpy as np
import torch

from numerics.core.mrp import boyan_chains
from numerics.core.tolerances import DTYPE
from numerics.io.families import Family, Param, gammas, register
from numerics.io.options import Choice, Integer

FEATURES = ("boyan", "random")


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
    g = gammas(gen, batch, gamma, gamma_range)
    mdp = boyan_chains(batch, states, gen, torch.as_tensor(g, dtype=DTYPE))
    if features == "boyan":
        F = np.broadcast_to(boyan_features(states)[None, :, None, :], (batch, states, 1, 4))
    else:
        F = (2 * torch.rand(batch, states, 1, dim, generator=gen, dtype=DTYPE) - 1).numpy()
    return dict(T=mdp.T.numpy(), R=mdp.R.numpy(), gamma=g, rho0=mdp.rho0.numpy(), features=np.ascontiguousarray(F))


def sizes(params: dict) -> tuple[int, int, int]:
    return int(params["states"]), 1, 4


FAMILY = register(Family(
    name="boyan", summary="Boyan 2002 / Wang et al. 2025", generate=boyan, sizes=sizes,
    params=(Param("states", Integer(minimum=2), 13, "states", flag="--chain-states"),
            Param("features", Choice(FEATURES), "boyan", "Boyan's 4 interpolated features, or random: "
                  "Unif(-1,1)^4 per chain", flag="--family-features"))))
