"""Distributions of MDPs and features (THEORY.md sections 1 and 6).

The default is Section 4.1: 9 states, 4 actions, gamma 0.5, transitions and
start distribution Dirichlet(1), rewards Unif(-1, 1) per (s, a, s'), dense
Unif(-1, 1) features of dimension d = |S||A| drawn afresh for every MDP.

Features are always returned as a ``B x S x A x d`` tensor ``F`` with
``phi(s, a) = F[b, s, a]``.  For TD(0) (policy evaluation with state
features ``psi(s)``, d = |S|) the state features are broadcast over actions,
``F[b, s, a] = psi(s)``; every other piece of code is then shared.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from numerics.core.mdp import MDP
from numerics.core.tolerances import DTYPE
from theory.errors import InputError

FEATURE_KINDS = ("dense", "dense-shared", "onehot")


class Distribution(Protocol):
    """What every distribution of MDPs offers the code that draws from it:
    :class:`MDPDistribution` (below), and the batch file's and the
    generator's (``numerics.io.mdp_batch``: a named family is a generator),
    each realised from one ``numerics.io.sources.MDPSource``."""

    states: int
    actions: int
    gamma: float | None
    gamma_range: tuple[float, float] | None
    features: str
    state_features: bool
    feature_seed: int

    @property
    def d(self) -> int: ...

    def describe(self) -> str: ...

    def sample(self, num: int, gen: torch.Generator, device=None): ...


@dataclass(frozen=True)
class MDPDistribution:
    """A distribution of (MDP, features) pairs.

    Attributes:
      states, actions: sizes.
      gamma: fixed discount, used when ``gamma_range`` is None.
      gamma_range: ``(lo, hi)``: gamma ~ Unif(lo, hi) per MDP.
      features: ``dense`` (fresh per MDP), ``dense-shared`` (one draw for
        all MDPs, fixed by ``feature_seed``), or ``onehot``.
      state_features: TD(0): features of states only (d = states).
      dirichlet: concentration of the transition and start Dirichlets.
      feature_seed: seed of the single ``dense-shared`` draw.
    """

    states: int = 9
    actions: int = 4
    gamma: float = 0.5
    gamma_range: tuple[float, float] | None = None
    features: str = "dense"
    state_features: bool = False
    dirichlet: float = 1.0
    feature_seed: int = 0

    def __post_init__(self):
        if not isinstance(self.states, int) or self.states < 1:
            raise InputError("states", f"must be a positive integer, got {self.states!r}")
        if not isinstance(self.actions, int) or self.actions < 1:
            raise InputError("actions", f"must be a positive integer, got {self.actions!r}")
        if self.gamma_range is not None:
            lo, hi = self.gamma_range
            if not (0 <= lo <= hi < 1):
                raise InputError("gamma-range", f"must satisfy 0 <= LO <= HI < 1, got {lo} {hi}")
        elif not (0 <= self.gamma < 1):
            raise InputError("gamma", f"must satisfy 0 <= gamma < 1, got {self.gamma}")
        if self.features not in FEATURE_KINDS:
            raise InputError("features", f"unknown {self.features!r}; expected one of {', '.join(FEATURE_KINDS)}")
        if not (self.dirichlet > 0):
            raise InputError("dirichlet", f"must be positive, got {self.dirichlet}")

    @property
    def d(self) -> int:
        return self.states if self.state_features else self.states * self.actions

    def describe(self) -> str:
        g = (f"gamma ~ Unif({self.gamma_range[0]}, {self.gamma_range[1]}) per MDP"
             if self.gamma_range else f"gamma = {self.gamma}")
        kind = "state" if self.state_features else "state-action"
        return (f"{self.states} states, {self.actions} actions, {g}, Dirichlet({self.dirichlet}) "
                f"transitions and start, rewards Unif(-1,1) per (s,a,s'), {self.features} {kind} features, d = {self.d}")

    def draw_features(self, B: int, gen: torch.Generator, device=None) -> torch.Tensor:
        """Features ``B x S x A x d`` of this distribution's kind (also used
        for a user's MDPs that come without features)."""
        S, A, d = self.states, self.actions, self.d
        rows = S if self.state_features else S * A
        if self.features == "onehot":
            F = torch.eye(rows, dtype=DTYPE, device=device).expand(B, rows, d)
        elif self.features == "dense":
            F = torch.rand(B, rows, d, generator=gen, dtype=DTYPE, device=device) * 2 - 1
        else:  # dense-shared
            g0 = torch.Generator(device=device).manual_seed(self.feature_seed)
            F = (torch.rand(1, rows, d, generator=g0, dtype=DTYPE, device=device) * 2 - 1).expand(B, rows, d)
        if self.state_features:
            return F.reshape(B, S, 1, d).expand(B, S, A, d).contiguous()
        return F.reshape(B, S, A, d).contiguous()

    def sample(self, num: int, gen: torch.Generator, device=None):
        """Draw ``num`` MDPs and their features: ``(MDP, F)``."""
        if not isinstance(num, int) or num < 1:
            raise InputError("mdps", f"must be a positive integer, got {num!r}")
        device = device or gen.device
        S, A = self.states, self.actions
        # Dirichlet(a) by normalised Gamma(a) draws from the explicit generator.
        conc = torch.full((num, S, A, S), self.dirichlet, dtype=DTYPE, device=device)
        T = torch._standard_gamma(conc, generator=gen)
        T = T / T.sum(-1, keepdim=True)
        rho = torch._standard_gamma(torch.full((num, S), self.dirichlet, dtype=DTYPE, device=device), generator=gen)
        rho = rho / rho.sum(-1, keepdim=True)
        R = torch.rand(num, S, A, S, generator=gen, dtype=DTYPE, device=device) * 2 - 1
        if self.gamma_range is not None:
            lo, hi = self.gamma_range
            g = lo + (hi - lo) * torch.rand(num, generator=gen, dtype=DTYPE, device=device)
        else:
            g = torch.full((num,), float(self.gamma), dtype=DTYPE, device=device)
        F = self.draw_features(num, gen, device)
        return MDP(T, R, g, rho), F
