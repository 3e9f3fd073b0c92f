"""Hypothesis strategies for the paper's objects, for users' own tests::

    from numerics.testing.strategies import cases, mdps, orbit_weights

(this module imports hypothesis; nothing else in the package does).

Every composite strategy draws shapes first, then values, so Hypothesis
shrinks a counterexample to the smallest sizes before it shrinks numbers.
Everything is float64 torch (``numerics.core.tolerances.DTYPE``).

* :func:`mdps` -- valid batches of finite MDPs (:class:`numerics.core.mdp.MDP`):
  sizes, stochastic transition tensors (dense, or with deterministic rows),
  rewards per ``(s, a, s')``, a discount per MDP, a start distribution.
* :func:`feature_tensors` -- features ``F[b, s, a]`` (``B x S x A x d``):
  ``onehot``, ``dense`` and ``degenerate`` (zero, identical rows, rank one,
  repeated columns); state features broadcast over actions for TD(0).
* :func:`windows` -- arbitrary windows (any states, actions and rewards: the
  constructions hold for every prompt, not only for sampled ones) and
  :func:`cases` -- a full problem for one algorithm: MDP, features, current
  parameters ``theta``, a window (arbitrary or sampled by Algorithm 1 with
  a drawn seed), ``epsilon``, ``alpha``, ``beta``.
* :func:`parameters` -- current parameters ``theta`` (``B x q``).
* :func:`weights_pv` -- arbitrary full weights ``(P, V)``.
* :func:`orbit_weights` -- members ``(c P*, V*/c)`` of the symmetry family
  with arbitrary values in never-read blocks, ``c`` of either sign.
* :func:`off_orbit_perturbations` -- a change of one entry of the read
  blocks ``P12`` / ``Vbar21``, which must change the read-out.
* :func:`section_4_1_case` -- the paper's Section 4.1 case, for ``@example``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numerics.core.constructions import constructed_weights, symmetry_member
from numerics.core.distributions import MDPDistribution
from numerics.core.mdp import MDP
from numerics.core.stream import Window, initial_state, sample_window
from numerics.core.tolerances import DTYPE
from theory import algorithms as registry

FEATURE_KINDS = ("onehot", "dense", "degenerate")


def _floats(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64)


def draw_floats(draw, shape, lo=-1.0, hi=1.0) -> torch.Tensor:
    a = draw(hnp.arrays(np.float64, shape, elements=_floats(lo, hi)))
    return torch.as_tensor(a, dtype=DTYPE)


def _simplex(draw, shape, deterministic_rows: bool) -> torch.Tensor:
    """Probability vectors along the last axis of ``shape``."""
    raw = draw(hnp.arrays(np.float64, shape, elements=_floats(0.0, 1.0)))
    if deterministic_rows:
        # some rows put all their mass on one next state
        hot = draw(hnp.arrays(np.bool_, shape[:-1]))
        arg = raw.argmax(-1)
        one = np.zeros_like(raw)
        np.put_along_axis(one, arg[..., None], 1.0, -1)
        raw = np.where(hot[..., None], one, raw)
    sums = raw.sum(-1, keepdims=True)
    raw = np.where(sums > 0, raw, 1.0)          # an all-zero row becomes uniform
    return torch.as_tensor(raw / raw.sum(-1, keepdims=True), dtype=DTYPE)


# ---- MDPs -------------------------------------------------------------------

@st.composite
def mdps(draw, states=st.integers(1, 4), actions=st.integers(1, 3), batch=st.integers(1, 3),
         gammas=_floats(0.0, 0.95), reward_bound: float = 1.0) -> MDP:
    """A batch of valid MDPs (validated by :class:`numerics.core.mdp.MDP`)."""
    B, S, A = draw(batch), draw(states), draw(actions)
    det = draw(st.booleans())
    T = _simplex(draw, (B, S, A, S), det)
    rho0 = _simplex(draw, (B, S), False)
    R = draw_floats(draw, (B, S, A, S), -reward_bound, reward_bound)
    g = torch.tensor([draw(gammas) for _ in range(B)], dtype=DTYPE)
    return MDP(T, R, g, rho0)


# ---- features ---------------------------------------------------------------

@st.composite
def feature_tensors(draw, batch: int, states: int, actions: int, kind: str, d: int | None = None,
                    state_features: bool = False) -> torch.Tensor:
    """Features ``F`` (``B x S x A x d``) of the given kind.

    ``onehot`` has ``d = S*A`` (``S`` for state features); ``dense`` and
    ``degenerate`` use ``d`` (drawn in 1..6 when None).
    """
    rows = states if state_features else states * actions
    if kind == "onehot":
        F = torch.eye(rows, dtype=DTYPE).expand(batch, rows, rows).clone()
    else:
        d = d if d is not None else draw(st.integers(1, 6))
        if kind == "dense":
            F = draw_floats(draw, (batch, rows, d))
        elif kind == "degenerate":
            how = draw(st.sampled_from(("zero", "identical-rows", "rank-one", "repeated-columns")))
            if how == "zero":
                F = torch.zeros(batch, rows, d, dtype=DTYPE)
            elif how == "identical-rows":
                F = draw_floats(draw, (batch, 1, d)).expand(batch, rows, d).clone()
            elif how == "rank-one":
                u, v = draw_floats(draw, (batch, rows, 1)), draw_floats(draw, (batch, 1, d))
                F = u * v
            else:
                col = draw_floats(draw, (batch, rows, 1))
                F = col.expand(batch, rows, d).clone()
        else:
            raise ValueError(f"kind: unknown {kind!r}; expected one of {', '.join(FEATURE_KINDS)}")
    d = F.shape[-1]
    if state_features:
        return F.reshape(batch, states, 1, d).expand(batch, states, actions, d).contiguous()
    return F.reshape(batch, states, actions, d).contiguous()


# ---- parameters and windows ------------------------------------------------

@st.composite
def parameters(draw, batch: int, q: int, bound: float = 2.0) -> torch.Tensor:
    """Current parameters ``theta`` (``B x q``), entries in ``[-bound, bound]``."""
    return draw_floats(draw, (batch, q), -bound, bound)


@st.composite
def windows(draw, batch: int, states: int, actions: int, n: int, reward_bound: float = 1.0) -> Window:
    """An arbitrary window: any states, actions (``B x (n+1)``) and rewards (``B x n``)."""
    s = torch.as_tensor(draw(hnp.arrays(np.int64, (batch, n + 1), elements=st.integers(0, states - 1))))
    a = torch.as_tensor(draw(hnp.arrays(np.int64, (batch, n + 1), elements=st.integers(0, actions - 1))))
    r = draw_floats(draw, (batch, n), -reward_bound, reward_bound)
    return Window(s, a, r)


@dataclass(frozen=True)
class Case:
    """One problem for one algorithm: everything a prompt and its teacher need."""

    algorithm: str
    mdp: MDP
    F: torch.Tensor
    theta: torch.Tensor
    win: Window
    epsilon: float
    alpha: float
    beta: float

    @property
    def d(self) -> int:
        return self.F.shape[-1]

    @property
    def record(self):
        return registry.get(self.algorithm)

    @property
    def steps(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta}

    def __repr__(self):  # short: Hypothesis prints it for a falsifying example
        return (f"Case({self.algorithm}, B={self.mdp.batch}, S={self.mdp.states}, A={self.mdp.actions}, "
                f"d={self.d}, n={self.win.n}, gamma={self.mdp.gamma.tolist()}, epsilon={self.epsilon}, "
                f"alpha={self.alpha}, beta={self.beta}, theta={self.theta.tolist()}, s={self.win.s.tolist()}, "
                f"a={self.win.a.tolist()}, r={self.win.r.tolist()}, F={self.F.tolist()})")


@st.composite
def cases(draw, algorithms=None, max_states: int = 4, max_actions: int = 3, max_n: int = 6,
          feature_kinds=FEATURE_KINDS, max_batch: int = 3) -> Case:
    """A :class:`Case`: sizes first, then MDP, features, ``theta``, window, step sizes.

    Half the windows are arbitrary (:func:`windows`), half are sampled by
    Algorithm 1's sampler from a drawn seed (epsilon-greedy / softmax in
    ``theta``), so both the identity "for every prompt" and the realistic
    data path are exercised.
    """
    alg = draw(st.sampled_from(registry.names("mdp") if algorithms is None else algorithms))
    record = registry.get(alg)
    S, A = draw(st.integers(1, max_states)), draw(st.integers(1, max_actions))
    B, n = draw(st.integers(1, max_batch)), draw(st.integers(1, max_n))
    kind = draw(st.sampled_from(feature_kinds))
    mdp = draw(mdps(states=st.just(S), actions=st.just(A), batch=st.just(B)))
    F = draw(feature_tensors(B, S, A, kind, state_features=(record.features == "state")))
    theta = draw(parameters(B, record.layout.q(F.shape[-1])))
    epsilon = draw(_floats(0.0, 1.0))
    alpha, beta = draw(_floats(0.01, 1.0)), draw(_floats(0.01, 1.0))
    if draw(st.booleans()):
        win = draw(windows(B, S, A, n))
    else:
        seed = draw(st.integers(0, 2**31 - 1))
        gen = torch.Generator().manual_seed(seed)
        _, s0 = initial_state(record, mdp, F, gen)
        win = sample_window(record, mdp, F, mdp.T.cumsum(-1), s0, theta, n, epsilon, gen)
    return Case(alg, mdp, F, theta, win, epsilon, alpha, beta)


def section_4_1_case(algorithm: str = "sarsa", batch: int = 4, seed: int = 0) -> Case:
    """The paper's Section 4.1 case (THEORY.md section 6), for ``@example``:
    9 states, 4 actions, gamma 0.5, Dirichlet(1) transitions, dense
    Unif(-1, 1) features with ``d = 36`` (``d = 9`` state features for
    TD(0)), epsilon 0.1, alpha 0.2 (beta 0.2), a window of n = 20 sampled
    by Algorithm 1 from ``theta ~ Unif(-1, 1)^q``."""
    gen = torch.Generator().manual_seed(seed)
    record = registry.get(algorithm)
    dist = MDPDistribution(state_features=(record.features == "state"))
    mdp, F = dist.sample(batch, gen)
    theta, s0 = initial_state(record, mdp, F, gen)
    win = sample_window(record, mdp, F, mdp.T.cumsum(-1), s0, theta, 20, 0.1, gen)
    return Case(algorithm, mdp, F, theta, win, 0.1, 0.2, 0.2)


# ---- weights ------------------------------------------------------------------

@st.composite
def weights_pv(draw, D: int, bound: float = 2.0):
    """Arbitrary full weights ``(P, V)``, each ``D x D``."""
    return draw_floats(draw, (D, D), -bound, bound), draw_floats(draw, (D, D), -bound, bound)


def symmetry_scales(lo: float = 0.05, hi: float = 20.0):
    """``c`` of either sign, bounded away from zero."""
    return st.one_of(_floats(lo, hi), _floats(-hi, -lo))


@st.composite
def orbit_weights(draw, algorithm: str, d: int, alpha: float, beta: float = 0.0):
    """``(c, P, V)``: a member of the construction's symmetry family,
    ``(c P*, V*/c)`` with arbitrary values (scale drawn in [0, 100]) in every
    never-read block (via :func:`numerics.core.constructions.symmetry_member`)."""
    c = draw(symmetry_scales())
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(_floats(0.0, 100.0))
    record = registry.get(algorithm)
    P, V = constructed_weights(record, d, {"alpha": alpha, "beta": beta})
    P2, V2 = symmetry_member(P, V, c, record, d, gen=torch.Generator().manual_seed(seed), scale=scale)
    return c, P2, V2


@st.composite
def off_orbit_perturbations(draw, algorithm: str, d: int, min_size: float = 1e-3, max_size: float = 1.0):
    """``(which, row, col, size)``: add ``size`` to one entry of ``P12``
    (``which == "P12"``) or ``Vbar21`` of the construction."""
    idx = registry.get(algorithm).spec.index(d)
    m, p, q = idx.m, idx.p, idx.q
    which = draw(st.sampled_from(("P12", "Vbar21")))
    rows, cols = (m, p) if which == "P12" else (q, m)
    row, col = draw(st.integers(0, rows - 1)), draw(st.integers(0, cols - 1))
    size = draw(st.one_of(_floats(min_size, max_size), _floats(-max_size, -min_size)))
    return which, row, col, size
