"""The constructions of Theorems 3.1 and 3.3 as block tables (single source).

A construction gives the two blocks of the block's weights that the
read-out uses (Lemma C.1): ``P12`` (context rows x parameter columns) and
``Vbar21`` (read-out rows x context columns).  Every other block of ``P``
and ``V`` is zero.  Each table entry ``(row_block, col_block) -> coef`` means
``coef * I`` when both blocks have size ``d`` and the scalar ``coef`` when both
have size 1.  Coefficients are SymPy expressions in the step sizes
(:data:`theory.symbols.alpha`, :data:`theory.symbols.beta`) or numbers.

Theorem 3.1 (SARSA): ``P12* w~ = (-w, w, 1)`` so that
``x_i^T P12* w~ = r_{i+1} + gamma w.phi+_i - w.phi_i = delta_i``, and
``Vbar21* = [alpha I, 0, 0]`` so that ``TF(H) = w + (alpha/n) sum delta_i phi_i``.

Theorem 3.3 (actor-critic, reconstructed in THEORY.md): the same ``P12*``
on the critic rows, and ``Vbar21*`` routes ``alpha * phi`` into ``w`` and
``beta * g`` into ``lam``.

Expected SARSA, Q-learning and TD(0) use the SARSA construction; they
differ only in what the prompt builder writes into ``gphi_next``
(:mod:`theory.algorithms` holds that rule).  Every function below takes an
algorithm record (anything with ``.spec.layout`` and ``.construction``).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from theory.symbols import STEP_SIZES, alpha, beta, gamma  # noqa: F401  (re-exported names of the symbols)


@dataclass(frozen=True)
class Construction:
    """Block tables of ``P12`` and ``Vbar21``."""

    p12: tuple[tuple[tuple[str, str], sp.Expr], ...]
    vbar21: tuple[tuple[tuple[str, str], sp.Expr], ...]


#: Theorem 3.1: P12* w~ = (-w, w, 1), Vbar21* = [alpha I, 0, 0].
SARSA = Construction(
    p12=(
        (("phi", "w"), sp.Integer(-1)),
        (("gphi_next", "w"), sp.Integer(1)),
        (("r", "one"), sp.Integer(1)),
    ),
    vbar21=((("w", "phi"), alpha),),
)

#: Theorem 3.3 (reconstructed): SARSA's P12* on the critic rows; Vbar21* routes alpha phi into w, beta g into lam.
ACTOR_CRITIC = Construction(p12=SARSA.p12, vbar21=((("w", "phi"), alpha), (("lam", "g"), beta)))


def _offsets(record, d):
    lay = record.spec.layout
    ctx, par = lay.offsets("context", d), lay.offsets("params", d)
    read = {b: (s - 1, e - 1) for b, (s, e) in par.items() if b != "one"}
    return lay, ctx, par, read


def _fill(table, rows_off, cols_off, rows, cols, value):
    M = sp.zeros(rows, cols)
    for (rb, cb), coef in table:
        r0, r1 = rows_off[rb]
        c0, c1 = cols_off[cb]
        if (r1 - r0) != (c1 - c0):
            raise ValueError(f"construction: block ({rb},{cb}) is not square")
        v = value(coef)
        for k in range(r1 - r0):
            M[r0 + k, c0 + k] = v
    return M


def p12_vbar21(record, d: int, subs: dict | None = None):
    """Concrete SymPy ``(P12, Vbar21)`` for feature dimension ``d``.

    ``subs`` maps step-size symbols to values (exact or float); without it
    the step sizes stay symbolic.
    """
    lay, ctx, par, read = _offsets(record, d)
    c = record.construction
    value = (lambda e: sp.sympify(e).subs(subs)) if subs else sp.sympify
    return (_fill(c.p12, ctx, par, lay.m(d), lay.p(d), value),
            _fill(c.vbar21, read, ctx, lay.q(d), lay.m(d), value))


def full_pv(record, d: int, subs: dict | None = None):
    """Concrete SymPy ``(P, V)``, each ``D x D``, every unused block zero."""
    idx = record.spec.index(d)
    P12, Vbar21 = p12_vbar21(record, d, subs)
    P = sp.zeros(idx.D, idx.D)
    V = sp.zeros(idx.D, idx.D)
    P[idx.p12] = P12
    V[idx.vbar21] = Vbar21
    return P, V


def numeric_blocks(record, d: int, steps: dict[str, float]):
    """``(P12, Vbar21)`` as nested float lists, read straight off the tables.

    ``steps`` maps step-size names (``alpha``, ``beta``) to numbers.  This is
    how ``numerics`` realises a construction at any size without building a
    ``D x D`` SymPy matrix: it walks the same tables as :func:`p12_vbar21` and
    evaluates each coefficient once.
    """
    lay, ctx, par, read = _offsets(record, d)
    subs = {STEP_SIZES[k]: v for k, v in steps.items() if k in STEP_SIZES}

    def fill(table, roff, coff, rows, cols):
        M = [[0.0] * cols for _ in range(rows)]
        for (rb, cb), coef in table:
            r0, r1 = roff[rb]
            c0, _ = coff[cb]
            v = float(sp.sympify(coef).subs(subs))
            for k in range(r1 - r0):
                M[r0 + k][c0 + k] = v
        return M

    c = record.construction
    return (fill(c.p12, ctx, par, lay.m(d), lay.p(d)), fill(c.vbar21, read, ctx, lay.q(d), lay.m(d)))
