"""The constructions of Theorems 3.1 and 3.3 as block tables (single source).

A construction gives the two blocks of the block's weights that the
read-out uses (Lemma C.1): ``P12`` (context rows x parameter columns) and
``Vbar21`` (read-out rows x context columns).  Every other block of ``P``
and ``V`` is zero.  Each table entry ``(row_block, col_block) -> coef`` means
``coef * I`` when both blocks have size ``d`` and the scalar ``coef`` when both
have size 1.  Coefficients are SymPy expressions in :data:`alpha`,
:data:`beta`.

Theorem 3.1 (SARSA): ``P12* w~ = (-w, w, 1)`` so that
``x_i^T P12* w~ = r_{i+1} + gamma w.phi+_i - w.phi_i = delta_i``, and
``Vbar21* = [alpha I, 0, 0]`` so that ``TF(H) = w + (alpha/n) sum delta_i phi_i``.

Theorem 3.3 (actor-critic, reconstructed in THEORY.md): the same ``P12*``
on the critic rows, and ``Vbar21*`` routes ``alpha * phi`` into ``w`` and
``beta * g`` into ``lam``.

Expected SARSA, Q-learning and TD(0) use the SARSA construction; they
differ only in what the prompt builder writes into ``gphi_next``.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from theory.layout import ACTOR_CRITIC_LAYOUT, VALUE_LAYOUT, Layout

alpha, beta, gamma = sp.symbols("alpha beta gamma", real=True)

ALGORITHMS = ("sarsa", "expected-sarsa", "q-learning", "actor-critic", "td")


@dataclass(frozen=True)
class Construction:
    """Block tables of ``P12`` and ``Vbar21`` for one algorithm."""

    algorithm: str
    layout: Layout
    p12: tuple[tuple[tuple[str, str], sp.Expr], ...]
    vbar21: tuple[tuple[tuple[str, str], sp.Expr], ...]
    statement: str


_VALUE_P12 = (
    (("phi", "w"), sp.Integer(-1)),
    (("gphi_next", "w"), sp.Integer(1)),
    (("r", "one"), sp.Integer(1)),
)

_SARSA = Construction(
    algorithm="sarsa",
    layout=VALUE_LAYOUT,
    p12=_VALUE_P12,
    vbar21=((("w", "phi"), alpha),),
    statement="w + (alpha/n) sum_i (r_{i+1} + gamma w.phi+_i - w.phi_i) phi_i",
)

CONSTRUCTIONS: dict[str, Construction] = {
    "sarsa": _SARSA,
    "expected-sarsa": Construction(
        "expected-sarsa", VALUE_LAYOUT, _VALUE_P12, _SARSA.vbar21,
        "SARSA with phi+_i = sum_b pi(b|s_{i+1}) phi(s_{i+1}, b) (epsilon-greedy pi in Q_w)"),
    "q-learning": Construction(
        "q-learning", VALUE_LAYOUT, _VALUE_P12, _SARSA.vbar21,
        "SARSA with phi+_i = phi(s_{i+1}, argmax_b Q_w(s_{i+1}, b)) (argmax taken when the prompt is built)"),
    "td": Construction(
        "td", VALUE_LAYOUT, _VALUE_P12, _SARSA.vbar21,
        "TD(0) policy evaluation with state features: w + (alpha/n) sum_i (r + gamma w.psi(s_{i+1}) - w.psi(s_i)) psi(s_i)"),
    "actor-critic": Construction(
        "actor-critic", ACTOR_CRITIC_LAYOUT, _VALUE_P12,
        ((("w", "phi"), alpha), (("lam", "g"), beta)),
        "(w + (alpha/n) sum_i delta_i phi_i, lam + (beta/n) sum_i delta_i g_i), "
        "g_i = phi(s_i,a_i) - sum_b pi_lam(b|s_i) phi(s_i,b)"),
}


def get(algorithm: str) -> Construction:
    try:
        return CONSTRUCTIONS[algorithm]
    except KeyError:
        raise ValueError(f"algorithm: unknown {algorithm!r}; expected one of {', '.join(ALGORITHMS)}") from None


def _fill(table, rows_off, cols_off, rows, cols, d, subs):
    M = sp.zeros(rows, cols)
    for (rb, cb), coef in table:
        r0, r1 = rows_off[rb]
        c0, c1 = cols_off[cb]
        if (r1 - r0) != (c1 - c0):
            raise ValueError(f"construction: block ({rb},{cb}) is not square")
        value = coef.subs(subs) if subs else coef
        for k in range(r1 - r0):
            M[r0 + k, c0 + k] = value
    return M


def p12_vbar21(algorithm: str, d: int, subs: dict | None = None):
    """Concrete SymPy ``(P12, Vbar21)`` for feature dimension ``d``.

    ``subs`` maps :data:`alpha`, :data:`beta` to values (exact or float);
    without it the step sizes stay symbolic.
    """
    c = get(algorithm)
    lay = c.layout
    ctx, par = lay.offsets("context", d), lay.offsets("params", d)
    read = {b: (s - 1, e - 1) for b, (s, e) in par.items() if b != "one"}
    P12 = _fill(c.p12, ctx, par, lay.m(d), lay.p(d), d, subs)
    Vbar21 = _fill(c.vbar21, read, ctx, lay.q(d), lay.m(d), d, subs)
    return P12, Vbar21


def full_pv(algorithm: str, d: int, subs: dict | None = None):
    """Concrete SymPy ``(P, V)``, each ``D x D``, every unused block zero."""
    c = get(algorithm)
    lay = c.layout
    m, p = lay.m(d), lay.p(d)
    P12, Vbar21 = p12_vbar21(algorithm, d, subs)
    P = sp.zeros(m + p, m + p)
    V = sp.zeros(m + p, m + p)
    P[:m, m:] = P12
    V[m + 1:, :m] = Vbar21
    return P, V


def numeric_blocks(algorithm: str, d: int, alpha_value: float, beta_value: float = 0.0):
    """``(P12, Vbar21)`` as nested float lists, read straight off the tables.

    This is how ``numerics`` realises a construction at any size without
    building a ``D x D`` SymPy matrix: it walks the same table as
    :func:`p12_vbar21` and evaluates each coefficient once.
    """
    c = get(algorithm)
    lay = c.layout
    ctx, par = lay.offsets("context", d), lay.offsets("params", d)
    read = {b: (s - 1, e - 1) for b, (s, e) in par.items() if b != "one"}
    subs = {alpha: alpha_value, beta: beta_value}

    def fill(table, roff, coff, rows, cols):
        M = [[0.0] * cols for _ in range(rows)]
        for (rb, cb), coef in table:
            r0, r1 = roff[rb]
            c0, _ = coff[cb]
            v = float(coef.subs(subs))
            for k in range(r1 - r0):
                M[r0 + k][c0 + k] = v
        return M

    return (fill(c.p12, ctx, par, lay.m(d), lay.p(d)),
            fill(c.vbar21, read, ctx, lay.q(d), lay.m(d)))
