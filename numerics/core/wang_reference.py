"""The independent reference for Wang et al.'s constructions: L steps of
batch TD(0), TD(lambda), residual gradient and average-reward TD on one
window, written from the update rules (THEORY.md section 9,
docs/wang2025.md), one prompt at a time, plain Python loops over the window,
NumPy float64.

It shares no code with what it checks: it imports NumPy only (no torch, no
``theory``, no other ``numerics`` module; a test enforces this), reads the
raw window (features, next features, rewards, query) and the preconditioners,
never a prompt or a weight matrix.  The teacher is chosen by the same data
the records carry (``direction``, ``centered``), passed as plain strings.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("phi", "trace", "residual")


@dataclass
class LoopTrace:
    """Per step ``l = 0..L`` of one window: the weights ``w[l]`` (``(L+1) x d``),
    the entries the transformer should carry (``carried[l]``, ``(L+1) x n``:
    the TD errors ``delta_j(w_l)`` in the reward row; for average reward the
    row ``y_j = w_l.(phi_j - phi'_j)``) and the query value ``value[l] = w_l.phi_q``."""

    w: np.ndarray
    carried: np.ndarray
    value: np.ndarray


def batch_td_loop(phi, phi_next, r, phi_q, gamma: float, Cs, direction: str = "phi", centered: bool = False,
                  lam: float = 0.0) -> LoopTrace:
    """L steps of batch TD from ``w_0 = 0``, as plain loops.

    For ``l = 0..L-1``, with ``delta_j = r_j + gamma w.phi'_j - w.phi_j``
    (``centered``: ``delta_j = r_j - rbar_j + w.phi'_j - w.phi_j``,
    ``rbar_j = (r_0 + ... + r_j) / (j + 1)``, no discount):

    * ``direction = "phi"``:      ``u = sum_j delta_j phi_j``
    * ``direction = "trace"``:    ``e_j = lam e_{j-1} + phi_j`` (``e_{-1} = 0``), ``u = sum_j delta_j e_j``
    * ``direction = "residual"``: ``u = sum_j delta_j (phi_j - gamma phi'_j)``

    then ``w <- w + (1/n) C_l u``.  Shapes: ``phi``, ``phi_next`` ``n x d``
    (undiscounted), ``r`` ``n``, ``phi_q`` ``d``, ``Cs`` ``L x d x d``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: unknown {direction!r}; expected one of {', '.join(DIRECTIONS)}")
    phi, phi_next, r, phi_q = (np.asarray(x, dtype=np.float64) for x in (phi, phi_next, r, phi_q))
    Cs = np.asarray(Cs, dtype=np.float64)
    n, d = phi.shape
    # plain Python floats from here on (the loop below is the reference, not a fast path)
    phi, phi_next, r, phi_q, Cs = phi.tolist(), phi_next.tolist(), r.tolist(), phi_q.tolist(), Cs.tolist()
    g = 1.0 if centered else float(gamma)
    rbar = []
    total = 0.0
    for j in range(n):
        total += r[j]
        rbar.append(total / (j + 1))

    def dot(a, b):
        s = 0.0
        for k in range(d):
            s += a[k] * b[k]
        return s

    def td_error(w, j):
        target = (r[j] - rbar[j]) if centered else r[j]
        return target + g * dot(w, phi_next[j]) - dot(w, phi[j])

    ws, carried, values = [], [], []

    def record(w):
        ws.append(list(w))
        if centered:
            carried.append([dot(w, phi[j]) - dot(w, phi_next[j]) for j in range(n)])
        else:
            carried.append([td_error(w, j) for j in range(n)])
        values.append(dot(w, phi_q))

    w = [0.0] * d
    record(w)
    for C in Cs:
        u = [0.0] * d
        e = [0.0] * d
        for j in range(n):
            delta = td_error(w, j)
            if direction == "trace":
                e = [lam * e[k] + phi[j][k] for k in range(d)]
                vec = e
            elif direction == "residual":
                vec = [phi[j][k] - g * phi_next[j][k] for k in range(d)]
            else:
                vec = phi[j]
            for k in range(d):
                u[k] += delta * vec[k]
        w = [w[a] + sum(C[a][b] * u[b] for b in range(d)) / n for a in range(d)]
        record(w)
    return LoopTrace(np.array(ws), np.array(carried), np.array(values))
