"""The spectrum of ``E[J^T J]`` on the optimal set without forming it
(``richness --solver matrix-free``; THEORY.md section 5, docs/richness.md).

``H v = mean_j J_j^T (J_j v)`` is applied from the closed-form Jacobian of
the Lemma C.1 read-out (the formula of :func:`numerics.analysis.hessian.jvp_reduced` /
:func:`~numerics.analysis.hessian.vjp_reduced`, chunked over prompts: cost
``O(N q m)`` per vector, memory ``O(N q m)``, never ``p x p``).

The kernel is found in three parts:

1. Known data invariances, in closed form: with ``C = E[x x^T]`` over every
   context column and ``W = E[w~ w~^T]`` over the parameter columns, each
   null vector ``c`` of ``C`` gives ``P12 + c v^T`` and ``Vbar21 + u c^T``,
   each null vector ``b`` of ``W`` gives ``P12 + a b^T``: the read-out is
   unchanged along them (``Sigma_j c = 0``, ``P12 w~`` unchanged), so they
   are exactly flat and their second-order term ``B(e, .)`` vanishes.  Their
   span ``E`` is deflated by the projection ``Pi``:
   ``dP -> (I - N_c N_c^T) dP (I - N_b N_b^T)``, ``dV -> dV (I - N_c N_c^T)``.
2. The scaling tangent ``(P12*, -Vbar21*)`` (projected off ``E``) as an
   explicit constraint.
3. The rest: LOBPCG (``scipy.sparse.linalg.lobpcg``) for the smallest
   eigenvalues of ``Pi H Pi + lambda_max (I - Pi)`` orthogonal to the scaling
   tangent, preconditioned by the Kronecker-factored inverse
   ``(E[G^T G]^+ (x) E[w~ w~^T]^+, I (x) E[s s^T]^+)``; Ritz values are
   recomputed with ``H`` itself and their residuals ``|H v - lambda v|``
   reported.  Eigenvalues below ``KERNEL_RTOL lambda_max`` are further
   kernel directions (classified with the dense route's projected Gram,
   which only needs these few); ``mu`` is the smallest one above.
"""
from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse.linalg as sla
import torch

from numerics.analysis.hessian import Structure, join_reduced, split_reduced
from numerics.core.runtime import torch_threads
from numerics.core.tolerances import DTYPE, KERNEL_RTOL, LANCZOS_TOP_TOL, MATRIX_FREE_RTOL
from theory.errors import InputError


def _null(A: np.ndarray, rtol: float) -> np.ndarray:
    vals, vecs = np.linalg.eigh(0.5 * (A + A.T))
    return vecs[:, vals <= rtol * max(abs(vals).max(), np.finfo(float).tiny)]


def _pinv(A: np.ndarray, rtol: float = 1e-12) -> np.ndarray:
    vals, vecs = np.linalg.eigh(0.5 * (A + A.T))
    inv = np.where(vals > rtol * vals.max(), 1.0 / np.maximum(vals, np.finfo(float).tiny), 0.0)
    return (vecs * inv) @ vecs.T


class GaussNewtonOperator:
    """``v -> E[J^T J] v`` (columns of a ``count x k`` array), in chunks of
    prompts so the temporaries stay ``chunk x k x m``."""

    def __init__(self, st: Structure, X: torch.Tensor, Vbar21: torch.Tensor, chunk: int = 512):
        """``X``: the prompts' contexts (``N x n x m``); ``G_j = Vbar21 Sigma_j``
        is applied as ``Vbar21 X_j^T (X_j .) / n`` (``n << m``)."""
        self.st, self.chunk, self.X, self.Vbar = st, chunk, X, Vbar21
        self.count = st.count
        self.N = st.G.shape[0]
        self.calls = 0

    def matmat(self, V: np.ndarray) -> np.ndarray:
        st = self.st
        Vt = torch.as_tensor(np.ascontiguousarray(np.asarray(V).reshape(self.count, -1).T), dtype=DTYPE)
        k = Vt.shape[0]
        out = torch.zeros_like(Vt)
        dP, dV = split_reduced(Vt, st.m, st.p)
        Vb = self.Vbar                                                          # q x m
        for j0 in range(0, self.N, self.chunk):
            sl = slice(j0, min(self.N, j0 + self.chunk))
            X, s, wt = self.X[sl], st.s[sl], st.wt[sl]
            c, n = X.shape[0], X.shape[1]
            u = (wt @ dP.permute(2, 0, 1).reshape(st.p, k * st.m)).reshape(c, k, st.m)   # dP w~
            z = torch.bmm(torch.bmm(u, X.transpose(1, 2)), X) / n              # Sigma u: c x k x m
            r = (z.reshape(c * k, st.m) @ Vb.T).reshape(c, k, st.q) + (s @ dV.permute(2, 0, 1).reshape(st.m, k * st.q)).reshape(c, k, st.q)
            y = (r.reshape(c * k, st.q) @ Vb).reshape(c, k, st.m)               # Vbar^T r
            t = torch.bmm(torch.bmm(y, X.transpose(1, 2)), X) / n              # G^T r = Sigma Vbar^T r
            gP = (t.permute(1, 2, 0).reshape(k * st.m, c) @ wt).reshape(k, st.m, st.p)
            gV = (r.permute(1, 2, 0).reshape(k * st.q, c) @ s).reshape(k, st.q, st.m)
            out += join_reduced(gP, gV)
        self.calls += k
        return (out / self.N).T.numpy()

    def __call__(self, v):
        return self.matmat(v)


class MatrixFreeSpectrum:
    """Kernel (known invariances + scaling + LOBPCG's rest), ``mu`` and
    ``lambda_max`` of ``E[J^T J]`` without forming it.

    Attributes mirror :class:`numerics.analysis.spectrum.Spectrum`:
    ``lam_max``, ``threshold``, ``mu``, ``largest_kernel``, ``gap``,
    ``method``; plus ``known_dim`` (closed-form invariances), ``rest``
    (``count x r``: further kernel vectors, orthonormal), ``scaling``
    (unit scaling tangent off ``E``), ``values`` / ``residuals`` (Ritz pairs
    of the bottom block), ``kernel_dim``.
    """

    def __init__(self, st: Structure, X: torch.Tensor, scaling: np.ndarray, Vbar21: torch.Tensor, *, block: int = 8, seed: int = 0,
                 time_limit: float | None = None, progress=None, tol: float = MATRIX_FREE_RTOL,
                 max_iters: int = 4000, start: np.ndarray | None = None, threads: int | None = 1):
        """``start``: a warm start for the block (e.g. the main sample's Ritz
        vectors for a bootstrap replicate; projected off ``E`` here).  Runs
        with one torch thread (``threads``): its many small operations on a
        busy 2-core machine were measured 80x slower with two (d = 4: 77 s
        vs 0.9 s)."""
        with torch_threads(threads):
            self._compute(st, X, scaling, Vbar21, block=block, seed=seed, time_limit=time_limit,
                          progress=progress, tol=tol, max_iters=max_iters, start=start)

    def _compute(self, st, X, scaling, Vbar21, *, block, seed, time_limit, progress, tol, max_iters, start):
        t0 = time.perf_counter()
        self.dense = False
        self.op = GaussNewtonOperator(st, X, Vbar21)
        m, p, q, count = st.m, st.p, st.q, st.count
        self.count = count
        Xf = X.reshape(-1, X.shape[-1])
        C = (Xf.T @ Xf).numpy() / Xf.shape[0]
        W = (st.wt.T @ st.wt).numpy() / st.wt.shape[0]
        self.Nc, self.Nb = _null(C, KERNEL_RTOL), _null(W, KERNEL_RTOL)
        kc, kb = self.Nc.shape[1], self.Nb.shape[1]
        self.known_dim = m * p - (m - kc) * (p - kb) + q * kc
        self._Qc = np.eye(m) - self.Nc @ self.Nc.T
        self._Qb = np.eye(p) - self.Nb @ self.Nb.T
        H = sla.LinearOperator((count, count), matvec=self.op, matmat=self.op, dtype=np.float64)
        v0 = np.ones(count) / math.sqrt(count)
        self.lam_max = float(sla.eigsh(H, k=1, which="LA", v0=v0, return_eigenvectors=False, tol=LANCZOS_TOP_TOL)[0])
        self.threshold = KERNEL_RTOL * self.lam_max
        # (1) the closed-form invariances really are in the kernel
        gen = torch.Generator().manual_seed(seed)
        r = torch.randn(count, 4, generator=gen, dtype=DTYPE).numpy()
        e = r - self.project(r)
        self.known_residual = (float(np.linalg.norm(self.op(e)) / (self.lam_max * np.linalg.norm(e)))
                               if np.linalg.norm(e) > 0 else 0.0)
        # (2) the scaling tangent, off E
        vs = self.project(scaling[:, None])[:, 0]
        self.scaling = vs / np.linalg.norm(vs)
        self.scaling_residual = float(np.linalg.norm(self.op(self.scaling[:, None])) / self.lam_max)
        # (3) LOBPCG on the complement of E and the scaling tangent
        lam = self.lam_max
        A = sla.LinearOperator((count, count), dtype=np.float64,
                               matmat=lambda V: self._deflated(V, lam), matvec=lambda v: self._deflated(v[:, None], lam)[:, 0])
        G, s = st.G.numpy(), st.s.numpy()
        iGG = _pinv(np.einsum("nqa,nqb->ab", G, G) / G.shape[0])
        iWW = _pinv(W)
        iSS = _pinv(s.T @ s / s.shape[0])

        def precond(V):
            V = np.asarray(V).reshape(count, -1)
            Vt = torch.as_tensor(np.ascontiguousarray(V.T))
            dP, dV = split_reduced(Vt, m, p)
            dP = torch.as_tensor(iGG) @ dP @ torch.as_tensor(iWW)
            dV = dV @ torch.as_tensor(iSS)
            return self.project(join_reduced(dP, dV).numpy().T)
        M = sla.LinearOperator((count, count), dtype=np.float64, matmat=precond, matvec=lambda v: precond(v[:, None])[:, 0])
        Y = self.scaling[:, None]
        found = np.zeros((count, 0))
        k = block
        iters = 0
        while True:
            X0 = self.project(torch.randn(count, k, generator=gen, dtype=DTYPE).numpy())
            if start is not None and not found.size:
                X0 = self.project(start[:, :k])
            Xk, rv, resid, it = block_eigensolver(A, M, X0, np.column_stack([Y, found]), tol * lam,
                                                  max_iters=max_iters, deadline=None if time_limit is None else t0 + time_limit,
                                                  progress=progress, want=2)
            iters += it
            below = rv < self.threshold
            if below[:2].all() and found.shape[1] + k < count - self.known_dim - 1:
                found = np.column_stack([found, Xk[:, below]])     # more kernel: keep it, look further
                continue
            break
        self.iterations = iters
        want = 2
        self.converged = bool((resid[:want] <= tol * lam).all())
        self.values, self.residuals, self.ritz_vectors = rv, resid, Xk
        rest_vals = np.concatenate([np.zeros(found.shape[1]), rv[below]]) if found.size else rv[below]
        self.rest = np.column_stack([found, Xk[:, below]]) if found.size else Xk[:, below]
        self.kernel_dim = self.known_dim + 1 + self.rest.shape[1]
        nz = rv[~below]
        self.mu = float(nz[0]) if nz.size else math.nan
        self.largest_kernel = float(max(np.abs(rest_vals).max() if rest_vals.size else 0.0,
                                        self.scaling_residual, self.known_residual * self.lam_max))
        self.gap = self.mu / max(self.largest_kernel, np.finfo(float).tiny) if nz.size else math.nan
        self.seconds = time.perf_counter() - t0
        self.method = (f"matrix-free: closed-form J^T J v, {self.known_dim} invariance directions in closed form "
                       f"deflated, LOBPCG block {k} ({iters} iterations, {self.op.calls} operator applications), "
                       f"Kronecker preconditioner, Ritz residuals <= {float(resid.max()):.2e}")

    def project(self, V: np.ndarray) -> np.ndarray:
        """``Pi V``: columns projected off the closed-form invariances ``E``."""
        m, p = self.op.st.m, self.op.st.p
        Vt = torch.as_tensor(np.ascontiguousarray(np.asarray(V).reshape(self.count, -1).T))
        dP, dV = split_reduced(Vt, m, p)
        dP = torch.as_tensor(self._Qc) @ dP @ torch.as_tensor(self._Qb)
        dV = dV @ torch.as_tensor(self._Qc)
        return join_reduced(dP, dV).numpy().T.copy()

    def _deflated(self, V, lam):
        V = np.asarray(V).reshape(self.count, -1)
        PV = self.project(V)
        return self.project(self.op(PV)) + lam * (V - PV)

    def pinv_apply(self, G: np.ndarray) -> np.ndarray:
        """``H^+ G`` on the range (conjugate gradients, columns one by one)."""
        with torch_threads(1):
            return self._pinv_apply(G)

    def _pinv_apply(self, G: np.ndarray) -> np.ndarray:
        K = np.column_stack([self.scaling, self.rest])
        out = np.zeros_like(G)
        A = sla.LinearOperator((self.count, self.count), dtype=np.float64,
                               matvec=lambda v: self._off(self.op(self._off(v[:, None], K)), K)[:, 0])
        for i in range(G.shape[1]):
            g = self._off(G[:, i:i + 1], K)[:, 0]
            x, _ = sla.cg(A, g, rtol=MATRIX_FREE_RTOL, maxiter=5000)
            out[:, i] = x
        return out

    def _off(self, V, K):
        V = self.project(V)
        return V - K @ (K.T @ V)


def _mm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A @ B`` through torch (one BLAS thread pool with the operator's;
    numpy's own pool next to torch's was measured 100x slower here)."""
    return (torch.from_numpy(np.ascontiguousarray(A)) @ torch.from_numpy(np.ascontiguousarray(B))).numpy()


def _orth(S: np.ndarray, Y: np.ndarray, AS: np.ndarray | None = None):
    """Orthonormal basis ``U = S C`` of ``S`` off ``Y`` (Gram eigendecomposition,
    twice, for rounding); directions below ``1e-8`` of the largest singular
    value dropped.  With ``AS`` (= A S) also returns ``A U = AS C``."""
    if Y.shape[1]:
        S = S - _mm(Y, _mm(Y.T, S))
    C = np.eye(S.shape[1])
    for _ in range(2):
        Gm = _mm(S.T, S)
        vals, vecs = np.linalg.eigh(0.5 * (Gm + Gm.T))
        top = vals.max() if vals.size else 0.0
        keep = vals > (1e-8 ** 2) * top if top > 0 else np.zeros_like(vals, dtype=bool)
        Ck = vecs[:, keep] / np.sqrt(vals[keep])
        S = _mm(S, Ck)
        C = C @ Ck
    return (S, None if AS is None else _mm(AS, C))


def block_eigensolver(A, M, X0: np.ndarray, Y: np.ndarray, atol: float, *, max_iters: int, deadline=None,
                      progress=None, want: int = 1):
    """Smallest eigenpairs of the symmetric operator ``A`` off ``span Y``:
    LOBPCG (Knyazev 2001) with the trial space ``[X, M R, P]``
    orthonormalised explicitly (SVD, twice) instead of through its Gram
    matrix, which keeps it stable at the tight residuals needed here.
    Stops when the ``want`` lowest Ritz pairs have ``|A x - lambda x| <=
    atol``.  Returns ``(X, lambdas, residual norms, iterations)``."""
    Y, _ = _orth(Y, np.zeros((Y.shape[0], 0)))
    X, _ = _orth(X0, Y)
    k = X.shape[1]
    AX = A.matmat(X)
    T = X.T @ AX
    lam, C = np.linalg.eigh(0.5 * (T + T.T))
    X, AX = X @ C, AX @ C
    P, AP = np.zeros((X.shape[0], 0)), np.zeros((X.shape[0], 0))
    it = 0
    while True:
        R = AX - X * lam
        res = torch.linalg.vector_norm(torch.from_numpy(R), dim=0).numpy()
        if (res[:want] <= atol).all() or it >= max_iters:
            return X, lam, res, it
        if deadline is not None and time.perf_counter() > deadline:
            raise InputError("time-limit", f"the matrix-free eigensolver did not converge before the time limit "
                                           f"({it} iterations, residual {float(res[:want].max()):.2e} > {atol:.2e}); "
                                           f"raise --time-limit or use fewer prompts")
        W = M.matmat(R)
        W = W - _mm(Y, _mm(Y.T, W))
        W = W - _mm(X, _mm(X.T, W))
        W, _ = _orth(W, np.zeros((W.shape[0], 0)))
        AW = A.matmat(W)
        S, AS = _orth(np.column_stack([X, W, P]), np.zeros((X.shape[0], 0)), np.column_stack([AX, AW, AP]))
        T = _mm(S.T, AS)
        vals, V = np.linalg.eigh(0.5 * (T + T.T))
        C = V[:, :k]
        Xn, AXn = _mm(S, C), _mm(AS, C)
        coef = _mm(X.T, Xn)
        P, AP = Xn - _mm(X, coef), AXn - _mm(AX, coef)
        X, AX, lam = Xn, AXn, vals[:k]
        # refresh A X exactly now and then (rounding in the recombinations)
        if it % 20 == 19:
            X, _ = _orth(X, Y)
            AX = A.matmat(X)
            T = X.T @ AX
            lam, C = np.linalg.eigh(0.5 * (T + T.T))
            X, AX = X @ C, AX @ C
        it += 1
        if progress and it % 10 == 0:
            progress(10)
