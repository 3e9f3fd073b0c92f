"""Markov reward processes for Wang et al.'s in-context TD (docs/wang2025.md
section 5): random MRPs, their Boyan chain, uniform features, the stationary
distribution, trajectories and context windows.  Batched over MRPs, float64,
randomness from an explicit ``torch.Generator``.

An MRP is an :class:`numerics.core.mdp.MDP` with one action
(``T[b, s, 0, s']``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from numerics.core.mdp import MDP, evaluate_policy
from numerics.core.tolerances import DTYPE
from theory.errors import InputError

MRP_KINDS = ("random", "boyan")


def _positive(value, field):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(field, f"must be a positive integer, got {value!r}")


def random_mrps(batch: int, states: int, gen: torch.Generator, gamma=0.9) -> MDP:
    """``batch`` random MRPs: transition rows and the start distribution
    Dirichlet(1) (normalised Exp(1) draws), rewards ``R[s, s'] ~ Unif(-1, 1)``
    per transition; ``gamma`` a number or one per MRP."""
    _positive(batch, "mdps")
    _positive(states, "states")
    E = -torch.log(torch.rand(batch, states, states, generator=gen, dtype=DTYPE))
    T = E / E.sum(-1, keepdim=True)
    e0 = -torch.log(torch.rand(batch, states, generator=gen, dtype=DTYPE))
    R = 2 * torch.rand(batch, states, 1, states, generator=gen, dtype=DTYPE) - 1
    return MDP(T.unsqueeze(2), R, gamma, e0 / e0.sum(-1, keepdim=True))


def uniform_features(batch: int, states: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    """``phi[b, s] ~ Unif(-1, 1)^d``, ``B x S x d`` (their ``Feature``, mode ``random``)."""
    _positive(dim, "features-dim")
    return 2 * torch.rand(batch, states, dim, generator=gen, dtype=DTYPE) - 1


def boyan_chains(batch: int, states: int, gen: torch.Generator, gamma=0.9, features: torch.Tensor | None = None,
                 representable: bool = False) -> MDP:
    """Their Boyan chain (``MRP/boyan.py``), ``batch`` draws.

    For ``i < S-2``: ``T[i, i+1] = p_i``, ``T[i, i+2] = 1 - p_i``,
    ``p_i ~ Unif(0.01, 0.99)``; ``T[S-2, S-1] = 1``; the last row is
    ``Unif(0.01, 0.99)^S`` normalised (the restart); start distribution
    ``Unif(0.01, 0.99)^S`` normalised.  Rewards depend on the state left:
    ``r(s) ~ Unif(-1, 1)``, or with ``representable`` (needs ``features``,
    ``B x S x d``): ``v = Phi w``, ``w ~ N(0, I)``, ``r = (I - gamma T) v``.
    """
    _positive(batch, "mdps")
    if not isinstance(states, int) or states < 2:
        raise InputError("states", f"a Boyan chain needs at least 2 states, got {states!r}")
    T = torch.zeros(batch, states, states, dtype=DTYPE)
    p = 0.01 + 0.98 * torch.rand(batch, states - 2, generator=gen, dtype=DTYPE)
    i = torch.arange(states - 2)
    T[:, i, i + 1] = p
    T[:, i, i + 2] = 1 - p
    T[:, states - 2, states - 1] = 1.0
    last = 0.01 + 0.98 * torch.rand(batch, states, generator=gen, dtype=DTYPE)
    T[:, states - 1] = last / last.sum(-1, keepdim=True)
    mu = 0.01 + 0.98 * torch.rand(batch, states, generator=gen, dtype=DTYPE)
    mu = mu / mu.sum(-1, keepdim=True)
    g = torch.as_tensor(gamma, dtype=DTYPE).reshape(-1, 1, 1)
    if representable:
        if features is None:
            raise InputError("features", "a representable Boyan chain needs the feature matrix")
        v = features @ torch.randn(batch, features.shape[-1], 1, generator=gen, dtype=DTYPE)
        r = (v - g * T @ v).squeeze(-1)
    else:
        r = 2 * torch.rand(batch, states, generator=gen, dtype=DTYPE) - 1
    R = r[:, :, None, None].expand(batch, states, 1, states)
    return MDP(T.unsqueeze(2), R, gamma, mu)


def sample_mrps(kind: str, batch: int, states: int, gen: torch.Generator, gamma=0.9) -> MDP:
    if kind not in MRP_KINDS:
        raise InputError("mrp", f"unknown {kind!r}; expected one of {', '.join(MRP_KINDS)}")
    return boyan_chains(batch, states, gen, gamma) if kind == "boyan" else random_mrps(batch, states, gen, gamma)


def mrp_values(mdp: MDP) -> torch.Tensor:
    """``v_pi`` of every MRP (``B x S``): ``(I - gamma T) v = r_bar``, the exact
    policy evaluation of :func:`numerics.core.mdp.evaluate_policy` with the
    MRP's one action."""
    pi = torch.ones(mdp.batch, mdp.states, 1, dtype=mdp.T.dtype, device=mdp.T.device)
    return evaluate_policy(mdp, pi)[0]


def stationary_distribution(mdp: MDP) -> torch.Tensor:
    """``pi[b]`` with ``pi T = pi``, ``sum pi = 1`` for an MRP, ``B x S``."""
    return stationary_of(mdp.T[:, :, 0, :])


def stationary_of(T: torch.Tensor) -> torch.Tensor:
    """``pi`` with ``pi T = pi``, ``sum pi = 1`` for transition matrices
    ``B x S x S``: the linear system ``(I - T)^T pi = 0`` with its last
    equation replaced by ``sum pi = 1`` (nonsingular for an irreducible chain;
    an LU solve, which, unlike the least-squares driver, gives the same bits
    on every call)."""
    B, S, _ = T.shape
    A = (torch.eye(S, dtype=T.dtype, device=T.device) - T).transpose(-1, -2).clone()
    A[:, -1, :] = 1.0
    b = torch.zeros(B, S, 1, dtype=T.dtype, device=T.device)
    b[:, -1] = 1.0
    return torch.linalg.solve(A, b).squeeze(-1)


def walk(T: torch.Tensor, rho0: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """States of trajectories driven by given uniforms: ``u`` is
    ``B x (steps + 1)``; ``s_0`` is the inverse CDF of ``rho0`` at ``u[:, 0]``,
    ``s_{t+1}`` that of ``T[s_t]`` at ``u[:, t+1]``.  ``T``: ``B x S x S``."""
    B, S = rho0.shape
    idx = torch.arange(B)

    def draw(probs, x):
        return (probs.cumsum(-1) < x[:, None]).sum(-1).clamp(max=S - 1)

    s = draw(rho0, u[:, 0])
    out = [s]
    for t in range(1, u.shape[1]):
        s = draw(T[idx, s], u[:, t])
        out.append(s)
    return torch.stack(out, dim=1)


def sample_trajectories(mdp: MDP, steps: int, gen: torch.Generator) -> torch.Tensor:
    """States ``s_0 .. s_steps`` of one trajectory per MRP (``s_0 ~ rho0``), ``B x (steps + 1)``."""
    u = torch.rand(mdp.batch, steps + 1, generator=gen, dtype=DTYPE)
    return walk(mdp.T[:, :, 0, :], mdp.rho0, u)


@dataclass
class Windows:
    """What a prompt is built from (batch first): ``phi`` and ``phi_next``
    (``B x n x d``, undiscounted), ``r`` (``B x n``), ``phi_q`` (``B x d``),
    ``gamma`` (``B``), and the states when sampled."""

    phi: torch.Tensor
    phi_next: torch.Tensor
    r: torch.Tensor
    phi_q: torch.Tensor
    gamma: torch.Tensor
    states: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.phi.shape[1]

    @property
    def d(self) -> int:
        return self.phi.shape[2]

    @property
    def batch(self) -> int:
        return self.phi.shape[0]


def windows_from_states(mdp: MDP, features: torch.Tensor, S: torch.Tensor, n: int) -> Windows:
    """Their ``MRPPrompt``: states ``s_0 .. s_{n+1}`` (``B x (n+2)``); context
    ``j = 0..n-1`` holds ``phi(s_j)``, ``phi(s_{j+1})`` and the reward
    ``R(s_j, s_{j+1})`` of that transition (``r(s_j)`` for a Boyan chain); the
    query is ``phi(s_{n+1})``."""
    B = S.shape[0]
    b = torch.arange(B)[:, None]
    return Windows(features[b, S[:, :n]], features[b, S[:, 1:n + 1]], mdp.R[b, S[:, :n], 0, S[:, 1:n + 1]],
                   features[torch.arange(B), S[:, n + 1]], mdp.gamma.clone(), S)


def mrp_windows(mdp: MDP, features: torch.Tensor, n: int, gen: torch.Generator) -> Windows:
    """One window per MRP from a fresh trajectory (:func:`windows_from_states`)."""
    _positive(n, "context")
    return windows_from_states(mdp, features, sample_trajectories(mdp, n + 1, gen), n)
