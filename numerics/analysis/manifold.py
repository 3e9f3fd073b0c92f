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
