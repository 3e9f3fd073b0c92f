"""Richness for one-hot (tabular) families at the benchmark's own size:
the structured spectrum (:mod:`numerics.analysis.structured`), the family's
closed-form invariances computed from its MDPs, and a verdict only when the
sample is adequate (THEORY.md section 5b).

Sample adequacy.  The sampled kernel shrinks as the sample grows until it
reaches the population's (Darkroom 5x5: 27,943 at 2,000 prompts, 6,276 at
16,000).  So the analysis grows a nested sample (chunks of MDPs with their own
seeds; a larger sample contains the smaller) and gives a verdict only when

1. every visited state-action is seen by at least ``d + 1`` distinct MDPs
   (each ``phi`` row of ``P12`` has ``d + 1`` unknowns),
2. the eigenvalue counts show a gap: none between ``GAP_BELOW`` and
   ``KERNEL_RTOL`` times ``lambda_max``,
3. the kernel dimension is the same at two sample sizes (the second twice the
   first), and
4. every bootstrap replicate (a fresh sample of the final size) has the same
   kernel dimension.

Otherwise the verdict is ``undersampled`` with the numbers.  With an adequate
sample the kernel is compared with the closed-form count (``1 + n_c (p + q)``:
scaling plus the context null vectors ``c`` of the family's support, each
giving ``P12 + c v^T`` and ``Vbar21 + u c^T``); equal: ``morse-bott`` (or
``identifiable`` when ``n_c = 0``); larger: ``unresolved`` (kernel directions
that no closed form explains; the structured route does not classify them).

The population Hessian is not formed: the parameter columns ``w~`` follow
the teacher from ``w_0 ~ Unif(-1, 1)^d`` under epsilon-greedy behaviour in
``Q_w``, a continuous distribution without a closed-form second moment.
"""
from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from numerics.analysis.hessian import sample_prompts
from numerics.analysis.structured import (
    DECADES,
    GAP_BELOW,
    OneHotPrompts,
    StructuredHessian,
    check_structured,
    compress,
    memory_estimate,
    mu_shift_invert,
)
from numerics.core.tolerances import KERNEL_RTOL, RICHNESS_LAMMAX_RTOL
from theory.errors import InputError

#: MDPs drawn to enumerate a family's support (its possible context columns).
SUPPORT_MDPS = 256
SUPPORT_SEED = 12345
#: Relative eigenvalue threshold for the rank of the support's Gram matrix
#: (entries are 0, 1, gamma and rewards: the null space is exact).
SUPPORT_RTOL = 1e-10
#: lambda_max of the structured samples to this relative accuracy (it sets the
#: kernel threshold 1e-9 lambda_max; the gap check makes the count insensitive
#: to it); bootstrap replicates to RICHNESS_LAMMAX_RTOL as the dense route's.
LAMMAX_RTOL = 1e-8
#: Seeds of the sample's chunks and of the bootstrap replicates.
REPLICATE_OFFSET = 1000


def is_onehot(dist) -> bool:
    """Whether the distribution's features are one-hot per (state, action)
    (checked on a draw of 4 MDPs)."""
    _, F = dist.sample(4, torch.Generator().manual_seed(0))
    F = F.numpy().reshape(-1, F.shape[-1])
    return bool(np.all((F == 0) | (F == 1)) and np.all(F.sum(-1) == 1))


def structured_applies(record, dist) -> bool:
    """Whether ``--solver auto`` takes the structured route: one-hot
    features and the SARSA prompt layout with ``Vbar21* = alpha [I, 0, 0]``."""
    try:
        check_structured(record, "reduced", dist.d, 0.2, 0.2)
    except InputError:
        return False
    return is_onehot(dist)


def onehot_index(F: np.ndarray) -> np.ndarray:
    """``B x S x A`` index of the unit vector ``phi(s, a)``."""
    if not (np.all((F == 0) | (F == 1)) and np.all(F.sum(-1) == 1)):
        raise InputError("solver", "the structured route needs one-hot features; use --solver dense or matrix-free")
    return F.argmax(-1)


# ---------------------------------------------------------------------------
# The family's closed-form invariances
# ---------------------------------------------------------------------------

def support_invariances(dist, epsilon: float, labels=None, mdps: int = SUPPORT_MDPS,
                        seed: int = SUPPORT_SEED) -> dict:
    """Context null vectors of the family's support.

    Every possible context column ``x = [e_k; gamma e_k'; R(s, a, s')]``
    (``k = (s, a)`` with ``s`` reachable from ``rho0``, ``T(s'|s, a) > 0``,
    ``k' = (s', a')`` for every ``a'``: epsilon-greedy gives every action
    positive probability) of ``mdps`` MDPs of the family; ``c`` with
    ``x . c = 0`` for all of them is an invariance of every sample:
    ``P12 + c v^T`` and ``Vbar21 + u c^T`` leave every read-out unchanged.
    The parameter columns ``w~ = [1; w]`` have a positive definite second
    moment (``w_0 ~ Unif(-1, 1)^d``), so they add none.  Returns the count
    ``n_c`` (numerical rank of the support's Gram), the named groups
    (connected components of the graph ``k -- k'``) and whether the named
    vectors span the null space."""
    if not epsilon > 0:
        raise InputError("epsilon", "the structured route's support assumes epsilon > 0 (every action has positive "
                                    "probability); use --solver dense")
    mdp, F = dist.sample(mdps, torch.Generator().manual_seed(seed))
    T, R, gam, rho0 = mdp.T.numpy(), mdp.R.numpy(), mdp.gamma.numpy(), mdp.rho0.numpy()
    K = onehot_index(F.numpy())
    B, S, A, _ = T.shape
    d = int(F.shape[-1])
    m = 2 * d + 1
    rows, cols, vals = [], [], []
    nrow = 0
    edges = set()
    for b in range(B):
        reach = rho0[b] > 0
        while True:
            nxt = reach | (T[b][reach].max(axis=(0, 1)) > 0)
            if np.array_equal(nxt, reach):
                break
            reach = nxt
        s_i, a_i, s2 = np.nonzero((T[b] > 0) & reach[:, None, None])
        c = s_i.size
        k = K[b, s_i, a_i]
        for a2 in range(A):
            k2 = K[b, s2, a2]
            r = R[b, s_i, a_i, s2]
            idx = np.arange(nrow, nrow + c)
            rows += [idx, idx, idx]
            cols += [k, d + k2, np.full(c, 2 * d)]
            vals += [np.ones(c), np.full(c, gam[b]), r]
            nrow += c
            edges.update(zip(k.tolist(), k2.tolist()))
    X = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrow, m))
    G = (X.T @ X).toarray() / nrow
    ev, evec = np.linalg.eigh(G)
    null = ev <= SUPPORT_RTOL * ev.max()
    n_c = int(null.sum())
    gap = float(ev[~null].min() / max(abs(ev[null]).max(), 1e-300)) if n_c and (~null).any() else math.inf
    # named groups: components of the bipartite graph phi-node k -- gphi-node k'
    e = np.array(sorted(edges), dtype=np.int64).reshape(-1, 2)
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], d + e[:, 1])), shape=(2 * d, 2 * d))
    ncomp, lab = connected_components(adj, directed=False)
    gammas = np.unique(gam)
    groups = []
    basis = []
    for c in range(ncomp):
        nodes = np.flatnonzero(lab == c)
        phi_k = nodes[nodes < d]
        nxt_k = nodes[nodes >= d] - d
        v = np.zeros(m)
        if gammas.size == 1 and gammas[0] != 0:
            v[phi_k] = 1.0
            v[d + nxt_k] = -1.0 / gammas[0]
        elif phi_k.size and not nxt_k.size:
            v[phi_k] = 1.0
        elif nxt_k.size and not phi_k.size:
            v[d + nxt_k] = 1.0
        else:
            continue
        if np.abs(X @ v).max() > 1e-12 * max(1.0, np.abs(v).max()):
            continue        # rewards or several gammas break this group
        basis.append(v)
        groups.append(dict(pairs=[int(x) for x in phi_k], next_pairs=[int(x) for x in nxt_k]))
    named = len(groups)
    if basis:
        rank = int(np.linalg.matrix_rank(np.array(basis), tol=1e-9))
    else:
        rank = 0
    lab_fn = labels or (lambda k: f"pair {k}")
    sentences = [_group_sentence(g, lab_fn, gammas) for g in groups]
    return dict(count=n_c, support_mdps=B, support_columns=nrow, support_gap=gap, groups=groups, named=named,
                named_rank=rank, sentences=sentences, gammas=gammas.tolist(), d=d)


def _names(ks, lab, most: int = 8) -> str:
    shown = ", ".join(lab(k) for k in ks[:most])
    return shown if len(ks) <= most else f"{shown} and {len(ks) - most} more"


def _group_sentence(g: dict, lab, gammas) -> str:
    a, b = g["pairs"], g["next_pairs"]
    if a and b:
        return (f"{len(a)} state-action(s) {_names(a, lab)} are always followed by one of the {len(b)} pair(s) "
                f"{_names(b, lab)}: c = 1 on phi of the first, -1/gamma on gamma phi+ of the second (gamma = "
                f"{gammas[0]:g}) is orthogonal to every context column")
    if a:
        return f"state-action(s) {_names(a, lab)} never visited: their phi coordinates are zero in every column"
    return f"pair(s) {_names(b, lab)} never the next pair: their gamma phi+ coordinates are zero in every column"


# ---------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------

def chunk_seed(seed: int, chunk: int, replicate: int | None = None) -> int:
    key = [int(seed), int(chunk)] if replicate is None else [int(seed), REPLICATE_OFFSET + int(replicate), int(chunk)]
    return int(np.random.SeedSequence(key).generate_state(1)[0] & 0x7FFFFFFF)


def draw(record, dist, *, chunks: int, chunk_mdps: int, frames: int, n: int, epsilon: float, alpha: float,
         beta: float, seed: int, replicate: int | None = None, start: OneHotPrompts | None = None,
         first_chunk: int = 0) -> OneHotPrompts:
    """Chunks ``first_chunk .. chunks - 1`` of ``chunk_mdps`` MDPs x
    ``frames`` frames each (Algorithm 1), compressed and appended to
    ``start``: the sample of ``c`` chunks is a prefix of the sample of
    ``c' > c`` chunks."""
    out = start
    for c in range(first_chunk, chunks):
        smp = sample_prompts(record, dist, mdps=chunk_mdps, frames_per_mdp=frames, n=n, epsilon=epsilon,
                             alpha=alpha, beta=beta, seed=chunk_seed(seed, c, replicate))
        oh = compress(smp)
        del smp
        out = oh if out is None else out.join(oh)
    return out


def analyse(oh: OneHotPrompts, P12s: np.ndarray, *, decades=(12, 9), mu: bool = True, certify: bool = False,
            limit: float | None = None, seed: int = 0, hint=None, allow_streaming: bool = True,
            lam_tol: float = LAMMAX_RTOL) -> dict:
    """Kernel, counts per decade and mu of one sample."""
    t0 = time.perf_counter()
    H = StructuredHessian(oh, P12s)
    est = memory_estimate(H)
    streaming = limit is not None and est > limit
    if streaming and not allow_streaming:
        return dict(memory_estimate=est, over_memory=True, prompts=oh.N)
    if streaming:       # one component at a time: counts only, no shift-invert
        est = memory_estimate(H, stored=False)
        if est > limit:
            return dict(memory_estimate=est, over_memory=True, prompts=oh.N)
        mu = False
    else:
        H.build()
    lam = H.lam_max(lam_tol)
    counts = {e: H.count_below(10.0 ** -e * lam) for e in decades}
    kernel = counts[9]
    gap = counts[9] == counts[12] if 12 in counts else None
    out = dict(prompts=oh.N, pairs=H.M, components=len(H.components),
               largest_component=int(max((c.size for c in H.components), default=0)) * H.p,
               lambda_max=lam, counts={f"1e-{e}": c for e, c in counts.items()}, kernel=kernel, gap=gap,
               memory_estimate=est, over_memory=False, streaming=streaming)
    if mu:
        known = {10.0 ** -e * lam: c for e, c in counts.items()}
        r = mu_shift_invert(H, lam, kernel, seed=seed, certify=certify, known=known,
                            sigma_hint=hint[0] if hint else None)
        out.update(mu=r["mu"], mu_sigma=r["sigma"], mu_bracket=r.get("bracket"), mu_certificate=r.get("certificate"),
                   mu_certified=r["certified"])
    out["seconds"] = time.perf_counter() - t0
    out["_H"] = H
    return out


def decade_fill(H: StructuredHessian, lam: float, known: dict) -> dict:
    """Counts at every decade of :data:`DECADES` (``{e: count below 10^-e
    lambda_max}``), computing only what monotonicity does not settle: a
    decade between two decades with equal counts has that count too."""
    known = dict(known)
    es = sorted(DECADES, reverse=True)          # ascending x: 16, 15, ..., 6

    def get(e):
        if e not in known:
            known[e] = H.count_below(10.0 ** -e * lam)
        return known[e]

    def fill(i, j):                             # es[i] < es[j] in x; both counted
        if j - i < 2:
            return
        if get(es[i]) == get(es[j]):
            for k in range(i + 1, j):
                known[es[k]] = known[es[i]]
            return
        mid = (i + j) // 2
        get(es[mid])
        fill(i, mid)
        fill(mid, j)
    anchors = sorted({0, len(es) - 1} | {es.index(e) for e in known if e in es})
    for a, b in zip(anchors, anchors[1:]):
        get(es[a]), get(es[b])
        fill(a, b)
    return {e: known[e] for e in DECADES}


def closed_form_residual(H: StructuredHessian, inv: dict, P12s, Vbar21s, lam: float, seed: int = 0) -> dict:
    """``|H v| / (lambda_max |v|)`` for the scaling tangent and random
    combinations of the closed-form invariances (they must lie in the kernel)."""
    d, m, p, q = H.d, H.m, H.p, H.q
    rng = np.random.default_rng(seed)
    vs = np.concatenate([P12s.ravel(), -Vbar21s.ravel()])
    out = dict(scaling=float(np.linalg.norm(H.matmat(vs[:, None])) / (lam * np.linalg.norm(vs))))
    worst = 0.0
    for g in inv["groups"][:8]:
        c = np.zeros(m)
        c[g["pairs"]] = 1.0
        if g["next_pairs"] and inv["gammas"] and inv["gammas"][0] != 0:
            c[[d + k for k in g["next_pairs"]]] = -1.0 / inv["gammas"][0]
        dP = np.outer(c, rng.standard_normal(p))
        dV = np.outer(rng.standard_normal(q), c)
        v = np.concatenate([dP.ravel(), dV.ravel()])
        worst = max(worst, float(np.linalg.norm(H.matmat(v[:, None])) / (lam * np.linalg.norm(v))))
    out["invariances"] = worst
    return out


def tabular_richness(dist, record, *, mdps: int, frames: int, n: int, epsilon: float, alpha: float, beta: float,
                     seed: int, bootstrap: int, prompts: int | None = None, max_prompts: int = 64_000,
                     time_limit: float | None = None, max_memory: float | None = None, labels=None,
                     progress=None) -> dict:
    """The structured richness analysis with sample adequacy (module docstring).

    ``prompts`` fixes the final size (the comparison size is half of it);
    otherwise the sample starts at ``mdps x frames`` and doubles up to
    ``max_prompts``.  Returns the ``--json`` keys plus ``details``."""
    t0 = time.perf_counter()
    d = dist.d
    P12s, Vbar21s = check_structured(record, "reduced", d, alpha, beta)
    if not is_onehot(dist):
        raise InputError("solver", "the structured route needs one-hot features; use --solver dense or matrix-free")
    inv = support_invariances(dist, epsilon, labels=labels)
    p, q, m = d + 1, d, 2 * d + 1
    count = m * p + q * m
    closed = inv["count"] * (p + q)
    expected = closed + 1
    chunk_mdps = max(1, mdps // 2) if prompts is None else max(1, math.ceil(prompts / frames) // 2)
    final_chunks = None if prompts is None else 2
    max_chunks = max(2, max_prompts // (chunk_mdps * frames)) if prompts is None else 2

    def left():
        return math.inf if time_limit is None else time_limit - (time.perf_counter() - t0)

    ladder = []
    oh = None
    have = 0
    chunks = 2
    reason = None
    prev_kernel = None
    final = None
    while True:
        oh = draw(record, dist, chunks=chunks, chunk_mdps=chunk_mdps, frames=frames, n=n, epsilon=epsilon,
                  alpha=alpha, beta=beta, seed=seed, start=oh, first_chunk=have)
        have = chunks
        step = _coverage_step(oh, chunks * chunk_mdps, p)
        last = bool(final_chunks) or chunks * 2 > max_chunks or left() < 0
        if final_chunks:            # --prompts: the half sample (the first chunk) first, then the whole
            small = _prefix(oh, chunk_mdps * frames)
            half = analyse(small, P12s, decades=(12, 9), mu=False, seed=seed, limit=max_memory,
                           allow_streaming=True)
            hstep = _coverage_step(small, chunk_mdps, p)
            hstep.update({k: v for k, v in half.items() if not k.startswith("_")})
            ladder.append(hstep)
            prev_kernel = half.get("kernel")
            del half
        if step["coverage_ok"] or last:
            if final is not None:
                final.pop("_H", None)       # one Hessian alive at a time (the memory estimate counts one)
            analysed = analyse(oh, P12s, decades=(12, 9), seed=seed, limit=max_memory, mu=False,
                               allow_streaming=step["coverage_ok"])
            if analysed.get("over_memory") and not step["coverage_ok"]:
                # too few MDPs per pair anyway: say so without a spectrum that cannot be held
                step.update(memory_estimate=analysed["memory_estimate"], kernel_note=(
                    f"not computed: coverage too low, and the factorisation would need about "
                    f"{analysed['memory_estimate'] / 2**30:.1f} GB with its blocks kept"))
                ladder.append(step)
                reason = (f"at {oh.N:,} prompts (--max-prompts / --time-limit) the least-covered visited "
                          f"state-action is seen by {step['coverage_min']} MDPs, fewer than d + 1 = {p}")
                break
            if analysed.get("over_memory"):
                step.update(memory_estimate=analysed["memory_estimate"])
                ladder.append(step)
                if final is None:
                    raise InputError("max-memory", f"the structured factorisation of {oh.N} prompts needs about "
                                                   f"{analysed['memory_estimate'] / 2**30:.2f} GB, above the limit "
                                                   f"{max_memory / 2**30:.2f} GB; raise --max-memory")
                reason = (f"the factorisation at {oh.N} prompts needs about "
                          f"{analysed['memory_estimate'] / 2**30:.2f} GB, above the memory limit")
                break
            step.update({k: v for k, v in analysed.items() if not k.startswith("_")})
            stable = prev_kernel is not None and analysed["kernel"] == prev_kernel
            if final is not None:
                final.pop("_H", None)
            final = analysed
            prev_kernel = analysed["kernel"]
        else:
            stable = False
        ladder.append(step)
        if progress:
            progress(1)
        if stable and final["gap"] and step["coverage_ok"]:
            break
        if last:
            if not final_chunks:
                reason = ("time limit reached" if left() < 0 else
                          f"no stable kernel within {max_chunks * chunk_mdps * frames:,} prompts (--max-prompts)")
            break
        chunks *= 2
    # with a fixed size: compare the half sample
    kernels = [s.get("kernel") for s in ladder if s.get("kernel") is not None]
    stable = len(kernels) >= 2 and kernels[-1] == kernels[-2]
    cov_ok = ladder[-1]["coverage_ok"]
    gap_ok = bool(final and final["gap"])
    decade_counts = None
    if final is not None and stable and gap_ok and cov_ok and "_H" in final:
        lam = final["lambda_max"]
        known = {int(k[3:]): c for k, c in final["counts"].items()}
        decade_counts = {f"1e-{e}": c for e, c in decade_fill(final["_H"], lam, known).items()}
        final["counts"] = dict(decade_counts)
    if final is not None and "_H" not in final:           # the next size did not fit: no spectrum kept
        final.update(mu=math.nan, mu_note="not computed: the next sample size exceeded the memory limit")
        stable = gap_ok = False
    elif final is not None and final["_H"].blocks is None:
        final.update(mu=math.nan, mu_note="not computed: the factors of every component (for shift-invert) exceed "
                                          "the memory limit; counts were formed one component at a time")
    elif final is not None and stable and gap_ok and cov_ok:     # mu only where a verdict can follow
        lam = final["lambda_max"]
        r = mu_shift_invert(final["_H"], lam, final["kernel"], seed=seed,
                            known={10.0 ** -int(k[3:]) * lam: c for k, c in final["counts"].items()})
        final.update(mu=r["mu"], mu_sigma=r["sigma"], mu_bracket=r.get("bracket"), mu_certificate=r.get("certificate"),
                     mu_certified=r["certified"])
        ladder[-1].update(mu=r["mu"], mu_certified=r["certified"])
    sym_checks = None
    if final is not None and "_H" in final:     # checks on the main sample, then free it before the replicates
        sym_checks = closed_form_residual(final["_H"], inv, P12s, Vbar21s, final["lambda_max"], seed=seed)
        final.pop("_H")
    reps = []
    if final is not None and stable and gap_ok and cov_ok and left() > 0:
        for k in range(bootstrap):
            if left() < 0:
                reason = "time limit reached during the bootstrap"
                break
            rep = draw(record, dist, chunks=have, chunk_mdps=chunk_mdps, frames=frames, n=n, epsilon=epsilon,
                       alpha=alpha, beta=beta, seed=seed, replicate=k)
            a = analyse(rep, P12s, decades=(9,), seed=seed + k, limit=max_memory, certify=False,
                        hint=final.get("mu_bracket"), lam_tol=RICHNESS_LAMMAX_RTOL)
            reps.append({kk: v for kk, v in a.items() if not kk.startswith("_")})
            del a, rep
            if progress:
                progress(1)
    rep_agree = bool(reps) and all(r.get("kernel") == final["kernel"] for r in reps) \
        if bootstrap else True
    if bootstrap and not reps:
        rep_agree = None            # not run: the sample was not stable
    adequate = bool(final is not None and stable and gap_ok and cov_ok and rep_agree and len(reps) == bootstrap)
    details = dict(solver="structured", closed_form=dict(context_null=inv["count"], invariance_dim=closed,
                                                          expected_kernel=expected, support_mdps=inv["support_mdps"],
                                                          support_columns=inv["support_columns"],
                                                          support_gap=inv["support_gap"], named=inv["named"],
                                                          named_rank=inv["named_rank"], sentences=inv["sentences"],
                                                          groups=inv["groups"]),
                   ladder=ladder, chunk_mdps=chunk_mdps, frames_per_mdp=frames, n=n, d=d, m=m, p=p, q=q,
                   reduced_parameters=count, bootstrap_reps=len(reps), replicates=reps,
                   adequacy=dict(adequate=adequate, coverage_ok=cov_ok, coverage_needed=p, gap_ok=gap_ok,
                                 stable=stable, replicates_agree=rep_agree, reason=None if adequate else (
                                     reason or _why(cov_ok, gap_ok, stable, rep_agree))),
                   population="not formed: w~ follows the teacher from w_0 ~ Unif(-1, 1)^d under epsilon-greedy "
                              "behaviour in Q_w, a continuous law without a closed-form second moment; the sample "
                              "is grown instead")
    details["mu_note"] = final.get("mu_note") if final else None
    mu = final.get("mu", math.nan) if final else math.nan
    mus = [r["mu"] for r in reps if r.get("mu") is not None and math.isfinite(r["mu"])]
    ci = [float(np.percentile(mus, 2.5)), float(np.percentile(mus, 97.5))] if mus else [math.nan, math.nan]
    kernel = final["kernel"] if final else None
    if final is not None:
        details["symmetry_checks"] = sym_checks
        details["decade_counts"] = decade_counts
    if adequate:
        if kernel < expected:
            raise AssertionError(f"kernel {kernel} below the closed-form count {expected}: the invariances must lie in it")
        verdict = "unresolved" if kernel > expected else ("morse-bott" if closed > 0 else "identifiable")
    else:
        verdict = "undersampled"
    data_inv = closed if verdict in ("morse-bott", "identifiable") else None
    details["seconds"] = time.perf_counter() - t0
    return dict(parameterization="reduced", parameters=count, kernel_dim=kernel, symmetry_dim=1,
                data_invariance_dim=data_inv, nonflat_dim=0 if data_inv is not None else None, mu=mu, mu_ci95=ci,
                predicted_rate=2 * mu, verdict=verdict, prompts=ladder[-1]["prompts"],
                closed_form_kernel=expected, details=details)


def _coverage_step(oh: OneHotPrompts, mdps: int, p: int) -> dict:
    """Sample size and how many distinct MDPs visit each visited state-action."""
    cov = oh.coverage()
    vis = cov[cov > 0]
    return dict(mdps=mdps, prompts=oh.N, coverage_min=int(vis.min()) if vis.size else 0,
                coverage_median=float(np.median(vis)) if vis.size else 0.0, visited_pairs=int(vis.size),
                coverage_ok=bool(vis.size and vis.min() >= p))


def _why(cov_ok, gap_ok, stable, rep_agree):
    out = []
    if not cov_ok:
        out.append("some visited state-action is seen by fewer than d + 1 MDPs")
    if not gap_ok:
        out.append("no gap below the kernel threshold")
    if not stable:
        out.append("the kernel dimension changed between the last two sample sizes")
    if rep_agree is False:
        out.append("the bootstrap replicates' kernels disagree")
    return "; ".join(out)


def _prefix(oh: OneHotPrompts, N: int) -> OneHotPrompts:
    """The first ``N`` prompts (whole chunks, as drawn)."""
    # chunks are concatenated frame-major inside each chunk: the first chunk is rows [0, N)
    return OneHotPrompts(oh.d, oh.k[:N], oh.kn[:N], oh.g[:N], oh.r[:N], oh.wt[:N], oh.mdp[:N], oh.alpha)
