"""Update rules in the prompt's own terms, and the algebras they are written in.

An algorithm's teacher is ONE per-transition rule (THEORY.md section 2)::

    rule(t, theta, hp, ops) -> {readout block: (step, direction)}

with ``t`` the named per-transition quantities (``t.phi``, ``t.phi_next``,
``t.r``, ``t.g``, ``t.one``, ``t.gamma``), ``theta`` the current parameters
by read-out block (``theta["w"]``, ``theta["lam"]``), ``hp`` the step sizes
(``hp["alpha"]``, ``hp["beta"]``) and ``ops`` the algebra: ``ops.dot(u, v)``
(inner product of a parameter with a per-transition vector) and
``ops.scale(s, v)`` (per-transition scalar times per-transition vector).
The batch step is ``theta_b + step_b * (1/n) sum_i direction_b,i``.

The same rule runs on several algebras: batched torch tensors (the fast
teacher, ``numerics.core.teachers``), per-transition numpy arrays (the
reference, ``numerics.reference``), one exact column of symbols
(:class:`ColumnOps`, the concrete proofs) and the whole window as SymPy
matrix expressions of symbolic size (:class:`WindowOps`, the general
proofs: ``scale`` there is ``V s``, which sums over the window already).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import MatrixSymbol, OneMatrix

from theory.symbols import d as D_SYM
from theory.symbols import gamma
from theory.symbols import n as N_SYM


@dataclass
class Quantities:
    """Named per-transition quantities of one window (any algebra)."""

    phi: object
    phi_next: object
    r: object
    gamma: object
    g: object = None
    one: object = None
    trace: object = None
    rbar: object = None
    kernel: object = None
    v: object = None
    v_next: object = None


def semi_gradient(t, theta, hp, ops):
    """Semi-gradient SARSA / TD(0) (paper eq. 2): ``delta_i = r_{i+1} +
    gamma w.phi+_i - w.phi_i``; ``w + (alpha/n) sum_i delta_i phi_i``."""
    w = theta["w"]
    delta = t.r + t.gamma * ops.dot(w, t.phi_next) - ops.dot(w, t.phi)
    return {"w": (hp["alpha"], ops.scale(delta, t.phi))}


def actor_critic(t, theta, hp, ops):
    """Actor-critic (paper eq. 3, reconstructed in THEORY.md): the critic as
    :func:`semi_gradient`, the actor ``lam + (beta/n) sum_i delta_i g_i``."""
    w = theta["w"]
    delta = t.r + t.gamma * ops.dot(w, t.phi_next) - ops.dot(w, t.phi)
    return {"w": (hp["alpha"], ops.scale(delta, t.phi)), "lam": (hp["beta"], ops.scale(delta, t.g))}


def td_lambda(t, theta, hp, ops):
    """Batch TD(lambda) (Wang et al. 2025): ``delta_i`` as TD(0), direction the
    eligibility trace ``e_i = lambda e_{i-1} + phi_i`` (``t.trace``)."""
    w = theta["w"]
    delta = t.r + t.gamma * ops.dot(w, t.phi_next) - ops.dot(w, t.phi)
    return {"w": (hp["alpha"], ops.scale(delta, t.trace))}


def residual_gradient(t, theta, hp, ops):
    """Residual gradient (Wang et al. 2025): ``delta_i`` as TD(0), direction
    ``phi_i - gamma phi'_i``."""
    w = theta["w"]
    delta = t.r + t.gamma * ops.dot(w, t.phi_next) - ops.dot(w, t.phi)
    return {"w": (hp["alpha"], ops.scale(delta, t.phi - t.gamma * t.phi_next))}


def average_reward(t, theta, hp, ops):
    """Average-reward TD (Wang et al. 2025): ``delta_i = r_i - rbar_i +
    w.phi'_i - w.phi_i`` (``rbar_i`` the running mean of the rewards, no
    discount), direction ``phi_i``."""
    w = theta["w"]
    delta = t.r - t.rbar + ops.dot(w, t.phi_next) - ops.dot(w, t.phi)
    return {"w": (hp["alpha"], ops.scale(delta, t.phi))}


def weighted_softmax_td(t, theta, hp, ops):
    """Weighted softmax TD (Xie et al. 2026, THEORY.md section 10), the term
    of context transition ``k`` in the update of one evaluated state ``s_j``:
    ``delta_k = r_k + gamma v(s_k) - v(s_{k-1})`` (``t.v_next``, ``t.v`` the
    current values at ``s_k``, ``s_{k-1}``) times the kernel weight
    ``t.kernel = K(s_{k-1}, s_j) = exp g(s_j, s_{k-1}) / sum_m exp g(s_j,
    s_{m-1})`` (``g`` the feature inner product).  The step is
    ``v(s_j) + alpha sum_k delta_k K(s_{k-1}, s_j)``: the kernel is
    normalised, so there is no ``1/n``.  The values live on states, not in a
    parameter vector (``theta`` is unused): the teacher of the softmax
    layer kind, applied once per layer (``numerics.reference_softmax``)."""
    delta = t.r + t.gamma * t.v_next - t.v
    return {"current": (hp["alpha"], ops.scale(delta, t.kernel))}


#: Every rule by the name a construction file gives it (``teacher = "..."``).
RULES = {"semi-gradient": semi_gradient, "actor-critic": actor_critic, "td-lambda": td_lambda,
         "residual-gradient": residual_gradient, "average-reward": average_reward,
         "weighted-softmax-td": weighted_softmax_td}

#: The kernel-weighted evaluation rules (records of the softmax layer kind on MRP windows): the rule and the
#: kernel it weighs the TD errors with.  A softmax record's teacher must be one of these, and only a softmax record's.
KERNEL_TD = {weighted_softmax_td: "softmax"}

#: The batch-TD form of the evaluation rules (records on MRP windows): ``(direction, centered)``, what the
#: independent loop (``numerics.reference.batch_td_loop``) and the layer-by-layer proofs read.
BATCH_TD = {semi_gradient: ("phi", False), td_lambda: ("trace", False), residual_gradient: ("residual", False),
            average_reward: ("phi", True)}


def rule_name(rule) -> str:
    """The name of a rule in :data:`RULES` (else its function name)."""
    for k, v in RULES.items():
        if v is rule:
            return k
    return getattr(rule, "__name__", repr(rule))


class WindowOps:
    """The whole window at once, as SymPy matrix expressions of symbolic size:
    per-transition vectors are ``d x n`` matrices (column ``i`` is transition
    ``i``), per-transition scalars ``n x 1`` columns.  ``scale(s, V) = V s``
    sums over the window; :meth:`step` divides by ``n``."""

    def __init__(self, cols=N_SYM):
        self.n = cols

    @staticmethod
    def dot(u, V):
        return V.T * u

    @staticmethod
    def scale(s, V):
        return V * s

    def step(self, theta, rule_out):
        return {b: theta[b] + size / self.n * direction for b, (size, direction) in rule_out.items()}


class ColumnOps:
    """One transition with exact SymPy entries (``d x 1`` matrices and scalars)."""

    @staticmethod
    def dot(u, v):
        return (u.T * v)[0, 0]

    @staticmethod
    def scale(s, v):
        return s * v


def window_quantities(dim=D_SYM, cols=N_SYM) -> Quantities:
    """The general window: ``Phi``, ``Phi+``, ``G`` (``d x n``), rewards and
    the constant as ``n x 1`` columns."""
    return Quantities(phi=MatrixSymbol(r"\Phi", dim, cols), phi_next=MatrixSymbol(r"\Phi^{+}", dim, cols),
                      r=MatrixSymbol("r", 1, cols).T, gamma=gamma, g=MatrixSymbol("G", dim, cols),
                      one=OneMatrix(cols, 1))


def column_step(rule, t: Quantities, theta: dict, hp: dict, cols: int) -> dict:
    """``theta_b + step_b (1/n) sum_i direction_b,i`` over exact columns: ``t``
    holds per-column lists (``t.phi[i]``, ...), ``theta`` SymPy columns."""
    ops = ColumnOps()
    acc = {}
    for i in range(cols):
        ti = Quantities(phi=t.phi[i], phi_next=t.phi_next[i], r=t.r[i], gamma=t.gamma,
                        g=None if t.g is None else t.g[i], one=sp.Integer(1))
        for b, (size, direction) in rule(ti, theta, hp, ops).items():
            acc[b] = acc.get(b, sp.zeros(*direction.shape)) + size * direction
    return {b: theta[b] + acc[b] / cols for b in acc}
