"""Per-algorithm facts shared by the sampler, teachers and prompt builders.

The parameter vector ``theta`` (``B x q``) is the read-out: ``w`` for the
value algorithms and TD(0), ``[w; lam]`` for actor-critic, in the order of
the layout's read-out blocks (``theory.layout``).
"""
from __future__ import annotations

import torch

from theory.constructions import ALGORITHMS, get as get_construction
from numerics.errors import InputError
from numerics.policies import epsilon_greedy_probs, softmax_probs


def check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise InputError("algorithm", f"unknown {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
    return algorithm


def layout(algorithm: str):
    return get_construction(check_algorithm(algorithm)).layout


def split_theta(algorithm: str, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{block: tensor}`` for the read-out blocks of ``theta``."""
    lay = layout(algorithm)
    d = theta.shape[-1] // len(lay.readout_blocks)
    return {b: theta[..., k * d:(k + 1) * d] for k, b in enumerate(lay.readout_blocks)}


def q_dim(algorithm: str, d: int) -> int:
    return layout(algorithm).q(d)


def gather(F: torch.Tensor, s: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
    """``F[b, s[b, i], a[b, i]]`` (``B x n x d``) or ``F[b, s[b, i]]`` (``B x n x A x d``)."""
    bidx = torch.arange(F.shape[0], device=F.device).view(-1, *([1] * (s.ndim - 1)))
    return F[bidx, s] if a is None else F[bidx, s, a]


def behaviour_probs(algorithm: str, F_s: torch.Tensor, theta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Action probabilities at states whose features are ``F_s`` (``B x ... x A x d``).

    SARSA, expected SARSA, Q-learning: epsilon-greedy in ``Q_w``;
    actor-critic: softmax in ``lam``; TD(0): uniform (it evaluates the
    uniform policy).
    """
    parts = split_theta(algorithm, theta)
    shape = (F_s.shape[0],) + (1,) * (F_s.ndim - 3) + (-1, 1)
    if algorithm == "actor-critic":
        return softmax_probs((F_s @ parts["lam"].reshape(shape)).squeeze(-1))
    if algorithm == "td":
        A = F_s.shape[-2]
        return torch.full(F_s.shape[:-1], 1.0 / A, dtype=F_s.dtype, device=F_s.device)
    return epsilon_greedy_probs((F_s @ parts["w"].reshape(shape)).squeeze(-1), epsilon)
