"""``icrl-verify richness``: is the training distribution rich?  The Hessian
of the teacher-mimicking loss on the optimal set, its kernel classified, and
the local rate it predicts (THEORY.md section 5, Theorem 3.2).

On a fixed sample of prompts drawn as in Algorithm 1, at the construction
theta* (Theorem 3.1 / 3.3, from ``theory``), the Hessian is the Gauss-Newton
matrix E[J^T J] (closed form, ``numerics.hessian``).  Its kernel K is split
into (a) the tangent of the symmetries (scaling; full parameterisation: the
never-read entries of Prop 3.1 and the antisymmetric part of P22), (b) data
invariances: directions that stay exactly flat (the second-order term of the
read-out vanishes modulo the range of J, against every kernel direction),
(c) the non-flat rest, along which the loss rises at quartic order.

Verdict: identifiable (K = (a)), morse-bott (K = (a) + (b)), fails (some
(c)).  mu = smallest eigenvalue off K, with a parametric-bootstrap 95%
interval (fresh MDP samples of the same size from the distribution);
predicted local rate of the loss 2 mu.  Exit 0 for identifiable or
morse-bott, 1 for fails, 2 for bad input.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np
import scipy.linalg
import torch

from numerics import DTYPE
from numerics.algorithms import check_algorithm, layout
from numerics.block import block_literal
from numerics.config import add_common, distribution_from_args, positive_int
from numerics.constructions import unread_mask
from numerics.distributions import MDPDistribution
from numerics.errors import InputError
from numerics.hessian import (PromptSample, Structure, bilinear_reduced, gauss_newton_reduced,
                              join_reduced, loss, loss_scale, reduced_count, sample_prompts,
                              split_reduced, structure, vjp_reduced)
from numerics.prompts import assemble_prompt
from numerics.tolerances import (FLAT_RTOL, FLAT_STEP_RTOL, KERNEL_RTOL, RICHNESS_LAMMAX_RTOL,
                                 RICHNESS_SHIFT_RTOL)
from theory.symmetry import symmetry_tangent_dim

#: Reduced parameter counts up to this use a dense eigensolver (full
#: spectrum); above it, shift-invert Lanczos (``eigsh``) for the bottom of
#: the spectrum and Lanczos for the top.
DENSE_EIGH_LIMIT = 2500

PARAMETERIZATIONS = ("reduced", "full")

#: Default parametric-bootstrap replicates above DENSE_EIGH_LIMIT (each
#: replicate: a fresh sample, its closed-form H, Lanczos for lambda_max, one
#: Cholesky and shift-invert Lanczos; about 8-12 s at d = 36 on 2 shared
#: cores), chosen so the Section 4.1 report stays under 60 s.
BIG_BOOTSTRAP = 3



# ---------------------------------------------------------------------------
# Spectrum of E[J^T J]
# ---------------------------------------------------------------------------

def cholesky_solver(A: np.ndarray):
    """``x -> A^{-1} x`` for a symmetric positive definite ``A`` (one
    Cholesky factorisation; torch's LAPACK is ~4x faster than scipy's here)."""
    L = np.asfortranarray(torch.linalg.cholesky(torch.from_numpy(A)).numpy())

    def solve(x):
        return scipy.linalg.cho_solve((L, True), x, check_finite=False)
    return solve


class Spectrum:
    """Bottom of the spectrum of ``H`` (and all of it when dense), the
    kernel basis, ``mu`` and a solver for ``H^+`` on the range."""

    def __init__(self, H: np.ndarray):
        import scipy.sparse.linalg as sla
        self.H = H
        count = H.shape[0]
        self.dense = count <= DENSE_EIGH_LIMIT
        if self.dense:
            vals, vecs = scipy.linalg.eigh(H, check_finite=False)
            self.lam_max = float(vals[-1])
            self.method = "dense (scipy.linalg.eigh)"
        else:
            self.lam_max = float(sla.eigsh(H, k=1, which="LA", return_eigenvectors=False, tol=1e-10)[0])
            sigma = RICHNESS_SHIFT_RTOL * self.lam_max
            self._solve = cholesky_solver(H + sigma * np.eye(count))
            opinv = sla.LinearOperator(H.shape, matvec=self._solve, dtype=np.float64)
            k = min(count - 2, 24)
            while True:
                v0 = np.ones(count) / math.sqrt(count)
                _, vecs = sla.eigsh(opinv, k=k, which="LA", v0=v0, tol=1e-12)
                vecs, _ = np.linalg.qr(vecs)
                small = vecs.T @ H @ vecs
                vals, rot = np.linalg.eigh(0.5 * (small + small.T))
                vecs = vecs @ rot
                nker = int((vals < KERNEL_RTOL * self.lam_max).sum())
                if k - nker >= 8 or k >= count - 2:
                    break
                k = min(count - 2, 2 * nker + 16)
            self.method = f"shift-invert Lanczos (scipy.sparse.linalg.eigsh, bottom {k} of {count}), Rayleigh quotients"
        self.values, self.vectors = vals, vecs
        self.threshold = KERNEL_RTOL * self.lam_max
        ker = vals < self.threshold
        self.kernel = vecs[:, ker]
        nz = vals[~ker]
        self.mu = float(nz[0]) if nz.size else math.nan
        self.largest_kernel = float(np.abs(vals[ker]).max()) if ker.any() else 0.0
        self.gap = self.mu / max(self.largest_kernel, np.finfo(float).tiny) if nz.size else math.nan
        if self.dense:
            self._nz_vals, self._nz_vecs = vals[~ker], vecs[:, ~ker]

    def pinv_apply(self, G: np.ndarray) -> np.ndarray:
        """``H^+ G`` for columns ``G`` (projected off the kernel)."""
        K = self.kernel
        G = G - K @ (K.T @ G)
        if self.dense:
            return self._nz_vecs @ ((self._nz_vecs.T @ G) / self._nz_vals[:, None])
        x = self._solve(G)
        for _ in range(4):        # iterative refinement: error factor sigma / mu per step
            x = x + self._solve(G - self.H @ x)
            x = x - K @ (K.T @ x)
        return x


# ---------------------------------------------------------------------------
# Symmetry tangent (a)
# ---------------------------------------------------------------------------

def scaling_tangent(P12s, Vbar21s) -> np.ndarray:
    """Tangent of ``c -> (c P12*, Vbar21*/c)`` at ``c = 1``: ``(P12*, -Vbar21*)``."""
    return join_reduced(P12s, -Vbar21s).numpy()


def check_full_symmetries(sample: PromptSample, gen: torch.Generator, prompts: int = 64) -> dict:
    """Independent numeric check (literal block, paper eq. 1) that the
    never-read entries and antisymmetric ``P22`` do not change the read-out,
    at a random point ``(P, V)`` (not only at theta*), and their count."""
    alg, d = sample.algorithm, sample.d
    m, p, q = sample.m, sample.p, sample.q
    D = m + p
    sub = sample.subset(torch.arange(min(prompts, sample.N)))
    Hp = assemble_prompt(sub.X, sub.wt)
    P = torch.randn(D, D, generator=gen, dtype=DTYPE)
    V = torch.randn(D, D, generator=gen, dtype=DTYPE)
    mP, mV = unread_mask(alg, d)
    A = torch.randn(p, p, generator=gen, dtype=DTYPE)
    A = A - A.T
    P2 = torch.where(mP, torch.randn(D, D, generator=gen, dtype=DTYPE), P)
    P2[m:, m:] = P2[m:, m:] + A
    V2 = torch.where(mV, torch.randn(D, D, generator=gen, dtype=DTYPE), V)
    y1 = block_literal(P, V, Hp)[..., -q:, -1]
    y2 = block_literal(P2, V2, Hp)[..., -q:, -1]
    scale = float(y1.abs().max())
    count = int(mP.sum() + mV.sum()) + p * (p - 1) // 2
    return dict(max_readout_change=float((y1 - y2).abs().max()), readout_scale=scale,
                never_read=int(mP.sum() + mV.sum()), antisymmetric_p22=p * (p - 1) // 2, count=count)


# ---------------------------------------------------------------------------
# Flatness of kernel directions (b) vs (c)
# ---------------------------------------------------------------------------

def projected_gram(st: Structure, X: torch.Tensor, spec: Spectrum, U: np.ndarray, chunk: int = 256):
    """Gram ``M[a, a'] = sum_b <Pi B(U_a, U_b), Pi B(U_a', U_b)>`` of the
    read-out's second-order term on the kernel basis ``U``, with ``Pi`` the
    projection off the range of ``J`` (inner product: mean over prompts).
    Also returns the unprojected Gram."""
    k = U.shape[1]
    N = X.shape[0]
    Ut = torch.as_tensor(U.T.copy(), dtype=DTYPE)
    G0 = torch.zeros(k, k, dtype=DTYPE)
    g = torch.zeros(k * k, st.count, dtype=DTYPE)
    for j0 in range(0, N, chunk):
        idx = slice(j0, min(N, j0 + chunk))
        sub = Structure(st.G[idx], st.s[idx], st.wt[idx], st.m, st.p)
        B = bilinear_reduced(sub, X[idx], Ut)                       # n x k x k x q
        G0 += torch.einsum("nabq,ncbq->ac", B, B) / N
        w = torch.full((B.shape[0],), 1.0 / N, dtype=DTYPE)
        g += vjp_reduced(sub, B.reshape(B.shape[0], k * k, st.q), w)
    gn = g.numpy().T                                                # count x k^2
    hg = spec.pinv_apply(gn)
    corr = np.einsum("pab,pcb->ac", gn.reshape(-1, k, k), hg.reshape(-1, k, k))
    M = G0.numpy() - corr
    return 0.5 * (M + M.T), G0.numpy()


def _null_space(M: np.ndarray, rtol: float, scale: float | None = None):
    vals, vecs = np.linalg.eigh(0.5 * (M + M.T))
    top = scale if scale is not None else (abs(vals).max() if vals.size else 0.0)
    thr = rtol * top
    null = vals <= thr
    return vecs[:, null], vals, thr


def flat_classification(sample: PromptSample, st: Structure, spec: Spectrum) -> dict:
    """Radical of the (projected) second-order form on the reduced kernel."""
    U = spec.kernel
    k = U.shape[1]
    if k == 0:
        return dict(radical=U, values=np.zeros(0), threshold=0.0, gap=math.nan)
    M, G0 = projected_gram(st, sample.X, spec, U)
    scale = max(float(np.linalg.eigvalsh(G0).max()), np.finfo(float).tiny)
    R, vals, thr = _null_space(M, FLAT_RTOL, scale)
    above = vals[vals > thr]
    below = vals[vals <= thr]
    gap = (float(above.min()) / max(float(np.abs(below).max()) if below.size else 0.0, 1e-300)) if above.size else math.inf
    return dict(radical=U @ R, values=vals / scale, threshold=FLAT_RTOL, gap=gap, nonradical=U @ _complement(R))


def _complement(R: np.ndarray) -> np.ndarray:
    k, r = R.shape
    if r == 0:
        return np.eye(k)
    Q, _ = np.linalg.qr(R, mode="complete")
    return Q[:, r:]


def straight_flat(st: Structure, X: torch.Tensor, R: np.ndarray) -> np.ndarray:
    """Subspace of span ``R`` along which straight lines are exactly flat:
    the radical of the unprojected second-order form on span ``R``."""
    if R.shape[1] == 0:
        return R
    Rt = torch.as_tensor(R.T.copy(), dtype=DTYPE)
    B = bilinear_reduced(st, X, Rt)
    G0 = torch.einsum("nabq,ncbq->ac", B, B).numpy() / X.shape[0]
    scale = max(float(np.linalg.eigvalsh(G0).max()), 1e-300)
    F, _, _ = _null_space(G0, FLAT_RTOL, scale)
    return R @ F


def finite_steps(sample: PromptSample, F: np.ndarray, gen: torch.Generator, trials: int = 5) -> float:
    """Largest loss (relative to the sample's scale) after a unit step along
    random combinations of the columns of ``F`` (scaled to the norm of theta*)."""
    if F.shape[1] == 0:
        return 0.0
    P12s, Vbar21s = sample.construction()
    base = join_reduced(P12s, Vbar21s)
    worst = 0.0
    for _ in range(trials):
        c = torch.randn(F.shape[1], generator=gen, dtype=DTYPE).numpy()
        v = torch.as_tensor(F @ c, dtype=DTYPE)
        v = v / v.norm() * base.norm()
        P, V = split_reduced(base + v, sample.m, sample.p)
        worst = max(worst, float(loss(sample, P, V)) / loss_scale(sample))
    return worst


def quartic_rise(sample: PromptSample, st: Structure, spec: Spectrum, v: np.ndarray, v22=None) -> dict:
    """Loss along ``theta* + t v`` at small ``t`` divided by ``t^4`` (constant
    at quartic order), and the quartic coefficient left after the best
    second-order correction inside the range of J: ``1/2 |Pi B(v, v)|^2``."""
    P12s, Vbar21s = sample.construction()
    base = join_reduced(P12s, Vbar21s)
    vt = torch.as_tensor(v, dtype=DTYPE)
    ratios = []
    for t in (1e-3, 1e-2, 1e-1):
        P, V = split_reduced(base + t * vt, sample.m, sample.p)
        extra = () if v22 is None else (t * v22[0], t * v22[1])
        ratios.append(float(loss(sample, P, V, *extra)) / t ** 4)
    # projected coefficient: second-order term b_j = B_j(v, v) (+ 22 part)
    b = bilinear_reduced(st, sample.X, vt[None])[:, 0, 0, :]
    if v22 is not None:
        P22, Vbar22 = v22
        quad = ((sample.wt @ P22.T) * sample.wt).sum(-1)
        b = b + (quad / sample.n)[:, None] * (sample.wt @ Vbar22.T)
    N = b.shape[0]
    g = vjp_reduced(st, b[:, None, :], torch.full((N,), 1.0 / N, dtype=DTYPE)).numpy().T
    coef = 0.5 * (float((b * b).sum(-1).mean()) - float(g[:, 0] @ spec.pinv_apply(g)[:, 0]))
    return dict(loss_over_t4=ratios, projected_quartic=coef)


# ---------------------------------------------------------------------------
# Sentences in the prompt's own terms
# ---------------------------------------------------------------------------

def _block_text(vals: np.ndarray, name: str, gamma: float | None) -> str:
    if vals.size == 0:
        return ""
    if np.allclose(vals, 0, atol=1e-9):
        return "0"
    if np.allclose(vals, vals[0], atol=1e-9):
        x = float(vals[0])
        one = " 1" if vals.size > 1 else ""
        if abs(abs(x) - 1) < 1e-9:
            return "-1" if x < 0 else "1"
        if gamma is not None and gamma != 0 and abs(abs(x) - gamma) < 1e-9:
            return ("-" if x < 0 else "") + "gamma" + one
        return f"{x:.4g}" + one
    return "[" + ", ".join(f"{float(x):.3g}" for x in vals) + "]"


def describe_vector(c: np.ndarray, blocks, gamma: float | None) -> str:
    """``(gamma 1, -1, 0)`` over the layout's named blocks."""
    c = c / np.abs(c).max()
    nz = np.flatnonzero(np.abs(c) > 1e-9)
    if nz.size and c[nz[0]] < 0:
        c = -c
    parts = [f"{_block_text(c[s:e], b, gamma)}" for b, (s, e) in blocks]
    names = ", ".join(b for b, _ in blocks)
    return "(" + ", ".join(parts) + ")" + f" over ({names})"


def invariance_sentences(sample: PromptSample, R: np.ndarray, scaling: np.ndarray) -> dict:
    """Explain the data invariances by null vectors of the stacked context
    columns (``x_i . c = 0`` for every column of every prompt) and of the
    parameter columns (``w~ . b = 0``); report how many of the found
    invariance dimensions they span."""
    m, p, q = sample.m, sample.p, sample.q
    lay = layout(sample.algorithm)
    Xf = sample.X.reshape(-1, m)
    C = (Xf.T @ Xf).numpy() / Xf.shape[0]
    W = (sample.wt.T @ sample.wt).numpy() / sample.N
    cn, _, _ = _null_space(C, KERNEL_RTOL)
    bn, _, _ = _null_space(W, KERNEL_RTOL)
    gammas = torch.unique(sample.gamma)
    gamma = float(gammas[0]) if gammas.numel() == 1 else None
    ctx_blocks = list(lay.offsets("context", sample.d).items())
    par_blocks = list(lay.offsets("params", sample.d).items())
    sentences, dirs = [], []
    # blocks that are identically zero in every context column (C's diagonal block is 0)
    zero_blocks = [(b, s, e) for b, (s, e) in ctx_blocks if np.abs(C[s:e, s:e]).max() <= KERNEL_RTOL * np.abs(C).max()]
    for b, s, e in zero_blocks:
        sentences.append(f"block {b} is zero in every context column: each of its {e - s} coordinates c gives "
                         f"P12 + c v^T and Vbar21 + u c^T ({p + q} directions each)")
    zmask = np.zeros(m, dtype=bool)
    for _, s, e in zero_blocks:
        zmask[s:e] = True
    rest = cn.copy()
    rest[zmask] = 0.0
    if rest.size:
        uu, sv, _ = np.linalg.svd(rest, full_matrices=False)
        rest = uu[:, sv > 1e-6]
    for i in range(rest.shape[1]):
        c = rest[:, i]
        sentences.append(f"every context column x_i is orthogonal to c = {describe_vector(c, ctx_blocks, gamma)}: "
                         f"P12 + c v^T (v in R^{p}) and Vbar21 + u c^T (u in R^{q}) leave every read-out unchanged "
                         f"({p + q} directions)")
    for i in range(cn.shape[1]):
        c = cn[:, i]
        for b in range(p):
            P = np.zeros((m, p)); P[:, b] = c
            dirs.append(np.concatenate([P.ravel(), np.zeros(q * m)]))
        for k in range(q):
            V = np.zeros((q, m)); V[k] = c
            dirs.append(np.concatenate([np.zeros(m * p), V.ravel()]))
    for i in range(bn.shape[1]):
        b = bn[:, i]
        sentences.append(f"every parameter column w~ is orthogonal to b = {describe_vector(b, par_blocks, gamma)}: "
                         f"P12 + a b^T (a in R^{m}) leaves every read-out unchanged ({m} directions)")
        for a in range(m):
            P = np.zeros((m, p)); P[a] = b
            dirs.append(np.concatenate([P.ravel(), np.zeros(q * m)]))
    E = np.array(dirs).T if dirs else np.zeros((R.shape[0], 0))
    base = np.column_stack([scaling / np.linalg.norm(scaling)])

    def rank(A):
        return int(np.linalg.matrix_rank(A, tol=1e-8 * max(1.0, np.abs(A).max()))) if A.size else 0
    found = rank(np.column_stack([base, R])) - 1
    explained = rank(np.column_stack([base, E])) - 1 if E.size else 0
    inside = rank(np.column_stack([base, R, E])) == rank(np.column_stack([base, R])) if E.size else True
    return dict(sentences=sentences, found=found, explained=explained, explanations_in_kernel=bool(inside))


# ---------------------------------------------------------------------------
# The whole report
# ---------------------------------------------------------------------------

def _full_22_part(sample: PromptSample) -> dict:
    """Second-order analysis of the (P22 symmetric, Vbar22) directions of the
    full parameterisation: radical = {w~^T P22 w~ = 0 and Vbar22 w~ = 0 on
    every prompt} (exact; see docs/richness.md), computed from the sample."""
    p, q = sample.p, sample.q
    wt = sample.wt.numpy()
    iu = np.triu_indices(p)
    mono = (wt[:, iu[0]] * wt[:, iu[1]])
    r_mono = int(np.linalg.matrix_rank(mono, tol=1e-10 * max(1.0, np.abs(mono).max()) * max(mono.shape)))
    r_w = int(np.linalg.matrix_rank(wt, tol=1e-10 * max(1.0, np.abs(wt).max()) * max(wt.shape)))
    dim = p * (p + 1) // 2 + q * p
    radical = (p * (p + 1) // 2 - r_mono) + q * (p - r_w)
    return dict(dim=dim, radical=radical, rank_quadratic_forms=r_mono, rank_parameter_columns=r_w)


def smallest_off_kernel(H: np.ndarray, lam_max: float, kernel_dim: int, dense: bool) -> float:
    """Smallest eigenvalue of ``H`` above ``KERNEL_RTOL * lam_max``: dense
    ``eigvalsh`` for small ``H``; otherwise shift-invert Lanczos on one
    Cholesky factor of ``H + sigma I`` with Rayleigh quotients."""
    thr = KERNEL_RTOL * lam_max
    if dense:
        vals = scipy.linalg.eigvalsh(H, check_finite=False)
        nz = vals[vals >= thr]
        return float(nz[0]) if nz.size else math.nan
    import scipy.sparse.linalg as sla
    count = H.shape[0]
    solve = cholesky_solver(H + RICHNESS_SHIFT_RTOL * lam_max * np.eye(count))
    opinv = sla.LinearOperator(H.shape, matvec=solve, dtype=np.float64)
    k = min(count - 2, kernel_dim + 6)
    _, vecs = sla.eigsh(opinv, k=k, which="LA", v0=np.ones(count) / math.sqrt(count), tol=1e-12)
    vecs, _ = np.linalg.qr(vecs)
    vals = np.linalg.eigvalsh(vecs.T @ H @ vecs)
    nz = vals[vals >= thr]
    return float(nz[0]) if nz.size else math.nan


#: Replicate ``k`` of the parametric bootstrap draws its sample with seed
#: ``seed + BOOTSTRAP_SEED_OFFSET + k`` (the main sample uses ``seed``, the
#: flatness checks ``seed + 1``): deterministic, and replicate ``k`` does not
#: depend on how many replicates are asked for.
BOOTSTRAP_SEED_OFFSET = 1000


def replicate_lam_max(H: np.ndarray, dense: bool) -> float:
    """Largest eigenvalue of a replicate's ``H`` (sets its kernel threshold):
    dense ``eigvalsh`` (top one only), or Lanczos to ``RICHNESS_LAMMAX_RTOL``."""
    if dense:
        n = H.shape[0]
        return float(scipy.linalg.eigvalsh(H, subset_by_index=[n - 1, n - 1], check_finite=False)[0])
    import scipy.sparse.linalg as sla
    v0 = np.ones(H.shape[0]) / math.sqrt(H.shape[0])      # fixed start: deterministic
    return float(sla.eigsh(H, k=1, which="LA", v0=v0, return_eigenvectors=False, tol=RICHNESS_LAMMAX_RTOL)[0])


def bootstrap_mu(dist: MDPDistribution, sample: PromptSample, spec: Spectrum, reps: int, *, seed: int,
                 epsilon: float, progress=None) -> list[dict]:
    """Parametric bootstrap of mu over MDP samples.

    The MDP distribution is known, so each of the ``reps`` replicates draws
    a FRESH sample of the same size as ``sample`` (same number of MDPs,
    frames per MDP, context length n, epsilon, alpha, beta) with
    :func:`numerics.hessian.sample_prompts`, seed ``seed +
    BOOTSTRAP_SEED_OFFSET + k``; forms its ``E[J^T J]`` in closed form
    (:func:`structure`, :func:`gauss_newton_reduced`) and takes the smallest
    eigenvalue above ``KERNEL_RTOL`` times the replicate's own ``lambda_max``
    (:func:`smallest_off_kernel`, with the main sample's kernel dimension).
    The spread of the replicate mus is the sampling variability of mu for a
    sample of this size from this distribution.  Returns one dict per
    replicate: ``seed``, ``mu``, ``lambda_max``.
    """
    reps_out: list[dict] = []
    if reps == 0 or not math.isfinite(spec.mu):
        return reps_out
    if dist is None:
        raise InputError("bootstrap", "the parametric bootstrap draws fresh samples from the MDP distribution: "
                                      "pass the distribution (or bootstrap=0)")
    frames_per_mdp = sample.N // sample.mdps
    kernel_dim = spec.kernel.shape[1]
    for k in range(reps):
        rseed = seed + BOOTSTRAP_SEED_OFFSET + k
        fresh = sample_prompts(sample.algorithm, dist, mdps=sample.mdps, frames_per_mdp=frames_per_mdp,
                               n=sample.n, epsilon=epsilon, alpha=sample.alpha, beta=sample.beta, seed=rseed)
        Hk = gauss_newton_reduced(structure(fresh))
        lam = replicate_lam_max(Hk, spec.dense)
        reps_out.append(dict(seed=rseed, mu=smallest_off_kernel(Hk, lam, kernel_dim, spec.dense), lambda_max=lam))
        del Hk
        if progress:
            progress(1)
    return reps_out


def richness(dist: MDPDistribution, algorithm: str = "sarsa", parameterization: str = "reduced", *,
             mdps: int = 100, frames: int = 20, n: int = 20, epsilon: float = 0.1, alpha: float = 0.2,
             beta: float = 0.2, seed: int = 0, bootstrap: int = 20, sample: PromptSample | None = None,
             progress=None, keep: bool = False) -> dict:
    """The richness analysis (no files written).

    Returns a dict with the ``--json`` keys (``parameterization``,
    ``parameters``, ``kernel_dim``, ``symmetry_dim``, ``data_invariance_dim``,
    ``nonflat_dim``, ``mu``, ``mu_ci95``, ``verdict``) plus evidence
    (``details``).  With ``keep=True`` also ``_spectrum``, ``_sample`` and
    ``_structure`` (numpy / tensors, for the flow experiment and plots).
    """
    t0 = time.perf_counter()
    check_algorithm(algorithm)
    if parameterization not in PARAMETERIZATIONS:
        raise InputError("parameterization", f"unknown {parameterization!r}; expected reduced or full")
    if not isinstance(bootstrap, int) or bootstrap < 0:
        raise InputError("bootstrap", f"must be a non-negative integer, got {bootstrap!r}")
    if bootstrap > 0 and dist is None:
        raise InputError("bootstrap", "the parametric bootstrap draws fresh samples from the MDP distribution: "
                                      "pass the distribution (or bootstrap=0)")
    if sample is None:
        sample = sample_prompts(algorithm, dist, mdps=mdps, frames_per_mdp=frames, n=n, epsilon=epsilon,
                                alpha=alpha, beta=beta, seed=seed)
    m, p, q = sample.m, sample.p, sample.q
    count = reduced_count(m, p)
    if sample.N * q < count:
        raise InputError("prompts", f"{sample.N} prompts x {q} outputs < {count} reduced parameters: the sample "
                                    f"cannot determine the Hessian's rank; use at least {math.ceil(count / q)} prompts")
    gen = torch.Generator().manual_seed(seed + 1)
    st = structure(sample)
    H = gauss_newton_reduced(st)
    spec = Spectrum(H)
    P12s, Vbar21s = sample.construction()
    vs = scaling_tangent(P12s, Vbar21s)
    # (a) symmetries: scaling tangent in the kernel, exact orbit flat
    Hvs = float(np.linalg.norm(H @ vs) / (spec.lam_max * np.linalg.norm(vs)))
    K = spec.kernel
    vs_out = float(np.linalg.norm(vs - K @ (K.T @ vs)) / np.linalg.norm(vs)) if K.shape[1] else 1.0
    orbit = max(float(loss(sample, c * P12s, Vbar21s / c)) for c in (-2.0, 0.5, 3.0)) / loss_scale(sample)
    sym_formula = int(symmetry_tangent_dim(algorithm, parameterization, sample.d))
    at_star = float(loss(sample, P12s, Vbar21s)) / loss_scale(sample)
    if not at_star <= FLAT_STEP_RTOL:   # Gauss-Newton = Hessian needs a zero residual at theta*
        raise AssertionError(f"the construction does not fit the teacher on this sample: loss(theta*) / "
                             f"zero-update loss = {at_star:.3e} > {FLAT_STEP_RTOL:g}")
    sym_checks = dict(scaling_H_residual=Hvs, scaling_outside_kernel=vs_out, orbit_max_rel_loss=orbit,
                      theta_star_rel_loss=at_star)
    # (b)/(c) in the reduced block
    fl = flat_classification(sample, st, spec)
    R = fl["radical"]
    F = straight_flat(st, sample.X, R)
    step = finite_steps(sample, F, gen)
    red_kernel = K.shape[1]
    red_radical = R.shape[1]
    nonflat = red_kernel - red_radical
    rise = None
    if nonflat > 0:
        v = fl["nonradical"][:, 0]
        rise = quartic_rise(sample, st, spec, v / np.linalg.norm(v) * float(np.linalg.norm(vs)))
    expl = invariance_sentences(sample, R, vs)
    details = dict(prompts=sample.N, mdps=sample.mdps, frames_per_mdp=sample.N // sample.mdps, n=sample.n,
                   d=sample.d, m=m, p=p, q=q, reduced_parameters=count, eigensolver=spec.method,
                   lambda_max=spec.lam_max, kernel_threshold=spec.threshold, kernel_rtol=KERNEL_RTOL,
                   largest_kernel_eigenvalue=spec.largest_kernel, spectral_gap=spec.gap,
                   reduced_kernel_dim=red_kernel, symmetry_formula=sym_formula, symmetry_checks=sym_checks,
                   flat_rtol=FLAT_RTOL, flat_gram_eigenvalues=fl["values"].tolist(), flat_gap=fl["gap"],
                   straight_flat_dim=F.shape[1], finite_step_max_rel_loss=step, finite_step_rtol=FLAT_STEP_RTOL,
                   quartic_rise=rise, invariances=expl)
    if parameterization == "reduced":
        kernel_dim = red_kernel
        symmetry_dim = 1
        data_inv = red_radical - 1
        nonflat_dim = nonflat
        params = count
    else:
        D = m + p
        params = 2 * D * D
        fs = check_full_symmetries(sample, gen)
        part = _full_22_part(sample)
        details.update(full_symmetry_check=fs, p22_vbar22=part)
        kernel_dim = params - (count - red_kernel)
        symmetry_dim = 1 + fs["count"]
        data_inv = (red_radical - 1) + part["radical"]
        nonflat_dim = nonflat + (part["dim"] - part["radical"])
        if part["dim"] > part["radical"]:
            # demonstration pair: P22 and Vbar22 along a prompt-relevant direction
            P22 = torch.zeros(p, p, dtype=DTYPE)
            P22[0, 0] = 1.0
            Vbar22 = torch.zeros(q, p, dtype=DTYPE)
            Vbar22[:, 0] = 1.0 / math.sqrt(q)
            details["quartic_rise_p22_vbar22"] = quartic_rise(sample, st, spec, np.zeros(count), (P22, Vbar22))
            details["flat_alone"] = dict(
                p22=float(loss(sample, P12s, Vbar21s, P22, torch.zeros_like(Vbar22))),
                vbar22=float(loss(sample, P12s, Vbar21s, torch.zeros_like(P22), Vbar22)))
    if symmetry_dim != sym_formula:
        raise AssertionError(f"symmetry count {symmetry_dim} differs from theory's formula {sym_formula}")
    if nonflat_dim > 0:
        verdict = "fails"
    elif data_inv > 0:
        verdict = "morse-bott"
    else:
        verdict = "identifiable"
    reps = bootstrap_mu(dist, sample, spec, bootstrap, seed=seed, epsilon=epsilon, progress=progress)
    mus = [r["mu"] for r in reps]
    ci = [float(np.percentile(mus, 2.5)), float(np.percentile(mus, 97.5))] if mus else [math.nan, math.nan]
    mean = float(np.mean(mus)) if mus else math.nan
    spread = float(np.std(mus, ddof=1) / mean) if len(mus) > 1 else math.nan
    details.update(bootstrap="parametric: fresh samples of the same size from the MDP distribution",
                   bootstrap_reps=len(mus), bootstrap_mus=mus, bootstrap_seeds=[r["seed"] for r in reps],
                   bootstrap_lambda_max=[r["lambda_max"] for r in reps],
                   bootstrap_mu_mean=mean, bootstrap_mu_rel_spread=spread,
                   bootstrap_coverage_of_range=(len(mus) - 1) / (len(mus) + 1) if mus else math.nan,
                   mu_in_ci95=bool(mus) and ci[0] <= spec.mu <= ci[1],
                   seconds=time.perf_counter() - t0)
    out = dict(parameterization=parameterization, parameters=params, kernel_dim=int(kernel_dim),
               symmetry_dim=int(symmetry_dim), data_invariance_dim=int(data_inv), nonflat_dim=int(nonflat_dim),
               mu=spec.mu, mu_ci95=ci, predicted_rate=2 * spec.mu, verdict=verdict, details=details)
    if keep:
        out.update(_spectrum=spec, _sample=sample, _structure=st)
    return out


CONDITION = ("Checkable richness condition at theta* (THEORY.md section 5): the kernel of H = E[J^T J] on the "
             "sample equals the symmetry tangent (identifiable), or every extra kernel direction is flat: the "
             "read-out's second-order term B(v, u) lies in the range of J for every kernel direction u "
             "(Morse-Bott; the zero set is a manifold through theta*).  A kernel direction v with B(v, v) outside "
             "the range of J makes the loss rise as t^4 along every curve tangent to v: no local exponential rate.")


def write_report(res: dict, out_dir: str, name: str, command: str, args=None) -> str:
    from numerics.io import atomic_savefig, atomic_write, atomic_write_json, run_header
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dt = res["details"]
    spec = res["_spectrum"]
    base = os.path.join(out_dir, name)
    vals = np.clip(spec.values, 1e-300, None)
    fig, ax = plt.subplots(figsize=(7, 4))
    idx = np.arange(vals.size)
    ker = spec.values < spec.threshold
    ax.semilogy(idx[ker], np.maximum(np.abs(spec.values[ker]), 1e-20), ".", color="tab:red",
                label=f"kernel ({int(ker.sum())}, |lambda| plotted, floor 1e-20)")
    ax.semilogy(idx[~ker], vals[~ker], ".", ms=2, color="tab:blue", label="off the kernel")
    ax.axhline(spec.threshold, color="k", ls="--", lw=0.8, label=f"threshold {KERNEL_RTOL:g} lambda_max")
    if math.isfinite(spec.mu):
        ax.axhline(spec.mu, color="tab:green", ls=":", lw=1, label=f"mu = {spec.mu:.3g} (gap x{spec.gap:.2g})")
    part = "" if spec.dense else f" (bottom {vals.size} of {dt['reduced_parameters']}; lambda_max = {spec.lam_max:.3g})"
    ax.set_title(f"E[J^T J] at theta*, reduced block{part}", fontsize=9)
    ax.set_xlabel("eigenvalue index (ascending)")
    ax.set_ylabel("eigenvalue")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, base + ".png", dpi=110)
    plt.close(fig)
    public = {k: v for k, v in res.items() if not k.startswith("_")}
    public["report"] = base + ".md"
    public["condition"] = CONDITION
    public["command"] = command
    atomic_write_json(base + ".json", public)
    sc = dt["symmetry_checks"]
    inv = dt["invariances"]
    lines = [f"# Richness report: {name}", run_header(command, args),
             f"**Verdict: {res['verdict']}**  ({res['parameterization']} parameterisation, "
             f"{res['parameters']} parameters)", "",
             "| quantity | value |", "|---|---|",
             f"| kernel dim | {res['kernel_dim']} |", f"| symmetry tangent dim (theory formula {dt['symmetry_formula']}) | {res['symmetry_dim']} |",
             f"| data invariances | {res['data_invariance_dim']} |", f"| non-flat kernel dims | {res['nonflat_dim']} |",
             f"| mu (smallest eigenvalue off the kernel) | {res['mu']:.6g} |",
             f"| mu 95% interval, parametric bootstrap ({dt['bootstrap_reps']} fresh MDP samples) | [{res['mu_ci95'][0]:.6g}, {res['mu_ci95'][1]:.6g}] |",
             f"| mean / relative spread of the bootstrap mus | {dt['bootstrap_mu_mean']:.6g} / {dt['bootstrap_mu_rel_spread']:.2g} |",
             f"| predicted local rate of the loss, 2 mu | {res['predicted_rate']:.6g} |",
             f"| mu inside its bootstrap interval | {dt['mu_in_ci95']} |",
             f"| lambda_max | {dt['lambda_max']:.6g} |",
             f"| spectral gap mu / largest kernel eigenvalue | {dt['spectral_gap']:.3g} |", "",
             "## Condition checked", "", CONDITION, "",
             "## The bootstrap interval", "",
             f"Parametric bootstrap over MDP samples.  The MDP distribution is known, so each of the "
             f"{dt['bootstrap_reps']} replicates draws a fresh sample of the same size from it ({dt['mdps']} new MDPs x "
             f"{dt['frames_per_mdp']} frames, n = {dt['n']}, drawn as in Algorithm 1 with seeds "
             f"{', '.join(str(x) for x in dt['bootstrap_seeds']) or '-'} = seed + {BOOTSTRAP_SEED_OFFSET} + k), forms "
             f"its E[J^T J] in closed form and takes the smallest eigenvalue above {KERNEL_RTOL:g} x its own "
             f"lambda_max (same eigensolver as above, with this sample's reduced kernel dimension {dt['reduced_kernel_dim']}).  "
             f"Replicate mus: {', '.join(f'{x:.4g}' for x in dt['bootstrap_mus']) or 'none'}; mean "
             f"{dt['bootstrap_mu_mean']:.4g}, relative spread (standard deviation / mean) "
             f"{dt['bootstrap_mu_rel_spread']:.2g}.  The interval is the 2.5 and 97.5 percentiles of the replicate "
             "mus: it describes the sampling variability of mu for a sample of this size from this distribution "
             "(where the mu of another such sample would fall), not a confidence interval for a population value "
             "and not an error bar of the eigensolver.  The main sample's mu is itself one such draw; with R "
             f"replicates an independent draw lies inside their range with probability (R - 1) / (R + 1) = "
             f"{dt['bootstrap_coverage_of_range']:.2f} (the interpolated percentiles are slightly narrower), so "
             "'mu inside its bootstrap interval' is a consistency check that can fail by chance when R is small; for "
             "small R the interval is close to the replicates' range and '95%' is nominal only (the mean and the "
             "relative spread are then the more useful numbers; raise --bootstrap for a sharper interval).  "
             "The rate prediction for a given sample uses that sample's own mu.", "",
             "## How", "",
             f"- Sample: {dt['prompts']} prompts = {dt['mdps']} MDPs x {dt['frames_per_mdp']} frames, n = {dt['n']}, "
             f"drawn as in Algorithm 1; d = {dt['d']}, m = {dt['m']}, p = {dt['p']}.",
             "- H = E[J^T J] at theta* in closed form from the Lemma C.1 structure (numerics/hessian.py), "
             f"eigensolver: {dt['eigensolver']}.",
             f"- Rank decision: eigenvalue < {KERNEL_RTOL:g} x lambda_max = {dt['kernel_threshold']:.3g}; largest kernel "
             f"eigenvalue {dt['largest_kernel_eigenvalue']:.3g}, mu = {res['mu']:.3g}: gap x{dt['spectral_gap']:.3g}.",
             f"- Zero residual at theta*: loss / zero-update loss = {sc['theta_star_rel_loss']:.2e}, so H = E[J^T J].",
             f"- Symmetries: |H v_scale| / (lambda_max |v|) = {sc['scaling_H_residual']:.2e}; part of v_scale outside "
             f"the kernel {sc['scaling_outside_kernel']:.2e}; loss on the exact orbit (c = -2, 0.5, 3) relative to the "
             f"zero-update loss {sc['orbit_max_rel_loss']:.2e}.",
             f"- Flatness: Gram of the second-order term projected off range(J) on the kernel; eigenvalues relative "
             f"to the unprojected Gram's largest: {', '.join(f'{x:.2e}' for x in dt['flat_gram_eigenvalues'][:12])}"
             f"{' ...' if len(dt['flat_gram_eigenvalues']) > 12 else ''} (flat below {FLAT_RTOL:g}; gap x{dt['flat_gap']:.3g}).",
             f"- Straight-line flat subspace of the flat directions: dim {dt['straight_flat_dim']}; unit steps along "
             f"random combinations: largest loss / zero-update loss = {dt['finite_step_max_rel_loss']:.2e} "
             f"(exactly flat below {FLAT_STEP_RTOL:g})."]
    if dt.get("quartic_rise"):
        qr = dt["quartic_rise"]
        lines.append(f"- Non-flat reduced direction: loss / t^4 at t = 1e-3, 1e-2, 1e-1: "
                     f"{', '.join(f'{x:.4g}' for x in qr['loss_over_t4'])}; quartic coefficient after the best "
                     f"second-order correction {qr['projected_quartic']:.4g} > 0.")
    if "full_symmetry_check" in dt:
        fs, pv = dt["full_symmetry_check"], dt["p22_vbar22"]
        lines += [f"- Full parameterisation: never-read entries ({fs['never_read']}) and antisymmetric P22 "
                  f"({fs['antisymmetric_p22']}) changed at a random (P, V): read-out change {fs['max_readout_change']:.2e} "
                  f"(read-out scale {fs['readout_scale']:.3g}); at theta* the Jacobian in P22 and Vbar22 is zero, so the "
                  f"full Hessian is the reduced one plus zero rows.",
                  f"- (P22 symmetric, Vbar22): {pv['dim']} kernel directions; flat combinations need w~^T P22 w~ = 0 and "
                  f"Vbar22 w~ = 0 on every prompt; rank of the quadratic forms {pv['rank_quadratic_forms']}, of the "
                  f"parameter columns {pv['rank_parameter_columns']}: {pv['radical']} flat, {pv['dim'] - pv['radical']} not."]
        if "quartic_rise_p22_vbar22" in dt:
            qr = dt["quartic_rise_p22_vbar22"]
            fa = dt["flat_alone"]
            lines.append(f"- P22 = e1 e1^T with Vbar22 = 1 e1^T / sqrt(q): each alone leaves the loss at "
                         f"{fa['p22']:.2e} / {fa['vbar22']:.2e}; together loss / t^4 = "
                         f"{', '.join(f'{x:.4g}' for x in qr['loss_over_t4'])} (t = 1e-3, 1e-2, 1e-1), after the best "
                         f"second-order correction {qr['projected_quartic']:.4g}: the cubic term of Lemma C.1 makes "
                         f"the loss quartic, so the zero set is not a manifold at theta*.")
    lines += ["", "## Invariances in the prompt's own terms", ""]
    if inv["sentences"]:
        lines += [f"- {s}" for s in inv["sentences"]]
        lines.append(f"- These explain {inv['explained']} of the {inv['found']} reduced data-invariance dimensions found "
                     f"(all inside the flat kernel: {inv['explanations_in_kernel']}).")
    else:
        lines.append(f"- No context or parameter column null vector; reduced data invariances found: {inv['found']}.")
    lines += ["", f"![spectrum]({name}.png)", "", f"Runtime {dt['seconds']:.1f} s.", ""]
    atomic_write(base + ".md", "\n".join(lines))
    return base + ".md"


def add_arguments(p):
    add_common(p, mdps=100)
    p.add_argument("--parameterization", choices=PARAMETERIZATIONS, default="reduced",
                   help="reduced (P12, Vbar21) or full (P, V) (default reduced)")
    p.add_argument("--frames", type=positive_int, default=20, help="frames (prompts) per MDP in the sample (20)")
    p.add_argument("--prompts", type=positive_int, default=None,
                   help="total prompts; overrides --frames with ceil(PROMPTS / MDPS)")
    p.add_argument("--bootstrap", type=int, default=None,
                   help="replicates of the parametric bootstrap for the mu interval: each draws a fresh sample "
                        "of the same size (MDPs x frames) from the distribution, seed SEED + "
                        f"{BOOTSTRAP_SEED_OFFSET} + k (default 20; {BIG_BOOTSTRAP} above {DENSE_EIGH_LIMIT} reduced "
                        "parameters, e.g. d = 36, to stay under a minute; 0 skips the interval)")
    p.add_argument("--name", default=None, help="report name (default: ALGORITHM-FEATURES-PARAMETERIZATION)")
    p.add_argument("--out", default=os.path.join("reports", "richness"), help="report folder (reports/richness)")


def run(args) -> int:
    import shlex
    import sys
    from numerics.cli import emit, progress_bar
    dist = distribution_from_args(args)
    frames = math.ceil(args.prompts / args.mdps) if args.prompts else args.frames
    if args.bootstrap is None:
        lay = layout(args.algorithm)
        big = reduced_count(lay.m(dist.d), lay.p(dist.d)) > DENSE_EIGH_LIMIT
        args.bootstrap = BIG_BOOTSTRAP if big else 20
    if args.bootstrap < 0:
        raise InputError("bootstrap", f"must be >= 0, got {args.bootstrap}")
    name = args.name or f"{args.algorithm}-{args.features}-{args.parameterization}"
    if not name or "/" in name or name.startswith("."):
        raise InputError("name", f"must be a plain file name, got {name!r}")
    with progress_bar(total=args.bootstrap, desc="richness bootstrap", disable=args.json) as bar:
        res = richness(dist, args.algorithm, args.parameterization, mdps=args.mdps, frames=frames, n=args.context,
                       epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                       bootstrap=args.bootstrap, progress=bar.update, keep=True)
    command = "icrl-verify richness " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["richness"] \
        else "icrl-verify richness " + f"--name {name}"
    report = write_report(res, args.out, name, command, args)
    res["report"] = report
    public = {k: res[k] for k in ("parameterization", "parameters", "kernel_dim", "symmetry_dim",
                                  "data_invariance_dim", "nonflat_dim", "mu", "mu_ci95", "verdict", "report")}
    lines = [f"richness {args.algorithm} ({args.parameterization}): {dist.describe()}",
             f"kernel {res['kernel_dim']} = symmetry {res['symmetry_dim']} + data invariances "
             f"{res['data_invariance_dim']} + non-flat {res['nonflat_dim']}",
             f"mu = {res['mu']:.6g}, 95% CI [{res['mu_ci95'][0]:.6g}, {res['mu_ci95'][1]:.6g}], predicted rate 2 mu = "
             f"{res['predicted_rate']:.6g}",
             f"verdict: {res['verdict']}", f"report: {report}"]
    emit(lines, public, args.json)
    return 1 if res["verdict"] == "fails" else 0
