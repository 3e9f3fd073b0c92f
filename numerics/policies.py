"""Behaviour policies (THEORY.md section 1) and categorical sampling."""
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
