"""Behaviour policies (THEORY.md section 1), parameter splitting and
categorical sampling.

The parameter vector ``theta`` (``B x q``) is the read-out: ``w`` for the
value algorithms and TD(0), ``[w; lam]`` for actor-critic, in the order of
the layout's read-out blocks (``theory.layout``); :func:`split_theta` names
its parts.  The policy that acts is the record's ``behaviour``.
"""
from __future__ import annotations

import torch


def epsilon_greedy_probs(Q: torch.Tensor, epsilon: float) -> torch.Tensor:
    """epsilon-greedy in ``Q`` (``... x A``): ``eps/A`` everywhere plus
    ``1 - eps`` on the first maximiser."""
    A = Q.shape[-1]
    greedy = torch.nn.functional.one_hot(Q.argmax(-1), A).to(Q.dtype)
    return epsilon / A + (1.0 - epsilon) * greedy


def softmax_probs(logits: torch.Tensor) -> torch.Tensor:
    """``pi_lam(a|s) ~ exp(lam . phi(s, a))`` given the logits ``lam . phi``."""
    return torch.softmax(logits, dim=-1)


def sample_categorical(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One draw per row of ``probs`` (``B x K``) by the inverse CDF of one
    uniform from ``gen``: deterministic given the generator state."""
    u = torch.rand(probs.shape[:-1], generator=gen, dtype=probs.dtype, device=probs.device)
    cdf = probs.cumsum(-1)
    idx = (cdf < u.unsqueeze(-1)).sum(-1)
    return idx.clamp_max(probs.shape[-1] - 1)


def split_theta(record, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{block: tensor}`` for the read-out blocks of ``theta`` (each ``d`` wide)."""
    blocks = record.layout.readout_blocks
    d = theta.shape[-1] // len(blocks)
    return {b: theta[..., k * d:(k + 1) * d] for k, b in enumerate(blocks)}


def gather(F: torch.Tensor, s: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
    """``F[b, s[b, i], a[b, i]]`` (``B x n x d``) or ``F[b, s[b, i]]`` (``B x n x A x d``)."""
    bidx = torch.arange(F.shape[0], device=F.device).view(-1, *([1] * (s.ndim - 1)))
    return F[bidx, s] if a is None else F[bidx, s, a]


def behaviour_probs(record, F_s: torch.Tensor, theta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Action probabilities at states whose features are ``F_s`` (``B x ... x A x d``)
    under the record's behaviour policy: ``epsilon-greedy`` in ``Q_w``,
    ``softmax`` in ``lam``, or ``uniform`` (TD(0) evaluates the uniform policy)."""
    parts = split_theta(record, theta)
    shape = (F_s.shape[0],) + (1,) * (F_s.ndim - 3) + (-1, 1)
    if record.behaviour == "softmax":
        return softmax_probs((F_s @ parts["lam"].reshape(shape)).squeeze(-1))
    if record.behaviour == "uniform":
        A = F_s.shape[-2]
        return torch.full(F_s.shape[:-1], 1.0 / A, dtype=F_s.dtype, device=F_s.device)
    return epsilon_greedy_probs((F_s @ parts["w"].reshape(shape)).squeeze(-1), epsilon)


def greedy_actions(record, F: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Greedy action per state (``B x S``, first maximiser) in the block the
    record acts with (``Q_w``, or the actor's logits ``lam . phi``)."""
    v = split_theta(record, theta)[record.acts_with]
    return (F @ v[:, None, :, None]).squeeze(-1).argmax(-1)
