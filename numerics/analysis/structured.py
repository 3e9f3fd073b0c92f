"""The spectrum of ``E[J^T J]`` for one-hot (tabular) features without the
``p x p`` matrix: exact eigenvalue counts by inertia and ``mu`` by
shift-invert on a structured factorisation (THEORY.md section 5b).

Reduced parameters ``(dP = dP12: m x p, dV = dVbar21: q x m)``, SARSA
construction ``Vbar21* = alpha [I_d, 0, 0]``.  With one-hot ``phi`` the
read-out's Jacobian on prompt ``j``, output coordinate ``k``, is

    (J_j theta)_k = r_jk . vec(dP) + dV[k] . s_j,   r_jk = (alpha/n) y_jk (x) w~_j,

``y_jk`` the sum of the context columns of window ``j`` whose state-action
is ``k`` (zero when ``k`` is not visited), ``s_j = Sigma_j P12* w~_j``.  So

    N H = [[A, B], [B^T, I_d (x) N C_s]],   A = sum r r^T,  B_k = sum_j r_jk s_j^T,

``C_s = mean_j s_j s_j^T``.  ``y_jk`` touches the ``phi`` row ``k``, the
``gamma phi+`` rows of the pairs that follow ``k`` in the window and the
reward row.  Leaving the reward row aside (the *border*, ``p`` unknowns),
the rows of ``dP`` fall into connected *components* (pairs that share a
successor; for deterministic moves: one component per next state), and
``V_k`` couples only to the component of ``phi`` row ``k`` and the border.
At a shift ``t`` this module

1. diagonalises ``N C_s = Q diag(N lambda) Q^T`` once and eliminates every
   ``V_k`` by its Schur complement (Haynsworth: the ``V`` block adds
   ``d * #(N lambda < t)`` negative eigenvalues);
2. factors each component's Schur complement ``S_g`` with LAPACK's
   Bunch-Kaufman ``dsytrf`` (inertia from its ``D``: each 2 x 2 block is one
   positive, one negative) and eliminates it from the border;
3. factors the border's Schur complement.

The negative count of ``N H - t`` is the number of eigenvalues of ``H``
below ``t / N`` (Sylvester / Haynsworth inertia additivity); the same
factors solve ``(H - x)^{-1} b`` for shift-invert Lanczos.  Memory: the
component blocks and ``Q^T B_k^T`` (:func:`memory_estimate`), not ``p^2``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch
from scipy.sparse.csgraph import connected_components

from numerics.core.constructions import constructed_blocks
from numerics.core.tolerances import KERNEL_RTOL, LANCZOS_BOTTOM_TOL, LANCZOS_TOP_TOL
from theory.errors import InputError

F64 = 8


# ---------------------------------------------------------------------------
# The sample, compressed to indices
# ---------------------------------------------------------------------------

@dataclass
class OneHotPrompts:
    """A prompt sample with one-hot features, as indices.

    ``k``: ``N x n`` state-action of each context column; ``kn``: the
    next pair (``-1`` when ``gamma phi+`` is zero); ``g``: the value of the
    ``gamma phi+`` entry; ``r``: rewards; ``wt``: ``N x p`` parameter
    columns; ``mdp``: ``N`` MDP index (for coverage); ``alpha``: the
    construction's step."""

    d: int
    k: np.ndarray
    kn: np.ndarray
    g: np.ndarray
    r: np.ndarray
    wt: np.ndarray
    mdp: np.ndarray
    alpha: float

    @property
    def N(self):
        return self.k.shape[0]

    @property
    def n(self):
        return self.k.shape[1]

    @property
    def m(self):
        return 2 * self.d + 1

    @property
    def p(self):
        return self.d + 1

    @property
    def q(self):
        return self.d

    @property
    def count(self):
        return self.m * self.p + self.q * self.m

    def join(self, other: "OneHotPrompts") -> "OneHotPrompts":
        off = int(self.mdp.max()) + 1 if self.N else 0
        return OneHotPrompts(self.d, np.concatenate([self.k, other.k]), np.concatenate([self.kn, other.kn]),
                             np.concatenate([self.g, other.g]), np.concatenate([self.r, other.r]),
                             np.concatenate([self.wt, other.wt]), np.concatenate([self.mdp, other.mdp + off]),
                             self.alpha)

    def coverage(self) -> np.ndarray:
        """Distinct MDPs whose windows visit each state-action (``d``)."""
        pairs = np.unique(self.mdp[:, None].astype(np.int64) * self.d + self.k)
        return np.bincount(pairs % self.d, minlength=self.d)


def check_structured(record, parameterization: str, d: int, alpha: float, beta: float):
    """The structured route covers SARSA-type prompts (``x = [phi; gamma phi+; r]``,
    ``phi+`` the action taken) with the construction ``Vbar21* = alpha [I, 0, 0]``
    in the reduced parameterisation; anything else is refused naming ``solver``."""
    if parameterization != "reduced":
        raise InputError("solver", "the structured route handles the reduced parameterization; use --solver dense")
    offs = record.layout.offsets("context", d)
    if record.next_rule != "taken" or offs != {"phi": (0, d), "gphi_next": (d, 2 * d), "r": (2 * d, 2 * d + 1)}:
        raise InputError("solver", f"the structured route needs the SARSA prompt layout (phi, gamma phi+ of the "
                                   f"action taken, r); {record.name} has {offs}: use --solver dense or matrix-free")
    P12s, Vbar21s = constructed_blocks(record, d, {"alpha": alpha, "beta": beta})
    want = np.zeros((d, 2 * d + 1))
    want[:, :d] = alpha * np.eye(d)
    if not np.array_equal(Vbar21s.numpy(), want):
        raise InputError("solver", f"the structured route needs Vbar21* = alpha [I, 0, 0]; {record.name}'s "
                                   "construction differs: use --solver dense or matrix-free")
    return P12s.numpy(), Vbar21s.numpy()


def compress(sample) -> OneHotPrompts:
    """The indices of a :class:`~numerics.analysis.hessian.PromptSample` whose
    ``phi`` block is one-hot; refuses (``InputError`` on ``solver``) otherwise."""
    X = sample.X.numpy()
    d = sample.d
    phi, gphi, r = X[..., :d], X[..., d:2 * d], X[..., 2 * d]
    k = phi.argmax(-1)
    onehot = np.take_along_axis(phi, k[..., None], -1)[..., 0]
    if not (np.all(onehot == 1.0) and np.all((phi != 0).sum(-1) == 1)):
        raise InputError("solver", "the structured route needs one-hot features (phi(s, a) a unit vector); "
                                   "use --solver dense or matrix-free")
    nnz = (gphi != 0).sum(-1)
    if np.any(nnz > 1):
        raise InputError("solver", "the structured route needs one-hot next features (gamma phi+ with one entry)")
    kn = gphi.argmax(-1)
    g = np.take_along_axis(gphi, kn[..., None], -1)[..., 0]
    kn = np.where(nnz == 1, kn, -1)
    return OneHotPrompts(d, k.astype(np.int64), kn.astype(np.int64), g, r.copy(), sample.wt.numpy().copy(),
                         sample.mdp.numpy().astype(np.int64), float(sample.alpha))


# ---------------------------------------------------------------------------
# Pairs, components, blocks
# ---------------------------------------------------------------------------

def _sym_inertia(ldu: np.ndarray, ipiv: np.ndarray) -> int:
    """Negative eigenvalues of a ``dsytrf`` (lower) factorisation."""
    n = ldu.shape[0]
    diag = np.diagonal(ldu).copy()
    neg = 0
    i = 0
    two = ipiv < 0
    # 2 x 2 blocks: ipiv[i] = ipiv[i+1] < 0 (lower); one positive, one negative eigenvalue each
    while i < n:
        if two[i]:
            neg += 1
            i += 2
        else:
            neg += int(diag[i] < 0)
            i += 1
    return neg


def _block_add(A: np.ndarray, lc: np.ndarray, p: int, X: np.ndarray):
    """``A[rows lc, rows lc] += X`` for ``A`` made of ``p x p`` blocks (local
    row ``a`` of the component = unknowns ``a p .. a p + p - 1``)."""
    for i, a in enumerate(lc):
        for j, b in enumerate(lc):
            A[a * p:(a + 1) * p, b * p:(b + 1) * p] += X[i * p:(i + 1) * p, j * p:(j + 1) * p]


class _LDL:
    """Bunch-Kaufman ``A = L D L^T`` (LAPACK ``sytrf`` through torch's MKL,
    about 15x faster here than scipy's OpenBLAS build) and its inertia."""

    def __init__(self, A: np.ndarray):
        LD, piv, info = torch.linalg.ldl_factor_ex(torch.from_numpy(np.ascontiguousarray(A)))
        if int(info) < 0:
            raise AssertionError(f"sytrf: illegal argument {-int(info)}")
        self.LD, self.piv = LD, piv
        self.singular = int(info) > 0
        self.negatives = _sym_inertia(LD.numpy(), piv.numpy())

    def solve(self, b: np.ndarray) -> np.ndarray:
        return torch.linalg.ldl_solve(self.LD, self.piv, torch.from_numpy(np.ascontiguousarray(b))).numpy()


class StructuredHessian:
    """``H = E[J^T J]`` of a one-hot SARSA sample, held as the per-pair
    Jacobian data (for products) and the component blocks (for inertia and
    solves)."""

    def __init__(self, oh: OneHotPrompts, P12s: np.ndarray, store: bool = True):
        """Per-pair data and components (cheap); :meth:`build` forms the blocks."""
        t0 = time.perf_counter()
        self.oh = oh
        d, n, N, m, p = oh.d, oh.n, oh.N, oh.m, oh.p
        self.d, self.m, self.p, self.q, self.N = d, m, p, d, N
        self.count = oh.count
        alpha = oh.alpha
        # s_j = Sigma_j P12* w~_j = (1/n) sum_i delta_i x_i,  delta_i = x_i . (P12* w~_j)
        u = oh.wt @ P12s.T                                                   # N x m
        rows = np.arange(N)[:, None]
        kn0 = np.where(oh.kn >= 0, oh.kn, 0)
        delta = u[rows, oh.k] + oh.g * u[rows, d + kn0] + oh.r * u[:, 2 * d][:, None]
        jj = np.repeat(np.arange(N), n)
        self.S = sp.csr_matrix((np.concatenate([(delta / n).ravel(), (oh.g * delta / n).ravel(), (oh.r * delta / n).ravel()]),
                                (np.concatenate([jj, jj, jj]),
                                 np.concatenate([oh.k.ravel(), (d + kn0).ravel(), np.full(N * n, 2 * d)]))),
                               shape=(N, m))
        self.S.eliminate_zeros()
        # visited pairs (j, k) and y_jk (as rows of a sparse M x m matrix, times alpha/n)
        key = (np.arange(N)[:, None] * d + oh.k).ravel()
        pair_key, inv = np.unique(key, return_inverse=True)
        self.pj, self.pk = pair_key // d, pair_key % d
        M = pair_key.size
        self.M = M
        col = np.arange(N * n)
        c = alpha / n
        Y = sp.csr_matrix((np.concatenate([np.full(N * n, c), c * oh.g.ravel(), c * oh.r.ravel()]),
                           (np.concatenate([inv, inv, inv]),
                            np.concatenate([oh.k.ravel()[col], (d + kn0).ravel(), np.full(N * n, 2 * d)]))),
                          shape=(M, m))
        Y.sum_duplicates()
        Y.eliminate_zeros()
        self.Y = Y
        # components of the dP rows (reward row aside)
        Yb = Y[:, :2 * d].copy()
        Yb.data[:] = 1.0
        adj = (Yb.T @ Yb).tocsr()
        ncomp, label = connected_components(adj, directed=False)
        touched = np.asarray(abs(Yb).sum(0)).ravel() > 0
        self.isolated_rows = int((~touched).sum())
        comps = {}
        for a in np.flatnonzero(touched):
            comps.setdefault(int(label[a]), []).append(int(a))
        self.components = [np.array(v) for v in comps.values()]
        # C_s and its eigenbasis
        Cs = (self.S.T @ self.S).toarray()                                     # N C_s
        lam, Q = np.linalg.eigh(0.5 * (Cs + Cs.T))
        self.NCs_vals, self.Q = lam, Q
        self.visited = np.unique(self.pk)
        self.store = store
        self.blocks = None
        self.setup_seconds = time.perf_counter() - t0

    def build(self):
        """Form every component's blocks (kept for all shifts)."""
        t0 = time.perf_counter()
        self.blocks = [self._component(g) for g in range(len(self.components))]
        self.build_seconds = time.perf_counter() - t0
        return self

    # -- products ---------------------------------------------------------
    def matmat(self, V: np.ndarray, chunk: int = 200_000) -> np.ndarray:
        """``H V`` for ``count x k`` vectors."""
        m, p, q, N = self.m, self.p, self.q, self.N
        V = np.asarray(V).reshape(self.count, -1)
        out = np.empty_like(V)
        wt = self.oh.wt
        for c in range(V.shape[1]):
            dP = V[:m * p, c].reshape(m, p)
            dV = V[m * p:, c].reshape(q, m)
            O = (self.S @ dV.T).T                                          # q x N
            gP = np.zeros((m, p))
            for s0 in range(0, self.M, chunk):
                sl = slice(s0, min(self.M, s0 + chunk))
                Yc = self.Y[sl]
                val = np.einsum("ij,ij->i", Yc @ dP, wt[self.pj[sl]])
                O[self.pk[sl], self.pj[sl]] += val
            for s0 in range(0, self.M, chunk):
                sl = slice(s0, min(self.M, s0 + chunk))
                coef = O[self.pk[sl], self.pj[sl]]
                gP += self.Y[sl].T @ (coef[:, None] * wt[self.pj[sl]])
            gV = (self.S.T @ O.T).T                                        # q x m
            out[:, c] = np.concatenate([gP.ravel(), gV.ravel()]) / N
        return out

    def operator(self):
        return sla.LinearOperator((self.count, self.count), matvec=lambda x: self.matmat(x[:, None])[:, 0],
                                  matmat=self.matmat, dtype=np.float64)

    def lam_max(self, tol: float = LANCZOS_TOP_TOL) -> float:
        """Largest eigenvalue, Lanczos on the structured product (relative ``tol``)."""
        v0 = np.ones(self.count) / math.sqrt(self.count)
        return float(sla.eigsh(self.operator(), k=1, which="LA", v0=v0, tol=tol, return_eigenvectors=False)[0])

    # -- blocks -----------------------------------------------------------
    def _component(self, g: int) -> dict:
        """``A`` (local rows + reward row, each ``p`` wide) and ``Q^T B_k^T``
        for every visited ``k`` whose ``phi`` row lies in component ``g``."""
        d, p, m = self.d, self.p, self.m
        rows_g = self.components[g]
        local = np.full(m, -1)
        local[rows_g] = np.arange(rows_g.size)
        L = rows_g.size
        local[2 * d] = L
        A = np.zeros(((L + 1) * p, (L + 1) * p))
        ks = [int(k) for k in rows_g if k < d and k in self._visited_set]
        Bt = []
        for k in ks:
            sel = self._pairs_of[k]
            Yk = self.Y[sel]
            cols = np.unique(Yk.indices)
            lc = local[cols]
            Yd = Yk[:, cols].toarray()
            W = self.oh.wt[self.pj[sel]]
            R = (Yd[:, :, None] * W[:, None, :]).reshape(sel.size, cols.size * p)
            idx = (lc[:, None] * p + np.arange(p)).ravel()
            # R^T R block by block over the rows where both y entries are nonzero (y_jk has 2-4 of its
            # ~7 entries nonzero: the reward entry is zero off the goal, few next actions per window)
            nz = Yd != 0
            for a in range(cols.size):
                for b in range(a, cols.size):
                    rows = np.flatnonzero(nz[:, a] & nz[:, b])
                    if not rows.size:
                        continue
                    Wr = W[rows]
                    blk = (Wr * (Yd[rows, a] * Yd[rows, b])[:, None]).T @ Wr
                    ra, rb = lc[a] * p, lc[b] * p
                    A[ra:ra + p, rb:rb + p] += blk
                    if b != a:
                        A[rb:rb + p, ra:ra + p] += blk.T
            Bk = (self.S[self.pj[sel]].T @ R)                                  # m x |cols| p
            Bt.append((idx, lc, self.Q.T @ Bk))
        return dict(L=L, A=A, Bt=Bt, ks=ks)

    @property
    def _visited_set(self):
        if not hasattr(self, "_vs"):
            self._vs = set(int(k) for k in self.visited)
        return self._vs

    @property
    def _pairs_of(self):
        if not hasattr(self, "_po"):
            order = np.argsort(self.pk, kind="stable")
            bounds = np.searchsorted(self.pk[order], np.arange(self.d + 1))
            self._po = {k: order[bounds[k]:bounds[k + 1]] for k in range(self.d)}
        return self._po

    def factor(self, x: float) -> "Factorisation":
        """``N (H - x I)`` factorised; ``.below`` = eigenvalues of ``H`` below ``x``."""
        return Factorisation(self, x)

    def count_below(self, x: float) -> int:
        return Factorisation(self, x, keep=False).below


class Factorisation:
    """Block factorisation of ``N H - t I`` (``t = N x``): V by its Schur
    complement, the components by ``dsytrf``, the border last."""

    def __init__(self, H: StructuredHessian, x: float, keep: bool = True):
        self.H, self.x = H, x
        p = H.p
        t = H.N * x
        self.t = t
        self.Dinv = 1.0 / (H.NCs_vals - t)
        neg = H.d * int((H.NCs_vals < t).sum()) + p * H.isolated_rows
        border = np.zeros((p, p))
        border[np.diag_indices(p)] -= t
        self.parts = []
        for g in range(len(H.components)):
            blk = H.blocks[g] if H.blocks is not None else H._component(g)
            L = blk["L"]
            Sg = blk["A"].copy()
            pos = self.Dinv > 0
            sq = np.sqrt(np.abs(self.Dinv))[:, None]
            for idx, lc, Bt in blk["Bt"]:
                Z = sq * Bt                                   # Z^T Z: numpy's syrk (half the flops of a product)
                if pos.all():
                    _block_add(Sg, lc, p, -(Z.T @ Z))
                else:
                    Zp, Zn = np.ascontiguousarray(Z[pos]), np.ascontiguousarray(Z[~pos])
                    _block_add(Sg, lc, p, Zn.T @ Zn - Zp.T @ Zp)
            loc = slice(0, L * p)
            rb = slice(L * p, (L + 1) * p)
            S_loc = Sg[loc, loc]
            S_loc[np.diag_indices(L * p)] -= t
            C = Sg[loc, rb].copy()
            border += Sg[rb, rb]
            f = _LDL(S_loc)
            if f.singular:
                raise AssertionError(f"component {g} singular at shift {x:.3e}: choose another shift")
            neg += f.negatives
            Xg = f.solve(C)
            border -= C.T @ Xg
            if keep:
                self.parts.append((f, C, Xg))
        self.border = _LDL(0.5 * (border + border.T))
        if self.border.singular:
            raise AssertionError(f"the reward row's Schur complement is singular at shift {x:.3e}: choose another shift")
        neg += self.border.negatives
        self.below = int(neg)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``(H - x I)^{-1} b`` for ``count x k`` right-hand sides."""
        H = self.H
        m, p, q, d = H.m, H.p, H.q, H.d
        b = np.asarray(b).reshape(H.count, -1)
        k = b.shape[1]
        bP = b[:m * p].reshape(m, p, k)
        bV = b[m * p:].reshape(q, m, k)
        bVt = np.einsum("am,qak->qmk", H.Q, bV)                                 # Q^T bV_k
        locs = []
        zs = []
        rhs_b = bP[2 * d].copy()                                              # border rows (p x k)
        for g, (f, C, Xg) in enumerate(self.parts):
            blk = H.blocks[g]
            rows_g = H.components[g]
            L = blk["L"]
            c = np.concatenate([bP[rows_g].reshape(L * p, k), rhs_b * 0.0])
            for (idx, _, Bt), kk in zip(blk["Bt"], blk["ks"]):
                c[idx] -= Bt.T @ (self.Dinv[:, None] * bVt[kk])
            rhs_b += c[L * p:]
            z = f.solve(c[:L * p])
            locs.append(c)
            zs.append(z)
            rhs_b -= C.T @ z
        xr = self.border.solve(rhs_b)
        xP = np.zeros((m, p, k))
        xP[2 * d] = xr
        iso = np.ones(m, dtype=bool)
        iso[2 * d] = False
        for g, (f, C, Xg) in enumerate(self.parts):
            rows_g = H.components[g]
            iso[rows_g] = False
            xP[rows_g] = (zs[g] - Xg @ xr).reshape(rows_g.size, p, k)
        xP[iso] = bP[iso] / (-self.t)
        # V: x~_k = Dinv (b~_k - Bt_k xP_local)
        xVt = self.Dinv[None, :, None] * bVt
        for g, _ in enumerate(self.parts):
            blk = H.blocks[g]
            rows_g = H.components[g]
            loc = np.concatenate([xP[rows_g].reshape(-1, k), xr])
            for (idx, _, Bt), kk in zip(blk["Bt"], blk["ks"]):
                xVt[kk] -= self.Dinv[:, None] * (Bt @ loc[idx])
        xV = np.einsum("am,qmk->qak", H.Q, xVt)
        return H.N * np.concatenate([xP.reshape(m * p, k), xV.reshape(q * m, k)])


# ---------------------------------------------------------------------------
# Spectrum summary
# ---------------------------------------------------------------------------

#: Eigenvalue counts are reported at these fractions of lambda_max (10^-e).
DECADES = tuple(range(16, 5, -1))
#: A kernel is separated when no eigenvalue lies between GAP_BELOW and
#: KERNEL_RTOL times lambda_max (three decades under the threshold).
GAP_BELOW = 1e-12


def mu_shift_invert(H: StructuredHessian, lam: float, kernel_dim: int, seed: int = 0, certify: bool = True,
                    known: dict | None = None, sigma_hint: float | None = None) -> dict:
    """Smallest eigenvalue above ``KERNEL_RTOL * lam``: a lower shift
    ``sigma`` with ``count_below(sigma) == kernel_dim`` (decades up from the
    threshold; ``known``: counts already computed, ``{x: count}``), one
    log-bisection, Lanczos on ``(H - sigma)^{-1}`` (largest algebraic),
    Rayleigh quotients with ``H`` itself, and (``certify``) the counts at
    ``mu (1 -+ 1e-9)``: exactly ``kernel_dim`` below, more above."""
    thr = KERNEL_RTOL * lam
    if kernel_dim >= H.count:
        return dict(mu=math.nan, sigma=math.nan, certified=False, factorisations=0)
    known = dict(known or {})
    fac = 0

    def count(x):
        nonlocal fac
        if x not in known:
            known[x] = H.count_below(x)
            fac += 1
        return known[x]
    lo, hi = thr, None
    x = thr
    F = None
    if sigma_hint is not None and sigma_hint > thr:     # another sample's shift: usable if still below mu
        F = H.factor(sigma_hint)
        fac += 1
        if F.below == kernel_dim:
            lo = hi = sigma_hint
        else:
            F = None
    while hi is None and x < 10 * lam:
        x *= 10.0
        if count(x) > kernel_dim:
            hi = x
        else:
            lo = x
    hi = hi if hi is not None else 10 * lam
    if F is None:
        mid = math.sqrt(lo * hi)
        F = H.factor(mid)                   # its own count says on which side of mu it lies
        fac += 1
        known[mid] = F.below
        if F.below == kernel_dim:
            lo = mid
        else:
            hi = mid
            F = H.factor(lo)
            fac += 1
    sigma = lo
    op = sla.LinearOperator((H.count, H.count), matvec=lambda v: F.solve(v[:, None])[:, 0],
                            matmat=F.solve, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(H.count)
    _, vecs = sla.eigsh(op, k=4, which="LA", v0=v0, tol=LANCZOS_BOTTOM_TOL, ncv=24)
    vecs, _ = np.linalg.qr(vecs)
    small = vecs.T @ H.matmat(vecs)
    vals = np.linalg.eigvalsh(0.5 * (small + small.T))
    above = vals[vals > sigma]
    mu = float(above.min()) if above.size else math.nan
    cert = None
    if certify and math.isfinite(mu):
        cert = dict(below_mu_minus=count(mu * (1 - 1e-9)), below_mu_plus=count(mu * (1 + 1e-9)))
    return dict(mu=mu, sigma=sigma, bracket=[lo, hi], certificate=cert,
                certified=None if cert is None else (cert["below_mu_minus"] == kernel_dim
                                                     and cert["below_mu_plus"] > kernel_dim),
                factorisations=fac)


def memory_estimate(H: StructuredHessian, stored: bool = True) -> float:
    """Bytes the structured route holds: the per-pair data (``Y``, ``S``,
    the compressed sample), ``N C_s`` and its eigenvectors, and either every
    component's block, factor and ``Q^T B_k^T`` (``stored``: all shifts and
    the shift-invert solves reuse them) or the largest component's
    (``stored=False``: components formed one at a time, counts only)."""
    p, m = H.p, H.m
    base = H.M * 4 * F64 + H.Y.nnz * 12 + H.S.nnz * 12 + H.N * (p + 4 * H.oh.n) * F64 + m * m * 2 * F64
    per = []
    for rows in H.components:
        L = rows.size
        bt = 0.0
        for k in rows[rows < H.d]:
            sel = H._pairs_of[int(k)]
            if sel.size:
                bt += m * np.unique(H.Y[sel].indices).size * p * F64
        per.append(3 * ((L + 1) * p) ** 2 * F64 + bt)
    if not per:
        return base
    return base + (sum(per) if stored else max(per))
