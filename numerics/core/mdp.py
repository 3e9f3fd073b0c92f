"""Batched finite MDPs, exact policy evaluation and value iteration.

Shapes (leading batch axis ``B`` of MDPs):
  ``T[b, s, a, s']`` transition probabilities, ``R[b, s, a, s']`` rewards,
  ``gamma[b]`` discounts in [0, 1), ``rho0[b, s]`` start distributions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from numerics.core.tolerances import DTYPE, NORMALIZE_DENOM_ATOL, ROW_SUM_ATOL, VI_TOL
from theory.errors import InputError


def _as_tensor(x, name, dtype=DTYPE, device=None):
    try:
        t = torch.as_tensor(x, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as e:
        raise InputError(name, f"cannot be read as a {dtype} array ({e})") from None
    return t


@dataclass(frozen=True)
class MDP:
    """A batch of finite MDPs, validated on construction.

    Rewards may be given per ``(s, a)`` (shape ``B x S x A``); they are then
    broadcast over ``s'``.
    """

    T: torch.Tensor
    R: torch.Tensor
    gamma: torch.Tensor
    rho0: torch.Tensor

    def __post_init__(self):
        T = _as_tensor(self.T, "transitions")
        if T.ndim == 3:
            T = T.unsqueeze(0)
        if T.ndim != 4:
            raise InputError("transitions", f"expected shape (B, S, A, S), got {tuple(T.shape)}")
        B, S, A, S2 = T.shape
        if S == 0 or A == 0 or B == 0:
            raise InputError("states" if S == 0 else "actions" if A == 0 else "mdps",
                             f"must be at least 1, got shape {tuple(T.shape)}")
        if S2 != S:
            raise InputError("transitions", f"expected shape (B, S, A, S), got {tuple(T.shape)}")
        dev = T.device
        R = _as_tensor(self.R, "rewards", device=dev)
        shape = tuple(R.shape)
        if shape == (B, S, A):
            R = R.unsqueeze(-1).expand(B, S, A, S)
        elif shape == (S, A, S):
            R = R.unsqueeze(0).expand(B, S, A, S)
        elif shape == (S, A):
            R = R.reshape(1, S, A, 1).expand(B, S, A, S)
        if tuple(R.shape) != (B, S, A, S):
            raise InputError("rewards", f"expected shape {(B, S, A, S)} or {(B, S, A)}, got {tuple(R.shape)}")
        g = _as_tensor(self.gamma, "gamma", device=dev).reshape(-1)
        if g.numel() == 1:
            g = g.expand(B).clone()
        if g.shape != (B,):
            raise InputError("gamma", f"expected one discount per MDP ({B}), got {tuple(g.shape)}")
        rho = _as_tensor(self.rho0, "rho0", device=dev)
        if rho.ndim == 1:
            rho = rho.unsqueeze(0).expand(B, S)
        if tuple(rho.shape) != (B, S):
            raise InputError("rho0", f"expected shape {(B, S)}, got {tuple(rho.shape)}")
        # values
        if not torch.isfinite(T).all():
            raise InputError("transitions", "contains NaN or infinity")
        if (T < 0).any():
            b, s, a, s2 = (T < 0).nonzero()[0].tolist()
            raise InputError("transitions", f"negative probability {T[b, s, a, s2].item():.3g} at mdp {b}, state {s}, action {a}, next state {s2}")
        sums = T.sum(-1)
        bad = (sums - 1).abs() > ROW_SUM_ATOL
        if bad.any():
            b, s, a = bad.nonzero()[0].tolist()
            raise InputError("transitions", f"row (mdp {b}, state {s}, action {a}) sums to {sums[b, s, a].item():.12g}, expected 1")
        if not torch.isfinite(R).all():
            raise InputError("rewards", "contains NaN or infinity")
        if not torch.isfinite(g).all() or (g < 0).any() or (g >= 1).any():
            bad_g = g[~(torch.isfinite(g) & (g >= 0) & (g < 1))][0].item()
            raise InputError("gamma", f"must satisfy 0 <= gamma < 1, got {bad_g}")
        if not torch.isfinite(rho).all() or (rho < 0).any() or ((rho.sum(-1) - 1).abs() > ROW_SUM_ATOL).any():
            raise InputError("rho0", "must be a probability distribution over states")
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "gamma", g)
        object.__setattr__(self, "rho0", rho)

    @property
    def batch(self) -> int:
        return self.T.shape[0]

    @property
    def states(self) -> int:
        return self.T.shape[1]

    @property
    def actions(self) -> int:
        return self.T.shape[2]

    def expected_reward(self) -> torch.Tensor:
        """``r(s, a) = sum_s' T(s'|s,a) R(s,a,s')``, shape ``B x S x A``."""
        return (self.T * self.R).sum(-1)

    def to(self, device) -> "MDP":
        return MDP(self.T.to(device), self.R.to(device), self.gamma.to(device), self.rho0.to(device))

    def __getitem__(self, idx) -> "MDP":
        idx = slice(idx, idx + 1) if isinstance(idx, int) else idx
        return MDP(self.T[idx], self.R[idx], self.gamma[idx], self.rho0[idx])


def evaluate_policy(mdp: MDP, pi: torch.Tensor):
    """Exact policy evaluation by a linear solve.

    Args:
      pi: ``B x S x A`` action probabilities.
    Returns:
      ``(V, Q)`` with ``V = (I - gamma P_pi)^{-1} r_pi`` (``B x S``) and
      ``Q(s,a) = r(s,a) + gamma sum_s' T V(s')`` (``B x S x A``).
    """
    r = mdp.expected_reward()
    P_pi = torch.einsum("bsa,bsat->bst", pi, mdp.T)
    r_pi = (pi * r).sum(-1)
    eye = torch.eye(mdp.states, dtype=P_pi.dtype, device=P_pi.device)
    V = torch.linalg.solve(eye - mdp.gamma[:, None, None] * P_pi, r_pi.unsqueeze(-1)).squeeze(-1)
    Q = r + mdp.gamma[:, None, None] * torch.einsum("bsat,bt->bsa", mdp.T, V)
    return V, Q


def value_iteration(mdp: MDP, tol: float = VI_TOL, max_iter: int = 100_000):
    """Optimal ``(V*, Q*)`` by value iteration, stopped when the Bellman
    residual (sup norm) is below ``tol`` for every MDP of the batch."""
    r = mdp.expected_reward()
    g = mdp.gamma[:, None, None]
    V = torch.zeros(mdp.batch, mdp.states, dtype=r.dtype, device=r.device)
    for _ in range(max_iter):
        Q = r + g * torch.einsum("bsat,bt->bsa", mdp.T, V)
        V_new = Q.max(-1).values
        if (V_new - V).abs().max() <= tol:
            V = V_new
            break
        V = V_new
    Q = r + g * torch.einsum("bsat,bt->bsa", mdp.T, V)
    return V, Q


def greedy_policy(Q: torch.Tensor) -> torch.Tensor:
    """Deterministic greedy policy (first maximiser), ``B x S x A`` one-hot."""
    return torch.nn.functional.one_hot(Q.argmax(-1), Q.shape[-1]).to(Q.dtype)


def uniform_policy(mdp: MDP) -> torch.Tensor:
    return torch.full((mdp.batch, mdp.states, mdp.actions), 1.0 / mdp.actions,
                      dtype=mdp.T.dtype, device=mdp.T.device)


def discounted_return(mdp: MDP, pi: torch.Tensor) -> torch.Tensor:
    """``J(pi) = rho0 . V^pi`` per MDP (THEORY.md section 7)."""
    V, _ = evaluate_policy(mdp, pi)
    return (mdp.rho0 * V).sum(-1)


def normalized_return(mdp: MDP, pi: torch.Tensor, J_opt=None, J_unif=None) -> torch.Tensor:
    """``(J(pi) - J(uniform)) / (J(pi*) - J(uniform))`` per MDP."""
    if J_opt is None:
        _, Qs = value_iteration(mdp)
        J_opt = discounted_return(mdp, greedy_policy(Qs))
    if J_unif is None:
        J_unif = discounted_return(mdp, uniform_policy(mdp))
    return normalize_return(discounted_return(mdp, pi), J_opt, J_unif)


def normalize_return(J: torch.Tensor, J_opt: torch.Tensor, J_unif: torch.Tensor) -> torch.Tensor:
    """``(J - J_unif) / (J* - J_unif)``; where ``|J* - J_unif|`` is below
    :data:`~numerics.core.tolerances.NORMALIZE_DENOM_ATOL` the denominator is 1."""
    denom = J_opt - J_unif
    denom = torch.where(denom.abs() < NORMALIZE_DENOM_ATOL, torch.ones_like(denom), denom)
    return (J - J_unif) / denom
