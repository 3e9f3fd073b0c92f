"""Distance to the optimal manifold ``M* = {(c P12*, Vbar21*/c): c != 0}``
(THEORY.md section 5, Prop 3.1 and the scaling symmetry of Theorem 3.1).

The distance is found exactly: with ``a = <P12, P12*>``, ``A = |P12*|^2``,
``b = <Vbar21, Vbar21*>``, ``B = |Vbar21*|^2``, the squared distance

    f(c) = |P12 - c P12*|^2 + |Vbar21 - Vbar21*/c|^2

has ``c^3 f'(c) / 2 = A c^4 - a c^3 + b c - B``, a quartic whose real roots
(at least one of each sign, since ``A > 0`` and ``-B < 0``) contain the
minimiser on both components ``c > 0`` and ``c < 0``.
"""
from __future__ import annotations

import numpy as np

from numerics.core.tolerances import QUARTIC_REAL_RTOL


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def distance_to_manifold(P12, Vbar21, P12s, Vbar21s) -> tuple[float, float]:
    """Relative distance from ``(P12, Vbar21)`` to ``M*`` and the fitted ``c``.

    Args:
      P12, Vbar21: the weights to measure (tensors or arrays, ``m x p`` and
        ``q x m``).
      P12s, Vbar21s: the construction ``(P12*, Vbar21*)``, both nonzero.
    Returns:
      ``(rel_distance, c)``: ``min_c sqrt(f(c))`` divided by the norm of the
      closest manifold point ``(c P12*, Vbar21*/c)``, and that ``c``
      (either sign).
    """
    P, V, Ps, Vs = (_as_numpy(t) for t in (P12, Vbar21, P12s, Vbar21s))
    if P.shape != Ps.shape or V.shape != Vs.shape:
        raise ValueError(f"distance_to_manifold: shapes {P.shape}, {V.shape} do not match the construction's "
                         f"{Ps.shape}, {Vs.shape}")
    A, B = float((Ps * Ps).sum()), float((Vs * Vs).sum())
    if A == 0.0 or B == 0.0:
        raise ValueError("distance_to_manifold: the construction blocks must be nonzero")
    a, b = float((P * Ps).sum()), float((V * Vs).sum())
    nP, nV = float((P * P).sum()), float((V * V).sum())

    def f(c):
        return nP - 2 * c * a + c * c * A + nV - 2 * b / c + B / (c * c)

    roots = np.roots([A, -a, 0.0, b, -B])
    # Real roots up to rounding; candidates on both components.  Polishing
    # with Newton steps on the quartic removes np.roots' rounding.
    cands = [float(r.real) for r in roots if abs(r.imag) <= QUARTIC_REAL_RTOL * max(1.0, abs(r))]
    poly = np.polynomial.Polynomial([-B, b, 0.0, -a, A])
    dpoly = poly.deriv()
    polished = []
    for c in cands:
        for _ in range(3):
            g = dpoly(c)
            if g == 0:
                break
            c = c - poly(c) / g
        if c != 0 and np.isfinite(c):
            polished.append(c)
    if not polished:  # cannot happen for A, B > 0; kept as an explicit error
        raise ArithmeticError("distance_to_manifold: the quartic has no nonzero real root")
    best = min(polished, key=f)
    # The distance itself is computed directly (no cancellation), not from f.
    dist = np.sqrt(((P - best * Ps) ** 2).sum() + ((V - Vs / best) ** 2).sum())
    norm = np.sqrt(best * best * A + B / (best * best))
    return float(dist / norm), float(best)


def distance_of_deviation(dP12, dVbar21, P12s, Vbar21s) -> tuple[float, float]:
    """:func:`distance_to_manifold` of ``(P12* + dP12, Vbar21* + dVbar21)``
    computed from the deviation, to relative precision however small it is.

    Formed as ``P12* + dP12``, the point carries a rounding of ~1e-16
    ``|theta*|``, which is ~1e-9 of a distance of 1e-7 (a basin run that
    converged).  Near ``c = 1`` write ``c = 1 + e``: ``c^3 f'(c) / 2`` is
    ``A e (1+e)^3 - alpha (1+e)^3 + B e + beta (1+e)`` with ``alpha =
    <dP12, P12*>``, ``beta = <dVbar21, Vbar21*>`` (no cancellation), and the
    distance is ``|dP12 - e P12*|^2 + |dVbar21 + e/(1+e) Vbar21*|^2``.  The
    root on the ``c > 0`` component is polished in ``e`` by Newton steps
    from the quartic's; the other component (``c < 0``, never near a small
    deviation) is taken as :func:`distance_to_manifold` gives it."""
    dP, dV, Ps, Vs = (_as_numpy(t) for t in (dP12, dVbar21, P12s, Vbar21s))
    rel, c = distance_to_manifold(Ps + dP, Vs + dV, Ps, Vs)
    if not c > 0:
        return rel, c
    A, B = float((Ps * Ps).sum()), float((Vs * Vs).sum())
    alpha, beta = float((dP * Ps).sum()), float((dV * Vs).sum())
    e = c - 1.0
    for _ in range(4):
        g = A * e * (1 + e) ** 3 - alpha * (1 + e) ** 3 + B * e + beta * (1 + e)
        dg = A * (1 + e) ** 3 + 3 * A * e * (1 + e) ** 2 - 3 * alpha * (1 + e) ** 2 + B + beta
        if dg == 0 or not np.isfinite(g / dg):
            break
        e = e - g / dg
    c = 1.0 + e
    dist = np.sqrt(((dP - e * Ps) ** 2).sum() + ((dV + (e / c) * Vs) ** 2).sum())
    norm = np.sqrt(c * c * A + B / (c * c))
    return float(dist / norm), float(c)
