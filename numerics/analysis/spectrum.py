"""The spectrum of a symmetric positive semi-definite matrix as richness
needs it: the bottom of the spectrum, the kernel at a relative threshold,
``mu`` (the smallest eigenvalue off the kernel) and ``H^+`` on the range;
dense below :data:`DENSE_EIGH_LIMIT` unknowns, shift-invert Lanczos above."""
from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as sla
import torch

from numerics.core.tolerances import (
    KERNEL_RTOL,
    LANCZOS_BOTTOM_TOL,
    LANCZOS_TOP_TOL,
    RICHNESS_LAMMAX_RTOL,
    RICHNESS_SHIFT_RTOL,
)

#: Reduced parameter counts up to this use a dense eigensolver (full
#: spectrum); above it, shift-invert Lanczos (``eigsh``) for the bottom of
#: the spectrum and Lanczos for the top.
DENSE_EIGH_LIMIT = 2500


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
        self.H = H
        count = H.shape[0]
        self.dense = count <= DENSE_EIGH_LIMIT
        if self.dense:
            vals, vecs = scipy.linalg.eigh(H, check_finite=False)
            self.lam_max = float(vals[-1])
            self.method = "dense (scipy.linalg.eigh)"
        else:
            self.lam_max = float(sla.eigsh(H, k=1, which="LA", return_eigenvectors=False, tol=LANCZOS_TOP_TOL)[0])
            sigma = RICHNESS_SHIFT_RTOL * self.lam_max
            self._solve = cholesky_solver(H + sigma * np.eye(count))
            opinv = sla.LinearOperator(H.shape, matvec=self._solve, dtype=np.float64)
            k = min(count - 2, 24)
            while True:
                v0 = np.ones(count) / math.sqrt(count)
                _, vecs = sla.eigsh(opinv, k=k, which="LA", v0=v0, tol=LANCZOS_BOTTOM_TOL)
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


def smallest_off_kernel(H: np.ndarray, lam_max: float, kernel_dim: int, dense: bool) -> float:
    """Smallest eigenvalue of ``H`` above ``KERNEL_RTOL * lam_max``: dense
    ``eigvalsh`` for small ``H``; otherwise shift-invert Lanczos on one
    Cholesky factor of ``H + sigma I`` with Rayleigh quotients."""
    thr = KERNEL_RTOL * lam_max
    if dense:
        vals = scipy.linalg.eigvalsh(H, check_finite=False)
        nz = vals[vals >= thr]
        return float(nz[0]) if nz.size else math.nan
    count = H.shape[0]
    solve = cholesky_solver(H + RICHNESS_SHIFT_RTOL * lam_max * np.eye(count))
    opinv = sla.LinearOperator(H.shape, matvec=solve, dtype=np.float64)
    k = min(count - 2, kernel_dim + 6)
    _, vecs = sla.eigsh(opinv, k=k, which="LA", v0=np.ones(count) / math.sqrt(count), tol=LANCZOS_BOTTOM_TOL)
    vecs, _ = np.linalg.qr(vecs)
    vals = np.linalg.eigvalsh(vecs.T @ H @ vecs)
    nz = vals[vals >= thr]
    return float(nz[0]) if nz.size else math.nan


def replicate_lam_max(H: np.ndarray, dense: bool) -> float:
    """Largest eigenvalue of a replicate's ``H`` (sets its kernel threshold):
    dense ``eigvalsh`` (top one only), or Lanczos to ``RICHNESS_LAMMAX_RTOL``."""
    if dense:
        n = H.shape[0]
        return float(scipy.linalg.eigvalsh(H, subset_by_index=[n - 1, n - 1], check_finite=False)[0])
    v0 = np.ones(H.shape[0]) / math.sqrt(H.shape[0])      # fixed start: deterministic
    return float(sla.eigsh(H, k=1, which="LA", v0=v0, return_eigenvectors=False, tol=RICHNESS_LAMMAX_RTOL)[0])
