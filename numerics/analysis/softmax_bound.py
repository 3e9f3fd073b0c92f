"""Theorem 2 of Xie et al. (2026) measured: Assumption 5.1's margin ``C``
and the error of the softmax block against depth ``L`` and context length
``n`` beside the bound's two terms (docs/xie2026.md, section "Theorem 2").

Theorem 2 (as transcribed; the paper's eq. (23)): under Assumption 5.1 (some
``C`` in ``(0, (1-gamma)/2)`` with ``min_s M_pi(s, s) >= (1+gamma)/2 + C``),

    ||v_L - v_pi||_inf <= (1 - C)^L ||v_0 - v_pi||_inf + C' sqrt(log(C'/delta) / n)

with probability ``1 - delta``.  ``M_pi`` (eq. (22), whose text we could not
read) is taken as the ``n -> infinity`` limit of the empirical kernel
``M_n(s, s') = sum_k K(s_{k-1}, s) 1{s_{k-1} = s'}`` (eq. (20)):

    M_pi(s, s') = mu(s') exp g(s, s') / sum_m mu(m) exp g(s, m),

``mu`` the stationary distribution and ``g`` the feature inner product.  The
expected iteration is ``v <- v + M_pi (r_bar + gamma P v - v)``; its error map
``e <- (I - M_pi + gamma M_pi P) e`` has inf-norm at most
``2 (1 - min_s M_pi(s, s)) + gamma``, which is ``1 - 2C`` under the
assumption (so the paper's ``1 - C`` is implied).

Three MRP families (:data:`FAMILIES`): ``onehot`` and ``boyan-orth`` meet the
assumption for most draws at their default ``tau``; ``dense`` does not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from numerics.core import softmax as sm
from numerics.core.mdp import MDP
from numerics.core.mrp import boyan_chains, mrp_values, random_mrps, stationary_distribution, uniform_features
from numerics.core.tolerances import DTYPE, eps
from theory.errors import InputError

#: The default and --full sizes of `icrl-verify softmax-bound` (and of `claims --quick` / `--full`).
DEFAULT = {"mrps": 50, "contexts": [25, 50, 100, 200]}
FULL = {"mrps": 200, "contexts": [25, 50, 100, 200, 400, 800]}
DEFAULT_FAMILIES = ["onehot", "boyan-orth", "dense", "aliased"]

#: The failure probability of the bound's floor term when a ``C'`` is fitted.
DELTA = 0.05

#: Bootstrap resamples of the 95% percentile intervals.
BOOTSTRAP = 2000

#: Relative size below which a distance to the window's fixed point is rounding, not signal (rate fits skip it).
RATE_FLOOR_RTOL = 1e-10

#: Largest entry gap between the population error map measured by the plain loop and ``I - M_pi + gamma M_pi P``
#: from the margin: entries are O(1) sums of ``S`` terms, so rounding is ~1e-15; a wrong kernel or discount is O(1e-3+).
OPERATOR_ATOL = 1e-10

#: A window's limit: its affine map applied 2^DOUBLINGS (about 10^6) times by repeated squaring; it has one when
#: the last doubling moved it by at most LIMIT_RTOL (relative).  A map with an eigenvalue 1 (a state seen only as
#: the query) drifts by rounding linearly in the number of layers, ~3e-11 at 2^20 (measured), hence not more
#: doublings; eigenvalues below 1 - 1e-4 are converged to e^-100.
DOUBLINGS = 20
LIMIT_RTOL = 1e-8

#: Slack of "error <= bound" comparisons: rounding of the block's forward pass (``L`` layers of sums over
#: ``n + 1`` columns of numbers the size of ``||v_pi||``) is far below it.
BOUND_RTOL = 1e-9


@dataclass(frozen=True)
class Family:
    """An MRP family with its features: ``kind`` of the MRPs (random or
    Boyan), the feature map, the default ``tau`` (squared feature norm
    scale) and a one-line description."""

    name: str
    mrps: str
    features: str
    tau: float
    describe: str


FAMILIES = {
    "onehot": Family("onehot", "random", "onehot", 5.0,
                     "random MRPs (transition rows and start Dirichlet(1), rewards R(s,s') ~ Unif(-1,1)), "
                     "phi(s) = sqrt(tau) e_s (d = states)"),
    "boyan-orth": Family("boyan-orth", "boyan", "sphere", 12.0,
                         "Boyan chains (Wang et al.'s, rewards r(s) ~ Unif(-1,1)), phi(s) = sqrt(tau) u_s with u_s "
                         "uniform on the unit sphere of R^d (near-orthogonal for d >= states)"),
    "dense": Family("dense", "random", "uniform", 1.0,
                    "random MRPs as onehot, phi(s) = sqrt(tau) Unif(-1,1)^d (Wang et al.'s features; violates "
                    "Assumption 5.1 for most draws)"),
    "aliased": Family("aliased", "random", "aliased", 5.0,
                      "random MRPs as onehot, phi(s) = sqrt(tau) e_s but the last state shares state 0's feature "
                      "(d = states - 1; violates Assumption 5.1: M_pi has two equal rows)"),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise InputError("family", f"unknown {name!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def sample_family(fam: Family, batch: int, states: int, dim: int, tau: float, gamma: float,
                  gen: torch.Generator) -> tuple[MDP, torch.Tensor]:
    """``batch`` MRPs of the family and their features (``B x S x d``)."""
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise InputError("tau", f"must be a positive finite number, got {tau!r}")
    mdp = boyan_chains(batch, states, gen, gamma) if fam.mrps == "boyan" else random_mrps(batch, states, gen, gamma)
    if fam.features == "onehot":
        F = torch.eye(states, dtype=DTYPE).expand(batch, states, states).clone()
    elif fam.features == "aliased":
        if states < 2:
            raise InputError("states", f"the aliased family needs at least 2 states, got {states}")
        E = torch.eye(states - 1, dtype=DTYPE)
        F = torch.cat([E, E[:1]]).expand(batch, states, states - 1).clone()
    elif fam.features == "sphere":
        if not isinstance(dim, int) or dim < 1:
            raise InputError("features-dim", f"must be a positive integer, got {dim!r}")
        U = torch.randn(batch, states, dim, generator=gen, dtype=DTYPE)
        F = U / U.norm(dim=-1, keepdim=True)
    else:
        F = uniform_features(batch, states, dim, gen)
    return mdp, math.sqrt(tau) * F


# ============================================================= Assumption 5.1
def _features(mdp: MDP, features: torch.Tensor) -> torch.Tensor:
    F = torch.as_tensor(features, dtype=DTYPE)
    if F.dim() == 2:
        F = F.unsqueeze(0).expand(mdp.batch, *F.shape)
    if F.dim() != 3 or F.shape[:2] != (mdp.batch, mdp.states):
        raise InputError("features", f"expected shape ({mdp.batch}, {mdp.states}, d) or ({mdp.states}, d), "
                                     f"got {tuple(F.shape)}")
    if not torch.isfinite(F).all():
        raise InputError("features", "contains NaN or infinity")
    if mdp.actions != 1:
        raise InputError("actions", f"an MRP has one action, got {mdp.actions}")
    return F


def population_kernel(mu: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``M_pi[b, s, s'] = mu(s') exp g(s, s') / sum_m mu(m) exp g(s, m)``,
    ``g`` the feature inner product (``B x S x S``; rows sum to 1; the row
    maximum of ``g`` is subtracted before the exponential)."""
    G = features @ features.transpose(-1, -2)
    W = mu[:, None, :] * torch.exp(G - G.max(-1, keepdim=True).values)
    return W / W.sum(-1, keepdim=True)


def margin(mdp: MDP, features: torch.Tensor, gamma=None) -> dict:
    """Assumption 5.1 per MRP: ``M_pi`` (``B x S x S``), ``mu``, the
    smallest diagonal ``min_s M_pi(s, s)``, ``C = min_diag - (1+gamma)/2``
    and ``holds`` (``0 < C < (1-gamma)/2``); ``gamma`` defaults to the MRPs'
    own (a number given must satisfy ``0 <= gamma < 1``).  Also the bound
    ``2 (1 - min_diag) + gamma`` (``= 1 - 2C``) on the inf-norm of the
    population iteration's error map."""
    F = _features(mdp, features)
    g = mdp.gamma if gamma is None else _gamma(gamma, mdp.batch)
    mu = stationary_distribution(mdp)
    if not torch.isfinite(mu).all() or (mu < -1e-12).any():
        raise InputError("transitions", "the chain has no unique stationary distribution (not irreducible)")
    M = population_kernel(mu.clamp(min=0), F)
    dmin = M.diagonal(dim1=-2, dim2=-1).min(-1).values
    C = dmin - (1 + g) / 2
    return {"M": M, "mu": mu, "min_diag": dmin, "C": C, "gamma": g, "holds": (C > 0) & (C < (1 - g) / 2),
            "rate_bound": 2 * (1 - dmin) + g}


def _gamma(gamma, batch: int) -> torch.Tensor:
    g = torch.as_tensor(gamma, dtype=DTYPE).reshape(-1)
    if g.numel() == 1:
        g = g.expand(batch).clone()
    if g.shape != (batch,) or not torch.isfinite(g).all() or (g < 0).any() or (g >= 1).any():
        raise InputError("gamma", f"must satisfy 0 <= gamma < 1 (one or one per MRP), got {gamma!r}")
    return g


def quantiles(x: torch.Tensor, qs=(0.05, 0.25, 0.5, 0.75, 0.95)) -> dict:
    x = x.double()
    return {f"q{int(round(100 * q)):02d}": torch.quantile(x, q).item() for q in qs}


def margin_summary(m: dict) -> dict:
    """For a family: the fraction of MRPs meeting the assumption and the distribution of ``C``."""
    return {"mrps": int(m["C"].numel()), "fraction_holds": m["holds"].double().mean().item(),
            "C": quantiles(m["C"]), "C_mean": m["C"].mean().item(),
            "C_max_allowed": ((1 - m["gamma"]) / 2).max().item(), "min_diag": quantiles(m["min_diag"])}


# ======================================== the population iteration (reference)
def population_operator_loop(T: np.ndarray, features: np.ndarray, gamma: float, iters: int = 20_000) -> np.ndarray:
    """The error map of the expected weighted-softmax-TD iteration of one MRP
    (``S x S``), from its definition, by plain loops: the stationary
    distribution by power iteration of the lazy chain ``(I + T) / 2``, then
    for every unit error ``e_j`` the expected update at every ``s``,
    ``e_j(s) + E[exp g(s, s_i) (gamma e_j(s_{i+1}) - e_j(s_i))] / E[exp g(s, s_i)]``
    with ``s_i ~ mu`` and ``s_{i+1} ~ T(s_i, .)``.  Shares no code with
    :func:`margin` (the reference of :func:`rate_check`)."""
    S = T.shape[0]
    mu = np.full(S, 1.0 / S)
    for _ in range(iters):
        nxt = 0.5 * mu + 0.5 * mu @ T
        if np.abs(nxt - mu).max() < 1e-15:
            break
        mu = nxt
    mu = mu / mu.sum()
    out = np.zeros((S, S))
    for s in range(S):
        w = [mu[m] * math.exp(float(np.dot(features[s], features[m]))) for m in range(S)]
        total = sum(w)
        for j in range(S):
            acc = 0.0
            for m in range(S):
                nxt_e = sum(T[m, m2] * (1.0 if m2 == j else 0.0) for m2 in range(S))
                acc += w[m] * (gamma * nxt_e - (1.0 if m == j else 0.0))
            out[s, j] = (1.0 if s == j else 0.0) + acc / total
    return out


def rate_check(mdp: MDP, features: torch.Tensor, gamma=None, layers: int = 40) -> dict:
    """The derivation checked per MRP: the error map measured by
    :func:`population_operator_loop` equals ``I - M_pi + gamma M_pi P`` with
    ``M_pi`` and ``gamma`` from :func:`margin` (to :data:`OPERATOR_ATOL`),
    and its inf-norm is at most ``1 - 2C`` with ``C`` from :func:`margin`; and the measured
    rate of the iteration itself from ``v_0 = 0`` (``(||e_L|| / ||e_0||)^(1/L)``
    and the largest one-step ratio) beside ``1 - 2C`` and ``1 - C``.
    ``ok``: every MRP within ``1 - 2C`` (up to rounding).  ``gamma``: the
    discount the margin is computed with (default the MRPs' own; the loop
    always uses the MRPs' own)."""
    m = margin(mdp, features, gamma)
    F = _features(mdp, features)
    T = mdp.T[:, :, 0, :].numpy()
    rbar = mdp.expected_reward()[:, :, 0].numpy()
    g = mdp.gamma.numpy()          # the MRPs' own discount (``gamma`` is the margin's, the thing checked)
    M, gm = m["M"].numpy(), m["gamma"].numpy()
    norm, iter_rate, step_max, gap = [], [], [], []
    for b in range(mdp.batch):
        A = population_operator_loop(T[b], F[b].numpy(), float(g[b]))
        norm.append(np.abs(A).sum(1).max())
        formula = np.eye(T.shape[1]) - M[b] + gm[b] * M[b] @ T[b]
        gap.append(np.abs(A - formula).max())
        vpi = np.linalg.solve(np.eye(T.shape[1]) - g[b] * T[b], rbar[b])
        e = -vpi
        e0 = np.abs(e).max()
        ratios = []
        for _ in range(layers):
            nxt = A @ e
            if np.abs(e).max() > 0:
                ratios.append(np.abs(nxt).max() / np.abs(e).max())
            e = nxt
        iter_rate.append((np.abs(e).max() / e0) ** (1.0 / layers) if e0 > 0 else 0.0)
        step_max.append(max(ratios) if ratios else 0.0)
    norm = torch.tensor(norm, dtype=DTYPE)
    bound = 1 - 2 * m["C"]
    gap = torch.tensor(gap, dtype=DTYPE)
    within = (norm <= bound + 64 * eps() * (1 + bound.abs())) & (gap <= OPERATOR_ATOL)
    return {"op_norm": norm, "bound_1m2C": bound, "bound_1mC": 1 - m["C"], "within": within, "operator_gap": gap,
            "ok": bool(within.all()), "iter_rate": torch.tensor(iter_rate, dtype=DTYPE),
            "step_max": torch.tensor(step_max, dtype=DTYPE), "margin": m}


def rate_summary(rc: dict) -> dict:
    h = rc["margin"]["holds"]
    out = {"mrps": int(h.numel()), "mrps_holding": int(h.sum()), "ok": rc["ok"],
           "fraction_op_norm_within_1m2C": rc["within"].double().mean().item()}
    if h.any():
        for k in ("op_norm", "iter_rate", "step_max", "bound_1m2C", "bound_1mC"):
            out[k] = quantiles(rc[k][h], (0.5, 0.95, 1.0))
        out["fraction_iter_rate_le_1m2C"] = (rc["iter_rate"][h] <= rc["bound_1m2C"][h] + 1e-12).double().mean().item()
        out["fraction_iter_rate_le_1mC"] = (rc["iter_rate"][h] <= rc["bound_1mC"][h] + 1e-12).double().mean().item()
    return out


# ======================================================== the block, measured
def window_fixed_point(features: torch.Tensor, states: torch.Tensor, r: torch.Tensor, gamma: torch.Tensor) -> dict:
    """The window's own weighted softmax TD in state space (every layer
    applies the same affine map, the paper's frozen empirical operator):
    ``v <- v + K (r + (gamma N' - N) v)`` with ``K[s, i]`` the softmax over
    the context ``i = 0..n-1`` of ``g(s, s_i)`` and ``N``, ``N'`` the
    indicators of ``s_i`` and ``s_{i+1}``.  Returns its limit
    ``v_inf``, the limit of the iteration from ``v_0 = 0`` (``B x S``; 0 on
    states not in the window; NaN where it has none: ``limit``; ``radius``
    the spectral radius of the map on the window's states), the empirical
    ``M_n = K N`` diagonal margin ``C_n = min_s M_n(s, s) - (1+gamma)/2``
    over the window's states, the inf-norm of ``I - M_n + gamma P_n`` on
    them, and which states are in the window."""
    B, cols = states.shape
    S = features.shape[1]
    b = torch.arange(B)[:, None]
    G = features @ features.transpose(-1, -2)                     # B x S x S
    scores = G[b, :, states[:, :-1]]                              # B x n x S: g(s_i, s) = g(s, s_i)
    K = torch.softmax(scores, dim=1).transpose(1, 2)              # B x S x n, over i
    N = torch.nn.functional.one_hot(states[:, :-1], S).to(DTYPE)  # B x n x S
    N1 = torch.nn.functional.one_hot(states[:, 1:], S).to(DTYPE)
    Mn, Pn = K @ N, K @ N1
    seen = torch.nn.functional.one_hot(states, S).sum(1) > 0      # B x S
    gm = gamma[:, None, None]
    Gmap = gm * Pn - Mn
    bvec = (K @ r.unsqueeze(-1)).squeeze(-1)
    eye = torch.eye(S, dtype=DTYPE).expand(B, S, S)
    keep = (seen[:, :, None] & seen[:, None, :]).to(DTYPE)
    # The limit from v_0 = 0 of v <- (I + G) v + b on the window's states, by repeated squaring of the augmented
    # map [[I + G, b], [0, 1]] (2^DOUBLINGS layers).  A solve of G v = -b would not do: G has rank at most the
    # number of distinct source states, so a state seen only as the query makes it singular while the
    # iteration from 0 still converges.  No limit (NaN): not finite, or still moving at the last doubling.
    Aug = torch.zeros(B, S + 1, S + 1, dtype=DTYPE)
    Aug[:, :S, :S] = (eye + Gmap) * keep
    Aug[:, :S, S] = bvec * seen.to(DTYPE)
    Aug[:, S, S] = 1.0
    prev = None
    for _ in range(DOUBLINGS):
        prev, Aug = Aug[:, :S, S], Aug @ Aug
    v = Aug[:, :S, S].clone()
    moved = (v - prev).abs().amax(-1)
    limit = torch.isfinite(v).all(-1) & (moved <= LIMIT_RTOL * (1 + v.abs().amax(-1)))
    v[~limit] = float("nan")
    radius = torch.linalg.eigvals((eye + Gmap) * keep).abs().amax(-1)
    big = torch.finfo(DTYPE).max
    diag = torch.where(seen, Mn.diagonal(dim1=-2, dim2=-1), torch.full_like(bvec, big))
    It = eye - Mn + gm * Pn
    rows = torch.where(seen, (It.abs() * keep).sum(-1), torch.zeros_like(bvec))
    return {"v_inf": v, "C_n": diag.min(-1).values - (1 + gamma) / 2, "rho_n": rows.max(-1).values, "seen": seen,
            "radius": radius, "limit": limit}


def block_values(X: torch.Tensor, r: torch.Tensor, gamma: torch.Tensor, layers: int, alpha: float = 1.0,
                 form: str = "one-head", chunk_bytes: float = 2e8) -> torch.Tensor:
    """``v_l`` of every column for ``l = 0..layers`` from the softmax block
    with Theorem 1's weights (``B x (layers+1) x (n+1)``), in batch chunks
    that keep the attention below ``chunk_bytes``."""
    B, cols, d = X.shape
    per = max(1, int(chunk_bytes // (4 * 8 * cols * cols)))
    V, A = sm.construction(d, 0.0, form, alpha)
    out = []
    for lo in range(0, B, per):
        hi = min(B, lo + per)
        g = gamma[lo:hi]
        Vb = V
        if form == "two-head":           # the second head's gamma is per MRP
            Vb = V.unsqueeze(0).repeat(hi - lo, 1, 1, 1)
            R = sm.rows(d)
            Vb[:, 1, R["target"], [R["r"], R["target"], R["current"]]] = \
                g[:, None] * torch.tensor([alpha, alpha, -alpha], dtype=DTYPE)
            Vb = Vb.transpose(0, 1)
        Zs = sm.forward_layers(sm.prompt(X[lo:hi], r[lo:hi]), Vb, A, layers=layers, form=form, gamma=g, d=d)
        out.append(torch.stack([sm.values(Z, d) for Z in Zs], dim=1))
    return torch.cat(out)


def measure(mdp: MDP, features: torch.Tensor, contexts, layers: int, gen: torch.Generator, alpha: float = 1.0,
            progress=None) -> dict:
    """For each context length ``n``: one fresh window per MRP, the block's
    ``v_l`` (``l = 0..layers``) and, over the window's states,
    ``err[l] = ||v_l - v_pi||_inf``, ``dist[l] = ||v_l - v_inf||_inf`` (the
    window's own fixed point), the floor ``||v_inf - v_pi||_inf``, ``e0``,
    the empirical margin ``C_n`` and contraction ``rho_n``, and whether the
    context covers every state."""
    vpi = mrp_values(mdp)
    out = []
    for n in contexts:
        X, r, S = sm.windows(mdp, features, n, gen)
        V = block_values(X, r, mdp.gamma, layers, alpha)                       # B x (L+1) x (n+1)
        fp = window_fixed_point(features, S, r, mdp.gamma)
        b = torch.arange(mdp.batch)[:, None]
        want = vpi[b, S]                                                       # B x (n+1)
        vinf = fp["v_inf"][b, S]
        err = (V - want[:, None, :]).abs().amax(-1)
        dist = (V - vinf[:, None, :]).abs().amax(-1)
        floor = (vinf - want).abs().amax(-1)
        covered = torch.nn.functional.one_hot(S[:, :-1], mdp.states).sum(1).gt(0).all(-1)
        out.append({"n": n, "err": err, "dist": dist, "floor": floor, "e0": err[:, 0], "C_n": fp["C_n"],
                    "rho_n": fp["rho_n"], "covered": covered, "limit": fp["limit"], "radius": fp["radius"]})
        if progress is not None:
            progress(1)
    return {"cells": out, "v_pi_inf": vpi.abs().amax(-1)}


# ================================================================== statistics
def bootstrap_mean(x: torch.Tensor, gen: torch.Generator, resamples: int = BOOTSTRAP, level: float = 0.95):
    """Mean over the first axis of ``x`` (``B x ...``) and its percentile
    bootstrap interval (``resamples`` resamples of the rows), as numpy."""
    x = x.reshape(x.shape[0], -1).double()
    B = x.shape[0]
    idx = torch.randint(B, (resamples, B), generator=gen)
    W = torch.zeros(resamples, B, dtype=DTYPE).scatter_add_(1, idx, torch.ones(resamples, B, dtype=DTYPE))
    means = W @ torch.nan_to_num(x, nan=float("inf")) / B
    lo, hi = torch.quantile(means, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=DTYPE), dim=0)
    return x.mean(0).numpy(), lo.numpy(), hi.numpy()


def fit_slope(n: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``log y = a + slope log n``: ``(slope, exp(a))``."""
    ln, ly = np.log(np.asarray(n, float)), np.log(np.asarray(y, float))
    slope, a = np.polyfit(ln, ly, 1)
    return float(slope), float(math.exp(a))


def fitted_cprime(n: np.ndarray, q: np.ndarray, delta: float = DELTA) -> float:
    """The smallest ``C'`` with ``C' sqrt(log(C'/delta) / n) >= q_n`` at
    every ``n`` (the floor term covering the given floor quantiles);
    bisection in ``log C'`` (the left side increases for ``C' > delta``)."""
    def term(c, nn):
        return c * math.sqrt(math.log(c / delta) / nn)
    best = delta
    for nn, qq in zip(n, q):
        if not math.isfinite(qq):
            return float("inf")
        lo, hi = delta * (1 + 1e-12), max(2 * delta, 1.0)
        while term(hi, nn) < qq:
            hi *= 2
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if term(mid, nn) < qq else (lo, mid)
        best = max(best, hi)
    return best


def floor_term(cprime: float, n, delta: float = DELTA):
    return cprime * np.sqrt(np.log(cprime / delta) / np.asarray(n, float))


def bound_violations(err: torch.Tensor, e0: torch.Tensor, C: torch.Tensor, floor, rate: str = "1-C") -> torch.Tensor:
    """Where ``err[b, l] > rate^l e0[b] + floor`` (``B x (L+1)``, bool),
    ``rate`` ``1 - C`` (Theorem 2) or ``1 - 2C`` (the derived population
    rate); ``floor`` a number, or one per MRP.  The comparison has a slack of
    :data:`BOUND_RTOL` times the scale."""
    L = err.shape[1]
    k = torch.arange(L, dtype=DTYPE)
    rho = (1 - C) if rate == "1-C" else (1 - 2 * C)
    fl = torch.as_tensor(floor, dtype=DTYPE)
    fl = fl.reshape(-1, 1) if fl.dim() == 1 else fl
    bound = rho.clamp(min=0)[:, None] ** k[None, :] * e0[:, None] + fl
    return err > bound + BOUND_RTOL * (1 + e0[:, None])


def measured_rate(dist: torch.Tensor) -> torch.Tensor:
    """Per MRP, the geometric rate of ``dist[l] = ||v_l - v_inf||``: the
    largest ``(dist[l] / dist[0])^(1/l)`` over ``l >= 1`` while ``dist[l]``
    is above rounding (``RATE_FLOOR_RTOL dist[0]``); NaN when no layer is."""
    L = dist.shape[1]
    l = torch.arange(1, L, dtype=DTYPE)
    d0 = dist[:, :1]
    ratio = (dist[:, 1:] / d0).clamp(min=0)
    ok = dist[:, 1:] > RATE_FLOOR_RTOL * d0
    r = torch.where(ok, ratio ** (1 / l), torch.full_like(ratio, float("nan")))
    return torch.where(ok.any(1), torch.nan_to_num(r, nan=-1.0).amax(1), torch.full_like(d0[:, 0], float("nan")))


def _frac(mask: torch.Tensor) -> float:
    return mask.double().mean().item() if mask.numel() else float("nan")


def _group(cells: list, pick: torch.Tensor, gen: torch.Generator) -> dict:
    """Error, floor and rate statistics of the MRPs ``pick`` at every ``n``:
    the mean error per ``L`` with its 95% bootstrap interval, the error at
    the largest ``L`` and the window's own floor (mean, interval, median,
    95% quantile), and the fit of ``log floor`` against ``log n``."""
    rows = []
    for c in cells:
        e = c["err"][pick]
        m, lo, hi = bootstrap_mean(e, gen)
        fin = torch.isfinite(c["floor"][pick])
        fm, flo, fhi = bootstrap_mean(c["floor"][pick][fin].unsqueeze(-1), gen) if fin.any() else ([np.nan],) * 3
        last = e[:, -1]
        rows.append({"n": c["n"], "err": {"mean": m, "lo": lo, "hi": hi},
                     "err_at_L": {"mean": float(m[-1]), "lo": float(lo[-1]), "hi": float(hi[-1]),
                                  **quantiles(last[torch.isfinite(last)], (0.5, 0.95))},
                     "floor": {"mean": float(fm[0]), "lo": float(flo[0]), "hi": float(fhi[0]),
                               "finite": int(fin.sum()),
                               **(quantiles(c["floor"][pick][fin], (0.5, 0.95)) if fin.any() else {})},
                     "diverged": int((~torch.isfinite(last) | (last > 1e6 * (1 + c["e0"][pick]))).sum()),
                     "coverage": _frac(c["covered"][pick]),
                     "no_limit": int((~c["limit"][pick]).sum()),
                     "C_n": quantiles(c["C_n"][pick], (0.05, 0.5)),
                     "fraction_C_n_positive": _frac(c["C_n"][pick] > 0),
                     "rho_n": quantiles(c["rho_n"][pick], (0.5, 0.95, 1.0))})
    ns = np.array([c["n"] for c in cells], float)
    out = {"mrps": int(pick.numel()), "cells": rows}
    fl = np.array([r["floor"]["mean"] for r in rows])
    el = np.array([r["err_at_L"]["mean"] for r in rows])
    if len(ns) >= 2 and np.all(np.isfinite(fl)) and np.all(fl > 0) and np.all(np.isfinite(el)) and np.all(el > 0):
        slope, amp = fit_slope(ns, fl)
        boot = []
        for _ in range(200):        # the slope's interval: resample the MRPs within every n
            sub = pick[torch.randint(pick.numel(), (pick.numel(),), generator=gen)]
            boot.append(fit_slope(ns, np.array([c["floor"][sub].mean().item() for c in cells]))[0])
        boot = np.array(boot)
        boot = boot[np.isfinite(boot)]
        sl, al = fit_slope(ns, el)
        out["floor_fit"] = {"slope": slope, "slope_lo": float(np.quantile(boot, 0.025)) if boot.size else np.nan,
                            "slope_hi": float(np.quantile(boot, 0.975)) if boot.size else np.nan,
                            "amplitude": amp, "slope_err_at_L": sl, "amplitude_err_at_L": al}
    return out


def summarise(meas: dict, marg: dict, gen: torch.Generator, delta: float = DELTA) -> dict:
    """Statistics of :func:`measure`: over all MRPs (``all``) and over those
    that meet the assumption (``holding``, the theorem's premise), where the
    bound is tested.  The holding MRPs are split in two halves by index: the
    floor quantile ``floor_n`` and ``C'`` are fitted on the first
    (calibration; over the windows whose iteration has a limit) and the bound with them is tested on the second.

    Violation counts (``L >= 1``):
    ``geometric``: ``err_L - floor > (1-C)^L e0`` with the window's own floor
    (where its iteration has no limit: the error at the largest ``L``);
    ``geometric_1m2C``: the same with the derived rate ``1 - 2C``;
    ``floor_n``: ``err_L > (1-C)^L e0 + floor_n`` (held-out half);
    ``cprime``: ``err_L > (1-C)^L e0 + C' sqrt(log(C'/delta)/n)`` (held-out half)."""
    holds, C, cells = marg["holds"], marg["C"], meas["cells"]
    everyone = torch.arange(holds.numel())
    idx = torch.nonzero(holds).flatten()
    out = {"mrps": int(holds.numel()), "mrps_holding": int(idx.numel()), "delta": delta,
           "all": _group(cells, everyone, gen)}
    if idx.numel() < 4:
        out["note"] = "fewer than 4 MRPs meet Assumption 5.1: the bound is not tested"
        return out
    out["holding"] = _group(cells, idx, gen)
    out["holding"]["C"] = quantiles(C[idx], (0.05, 0.5, 0.95))
    cal, test = idx[: idx.numel() // 2], idx[idx.numel() // 2:]
    ns = np.array([c["n"] for c in cells], float)
    q_cal = []
    for c, row in zip(cells, out["holding"]["cells"]):
        e, e0, Ch = c["err"][idx], c["e0"][idx], C[idx]
        fl = torch.where(torch.isfinite(c["floor"][idx]), c["floor"][idx], e[:, -1])   # no limit: the error at L max
        k = torch.arange(e.shape[1], dtype=DTYPE)
        geo = (1 - Ch).clamp(min=0)[:, None] ** k[None, :] * e0[:, None]
        gm, glo, ghi = bootstrap_mean(geo, gen)
        row["geometric"] = {"mean": gm, "lo": glo, "hi": ghi}
        gv = bound_violations(e, e0, Ch, fl)[:, 1:]
        gv2 = bound_violations(e, e0, Ch, fl, "1-2C")[:, 1:]
        fc = c["floor"][cal]
        q = torch.quantile(fc[torch.isfinite(fc)], 1 - delta).item() if torch.isfinite(fc).any() else float("nan")
        q_cal.append(q)
        fv = bound_violations(c["err"][test], c["e0"][test], C[test], q)[:, 1:]
        rate = measured_rate(c["dist"][idx])
        fin = torch.isfinite(rate)
        row.update({"floor_n": q,
                    "violations": {"geometric": _count(gv), "geometric_1m2C": _count(gv2), "floor_n": _count(fv)},
                    "measured_rate": quantiles(rate[fin], (0.5, 0.95, 1.0)) if fin.any() else {},
                    "fraction_rate_le_1mC": _frac((rate <= 1 - Ch + 1e-12)[fin]),
                    "fraction_rate_le_1m2C": _frac((rate <= 1 - 2 * Ch + 1e-12)[fin]),
                    "fraction_rate_le_rho_n": _frac((rate <= c["rho_n"][idx] + 1e-9)[fin])})
    cp = fitted_cprime(ns, np.array(q_cal), delta)
    V = torch.stack([bound_violations(c["err"][test], c["e0"][test], C[test], float(floor_term(cp, nn, delta)))[:, 1:]
                     for c, nn in zip(cells, ns)])                       # n x test x L
    out["cprime"] = {"delta": delta, "value": cp, "fitted_on": int(cal.numel()), "tested_on": int(test.numel()),
                     "term": {int(nn): float(floor_term(cp, nn, delta)) for nn in ns},
                     "violations": {"triples": int(V.sum()), "of": int(V.numel()),
                                    "windows": int(V.any(-1).sum()), "of_windows": int(V.shape[0] * V.shape[1])}}
    for row, v in zip(out["holding"]["cells"], V):
        row["violations"]["cprime"] = _count(v)
    tot = {k: sum(r["violations"][k]["pairs"] for r in out["holding"]["cells"])
           for k in ("geometric", "geometric_1m2C", "floor_n", "cprime")}
    out["bound_fails"] = {"geometric": tot["geometric"] > 0, "cprime_rate": out["cprime"]["violations"]["windows"]
                          / max(1, out["cprime"]["violations"]["of_windows"]),
                          "floor_n_at_largest_n": out["holding"]["cells"][-1]["violations"]["floor_n"]}
    return out


def _count(mask: torch.Tensor) -> dict:
    """``mask`` (``MRPs x L``): violating pairs, of how many, and MRPs with any."""
    return {"pairs": int(mask.sum()), "of": int(mask.numel()), "mrps": int(mask.any(1).sum()),
            "of_mrps": int(mask.shape[0])}


def experiments(families, *, mrps: int, states: int, dim: int, tau: float | None, gamma: float, contexts,
                layers: int, seed: int, rate_mrps: int = 50, progress=None) -> list:
    """:func:`experiment` of each family in turn, family ``i`` from seed
    ``seed + 1000 i`` (its own stream), at its default ``tau`` unless one is given."""
    out = []
    for i, name in enumerate(families):
        fam = family(name)
        out.append(experiment(fam, mrps=mrps, states=states, dim=dim, tau=fam.tau if tau is None else tau,
                              gamma=gamma, contexts=contexts, layers=layers, seed=seed + 1000 * i,
                              rate_mrps=rate_mrps, progress=progress))
    return out


def experiment(fam: Family, *, mrps: int, states: int, dim: int, tau: float, gamma: float, contexts, layers: int,
               seed: int, alpha: float = 1.0, rate_mrps: int = 50, progress=None) -> dict:
    """One family: draw the MRPs, their margin, the population rate check
    (on the first ``rate_mrps``), the measurement and its summary."""
    gen = torch.Generator().manual_seed(seed)
    mdp, F = sample_family(fam, mrps, states, dim, tau, gamma, gen)
    marg = margin(mdp, F)
    k = min(rate_mrps, mrps)
    rc = rate_check(mdp[slice(0, k)], F[:k], layers=layers)
    meas = measure(mdp, F, contexts, layers, gen, alpha, progress)
    summ = summarise(meas, marg, torch.Generator().manual_seed(seed + 1))
    return {"family": fam.name, "describe": fam.describe, "tau": tau, "d": int(F.shape[-1]), "states": states,
            "gamma": gamma, "alpha": alpha, "layers": layers, "contexts": list(contexts),
            "margin": margin_summary(marg), "rate": rate_summary(rc), "summary": summ,
            "_meas": meas, "_margin": marg}
