"""Compiled kernels of the paper's exact Algorithm 1 (THEORY.md sections 3,
5, 6; issue 14), and the batched window sampler of the Algorithm 1 stream.

One frame of Algorithm 1 as numba loops in float64: the epsilon-greedy
behaviour CDF in ``Q_w``, the window (from given uniforms), the prompt
(paper eq. 4), the SARSA teacher (paper eq. 2), the Lemma C.1 read-out and
its gradient for the reduced ``(P12, Vbar21)`` and the full
parameterisation (``P22``, ``Vbar22`` live: the cubic term), Adam with
PyTorch's single-tensor arithmetic, then ``w <- teacher`` and
``s_0 <- s_n``; the learning rate is ``lr * decay ** (j // every)`` for MDP
``j``.  The driver (drawing MDPs, checkpoints, training runs) is
``numerics.analysis.exact``; the torch implementation
(``numerics.analysis.train``, ``numerics.core.block``) stays the
reference, and ``property_tests/test_compiled_exact.py`` holds the
differential tests.

Which records the kernels implement: :func:`supports` (the SARSA structure:
the value layout, ``phi``/``gamma phi+``/``r`` context with the action
taken, semi-gradient rule, epsilon-greedy behaviour, state-action
features), decided from the record's fields, never its name.  The window
sampler :func:`sample_windows` takes the behaviour CDF as an argument, so it
serves every record (``numerics.core.stream.sample_window`` uses it on the
CPU).

Why numba.  Measured on the project's 2-core machine (shared, so +-30%),
Section 4.1 sizes, one thread, ``benchmarks/exact_step.py --alternatives``:

* the torch per-step path (``train --batch-mdps 1``: autograd and
  ``torch.optim.Adam`` on one prompt) runs 390-450 steps/s (reduced) and
  310-390 (full): the ~1e5 flops of a step are buried under some hundred
  op dispatches;
* the same step written as numpy array calls (hand gradient, no autograd,
  no torch dispatch) runs about 2,300 steps/s: still ~60 calls of ~1-5 us,
  and the window (41 sequential draws) is a Python loop;
* this numba loop runs 47,000-61,000 steps/s (reduced) and 35,000-44,000
  (full), 100-135 times the torch path.  What is left is arithmetic: per
  reduced step about 7.5 us of Adam over the 5,329 live parameters (a
  square root and a division each: the divider's throughput bounds it, 1.4
  ns an entry), 4.7 us of read-out and gradient, 2.5 us of behaviour CDF,
  window, prompt and teacher, 0.5 us of the Python driver drawing MDPs;
  the full step adds 2,701 parameters to Adam (11.6 us) and the cubic term.

numba compiles from the Python source at first use (cached on disk,
``cache=True``: about 10 s once, then under 1 s), needs no C toolchain on
the machine, and keeps the kernels readable next to the equations.  No
``fastmath``: every sum is taken in a fixed order, so one seed gives the
same bits on every run (and, as no loop's result depends on the vector
width the compiler picks, on other x86-64 CPUs with the same libm).

Random draws.  The kernels draw nothing: every uniform is drawn by the
caller from the run's ``torch.Generator`` in the order the torch stream
consumes them.  A window of ``n`` transitions takes ``2n+1`` uniforms per
MDP: ``u[0]`` draws ``a_0``, and for ``i = 0..n-1``, ``u[1 + 2i]`` draws
``s_{i+1}`` and ``u[2 + 2i]`` draws ``a_{i+1}``, each by the inverse CDF
``#{k: cdf[k] < u}`` clamped to the last index
(``numerics.core.stream.sample_window``).  On the CPU a float64
``torch.rand(k, B)`` fills its ``k B`` entries in order from the Mersenne
twister, one 64-bit draw each, so it equals ``k`` successive
``torch.rand(B)`` calls and leaves the generator in the same state (tested,
torch 2.13, up to 4.1e6 entries and with 2 threads).

Parameter vector.  The kernels hold the live blocks in one flat float64
vector, each block row-major, in this order: ``P12^T`` (``p x m``),
``Vbar21^T`` (``m x q``) and, full parameterisation only, ``P22``
(``p x p``), ``Vbar22^T`` (``p x q``); ``m = 2d+1``, ``p = d+1``,
``q = d`` (:func:`flatten_blocks` / :func:`unflatten_blocks` convert, with
the block slices of ``theory.spec.Index``).  Every other entry of the full
``P, V`` has gradient exactly zero (Prop 3.1), so torch's Adam leaves it
bitwise unchanged (its moments stay 0 and its update is ``-step * 0 /
eps``); the kernels skip those entries and the driver keeps them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import sympy as sp
import torch
from numba import njit

from theory import rules
from theory.errors import InputError
from theory.symbols import gamma as GAMMA

#: numba options of every kernel (njit: nopython mode): float64 semantics
#: kept (no fastmath: no reassociation, no fused multiply-add), numpy's error
#: model (a division by zero gives inf/nan, as torch does, not an exception),
#: the GIL released, compiled code cached on disk.
_JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")

#: numba's version (reports record it).
NUMBA_VERSION = numba.__version__

#: Adam's defaults (PyTorch, Section 4.1).
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


#: The prompt and teacher the kernels hard-code, as the record fields that
#: describe them (paper eq. 4 and eq. 2): :func:`supports` compares a record
#: with these values, never with a registered record or a name, so a change
#: to ``theory`` (a layout, a recipe) makes the kernels refuse the record.
KERNEL_LAYOUT = dict(context=(("phi", "d"), ("gphi_next", "d"), ("r", 1)), params=(("one", 1), ("w", "d")),
                     readout=(("w", 1),), query=())
KERNEL_CONTEXT = (("phi", sp.Integer(1), "phi"), ("gphi_next", GAMMA, "phi_next"), ("r", sp.Integer(1), "r"))


def supports(record) -> bool:
    """Whether the kernels' prompt and teacher are the record's: a single
    unmasked layer over the value layout ``x_i = [phi_i; gamma phi+_i;
    r_{i+1}]``, ``w~ = [1; w]`` (:data:`KERNEL_LAYOUT`), ``phi+`` the next
    action taken, the semi-gradient rule without constants (paper eq. 2),
    epsilon-greedy behaviour in ``Q_w`` and state-action features."""
    spec, lay = record.spec, record.layout
    return (spec.depth == 1 and spec.tied and spec.mask == "none" and spec.writes is None
            and all(tuple(getattr(lay, k)) == v for k, v in KERNEL_LAYOUT.items())
            and tuple(record.context) == KERNEL_CONTEXT and record.rule is rules.semi_gradient
            and record.next_rule == "taken" and record.behaviour == "epsilon-greedy"
            and record.features == "state-action" and tuple(record.constants) == ()
            and tuple(record.steps) == ("alpha",))


# ------------------------------------------------------------------ sampling

@njit(**_JIT)
def categorical(cdf, u):
    """Inverse-CDF draw of one index: ``#{k: cdf[k] < u}`` clamped to
    ``len(cdf) - 1`` (``numerics.core.stream``'s draw)."""
    k = 0
    for j in range(cdf.shape[0]):
        if cdf[j] < u:
            k += 1
    return min(k, cdf.shape[0] - 1)


@njit(**_JIT)
def features_t(F, FT):
    """``FT[k, s A + a] = F[s, a, k]`` (``d x SA``, written): the features
    laid out so that ``Q_w`` of every state-action pair is a sum of
    contiguous rows (:func:`q_values`)."""
    S, A, d = F.shape
    for s in range(S):
        for a in range(A):
            for k in range(d):
                FT[k, s * A + a] = F[s, a, k]


@njit(**_JIT)
def q_values(FT, w, Q):
    """``Q[s A + a] = w . F[s, a]`` for every pair (``Q``: ``SA``, written),
    each summed over ``k = 0..d-1`` in order, exactly as :func:`_dot`
    sums it (the same products, the same additions): the row updates
    vectorise across pairs without changing a bit."""
    for j in range(Q.shape[0]):
        Q[j] = 0.0
    for k in range(FT.shape[0]):
        c = w[k]
        row = FT[k]
        for j in range(Q.shape[0]):
            Q[j] += row[j] * c


@njit(**_JIT)
def egreedy_cdf_q(Q, A, epsilon, out):
    """CDF over actions of epsilon-greedy in ``Q`` (``SA``, pair ``s A + a``)
    at every state: ``eps/A + (1 - eps) [a = first argmax]``, cumulated
    over ``a`` in order, as ``behaviour_probs(...).cumsum(-1)``; ``out``:
    ``S x A`` (written)."""
    lo = epsilon / A
    hi = 1.0 - epsilon
    for s in range(out.shape[0]):
        best, qbest = 0, 0.0
        for a in range(A):
            q = Q[s * A + a]
            if a == 0 or q > qbest:           # first maximiser, as torch.argmax
                best, qbest = a, q
        acc = 0.0
        row = out[s]
        for a in range(A):
            acc += lo + hi * (1.0 if a == best else 0.0)
            row[a] = acc


@njit(**_JIT)
def egreedy_cdf(F, w, epsilon, out):
    """CDF over actions of epsilon-greedy in ``Q_w(s, a) = w . F[s, a]``
    at every state (THEORY.md section 1): ``eps/A + (1 - eps) [a = first
    argmax]``, cumulated over ``a`` in order, as
    ``behaviour_probs(...).cumsum(-1)``.  ``F``: ``S x A x d``, ``w``:
    ``d``, ``out``: ``S x A`` (written)."""
    S, A, d = F.shape
    FT = np.empty((d, S * A))
    Q = np.empty(S * A)
    features_t(F, FT)
    q_values(FT, w, Q)
    egreedy_cdf_q(Q, A, epsilon, out)


@njit(**_JIT)
def sample_window(T_cdf, pi_cdf, R, s0, u, s, a, r):
    """One window of ``n`` transitions from ``s0`` (Algorithm 1).

    ``T_cdf``: ``S x A x S`` transition CDFs; ``pi_cdf``: ``S x A``
    behaviour CDFs; ``R``: ``S x A x S`` rewards; ``u``: ``2n+1`` uniforms
    (``u[0]`` for ``a_0``; ``u[1+2i]`` for ``s_{i+1}``, ``u[2+2i]`` for
    ``a_{i+1}``).  Writes ``s``, ``a`` (``n+1``, int64) and ``r`` (``n``)."""
    n = r.shape[0]
    s[0] = s0
    a[0] = categorical(pi_cdf[s0], u[0])
    for i in range(n):
        nxt = categorical(T_cdf[s[i], a[i]], u[1 + 2 * i])
        r[i] = R[s[i], a[i], nxt]
        s[i + 1] = nxt
        a[i + 1] = categorical(pi_cdf[nxt], u[2 + 2 * i])


@njit(**_JIT)
def _sample_windows(T_cdf, pi_cdf, R, s0, UT, s, a, r):
    for b in range(s0.shape[0]):
        sample_window(T_cdf[b], pi_cdf[b], R[b], s0[b], UT[b], s[b], a[b], r[b])


def sample_windows(T_cdf: np.ndarray, pi_cdf: np.ndarray, R: np.ndarray, s0: np.ndarray, U: np.ndarray):
    """Batched window sampler: ``B`` MDPs, one window each.

    Args:
      T_cdf: ``B x S x A x S`` transition CDFs (``T.cumsum(-1)``).
      pi_cdf: ``B x S x A`` behaviour CDFs (``behaviour_probs(...).cumsum(-1)``).
      R: ``B x S x A x S`` rewards.
      s0: ``B`` start states (integers).
      U: ``(2n+1) x B`` uniforms, row ``t`` being the ``t``-th
        ``torch.rand(B)`` call of ``numerics.core.stream.sample_window``
        (row 0: ``a_0``; row ``1+2i``: ``s_{i+1}``; row ``2+2i``:
        ``a_{i+1}``).
    Returns:
      ``(s, a, r)``: ``B x (n+1)`` int64 states and actions, ``B x n``
      rewards: the window of those samplers given the same uniforms.
    """
    # no copies of float64 input (a broadcast table, stride 0 over B, stays a view)
    T_cdf, pi_cdf, R, U = (np.asarray(x, dtype=np.float64) for x in (T_cdf, pi_cdf, R, U))
    s0 = np.asarray(s0, dtype=np.int64)
    if T_cdf.ndim != 4 or pi_cdf.shape != T_cdf.shape[:3] or R.shape != T_cdf.shape:
        raise InputError("windows", f"expected T_cdf and R of shape (B, S, A, S) and pi_cdf (B, S, A); got "
                                    f"{T_cdf.shape}, {R.shape}, {pi_cdf.shape}")
    B, S = T_cdf.shape[:2]
    if s0.shape != (B,) or U.ndim != 2 or U.shape[1] != B or U.shape[0] % 2 != 1:
        raise InputError("windows", f"expected s0 of shape ({B},) and U of shape (2n+1, {B}); got {s0.shape}, {U.shape}")
    if B and (s0.min() < 0 or s0.max() >= S):
        raise InputError("s0", f"states must lie in 0..{S - 1}")
    n = (U.shape[0] - 1) // 2
    s = np.empty((B, n + 1), dtype=np.int64)
    a = np.empty((B, n + 1), dtype=np.int64)
    r = np.empty((B, n), dtype=np.float64)
    # each MDP's 2n+1 uniforms contiguous (a column of U is strided by B:
    # at B = 10,000 reading it cost more than the sampling)
    _sample_windows(T_cdf, pi_cdf, R, s0, np.ascontiguousarray(U.T), s, a, r)
    return s, a, r


# ------------------------------------------------------ prompt and teacher

@njit(**_JIT)
def sarsa_prompt(F, s, a, r, gamma, X):
    """Context rows of the SARSA prompt (paper eq. 4):
    ``x_i = [phi_i; gamma phi+_i; r_{i+1}]``, ``X``: ``n x (2d+1)`` (written)."""
    n = r.shape[0]
    d = F.shape[2]
    for i in range(n):
        phi = F[s[i], a[i]]
        phin = F[s[i + 1], a[i + 1]]
        x = X[i]
        for k in range(d):
            x[k] = phi[k]
        for k in range(d):
            x[d + k] = gamma * phin[k]
        x[2 * d] = r[i]


@njit(**_JIT)
def sarsa_teacher_q(F, Q, s, a, r, gamma, w, alpha, out):
    """:func:`sarsa_teacher` with ``w . phi`` read from ``Q`` (:func:`q_values`
    of the same ``w``: the same sums, bit for bit)."""
    n = r.shape[0]
    d = w.shape[0]
    A = F.shape[1]
    for k in range(d):
        out[k] = 0.0
    for i in range(n):
        phi = F[s[i], a[i]]
        delta = r[i] + gamma * Q[s[i + 1] * A + a[i + 1]] - Q[s[i] * A + a[i]]
        for k in range(d):
            out[k] += delta * phi[k]
    for k in range(d):
        out[k] = w[k] + alpha * (out[k] / n)


@njit(**_JIT)
def sarsa_teacher(F, s, a, r, gamma, w, alpha, out):
    """Semi-gradient SARSA batch step (paper eq. 2):
    ``delta_i = r_{i+1} + gamma w.phi+_i - w.phi_i``,
    ``out = w + alpha (1/n) sum_i delta_i phi_i`` (``d``, written)."""
    n = r.shape[0]
    d = w.shape[0]
    for k in range(d):
        out[k] = 0.0
    for i in range(n):
        phi = F[s[i], a[i]]
        delta = r[i] + gamma * _dot(F[s[i + 1], a[i + 1]], w) - _dot(phi, w)
        for k in range(d):
            out[k] += delta * phi[k]
    for k in range(d):
        out[k] = w[k] + alpha * (out[k] / n)


# ------------------------------------------------ read-out and its gradient
#
# Flat layout of the live parameters (module docstring): ``P12^T`` (p x m),
# ``Vbar21^T`` (m x q), then ``P22`` (p x p), ``Vbar22^T`` (p x q), each
# row-major.  The transposes make almost every loop an axpy over a
# contiguous row (``y += c x``), which LLVM vectorises without
# reassociating anything; the few dot products left are summed in order
# (:func:`_dot`).  No result depends on the vector width the compiler
# picks.  Rows are taken as 2-D views: indexing a flat vector at
# ``offset + i`` kept numba's negative-index check in the loop and blocked
# vectorisation (5x slower, measured).

@njit(**_JIT)
def _dot(x, y):
    """``sum_j x[j] y[j]``, summed in order (``x``, ``y``: 1-D, same
    length).  A plain chain: the out-of-order core overlaps the many
    independent dots of a loop (measured faster than four partial sums)."""
    acc = 0.0
    for j in range(x.shape[0]):
        acc += x[j] * y[j]
    return acc


@njit(**_JIT)
def blocks_of(params, m, p):
    """2-D views ``(P12^T, Vbar21^T)`` (``p x m``, ``m x q``) of the flat vector."""
    q = p - 1
    return params[:p * m].reshape(p, m), params[p * m:p * m + m * q].reshape(m, q)


@njit(**_JIT)
def cubic_blocks_of(params, m, p):
    """2-D views ``(P22, Vbar22^T)`` (``p x p``, ``p x q``) of the flat vector (full)."""
    q = p - 1
    o = p * m + m * q
    return params[o:o + p * p].reshape(p, p), params[o + p * p:o + p * p + p * q].reshape(p, q)


@njit(**_JIT)
def _readout_reduced(X, wt, params, out, work):
    """Lemma C.1 read-out without the cubic term.  Leaves ``a = P12 w~``
    in ``work[0]``, ``s = Sigma a`` in ``work[1]``."""
    n, m = X.shape
    p = wt.shape[0]
    q = p - 1
    P12T, V21T = blocks_of(params, m, p)
    av = work[0, :m]
    sv = work[1, :m]
    for k in range(m):
        av[k] = 0.0
        sv[k] = 0.0
    for j in range(p):                        # a = P12 w~ = sum_j w~_j P12^T[j]
        c = wt[j]
        row = P12T[j]
        for k in range(m):
            av[k] += c * row[k]
    for t in range(n):                        # s = (1/n) sum_t (x_t . a) x_t
        xt = X[t]
        c = _dot(xt, av)
        for k in range(m):
            sv[k] += c * xt[k]
    for k in range(m):
        sv[k] = sv[k] / n
    for i in range(q):
        out[i] = 0.0
    for k in range(m):                        # Vbar21 s = sum_k s_k Vbar21^T[k]
        c = sv[k]
        row = V21T[k]
        for i in range(q):
            out[i] += c * row[i]
    for i in range(q):
        out[i] = wt[1 + i] + out[i]


@njit(**_JIT)
def _grad_reduced(X, wt, params, res, grad, work):
    """Gradient of ``1/2 |res|^2`` through ``(P12, Vbar21)`` given the
    residual ``res = TF(H) - target`` (``q``) and ``work[1]`` (``s``) of
    the read-out: ``dVbar21 = res s^T``, ``dP12 = Sigma (Vbar21^T res) w~^T``."""
    n, m = X.shape
    p = wt.shape[0]
    q = p - 1
    _, V21T = blocks_of(params, m, p)
    gP12T, gV21T = blocks_of(grad, m, p)
    sv = work[1, :m]
    gs = work[2, :m]
    ga = work[3, :m]
    for k in range(m):                        # dVbar21^T[k] = s_k res;  gs_k = Vbar21^T[k] . res
        c = sv[k]
        row = gV21T[k]
        for i in range(q):
            row[i] = c * res[i]
        gs[k] = _dot(V21T[k], res)
    for k in range(m):
        ga[k] = 0.0
    for t in range(n):                        # ga = Sigma gs = (1/n) sum_t (x_t . gs) x_t
        xt = X[t]
        c = _dot(xt, gs) / n
        for k in range(m):
            ga[k] += c * xt[k]
    for j in range(p):                        # dP12^T[j] = w~_j ga
        c = wt[j]
        row = gP12T[j]
        for k in range(m):
            row[k] = c * ga[k]


@njit(**_JIT)
def readout_reduced(X, wt, params, out, work):
    """Lemma C.1 read-out, reduced parameterisation:
    ``TF(H) = w + Vbar21 Sigma P12 w~``, ``Sigma = (1/n) sum_t x_t x_t^T``.
    ``X``: ``n x m``; ``wt``: ``p``; ``params``: flat ``[P12^T; Vbar21^T]``;
    ``out``: ``q`` (written); ``work``: scratch, ``>= 6 x max(m, p)``."""
    _readout_reduced(X, wt, params, out, work)


@njit(**_JIT)
def loss_grad_reduced(X, wt, params, target, out, grad, work):
    """Loss ``1/2 |TF(H) - target|^2`` (returned), read-out ``out`` (``q``)
    and gradient ``grad`` (flat, as ``params``) of the reduced block:
    ``dVbar21 = e s^T``, ``dP12 = Sigma Vbar21^T e w~^T`` with
    ``e = TF(H) - target``, ``s = Sigma P12 w~``."""
    q = out.shape[0]
    _readout_reduced(X, wt, params, out, work)
    res = work[4, :q]
    loss = 0.0
    for i in range(q):
        res[i] = out[i] - target[i]
        loss += res[i] * res[i]
    _grad_reduced(X, wt, params, res, grad, work)
    return 0.5 * loss


@njit(**_JIT)
def _cubic(wt, params, m, yv, bv):
    """``w~^T P22 w~`` (returned) and ``b = Vbar22 w~`` (into ``bv``);
    ``yv`` (``p``) is scratch for ``P22^T w~``."""
    p = wt.shape[0]
    q = p - 1
    P22, V22T = cubic_blocks_of(params, m, p)
    for k in range(p):
        yv[k] = 0.0
    for i in range(q):
        bv[i] = 0.0
    for j in range(p):                        # y = P22^T w~ = sum_j w~_j P22[j];  b = sum_j w~_j Vbar22^T[j]
        c = wt[j]
        row = P22[j]
        for k in range(p):
            yv[k] += c * row[k]
        row = V22T[j]
        for i in range(q):
            bv[i] += c * row[i]
    return _dot(yv, wt)


@njit(**_JIT)
def readout_full(X, wt, params, out, work):
    """Lemma C.1 read-out, full parameterisation:
    ``TF(H) = w + Vbar21 Sigma P12 w~ + (1/n) Vbar22 w~ w~^T P22 w~``;
    ``params``: flat ``[P12^T; Vbar21^T; P22; Vbar22^T]``."""
    n, m = X.shape
    p = wt.shape[0]
    _readout_reduced(X, wt, params, out, work)
    bv = work[5, :p - 1]
    c = _cubic(wt, params, m, work[2, :p], bv) / n
    for i in range(out.shape[0]):
        out[i] = out[i] + c * bv[i]


@njit(**_JIT)
def loss_grad_full(X, wt, params, target, out, grad, work):
    """As :func:`loss_grad_reduced` with the cubic term of Lemma C.1 live:
    additionally ``dVbar22 = (w~^T P22 w~ / n) e w~^T`` and
    ``dP22 = ((e . Vbar22 w~) / n) w~ w~^T``."""
    n, m = X.shape
    p = wt.shape[0]
    q = p - 1
    _readout_reduced(X, wt, params, out, work)
    bv = work[5, :q]
    c = _cubic(wt, params, m, work[2, :p], bv) / n
    res = work[4, :q]
    loss = 0.0
    eb = 0.0
    for i in range(q):
        out[i] = out[i] + c * bv[i]
        res[i] = out[i] - target[i]
        loss += res[i] * res[i]
        eb += res[i] * bv[i]
    _grad_reduced(X, wt, params, res, grad, work)
    gP22, gV22T = cubic_blocks_of(grad, m, p)
    g = eb / n
    for j in range(p):                        # dP22[j] = (g w~_j) w~;  dVbar22^T[j] = (c w~_j) e
        gj = g * wt[j]
        row = gP22[j]
        for k in range(p):
            row[k] = gj * wt[k]
        cj = c * wt[j]
        row = gV22T[j]
        for i in range(q):
            row[i] = cj * res[i]
    return 0.5 * loss


# --------------------------------------------------------------------- Adam

@njit(**_JIT)
def adam_update(params, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps):
    """One Adam step (``torch.optim.Adam``, single-tensor path, in place):
    ``m <- m + (1 - b1)(g - m)``, ``v <- b2 v + (1 - b2) g g``,
    ``theta <- theta - lr/(1 - b1^t) m / (sqrt(v)/sqrt(1 - b2^t) + eps)``;
    ``step`` is ``t`` after the increment (a float, as torch's).  The
    division by ``sqrt(1 - b2^t)`` is a multiplication by its reciprocal
    (one rounding apart from torch; one division fewer per entry, and the
    two divisions and the square root bound this loop)."""
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    neg_step_size = -(lr / bc1)
    inv_bc2_sqrt = 1.0 / bc2 ** 0.5
    w1 = 1.0 - beta1
    w2 = 1.0 - beta2
    for i in range(params.shape[0]):
        g = grad[i]
        mi = exp_avg[i] + w1 * (g - exp_avg[i])
        vi = exp_avg_sq[i] * beta2 + w2 * g * g
        exp_avg[i] = mi
        exp_avg_sq[i] = vi
        params[i] = params[i] + neg_step_size * mi / (math.sqrt(vi) * inv_bc2_sqrt + eps)


@njit(**_JIT)
def lr_at(lr, decay, every, mdp_index):
    """Learning rate of MDP ``mdp_index``: ``lr * decay ** (mdp_index // every)``
    (``TrainConfig.lr_at`` with one MDP per batch)."""
    return lr * decay ** float(mdp_index // every)


# ------------------------------------------------------------ frame loop

@njit(**_JIT)
def frame_data(F, FT, T_cdf, R, gamma, w, s0, u, epsilon, alpha, Q, pi_cdf, s, a, r, X, wt, target):
    """One frame's data (Algorithm 1): ``Q_w`` of every pair (``Q``, from
    ``FT`` of :func:`features_t`), the epsilon-greedy CDF of ``w``
    (``pi_cdf``), the window from the ``2n+1`` uniforms ``u`` (``s``, ``a``,
    ``r``), the context ``X`` and ``w~ = [1; w]`` (paper eq. 4) and the
    SARSA teacher ``target`` (paper eq. 2), all written in place."""
    q_values(FT, w, Q)
    egreedy_cdf_q(Q, F.shape[1], epsilon, pi_cdf)
    sample_window(T_cdf, pi_cdf, R, s0, u, s, a, r)
    sarsa_prompt(F, s, a, r, gamma, X)
    wt[0] = 1.0
    for k in range(w.shape[0]):
        wt[1 + k] = w[k]
    sarsa_teacher_q(F, Q, s, a, r, gamma, w, alpha, target)


@njit(**_JIT)
def run_mdp_reduced(F, T_cdf, R, gamma, w, s0, U, epsilon, alpha, params, exp_avg, exp_avg_sq, step, lr,
                    beta1, beta2, eps, losses, pi_cdf, s, a, r, X, wt, target, out, grad, work, Q, FT):
    """Algorithm 1's frame loop for one MDP, reduced block (see
    :func:`make_mdp_kernel` for the arguments)."""
    features_t(F, FT)
    for f in range(U.shape[0]):
        frame_data(F, FT, T_cdf, R, gamma, w, s0, U[f], epsilon, alpha, Q, pi_cdf, s, a, r, X, wt, target)
        losses[f] = loss_grad_reduced(X, wt, params, target, out, grad, work)
        step += 1.0
        adam_update(params, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
        w[:] = target
        s0 = s[r.shape[0]]
    return s0, step


@njit(**_JIT)
def run_mdp_full(F, T_cdf, R, gamma, w, s0, U, epsilon, alpha, params, exp_avg, exp_avg_sq, step, lr,
                 beta1, beta2, eps, losses, pi_cdf, s, a, r, X, wt, target, out, grad, work, Q, FT):
    """Algorithm 1's frame loop for one MDP, full block (cubic term live)."""
    features_t(F, FT)
    for f in range(U.shape[0]):
        frame_data(F, FT, T_cdf, R, gamma, w, s0, U[f], epsilon, alpha, Q, pi_cdf, s, a, r, X, wt, target)
        losses[f] = loss_grad_full(X, wt, params, target, out, grad, work)
        step += 1.0
        adam_update(params, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
        w[:] = target
        s0 = s[r.shape[0]]
    return s0, step


def make_mdp_kernel(loss_grad):
    """The frame loop of :func:`run_mdp_reduced` / :func:`run_mdp_full`
    around any ``loss_grad(X, wt, params, target, out, grad, work) -> loss``
    (a test's faulty variant, say); compiled on first call, not cached
    (numba cannot cache a closure over a compiled function).

    Kernel signature: ``run_mdp(F, T_cdf, R, gamma, w, s0, U, epsilon,
    alpha, params, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
    losses, pi_cdf, s, a, r, X, wt, target, out, grad, work, Q, FT) -> (s0,
    step)``.  It runs ``U.shape[0]`` frames in place: per frame ``f``,
    :func:`frame_data` from ``U[f]``, ``losses[f]``, one Adam step on
    ``params`` (``step`` counts steps, as a float), then ``w <- target``
    and ``s0 <- s_n``.  The buffers from ``pi_cdf`` on
    (:class:`Workspace`) hold the last frame's intermediates on return.
    """
    @njit(**{**_JIT, "cache": False})
    def run_mdp(F, T_cdf, R, gamma, w, s0, U, epsilon, alpha, params, exp_avg, exp_avg_sq, step, lr,
                beta1, beta2, eps, losses, pi_cdf, s, a, r, X, wt, target, out, grad, work, Q, FT):
        features_t(F, FT)
        for f in range(U.shape[0]):
            frame_data(F, FT, T_cdf, R, gamma, w, s0, U[f], epsilon, alpha, Q, pi_cdf, s, a, r, X, wt, target)
            losses[f] = loss_grad(X, wt, params, target, out, grad, work)
            step += 1.0
            adam_update(params, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
            w[:] = target
            s0 = s[r.shape[0]]
        return s0, step

    return run_mdp


#: The two production kernels (compiled at first use, cached on disk).
RUN_MDP = {"reduced": run_mdp_reduced, "full": run_mdp_full}


# ------------------------------------------------- batched check stream

@njit(**_JIT)
def _abs_into(src, dst):
    for i in range(src.shape[0]):
        dst[i] = abs(src[i])


@njit(**_JIT)
def check_frames(F, T_cdf, R, gamma, w, s0, U, epsilon, alpha, params, params_abs, coef, stats, keep, thetas,
                 targets, gots):
    """``U.shape[0]`` frames of Algorithm 1's stream for ``B`` MDPs, each
    prompt's block read-out compared with the teacher (``icrl-verify check``).

    Per MDP ``b`` and frame ``f``: :func:`frame_data` (window from the
    uniforms ``U[f, b]``, epsilon-greedy in ``w[b]``; prompt; SARSA
    teacher), the Lemma C.1 read-out of the full blocks ``params`` (flat,
    ``full`` layout: the cubic term included) and, per entry ``i``, the
    rounding bound of ``numerics.core.tolerances.rounding_bound``: ``coef .
    (|w_i|, linear_i, cubic_i, |w_i|, increment_i)`` with the read-out's
    magnitudes (its linear and cubic terms on ``|X|``, ``|w~|``,
    ``params_abs = |params|``) and the teacher's (``|w|`` and ``alpha (1/n)
    sum_t (|r_t| + gamma |w|.|phi+_t| + |w|.|phi_t|) |phi_t|``); ``coef``
    comes from ``numerics.core.tolerances.bound_coefficients``.
    ``stats[f, b]``: the largest error, the largest error over its bound
    (``inf`` for a NaN, or an error where the bound is 0), that entry's
    bound, the largest bound, the largest increment magnitude (the signal).
    ``thetas``, ``targets``, ``gots`` (``frames x B x d``) keep ``w``, the
    teacher and the read-out.  Then ``w[b] <- teacher``, ``s0[b] <- s_n``
    (in place, so consecutive calls continue the stream).

    Shapes: ``F`` ``B x S x A x d``; ``T_cdf``, ``R`` ``B x S x A x S``;
    ``gamma`` ``B``; ``w`` ``B x d``; ``s0`` ``B`` (int64); ``U``
    ``frames x B x (2n+1)`` (``torch.rand(frames, 2n+1, B)`` with its last
    two axes swapped: the uniforms of ``frames`` successive frames of the
    torch stream); ``stats`` ``frames x B x 5``.
    """
    B, S, A, d = F.shape
    n = (U.shape[2] - 1) // 2
    m, p = 2 * d + 1, d + 1
    pi_cdf = np.empty((S, A))
    s = np.empty(n + 1, np.int64)
    a = np.empty(n + 1, np.int64)
    r = np.empty(n)
    X = np.empty((n, m))
    Xa = np.empty((n, m))
    wt = np.empty(p)
    wta = np.empty(p)
    target = np.empty(d)
    out = np.empty(d)
    outa = np.empty(d)
    inc = np.empty(d)
    work = np.zeros((6, max(m, p)))
    Q = np.empty(S * A)
    Qa = np.empty(S * A)
    FT = np.empty((d, S * A))
    FTa = np.empty((d, S * A))
    wb = np.empty(d)
    cubic = False                                 # P22 = Vbar22 = 0: the cubic term adds exactly +0.0
    for k in range(p * m + m * d, params.shape[0]):
        cubic = cubic or params[k] != 0.0
    for b in range(B):
        wb[:] = w[b]
        sb = s0[b]
        features_t(F[b], FT)
        for k in range(d):
            _abs_into(FT[k], FTa[k])
        g = abs(gamma[b])
        for f in range(U.shape[0]):
            if keep:
                thetas[f, b] = wb
            frame_data(F[b], FT, T_cdf[b], R[b], gamma[b], wb, sb, U[f, b], epsilon, alpha, Q, pi_cdf, s, a, r, X,
                       wt, target)
            if cubic:
                readout_full(X, wt, params, out, work)
            else:
                readout_reduced(X, wt, params, out, work)
            for t in range(n):
                _abs_into(X[t], Xa[t])
            _abs_into(wt, wta)
            readout_reduced(Xa, wta, params_abs, outa, work)        # |w| + the linear term's magnitudes
            cub = 0.0
            bva = work[5, :d]
            if cubic:
                cub = _cubic(wta, params_abs, m, work[2, :p], bva) / n
            q_values(FTa, wta[1:], Qa)                              # |w|.|phi| of every pair
            for k in range(d):
                inc[k] = 0.0
            for t in range(n):
                phi = F[b, s[t], a[t]]
                dm = abs(r[t]) + g * Qa[s[t + 1] * A + a[t + 1]] + Qa[s[t] * A + a[t]]
                for k in range(d):
                    inc[k] += dm * abs(phi[k])
            e, ratio, b_at, bmax, sig = 0.0, 0.0, 0.0, 0.0, 0.0
            for i in range(d):
                inc[i] = abs(alpha) * (inc[i] / n)
                wa = wta[1 + i]
                lin = max(outa[i] - wa, 0.0)
                cu = cub * bva[i] if cubic else 0.0
                bnd = coef[0] * wa + coef[1] * lin + coef[2] * cu + coef[3] * wa + coef[4] * inc[i]
                diff = abs(out[i] - target[i])
                if diff > e or math.isnan(diff):     # a NaN is kept (never hidden by max)
                    e = diff
                if diff == 0.0:
                    rt = 0.0
                elif diff <= bnd:
                    rt = diff / bnd
                else:
                    rt = diff / bnd if bnd > 0.0 and diff > bnd else math.inf
                if rt > ratio or i == 0:
                    ratio, b_at = rt, bnd
                bmax = max(bmax, bnd)
                sig = max(sig, inc[i])
            if math.isnan(e):
                e = math.inf
            stats[f, b, 0] = e
            stats[f, b, 1] = ratio
            stats[f, b, 2] = b_at
            stats[f, b, 3] = bmax
            stats[f, b, 4] = sig
            if keep:
                targets[f, b] = target
                gots[f, b] = out
            wb[:] = target
            sb = s[n]
        w[b] = wb
        s0[b] = sb


@dataclass
class Workspace:
    """Preallocated buffers of one frame (the kernels allocate nothing)."""

    pi_cdf: np.ndarray   # S x A
    s: np.ndarray        # n+1, int64
    a: np.ndarray        # n+1, int64
    r: np.ndarray        # n
    X: np.ndarray        # n x m
    wt: np.ndarray       # p
    target: np.ndarray   # q
    out: np.ndarray      # q
    grad: np.ndarray     # num_params
    work: np.ndarray     # 6 x max(m, p)
    Q: np.ndarray        # S A: Q_w of every pair
    FT: np.ndarray       # d x S A: the features, transposed (:func:`features_t`)

    @staticmethod
    def new(S: int, A: int, d: int, n: int, size: int) -> "Workspace":
        m, p = 2 * d + 1, d + 1
        return Workspace(np.zeros((S, A)), np.zeros(n + 1, np.int64), np.zeros(n + 1, np.int64), np.zeros(n),
                         np.zeros((n, m)), np.zeros(p), np.zeros(d), np.zeros(d), np.zeros(size),
                         np.zeros((6, max(m, p))), np.zeros(S * A), np.zeros((d, S * A)))

    def arrays(self):
        return (self.pi_cdf, self.s, self.a, self.r, self.X, self.wt, self.target, self.out, self.grad, self.work,
                self.Q, self.FT)


# -------------------------------------------------------- flat parameters

def _block_specs(index, parameterization: str):
    """``(name, slices, stored shape, transposed)`` of each block in flat order."""
    m, p, q = index.m, index.p, index.q
    specs = [("P12", ("P", index.p12), (p, m), True), ("Vbar21", ("V", index.vbar21), (m, q), True)]
    if parameterization == "full":
        specs += [("P22", ("P", index.p22), (p, p), False), ("Vbar22", ("V", index.vbar22), (p, q), True)]
    return specs


def num_params(index, parameterization: str) -> int:
    """Length of the flat live-parameter vector."""
    return sum(r * c for _, _, (r, c), _ in _block_specs(index, parameterization))


def flatten_blocks(index, P: torch.Tensor, V: torch.Tensor, parameterization: str) -> np.ndarray:
    """The flat live-parameter vector (kernel layout: ``P12^T``,
    ``Vbar21^T``[, ``P22``, ``Vbar22^T``], row-major) of full weights
    ``P, V`` (``D x D``; block slices from ``index``, a ``theory.spec.Index``)."""
    mats = {"P": P, "V": V}
    parts = []
    for _, (which, sl), _, transposed in _block_specs(index, parameterization):
        b = mats[which][sl].detach().cpu().numpy().astype(np.float64)
        parts.append((b.T if transposed else b).ravel())
    return np.concatenate(parts)


def unflatten_blocks(index, params: np.ndarray, parameterization: str) -> dict[str, torch.Tensor]:
    """``{"P12", "Vbar21"[, "P22", "Vbar22"]}`` tensors (paper shapes:
    ``m x p``, ``q x m``, ``p x p``, ``q x p``) of a flat vector."""
    specs = _block_specs(index, parameterization)
    size = num_params(index, parameterization)
    if params.shape != (size,):
        raise InputError("params", f"expected {size} entries for m = {index.m} ({parameterization}), got {params.shape}")
    out, o = {}, 0
    for name, _, (r, c), transposed in specs:
        b = params[o:o + r * c].reshape(r, c)
        out[name] = torch.from_numpy((b.T if transposed else b).copy())
        o += r * c
    return out


def embed_blocks(index, params: np.ndarray, parameterization: str, P0: torch.Tensor, V0: torch.Tensor):
    """Full ``(P, V)``: the live blocks of ``params`` written into copies of
    ``P0``, ``V0`` (whose other entries the kernels never change)."""
    P, V = P0.clone(), V0.clone()
    mats = {"P": P, "V": V}
    for (name, (which, sl), _, _), b in zip(_block_specs(index, parameterization),
                                         unflatten_blocks(index, params, parameterization).values()):
        mats[which][sl] = b
    return P, V
