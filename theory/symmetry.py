"""The symmetry family of the constructions and its tangent space.

Exact symmetries of the read-out (they hold for every prompt, whatever the
data):

* scaling: ``(P, V) -> (c P, V / c)``, ``c != 0`` (tangent at the
  construction: ``(P*, -V*)``);
* (full parameterisation) every never-read entry of Prop 3.1: ``P11``,
  ``P21`` (the first ``m`` columns of ``P``), ``V11``, ``V12`` (the first
  ``m`` rows of ``V``) and the first row of ``V21``, ``V22`` (row ``m``);
* (full parameterisation) the antisymmetric part of ``P22``: it enters the
  read-out only through the quadratic form ``w~^T P22 w~``, which an
  antisymmetric matrix leaves at zero.

``P22`` (symmetric part) and ``Vbar22`` are *not* symmetries: each alone
leaves the read-out unchanged while the other is zero, but together they
produce the cubic term of Lemma C.1.
"""
from __future__ import annotations

import sympy as sp

from theory import concrete as C
from theory import symbolic as S
from theory.constructions import full_pv
from theory.symbols import STEP_SIZES, c, d


def sizes(record, dim=d):
    """``(m, p, q, D)`` of the record's layout, as SymPy expressions in ``d``."""
    lay = record.layout
    m, p = sp.expand(lay.m(dim)), sp.expand(lay.p(dim))
    return m, p, p - 1, m + p


def parameter_count(record, parameterization: str, dim=d):
    m, p, q, D = sizes(record, dim)
    if parameterization == "reduced":
        return sp.expand(m * p + q * m)
    return sp.expand(2 * D * D)


def symmetry_tangent_dim(record, parameterization: str, dim=d):
    """Dimension of the tangent space of the symmetry family at the
    construction, as a formula in ``d`` (or its value when ``dim`` is a
    number)."""
    m, p, q, D = sizes(record, dim)
    if parameterization == "reduced":
        return sp.Integer(1)
    if parameterization != "full":
        raise ValueError(f"parameterization: unknown {parameterization!r}")
    never_read = D * m + m * D + D           # P[:, :m], V[:m, :], V[m, :]
    antisym_p22 = p * (p - 1) / 2
    return sp.expand(1 + never_read + antisym_p22)


def prove_scaling_invariance(record) -> bool:
    """Scaling symmetry ``(P, V) -> (c P, V / c)``, ``c != 0``, proven.

    True when both proofs succeed: (1) general ``d`` and ``n``, arbitrary
    ``P``, ``V`` (3 x 3 blocks of symbolic size, :func:`theory.symbolic.prove_scaling`):
    ``H + (1/n)((V/c) H)(H^T (c P) H)`` equals ``H + (1/n)(V H)(H^T P H)``;
    (2) the construction entrywise at ``d = 1, 2``, ``n = 2``: the literal
    read-out of ``(c P*, V*/c)`` with a symbolic ``c`` minus that of
    ``(P*, V*)`` expands to zero.
    """
    lay = record.layout
    general = S.prove_scaling(lay)
    concrete = True
    for dim in (1, 2):
        P, V = full_pv(record, dim)
        pr = C.concrete_prompt(record, dim, 2)
        diff = C.literal_readout(c * P, V / c, pr.H, lay.q(dim)) - C.literal_readout(P, V, pr.H, lay.q(dim))
        concrete = concrete and C.is_zero_matrix(C.expand_matrix(diff))
    return bool(general and concrete)


def verify_symmetry_family(record, parameterization: str, dim: int = 1, cols: int = 2) -> dict:
    """Check :func:`symmetry_tangent_dim` at ``d = dim``: the symmetry family is
    exact and its tangent generators have the rank the formula gives.

    Exactness: with a symbolic ``c`` scaling the construction, every never-read
    entry (full parameterisation) its own symbol, and ``P22 = A - A^T`` with
    ``A`` symbolic, the literal read-out minus the teacher expands to zero for a
    prompt of ``cols`` columns with symbolic entries (so the whole family, not
    only its tangent, implements the update).  Rank: the generators at
    ``theta*`` (scaling ``(P*, -V*)``, one unit direction per never-read entry,
    ``E_jk - E_kj`` in ``P22``) as vectors of the parameter space.

    Returns ``{"formula": int, "rank": int, "exact": bool, "parameters": int}``.
    """
    lay = record.layout
    m, p = lay.m(dim), lay.p(dim)
    D = m + p
    P0, V0 = full_pv(record, dim)
    P, V = c * P0, V0 / c
    gens = []

    def unit(which, i, j):
        v = sp.zeros(1, 2 * D * D)
        v[(0 if which == "P" else D * D) + i * D + j] = 1
        return v

    scale = sp.Matrix([list(P0) + [-e for e in V0]])
    gens.append(scale)
    if parameterization == "full":
        for i in range(D):
            for j in range(D):
                if j < m:
                    P[i, j] = sp.Symbol(f"u{i}_{j}", real=True)
                    gens.append(unit("P", i, j))
                if i <= m:
                    V[i, j] = sp.Symbol(f"v{i}_{j}", real=True)
                    gens.append(unit("V", i, j))
        A = sp.Matrix(p, p, lambda i, j: sp.Symbol(f"a{i}_{j}", real=True))
        P[m:, m:] = P[m:, m:] + A - A.T
        for i in range(p):
            for j in range(i + 1, p):
                gens.append(unit("P", m + i, m + j) - unit("P", m + j, m + i))
    elif parameterization != "reduced":
        raise ValueError(f"parameterization: unknown {parameterization!r}")
    res = C.construction_residual(record, dim, cols, P, V)
    rank = sp.Matrix.vstack(*gens).subs({s: 1 for s in STEP_SIZES.values()}).rank()   # generic step sizes: any nonzero value
    return {"formula": int(symmetry_tangent_dim(record, parameterization, dim)), "rank": int(rank),
            "exact": C.is_zero_matrix(res), "parameters": int(parameter_count(record, parameterization, dim))}
