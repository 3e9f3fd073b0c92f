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

from theory.constructions import get

d = sp.Symbol("d", integer=True, positive=True)


def sizes(algorithm: str, dim=d):
    """``(m, p, q, D)`` of the algorithm's layout, as SymPy expressions in ``d``."""
    lay = get(algorithm).layout
    m, p = sp.expand(lay.m(dim)), sp.expand(lay.p(dim))
    return m, p, p - 1, m + p


def parameter_count(algorithm: str, parameterization: str, dim=d):
    m, p, q, D = sizes(algorithm, dim)
    if parameterization == "reduced":
        return sp.expand(m * p + q * m)
    return sp.expand(2 * D * D)


def symmetry_tangent_dim(algorithm: str, parameterization: str, dim=d):
    """Dimension of the tangent space of the symmetry family at the
    construction, as a formula in ``d`` (or its value when ``dim`` is a
    number)."""
    m, p, q, D = sizes(algorithm, dim)
    if parameterization == "reduced":
        return sp.Integer(1)
    if parameterization != "full":
        raise ValueError(f"parameterization: unknown {parameterization!r}")
    never_read = D * m + m * D + D           # P[:, :m], V[:m, :], V[m, :]
    antisym_p22 = p * (p - 1) / 2
    return sp.expand(1 + never_read + antisym_p22)
