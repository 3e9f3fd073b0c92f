"""The independent reference of weighted softmax TD (Xie et al. 2026,
"Beyond Linear Attention", arXiv 2605.07333; THEORY.md section 10), written
from the algorithm's definition, in NumPy, with a plain loop over the states
of the MRP:

    v_{t+1}(s) = v_t(s) + alpha_t sum_{k=1..n} delta_k K(s_{k-1}, s),
    delta_k = r_k + gamma v_t(s_k) - v_t(s_{k-1}),
    K(s_{k-1}, s) = exp g(s, s_{k-1}) / sum_{m=1..n} exp g(s, s_{m-1}),

``g`` the inner product of the features, ``v_0 = 0``, one iteration per
layer, the values a function on the MRP's states (every state, visited or
not).  The window is the trajectory ``s_0 .. s_n`` and its rewards ``r_1 ..
r_n`` (``r_k`` the reward of ``s_{k-1} -> s_k``).

It shares nothing with the block below the MRP, its feature table and the
window: it imports nothing from ``numerics`` and no torch (an import-linter
contract in ``pyproject.toml``), reads no prompt and no weight matrix, and
takes its softmax as its own log-sum-exp (:func:`kernel_row`).  ``check``
(``numerics.analysis.check_softmax``) compares the block's value rows with
it; the special cases of the paper (tabular, linear) are written here too,
from their own definitions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def log_sum_exp(x: np.ndarray) -> float:
    """``log sum_i exp x_i``, stable: ``m + log sum_i exp(x_i - m)``, ``m = max x``."""
    m = float(np.max(x))
    return m + float(np.log(np.sum(np.exp(x - m))))


def kernel_row(F: np.ndarray, sources: np.ndarray, s: int) -> np.ndarray:
    """``K(s_{k-1}, s)`` for ``k = 1..n`` (``sources`` = ``s_0 .. s_{n-1}``): the
    softmax over the context of ``g(s, s_{k-1}) = phi(s) . phi(s_{k-1})``,
    ``exp(g_k - log sum_m exp g_m)``."""
    g = np.array([float(np.dot(F[s], F[x])) for x in sources])
    return np.exp(g - log_sum_exp(g))


@dataclass
class SoftmaxTDRun:
    """``v[l, s]``: the values after ``l`` iterations (``l = 0..L``) at every
    state; ``kernel[s, k]``: ``K(s_{k-1}, s)``; ``delta[l, k]``: the TD errors
    of iteration ``l + 1`` (``k = 1..n`` as ``0..n-1``)."""

    v: np.ndarray
    kernel: np.ndarray
    delta: np.ndarray


def weighted_softmax_td(F: np.ndarray, states, rewards, gamma: float, alphas, kernel=None,
                        td_error=None) -> SoftmaxTDRun:
    """``L = len(alphas)`` iterations of weighted softmax TD on one window.

    Args:
      F: the feature table (``S x d``), ``F[s]`` = ``phi(s)``.
      states: ``s_0 .. s_n`` (``n + 1`` state indices).
      rewards: ``r_1 .. r_n`` (``r_k``: the reward of ``s_{k-1} -> s_k``).
      gamma: the discount; alphas: the step of each iteration.
      kernel, td_error: the kernel row and the TD error, by default
        :func:`kernel_row` and ``r + gamma v' - v`` (a test replaces them to
        plant a fault on the reference's side).
    """
    F = np.asarray(F, dtype=np.float64)
    states = [int(s) for s in states]
    r = np.asarray(rewards, dtype=np.float64)
    n = len(states) - 1
    if r.shape != (n,):
        raise ValueError(f"rewards: expected {n} (one per transition), got shape {r.shape}")
    S = F.shape[0]
    kernel = kernel_row if kernel is None else kernel
    td_error = (lambda rk, vn, vp: rk + gamma * vn - vp) if td_error is None else td_error
    sources = np.array(states[:-1])
    K = np.array([kernel(F, sources, s) for s in range(S)])          # S x n
    v = np.zeros(S)
    values, deltas = [v.copy()], []
    for a in alphas:
        delta = np.array([td_error(r[k - 1], v[states[k]], v[states[k - 1]]) for k in range(1, n + 1)])
        new = v.copy()
        for s in range(S):
            total = 0.0
            for k in range(n):
                total += delta[k] * K[s, k]
            new[s] = v[s] + float(a) * total
        v = new
        values.append(v.copy())
        deltas.append(delta)
    return SoftmaxTDRun(np.array(values), K, np.array(deltas).reshape(len(alphas), n))


def tabular_batch_td(states, rewards, gamma: float, alphas, S: int) -> np.ndarray:
    """Batch tabular TD that averages each state's TD errors: ``v(s) <- v(s) +
    alpha mean_{k: s_{k-1} = s} delta_k`` for a state left at least once in
    the window; a state never left keeps ``v(s) <- v(s) + alpha mean_k
    delta_k`` (the equality kernel of a state with no match is uniform).
    ``v[l, s]``, ``l = 0..L``: the limit ``tau -> inf`` of weighted softmax TD
    with features ``sqrt(tau) e_s``."""
    states = [int(s) for s in states]
    r = np.asarray(rewards, dtype=np.float64)
    n = len(states) - 1
    v = np.zeros(S)
    out = [v.copy()]
    for a in alphas:
        delta = [r[k - 1] + gamma * v[states[k]] - v[states[k - 1]] for k in range(1, n + 1)]
        new = v.copy()
        for s in range(S):
            mine = [delta[k - 1] for k in range(1, n + 1) if states[k - 1] == s]
            every = mine if mine else delta
            new[s] = v[s] + float(a) * sum(every) / len(every)
        v = new
        out.append(v.copy())
    return np.array(out)


def linear_td(psi: np.ndarray, states, rewards, gamma: float, alphas, direction=None) -> np.ndarray:
    """Batch linear TD(0) on a window with features ``psi`` (``S x p``):
    ``w <- w + (alpha/n) sum_k delta_k h(s_{k-1})``, ``delta_k = r_k + gamma
    w.psi(s_k) - w.psi(s_{k-1})``, ``w_0 = 0``, the update direction ``h`` the
    features themselves unless ``direction`` (``S x p``) is given; returns the
    values ``v[l, s] = w_l . psi(s)``, ``l = 0..L``."""
    psi = np.asarray(psi, dtype=np.float64)
    h = psi if direction is None else np.asarray(direction, dtype=np.float64)
    states = [int(s) for s in states]
    r = np.asarray(rewards, dtype=np.float64)
    n = len(states) - 1
    w = np.zeros(psi.shape[1])
    out = [psi @ w]
    for a in alphas:
        step = np.zeros_like(w)
        for k in range(1, n + 1):
            delta = r[k - 1] + gamma * float(psi[states[k]] @ w) - float(psi[states[k - 1]] @ w)
            step += delta * h[states[k - 1]]
        w = w + float(a) * step / n
        out.append(psi @ w)
    return np.array(out)
