"""The independent reference teachers: each algorithm's update written the
way a textbook writes it, from the raw window, in NumPy with a plain loop over
the transitions of the window (batched over MDPs only; issue 11), and, for
the layer-by-layer (``mrp``) records, :func:`batch_td_loop`: ``L`` steps of
batch TD(0), TD(lambda), residual gradient or average-reward TD on one
window (THEORY.md section 9, docs/wang2025.md), plain Python loops over the
window, reading the raw window (features, next features, rewards, query) and
the preconditioners, never a prompt or a weight matrix; the teacher is
chosen by plain strings (``direction``, ``centered``).

``check`` compares the block's read-out (computed from the prompt that
``numerics.core.prompts`` builds) with this teacher.  It shares nothing with
the prompt path below the MDP's feature table: it imports nothing from
``numerics`` (an import-linter contract in ``pyproject.toml``), reads only
the window ``(s_i, a_i, r_{i+1}, s_{i+1}, a_{i+1})``, the features
``F[s, a, :]``, the parameters and the record's data fields (``next_rule``,
``layout.readout_blocks``, ``steps``), and recomputes every quantity itself:

* ``phi_i = phi(s_i, a_i)``;
* ``phi+_i``: ``phi(s_{i+1}, a_{i+1})`` (``taken``); the expectation
  ``sum_b pi(b|s_{i+1}) phi(s_{i+1}, b)`` under the epsilon-greedy policy of
  ``Q_w`` (``expected``: ``epsilon/A`` on every action plus ``1 - epsilon``
  on the greedy one, the policy that acts, which gives a tie to its first
  maximiser); ``phi(s_{i+1}, argmax_b Q_w(s_{i+1}, b))`` (``greedy``; tie
  rule: the first maximiser, the lowest action index);
* ``delta_i = r_{i+1} + gamma w.phi+_i - w.phi_i`` (Sutton & Barto eq. 10.2 /
  6.7 / 6.8 in batch form);
* the softmax score from its definition: ``pi_lam(b|s) = exp(lam.phi(s, b)) /
  sum_c exp(lam.phi(s, c))``, ``g_i = phi(s_i, a_i) - sum_b pi_lam(b|s_i)
  phi(s_i, b)`` (``grad_lam log pi_lam(a_i|s_i)``; Sutton & Barto eq. 13.9);
* the batch step ``w + (alpha/n) sum_i delta_i phi_i`` and, for the actor,
  ``lam + (beta/n) sum_i delta_i g_i``.

Updates other than the semi-gradient and actor-critic rules (a user's
registered record) are evaluated by the record's own per-transition rule on
NumPy values (:class:`NumpyOps`), on the quantities computed here.

Near ties: when the two largest ``Q_w(s_{i+1}, .)`` differ by at most
``tie_tol`` (relative to ``max(1, |max Q|)``) for an ``expected`` or ``greedy`` record, the greedy action is
not determined by the window in floating point (the prompt builder and this
teacher may pick different maximisers of values equal up to rounding);
:func:`reference_update` reports such windows (``near_tie``) so that
``check`` leaves them out of the comparison and counts them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory import rules


class NumpyOps:
    """One transition of ``B`` windows in NumPy: parameters and vectors
    ``B x d``, scalars ``B``."""

    @staticmethod
    def dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.einsum("bk,bk->b", u, v)

    @staticmethod
    def scale(s: np.ndarray, v: np.ndarray) -> np.ndarray:
        return s[:, None] * v


def split_parameters(record, theta: np.ndarray) -> dict[str, np.ndarray]:
    """``{read-out block: B x d}`` in the layout's read-out order (``theta``: ``B x q``)."""
    blocks = record.layout.readout_blocks
    d = theta.shape[-1] // len(blocks)
    return {b: theta[..., k * d:(k + 1) * d] for k, b in enumerate(blocks)}


def q_values(F_s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Q_w(s, b) = w . phi(s, b)`` for every action (``F_s``: ``B x A x d``; ``B x A``)."""
    return np.einsum("bak,bk->ba", F_s, w)


def greedy_action(q: np.ndarray) -> np.ndarray:
    """``argmax_b q[., b]``: the first maximiser (lowest index) on an exact tie."""
    return np.argmax(q, axis=-1)


def near_tie(q: np.ndarray, tol: float) -> np.ndarray:
    """Whether the two largest entries of each row of ``q`` are within
    ``tol max(1, |max q|)`` (``B`` booleans)."""
    if q.shape[-1] < 2:
        return np.zeros(q.shape[0], dtype=bool)
    top = np.sort(q, axis=-1)
    return top[:, -1] - top[:, -2] <= tol * np.maximum(1.0, np.abs(top[:, -1]))


def epsilon_greedy(q: np.ndarray, epsilon: float) -> np.ndarray:
    """The epsilon-greedy policy in ``q`` (``B x A``): ``epsilon/A``
    everywhere plus ``1 - epsilon`` on :func:`greedy_action`."""
    B, A = q.shape
    pi = np.full((B, A), epsilon / A)
    pi[np.arange(B), greedy_action(q)] += 1.0 - epsilon
    return pi


def softmax_policy(logits: np.ndarray) -> np.ndarray:
    """``pi(b) = exp(l_b) / sum_c exp(l_c)`` per row (shifted by the row's max for range)."""
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def softmax_score(F_s: np.ndarray, a: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``grad_lam log pi_lam(a|s) = phi(s, a) - sum_b pi_lam(b|s) phi(s, b)``
    (``F_s``: ``B x A x d`` the features at ``s``, ``a``: ``B``; ``B x d``)."""
    pi = softmax_policy(q_values(F_s, lam))
    return F_s[np.arange(F_s.shape[0]), a] - np.einsum("ba,bak->bk", pi, F_s)


def next_features(next_rule: str, F_next: np.ndarray, a_next: np.ndarray, w: np.ndarray,
                  epsilon: float) -> np.ndarray:
    """``phi+`` at ``s'`` (``F_next``: ``B x A x d``) for the record's ``next_rule`` (``B x d``)."""
    rows = np.arange(F_next.shape[0])
    if next_rule == "taken":
        return F_next[rows, a_next]
    q = q_values(F_next, w)
    if next_rule == "expected":
        return np.einsum("ba,bak->bk", epsilon_greedy(q, epsilon), F_next)
    if next_rule == "greedy":
        return F_next[rows, greedy_action(q)]
    raise ValueError(f"reference: unknown next_rule {next_rule!r}")


def reference_update(record, F: np.ndarray, s: np.ndarray, a: np.ndarray, r: np.ndarray, theta: np.ndarray,
                     gamma: np.ndarray, epsilon: float, steps: dict[str, float],
                     tie_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The record's batch update on ``B`` windows (one per MDP), textbook style.

    Args:
      record: the algorithm (``theory.algorithms``; its data fields only).
      F: ``B x S x A x d`` features (state features broadcast over actions).
      s, a: ``B x (n+1)`` states and actions ``s_0..s_n``, ``a_0..a_n``;
      r: ``B x n`` rewards; theta: ``B x q`` parameters (``w``, or
      ``[w; lam]``); gamma: ``B`` discounts; epsilon: exploration;
      steps: ``{"alpha": ..., "beta": ...}``; tie_tol: the near-tie gap
      (``numerics.core.tolerances.ARGMAX_TIE_RTOL``, passed in: this module
      imports nothing from ``numerics``).
    Returns ``(theta', near_tie)``: ``B x q``, and ``B`` booleans (a window
    with a near tie of the argmax, ``expected`` and ``greedy`` records).
    """
    F, theta, r, gamma = (np.asarray(x, dtype=np.float64) for x in (F, theta, r, gamma))
    s, a = np.asarray(s, dtype=np.int64), np.asarray(a, dtype=np.int64)
    B, n = r.shape
    if F.ndim != 4 or F.shape[0] != B or s.shape != (B, n + 1) or a.shape != (B, n + 1) or theta.shape[0] != B \
            or gamma.shape != (B,):
        raise ValueError(f"reference: expected F B x S x A x d, s and a B x (n+1), r B x n, theta B x q, gamma B; "
                         f"got F {F.shape}, s {s.shape}, a {a.shape}, r {r.shape}, theta {theta.shape}, "
                         f"gamma {gamma.shape}")
    rows = np.arange(B)
    params = split_parameters(record, theta)
    w = params["w"]
    tie = np.zeros(B, dtype=bool)
    phi, phi_next, g = [], [], []
    for i in range(n):
        s_i, a_i, s_next, a_next = s[:, i], a[:, i], s[:, i + 1], a[:, i + 1]
        phi.append(F[rows, s_i, a_i])
        if record.next_rule != "taken":
            tie |= near_tie(q_values(F[rows, s_next], w), tie_tol)
        phi_next.append(next_features(record.next_rule, F[rows, s_next], a_next, w, epsilon))
        if "lam" in params:
            g.append(softmax_score(F[rows, s_i], a_i, params["lam"]))
    hp = {**steps, **{k: float(v) for k, v in record.constants}}
    if record.rule is rules.semi_gradient:
        new = {"w": _semi_gradient(w, phi, phi_next, r, gamma, hp["alpha"])}
    elif record.rule is rules.actor_critic:
        new = _actor_critic(w, params["lam"], phi, phi_next, g, r, gamma, hp["alpha"], hp["beta"])
    else:
        new = _by_rule(record, params, phi, phi_next, g, r, gamma, hp)
    out = np.concatenate([new.get(b, params[b]) for b in record.layout.readout_blocks], axis=-1)
    return out, tie


def _td_error(w, phi_i, phi_next_i, r_i, gamma):
    """``delta_i = r_{i+1} + gamma w.phi+_i - w.phi_i`` (``B``)."""
    return r_i + gamma * np.einsum("bk,bk->b", w, phi_next_i) - np.einsum("bk,bk->b", w, phi_i)


def _semi_gradient(w, phi, phi_next, r, gamma, alpha):
    """``w + (alpha/n) sum_i delta_i phi_i``."""
    n = len(phi)
    acc = np.zeros_like(w)
    for i in range(n):
        acc = acc + _td_error(w, phi[i], phi_next[i], r[:, i], gamma)[:, None] * phi[i]
    return w + alpha * acc / n


def _actor_critic(w, lam, phi, phi_next, g, r, gamma, alpha, beta):
    """Critic ``w + (alpha/n) sum_i delta_i phi_i``, actor ``lam + (beta/n) sum_i delta_i g_i``."""
    n = len(phi)
    acc_w, acc_l = np.zeros_like(w), np.zeros_like(lam)
    for i in range(n):
        delta = _td_error(w, phi[i], phi_next[i], r[:, i], gamma)[:, None]
        acc_w = acc_w + delta * phi[i]
        acc_l = acc_l + delta * g[i]
    return {"w": w + alpha * acc_w / n, "lam": lam + beta * acc_l / n}


def _by_rule(record, params, phi, phi_next, g, r, gamma, hp):
    """A registered record's own per-transition rule on NumPy values."""
    n = len(phi)
    acc: dict = {}
    for i in range(n):
        t = rules.Quantities(phi=phi[i], phi_next=phi_next[i], r=r[:, i], gamma=gamma, g=g[i] if g else None,
                             one=np.ones_like(r[:, i]))
        for b, (size, direction) in record.rule(t, params, hp, NumpyOps).items():
            acc[b] = acc.get(b, 0.0) + size * np.asarray(direction, dtype=np.float64)
    return {b: params[b] + acc[b] / n for b in acc}


# ---- magnitudes of the teacher's terms (the rounding bound of ``check``) ----

class Magnitude:
    """A NumPy array of magnitudes in an algebra where every operation adds
    sizes: ``a + b`` and ``a - b`` are ``|a| + |b|``, ``a * b`` is ``|a| |b|``.
    A rule evaluated on magnitudes gives the sum of the absolute values of
    the terms it adds up (what its rounding error scales with)."""

    __array_ufunc__ = None      # ndarray * Magnitude defers to Magnitude.__rmul__

    def __init__(self, value):
        self.v = np.abs(np.asarray(value, dtype=np.float64))

    @staticmethod
    def _of(x):
        return x.v if isinstance(x, Magnitude) else np.abs(np.asarray(x, dtype=np.float64))

    def __add__(self, other):
        return Magnitude(self.v + self._of(other))

    __radd__ = __sub__ = __rsub__ = __add__

    def __mul__(self, other):
        o = self._of(other)
        if o.ndim == 1 and self.v.ndim == 2:
            o = o[:, None]
        return Magnitude(self.v * o)

    def __rmul__(self, other):
        o = self._of(other)
        v = self.v[:, None] if (self.v.ndim == 1 and o.ndim == 2) else self.v
        return Magnitude(v * o)

    def __truediv__(self, other):
        return Magnitude(self.v / self._of(other))

    def __neg__(self):
        return self


class MagnitudeOps:
    """:class:`NumpyOps` on :class:`Magnitude` values."""

    @staticmethod
    def dot(u, v) -> Magnitude:
        return Magnitude(np.einsum("bk,bk->b", Magnitude._of(u), Magnitude._of(v)))

    @staticmethod
    def scale(s, v) -> Magnitude:
        return Magnitude(Magnitude._of(s)[:, None] * Magnitude._of(v))


def reference_magnitudes(record, F: np.ndarray, s: np.ndarray, a: np.ndarray, r: np.ndarray, theta: np.ndarray,
                         gamma: np.ndarray, epsilon: float, steps: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The sizes of the terms of :func:`reference_update` (same arguments):
    ``(|theta|, increment)``, each ``B x q``: the parameter carried through and
    ``(step/n) sum_i |direction_i|`` of the record's rule evaluated on
    magnitudes (:class:`Magnitude`: ``|delta_i| = |r| + gamma |w|.|phi+| +
    |w|.|phi|``).  ``phi+`` enters as its terms' size (``taken``, ``greedy``:
    ``|phi(s', a')|``; ``expected``: ``sum_b pi(b) |phi(s', b)|``); the score
    as ``(|phi(s, a)| + sum_b pi_lam(b) |phi(s, b)|) (1 + max_b |lam|.|phi(s,
    b)|)`` (the softmax's exponent scales the relative error of ``pi_lam``)."""
    F, theta, r, gamma = (np.asarray(x, dtype=np.float64) for x in (F, theta, r, gamma))
    s, a = np.asarray(s, dtype=np.int64), np.asarray(a, dtype=np.int64)
    B, n = r.shape
    rows = np.arange(B)
    params = split_parameters(record, theta)
    w = params["w"]
    Fa = np.abs(F)
    hp = {**steps, **{k: float(v) for k, v in record.constants}}
    mparams = {b: Magnitude(v) for b, v in params.items()}
    acc: dict = {}
    for i in range(n):
        s_i, a_i, s_next, a_next = s[:, i], a[:, i], s[:, i + 1], a[:, i + 1]
        if record.next_rule == "taken":
            phi_next = Fa[rows, s_next, a_next]
        elif record.next_rule == "expected":
            phi_next = np.einsum("ba,bak->bk", epsilon_greedy(q_values(F[rows, s_next], w), epsilon), Fa[rows, s_next])
        else:
            phi_next = Fa[rows, s_next, greedy_action(q_values(F[rows, s_next], w))]
        g = None
        if "lam" in params:
            lam = params["lam"]
            pi = softmax_policy(q_values(F[rows, s_i], lam))
            expo = 1.0 + np.einsum("bak,bk->ba", Fa[rows, s_i], np.abs(lam)).max(-1)
            g = Magnitude((Fa[rows, s_i, a_i] + np.einsum("ba,bak->bk", pi, Fa[rows, s_i])) * expo[:, None])
        t = rules.Quantities(phi=Magnitude(Fa[rows, s_i, a_i]), phi_next=Magnitude(phi_next), r=Magnitude(r[:, i]),
                             gamma=Magnitude(gamma), g=g, one=Magnitude(np.ones(B)))
        for b, (size, direction) in record.rule(t, mparams, hp, MagnitudeOps).items():
            acc[b] = acc.get(b, 0.0) + Magnitude._of(size) * Magnitude._of(direction)
    blocks = record.layout.readout_blocks
    absolute = np.concatenate([np.abs(params[b]) for b in blocks], axis=-1)
    increment = np.concatenate([acc[b] / n if b in acc else np.zeros_like(params[b]) for b in blocks], axis=-1)
    return absolute, increment

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
