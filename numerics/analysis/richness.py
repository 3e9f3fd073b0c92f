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
import time

import numpy as np
import torch

from numerics.analysis.hessian import (
    PromptSample,
    Structure,
    bilinear_reduced,
    gauss_newton_reduced,
    join_reduced,
    loss,
    loss_scale,
    sample_prompts,
    split_reduced,
    structure,
    vjp_reduced,
)
from numerics.analysis.matrix_free import MatrixFreeSpectrum
from numerics.analysis.spectrum import Spectrum, replicate_lam_max, smallest_off_kernel
from numerics.core.block import PARAMETERIZATIONS, block_literal
from numerics.core.constructions import unread_mask
from numerics.core.distributions import MDPDistribution
from numerics.core.prompts import assemble_prompt
from numerics.core.tolerances import (
    DESCRIBE_ATOL,
    DTYPE,
    EXPLAIN_RANK_RTOL,
    EXPLAIN_SPAN_RTOL,
    FLAT_RTOL,
    FLAT_STEP_RTOL,
    KERNEL_RTOL,
    MONOMIAL_RANK_RTOL,
)
from theory import algorithms
from theory.errors import InputError
from theory.symmetry import symmetry_tangent_dim

#: Default parametric-bootstrap replicates above DENSE_EIGH_LIMIT (each
#: replicate: a fresh sample, its closed-form H, Lanczos for lambda_max, one
#: Cholesky and shift-invert Lanczos; about 8-12 s at d = 36 on 2 shared
#: cores), chosen so the Section 4.1 report stays under 60 s.
BIG_BOOTSTRAP = 3

SOLVERS = ("auto", "dense", "matrix-free", "structured")
#: ``--solver auto`` uses the matrix-free route above this many reduced
#: parameters.  The dense route holds ``E[J^T J]`` (count^2 float64: 0.23 GB
#: at d = 36, count 5329; 2.2 GB at d = 64; 32 GB at d = 125) and its
#: Cholesky factor; measured at d = 36 (docs/richness.md): dense and
#: matrix-free take comparable time there, and above ~8000 parameters
#: (d >= 45) the dense matrices alone pass 1 GB.
MATRIX_FREE_ABOVE = 8000
#: the largest reduced parameter count the matrix-free route has been tried
#: at (Darkroom 5x5 one-hot, d = 125: it had not converged after 10 minutes on
#: a 2-core machine, nor within the 30-minute --time-limit under load;
#: docs/richness.md).  Above it ``--solver auto`` takes the dense route, whose
#: memory guard refuses at once, rather than start an eigensolver that would
#: run until ``--time-limit``.
MATRIX_FREE_REACH = 63_001

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
    record, d = sample.record, sample.d
    m, p, q = sample.m, sample.p, sample.q
    D = m + p
    sub = sample.subset(torch.arange(min(prompts, sample.N)))
    Hp = assemble_prompt(sub.X, sub.wt)
    P = torch.randn(D, D, generator=gen, dtype=DTYPE)
    V = torch.randn(D, D, generator=gen, dtype=DTYPE)
    mP, mV = unread_mask(record, d)
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
    if np.allclose(vals, 0, atol=DESCRIBE_ATOL):
        return "0"
    if np.allclose(vals, vals[0], atol=DESCRIBE_ATOL):
        x = float(vals[0])
        one = " 1" if vals.size > 1 else ""
        if abs(abs(x) - 1) < DESCRIBE_ATOL:
            return "-1" if x < 0 else "1"
        if gamma is not None and gamma != 0 and abs(abs(x) - gamma) < DESCRIBE_ATOL:
            return ("-" if x < 0 else "") + "gamma" + one
        return f"{x:.4g}" + one
    return "[" + ", ".join(f"{float(x):.3g}" for x in vals) + "]"


def describe_vector(c: np.ndarray, blocks, gamma: float | None) -> str:
    """``(gamma 1, -1, 0)`` over the layout's named blocks."""
    c = c / np.abs(c).max()
    nz = np.flatnonzero(np.abs(c) > DESCRIBE_ATOL)
    if nz.size and c[nz[0]] < 0:
        c = -c
    parts = [f"{_block_text(c[s:e], b, gamma)}" for b, (s, e) in blocks]
    names = ", ".join(b for b, _ in blocks)
    return "(" + ", ".join(parts) + ")" + f" over ({names})"


def invariance_sentences(sample: PromptSample, R: np.ndarray | None, scaling: np.ndarray) -> dict:
    """Explain the data invariances by null vectors of the stacked context
    columns (``x_i . c = 0`` for every column of every prompt) and of the
    parameter columns (``w~ . b = 0``); report how many of the found
    invariance dimensions they span."""
    m, p, q = sample.m, sample.p, sample.q
    lay = sample.record.layout
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
        rest = uu[:, sv > EXPLAIN_RANK_RTOL]
    for i in range(rest.shape[1]):
        c = rest[:, i]
        sentences.append(f"every context column x_i is orthogonal to c = {describe_vector(c, ctx_blocks, gamma)}: "
                         f"P12 + c v^T (v in R^{p}) and Vbar21 + u c^T (u in R^{q}) leave every read-out unchanged "
                         f"({p + q} directions)")
    if R is None:   # matrix-free route: the sentences only (the spans are its closed-form deflation)
        for i in range(bn.shape[1]):
            sentences.append(f"every parameter column w~ is orthogonal to b = "
                             f"{describe_vector(bn[:, i], par_blocks, gamma)}: P12 + a b^T (a in R^{m}) leaves "
                             f"every read-out unchanged ({m} directions)")
        return dict(sentences=sentences, context_null=int(cn.shape[1]), parameter_null=int(bn.shape[1]))
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
        return int(np.linalg.matrix_rank(A, tol=EXPLAIN_SPAN_RTOL * max(1.0, np.abs(A).max()))) if A.size else 0
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
    r_mono = int(np.linalg.matrix_rank(mono, tol=MONOMIAL_RANK_RTOL * max(1.0, np.abs(mono).max()) * max(mono.shape)))
    r_w = int(np.linalg.matrix_rank(wt, tol=MONOMIAL_RANK_RTOL * max(1.0, np.abs(wt).max()) * max(wt.shape)))
    dim = p * (p + 1) // 2 + q * p
    radical = (p * (p + 1) // 2 - r_mono) + q * (p - r_w)
    return dict(dim=dim, radical=radical, rank_quadratic_forms=r_mono, rank_parameter_columns=r_w)


#: Replicate ``k`` of the parametric bootstrap draws its sample with seed
#: ``seed + BOOTSTRAP_SEED_OFFSET + k`` (the main sample uses ``seed``, the
#: flatness checks ``seed + 1``): deterministic, and replicate ``k`` does not
#: depend on how many replicates are asked for.
BOOTSTRAP_SEED_OFFSET = 1000



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
        fresh = sample_prompts(sample.record, dist, mdps=sample.mdps, frames_per_mdp=frames_per_mdp,
                               n=sample.n, epsilon=epsilon, alpha=sample.alpha, beta=sample.beta, seed=rseed)
        Hk = gauss_newton_reduced(structure(fresh))
        lam = replicate_lam_max(Hk, spec.dense)
        reps_out.append(dict(seed=rseed, mu=smallest_off_kernel(Hk, lam, kernel_dim, spec.dense), lambda_max=lam))
        del Hk
        if progress:
            progress(1)
    return reps_out


def richness(dist: MDPDistribution, algorithm="sarsa", parameterization: str = "reduced", *,
             mdps: int = 100, frames: int = 20, n: int = 20, epsilon: float = 0.1, alpha: float = 0.2,
             beta: float = 0.2, seed: int = 0, bootstrap: int = 20, sample: PromptSample | None = None,
             progress=None, keep: bool = False, solver: str = "auto", time_limit: float | None = None) -> dict:
    """The richness analysis (no files written).

    ``solver``: ``dense`` (the closed-form ``E[J^T J]`` and its spectrum),
    ``matrix-free`` (:mod:`numerics.analysis.matrix_free`; reduced
    parameterisation only) or ``auto`` (matrix-free above
    :data:`MATRIX_FREE_ABOVE` reduced parameters).

    Returns a dict with the ``--json`` keys (``parameterization``,
    ``parameters``, ``kernel_dim``, ``symmetry_dim``, ``data_invariance_dim``,
    ``nonflat_dim``, ``mu``, ``mu_ci95``, ``verdict``) plus evidence
    (``details``).  With ``keep=True`` also ``_spectrum``, ``_sample`` and
    ``_structure`` (numpy / tensors, for the flow experiment and plots).
    """
    t0 = time.perf_counter()
    record = algorithms.get(algorithm)
    if parameterization not in PARAMETERIZATIONS:
        raise InputError("parameterization", f"unknown {parameterization!r}; expected reduced or full")
    if not isinstance(bootstrap, int) or bootstrap < 0:
        raise InputError("bootstrap", f"must be a non-negative integer, got {bootstrap!r}")
    if bootstrap > 0 and dist is None:
        raise InputError("bootstrap", "the parametric bootstrap draws fresh samples from the MDP distribution: "
                                      "pass the distribution (or bootstrap=0)")
    if solver == "structured":
        raise InputError("solver", "the structured route draws and grows its own sample: call "
                                   "numerics.analysis.tabular.tabular_richness (icrl-verify richness --solver structured)")
    if sample is None:
        sample = sample_prompts(record, dist, mdps=mdps, frames_per_mdp=frames, n=n, epsilon=epsilon,
                                alpha=alpha, beta=beta, seed=seed)
    m, p, q = sample.m, sample.p, sample.q
    count = sample.index.reduced_count()
    if sample.N * q < count:
        raise InputError("prompts", f"{sample.N} prompts x {q} outputs < {count} reduced parameters: the sample "
                                    f"cannot determine the Hessian's rank; use at least {math.ceil(count / q)} prompts")
    scale = loss_scale(sample)
    if not scale > 0:       # the teacher does not move theta: nothing to measure the loss against
        raise InputError("alpha", f"the teacher's update is zero on this sample (loss of the zero update "
                                  f"{scale:.1e}); use a step size that is not negligible")
    if solver not in SOLVERS:
        raise InputError("solver", f"unknown {solver!r}; expected one of {', '.join(SOLVERS)}")
    if solver == "auto":
        solver = "matrix-free" if count > MATRIX_FREE_ABOVE and parameterization == "reduced" else "dense"
    if solver == "matrix-free":
        if parameterization != "reduced":
            raise InputError("solver", "the matrix-free route handles the reduced parameterization; use --solver dense")
        return _richness_matrix_free(dist, sample, bootstrap=bootstrap, seed=seed, epsilon=epsilon,
                                     progress=progress, keep=keep, t0=t0, time_limit=time_limit)
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
    orbit = max(float(loss(sample, c * P12s, Vbar21s / c)) for c in (-2.0, 0.5, 3.0)) / scale
    sym_formula = int(symmetry_tangent_dim(record, parameterization, sample.d))
    at_star = float(loss(sample, P12s, Vbar21s)) / scale
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
    details["solver"] = "dense"
    out = dict(parameterization=parameterization, parameters=params, kernel_dim=int(kernel_dim),
               symmetry_dim=int(symmetry_dim), data_invariance_dim=int(data_inv), nonflat_dim=int(nonflat_dim),
               mu=spec.mu, mu_ci95=ci, predicted_rate=2 * spec.mu, verdict=verdict, details=details)
    if keep:
        out.update(_spectrum=spec, _sample=sample, _structure=st)
    return out




def _richness_matrix_free(dist, sample: PromptSample, *, bootstrap: int, seed: int, epsilon: float, progress,
                          keep: bool, t0: float, time_limit: float | None) -> dict:
    """The reduced-parameter analysis with :class:`MatrixFreeSpectrum`.

    Kernel = closed-form invariances (data invariances, exactly flat, their
    second-order term zero against every direction) + the scaling tangent
    (the symmetry) + LOBPCG's further kernel vectors; the latter are
    classified flat / non-flat by the dense route's projected Gram on
    ``[scaling, rest]`` (exact: the invariances add nothing to it), with
    ``H^+`` by conjugate gradients."""
    record = sample.record
    gen = torch.Generator().manual_seed(seed + 1)
    st = structure(sample)
    P12s, Vbar21s = sample.construction()
    vs = scaling_tangent(P12s, Vbar21s)
    left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
    spec = MatrixFreeSpectrum(st, sample.X, vs, Vbar21s, seed=seed, time_limit=left, progress=progress)
    count = st.count
    at_star = float(loss(sample, P12s, Vbar21s)) / loss_scale(sample)
    if not at_star <= FLAT_STEP_RTOL:
        raise AssertionError(f"the construction does not fit the teacher on this sample: loss(theta*) / "
                             f"zero-update loss = {at_star:.3e} > {FLAT_STEP_RTOL:g}")
    orbit = max(float(loss(sample, c * P12s, Vbar21s / c)) for c in (-2.0, 0.5, 3.0)) / loss_scale(sample)
    Hvs = float(np.linalg.norm(spec.op(vs[:, None])) / (spec.lam_max * np.linalg.norm(vs)))
    sym_checks = dict(scaling_H_residual=Hvs, orbit_max_rel_loss=orbit, theta_star_rel_loss=at_star,
                      invariance_H_residual=spec.known_residual,
                      scaling_outside_kernel=0.0)   # the kernel basis contains v_scale (projected off E) by construction
    U = np.column_stack([spec.scaling, spec.rest])
    rest = spec.rest.shape[1]
    if rest:
        fl = flat_classification(sample, st, _Kernel(spec, U))
        radical = fl["radical"].shape[1]
        flat_values = fl["values"].tolist()
        F = straight_flat(st, sample.X, fl["radical"])
        step = finite_steps(sample, F, gen)
        rise = None
        if radical < U.shape[1]:
            v = fl["nonradical"][:, 0]
            rise = quartic_rise(sample, st, spec, v / np.linalg.norm(v) * float(np.linalg.norm(vs)))
    else:   # kernel = invariances + scaling: flat by the closed form
        radical, flat_values, step, rise = 1, [], 0.0, None
        fl = dict(gap=math.inf)
    data_inv = spec.known_dim + radical - 1
    nonflat = U.shape[1] - radical
    expl = invariance_sentences(sample, None, vs)
    expl.update(found=data_inv, explained=spec.known_dim, explanations_in_kernel=spec.known_residual <= KERNEL_RTOL)
    verdict = "fails" if nonflat > 0 else ("morse-bott" if data_inv > 0 else "identifiable")
    mus = []
    reps_seeds = []
    frames_per_mdp = sample.N // sample.mdps
    for k in range(bootstrap if math.isfinite(spec.mu) else 0):
        rseed = seed + BOOTSTRAP_SEED_OFFSET + k
        fresh = sample_prompts(record, dist, mdps=sample.mdps, frames_per_mdp=frames_per_mdp, n=sample.n,
                               epsilon=epsilon, alpha=sample.alpha, beta=sample.beta, seed=rseed)
        sfresh = structure(fresh)
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        rspec = MatrixFreeSpectrum(sfresh, fresh.X, vs, Vbar21s, seed=rseed, time_limit=left,
                                   start=spec.ritz_vectors)      # warm start: the main sample's Ritz vectors
        mus.append(rspec.mu)
        reps_seeds.append(rseed)
        if progress:
            progress(1)
    ci = [float(np.percentile(mus, 2.5)), float(np.percentile(mus, 97.5))] if mus else [math.nan, math.nan]
    details = dict(prompts=sample.N, mdps=sample.mdps, frames_per_mdp=frames_per_mdp, n=sample.n, d=sample.d,
                   m=sample.m, p=sample.p, q=sample.q, reduced_parameters=count, eigensolver=spec.method,
                   solver="matrix-free", lambda_max=spec.lam_max, kernel_threshold=spec.threshold,
                   kernel_rtol=KERNEL_RTOL, largest_kernel_eigenvalue=spec.largest_kernel, spectral_gap=spec.gap,
                   reduced_kernel_dim=spec.kernel_dim, closed_form_invariances=spec.known_dim,
                   lobpcg_kernel=rest, ritz_values=spec.values.tolist(), ritz_residuals=spec.residuals.tolist(),
                   lobpcg_iterations=spec.iterations, lobpcg_converged=spec.converged,
                   operator_applications=spec.op.calls, symmetry_formula=1, symmetry_checks=sym_checks,
                   flat_rtol=FLAT_RTOL, flat_gram_eigenvalues=flat_values, straight_flat_dim=radical,
                   finite_step_max_rel_loss=step, finite_step_rtol=FLAT_STEP_RTOL, quartic_rise=rise,
                   invariances=expl, bootstrap="parametric: fresh samples of the same size from the MDP distribution",
                   bootstrap_reps=len(mus), bootstrap_mus=mus, bootstrap_seeds=reps_seeds,
                   bootstrap_mu_mean=float(np.mean(mus)) if mus else math.nan, flat_gap=fl["gap"],
                   bootstrap_mu_rel_spread=float(np.std(mus, ddof=1) / np.mean(mus)) if len(mus) > 1 else math.nan,
                   bootstrap_coverage_of_range=(len(mus) - 1) / (len(mus) + 1) if mus else math.nan,
                   mu_in_ci95=bool(mus) and ci[0] <= spec.mu <= ci[1], seconds=time.perf_counter() - t0)
    out = dict(parameterization="reduced", parameters=count, kernel_dim=int(spec.kernel_dim), symmetry_dim=1,
               data_invariance_dim=int(data_inv), nonflat_dim=int(nonflat), mu=spec.mu, mu_ci95=ci,
               predicted_rate=2 * spec.mu, verdict=verdict, details=details)
    if keep:
        out.update(_spectrum=spec, _sample=sample, _structure=st)
    return out


class _Kernel:
    """A spectrum's ``pinv_apply`` with the kernel basis ``U`` that the flat
    classification runs on."""

    def __init__(self, spec, U):
        self.kernel, self.pinv_apply = U, spec.pinv_apply
