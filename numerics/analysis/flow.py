"""``icrl-verify flow``: gradient flow of the teacher-mimicking loss near the
optimal set (Theorem 3.2): measured local rate against the predicted 2 mu,
and the basin of attraction of M* over a grid of radii.

The loss is the empirical loss on one fixed sample of prompts drawn as in
Algorithm 1 (the data never depend on the model, so the flow is well
defined); ``mu`` comes from ``icrl-verify richness`` on the same sample.
The flow is integrated by implicit (backward) Euler with the true gradient
(the loss is stiff: lambda_max / mu ~ 1e4, so an explicit method would need
~1e5 steps) on a fixed step schedule, in the deviation from theta* (so no
accept / reject decision and no rounding floor can turn the rounding of
another thread count into different numbers: issue 19, docs/flow.md); rates
are converted from per-step to flow time exactly for a linear mode.

Rate: start at theta* + a random perturbation of small radius, projected
off the kernel of the Hessian in the reduced parameterisation (kernel
directions do not decay: they are symmetries or flat data invariances); fit
log L on the last 40% of the flow time (a fixed window of the fixed grid),
where the slowest nonzero modes dominate.  Basin: for each radius r (relative to |theta*|),
random unprojected perturbations; a run ends on M* when its relative
distance to M* (numerics.manifold.distance_to_manifold) is below
FLOW_MANIFOLD_RTOL at flow time 20 / (2 mu).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.optimize import brentq

from numerics.analysis.hessian import PromptSample, join_reduced, sample_prompts
from numerics.analysis.manifold import distance_of_deviation
from numerics.analysis.richness import richness
from numerics.analysis.spectrum import cholesky_solver
from numerics.core.block import lemma_c1, mimic_loss
from numerics.core.distributions import MDPDistribution
from numerics.core.runtime import torch_threads
from numerics.core.tolerances import (
    CHORD_FAIL_RTOL,
    CHORD_FLOOR_RTOL,
    CHORD_HOPELESS_RTOL,
    CHORD_ITERATIONS,
    CHORD_MAX_ITERATIONS,
    CHORD_RTOL,
    CHORD_SPLITS,
    DTYPE,
    FLOW_MANIFOLD_RTOL,
    FLOW_RATE_RTOL,
    FLOW_TIME_RTOL,
    ROOT_RTOL,
)
from theory.errors import InputError

DEFAULT_RADII = (0.01, 0.1, 0.3, 1.0)

#: The flow runs to time ``DECAY / (2 mu)`` (the slowest mode's loss falls
#: by exp(-DECAY)) with steps up to ``STEP_MU / mu``.
DECAY, STEP_MU = 20.0, 0.1


def batched_loss(sample: PromptSample, P12, Vbar21, P22=None, Vbar22=None) -> torch.Tensor:
    """Loss of ``K`` weight sets at once (leading axis ``K``): returns ``K``.
    The Lemma C.1 read-out, ``1/2 mean_j |TF(H_j) - teacher_j|^2``."""
    return mimic_loss(lemma_c1(sample.X, sample.wt, P12, Vbar21, P22, Vbar22), sample.target)


def batched_grad(sample: PromptSample, P12, Vbar21, P22=None, Vbar22=None):
    """``(loss K, [gradients])`` in closed form (the chain rule through
    Lemma C.1; checked against autograd in the tests)."""
    X, wt, n, N = sample.X, sample.wt, sample.n, sample.N
    y, s, quad = lemma_c1(X, wt, P12, Vbar21, P22, Vbar22, parts=True)
    r = y - sample.target[None]
    L = 0.5 * (r * r).sum(-1).mean(-1)
    gV = torch.einsum("knq,knm->kqm", r, s) / N
    gs = torch.einsum("knq,kqm->knm", r, Vbar21)                  # dL/ds (times N)
    gu = torch.einsum("nim,knm->kni", X, gs) / n
    gz = torch.einsum("nim,kni->knm", X, gu)                       # Sigma gs
    gP = torch.einsum("knm,np->kmp", gz, wt) / N
    grads = [gP, gV]
    if P22 is not None:
        vw = torch.einsum("np,kqp->knq", wt, Vbar22)
        dq = (r * vw).sum(-1) / n                                  # dL/dquad (times N)
        grads.append(torch.einsum("kn,np,nr->kpr", dq, wt, wt) / N)
        grads.append(torch.einsum("kn,knq,np->kqp", quad / n, r, wt) / N)
    return L, grads


def deviation_grad(sample: PromptSample, base, dev):
    """``(loss K, [gradients])`` at ``theta* + dev`` computed from the
    deviation ``dev`` (``[dP12, dVbar21]`` or ``[dP12, dVbar21, P22,
    Vbar22]``, leading axis ``K``; ``base = (P12*, Vbar21*)``, the
    construction, whose P22 and Vbar22 are zero).

    The read-out is bilinear, so its change is exact in the deviation:
    ``Delta y = Vbar21* Sigma dP12 w~ + dVbar21 Sigma P12* w~ + dVbar21
    Sigma dP12 w~ (+ (1/n) Vbar22 w~ w~^T P22 w~)``, and at theta* the
    residual ``y* - teacher`` is exactly zero (Theorem 3.1, proved
    symbolically; the richness analysis checks it in float64 to
    ``FLAT_STEP_RTOL`` on this sample before the flow runs).  So the residual
    is ``Delta y``, computed to relative precision from ``dev``, instead of
    ``y - teacher``, a difference of O(1) numbers whose float64 rounding
    (~1e-16 absolute) reaches ~1e-6 of the residual late in a rate run: the
    flow and its loss then carry no rounding floor, and a rounding change in
    the inputs stays a rounding change in the numbers.  Same gradient
    formulas as :func:`batched_grad` (tested equal away from the floor)."""
    X, wt, n, N = sample.X, sample.wt, sample.n, sample.N
    Ps, Vs = base
    dP, dV = dev[0], dev[1]
    z0 = wt @ Ps.T                                                  # P12* w~          (N x m)
    s0 = torch.einsum("nim,ni->nm", X, torch.einsum("nim,nm->ni", X, z0)) / n
    dz = torch.einsum("np,kmp->knm", wt, dP)                        # dP12 w~
    ds = torch.einsum("nim,kni->knm", X, torch.einsum("nim,knm->kni", X, dz)) / n
    r = torch.einsum("knm,qm->knq", ds, Vs) + torch.einsum("nm,kqm->knq", s0, dV) \
        + torch.einsum("knm,kqm->knq", ds, dV)
    Vbar21 = Vs[None] + dV
    s = s0[None] + ds
    if len(dev) == 4:                                               # the cubic term (full parameterisation)
        P22, Vbar22 = dev[2], dev[3]
        quad = torch.einsum("np,kpr,nr->kn", wt, P22, wt)
        vw = torch.einsum("np,kqp->knq", wt, Vbar22)
        r = r + (quad / n)[..., None] * vw
    L = 0.5 * (r * r).sum(-1).mean(-1)
    gV = torch.einsum("knq,knm->kqm", r, s) / N
    gs = torch.einsum("knq,kqm->knm", r, Vbar21)
    gu = torch.einsum("nim,knm->kni", X, gs) / n
    gz = torch.einsum("nim,kni->knm", X, gu)
    gP = torch.einsum("knm,np->kmp", gz, wt) / N
    grads = [gP, gV]
    if len(dev) == 4:
        dq = (r * vw).sum(-1) / n
        grads += [torch.einsum("kn,np,nr->kpr", dq, wt, wt) / N, torch.einsum("kn,knq,np->kqp", quad / n, r, wt) / N]
    return L, grads


def _flat(blocks):
    return torch.cat([b.reshape(b.shape[0], -1) for b in blocks], 1)


def _unflat(v, shapes):
    out, i = [], 0
    for sh in shapes:
        k = int(np.prod(sh))
        out.append(v[:, i:i + k].reshape(v.shape[0], *sh))
        i += k
    return out


#: A run's refinement budget: implicit-step attempts it may spend on
#: bisected sub-steps over the whole flow (a far run needs a few hundred; a
#: run past the budget stops where it is and is counted as stopped, neither
#: on nor off M*).  A count of the run's own decisions, so the same on every
#: machine; it bounds the flow's time where the step needs refining all along.
REFINE_ATTEMPTS = 1000

#: Steps of the doubling ramp from 1 / lambda_max to h_max at most: 2^64
#: is beyond any condition number float64 can resolve.
MAX_RAMP_STEPS = 64


def schedule_length_bound(decay: float, step_mu: float) -> int:
    """The most steps :func:`step_schedule` can take for a flow to time
    ``decay / (2 mu)`` with ``h_max = step_mu / mu`` (whatever mu is): the
    ramp and ``decay / (2 step_mu)`` full steps."""
    return MAX_RAMP_STEPS + math.ceil(decay / (2 * step_mu)) + 1


def step_schedule(h0: float, h_max: float, t_end: float, max_steps: int) -> np.ndarray:
    """The implicit-Euler steps of every run: ``h0, 2 h0, 4 h0, ...`` up to
    ``h_max``, then ``h_max`` until flow time ``t_end`` (the last step
    shortened to land on it), at most ``max_steps`` steps.  A function of
    ``(h0, h_max, t_end)`` only, never of a run's data, so no accept / reject
    decision can turn a rounding difference into a different time grid."""
    if not (h0 > 0 and h_max > 0 and t_end > 0):
        raise InputError("flow", f"step schedule needs positive h0, h_max, t_end (got {h0}, {h_max}, {t_end})")
    hs, t, h = [], 0.0, min(h0, h_max)
    while t < t_end and len(hs) < max_steps:
        step = min(h, t_end - t)
        if t_end - t - step <= FLOW_TIME_RTOL * t_end:   # land on t_end, not a rounding sliver before it
            step = t_end - t
        hs.append(step)
        t += step
        h = min(2 * h, h_max)
    return np.asarray(hs, dtype=np.float64)


def run_flow(sample: PromptSample, blocks: list[torch.Tensor], spec, t_end: float, h_max: float,
             max_steps: int = 2000, progress=None):
    """Gradient flow by implicit (backward) Euler on ``K`` runs at once, on
    the fixed step schedule :func:`step_schedule` (from ``1 / lambda_max``,
    doubling up to ``h_max``, until ``t_end``).  The state is the deviation
    from theta* (``blocks``: deviations, see :func:`deviation_grad`), so the
    loss and its gradient are exact to relative rounding however close to
    theta* the run gets.

    Each step solves ``theta_new = theta + h (-grad L(theta_new))`` with the
    true gradient by chord (modified Newton) iterations preconditioned with
    ``(I + h H*)^{-1}``, ``H*`` the Hessian at theta* (identity on P22,
    Vbar22, where H* is zero); the preconditioner only speeds the
    iteration, the equation solved is the flow's.  The iteration runs to the
    rounding floor (``CHORD_RTOL``; after ``CHORD_ITERATIONS`` iterations a
    run below ``CHORD_FLOOR_RTOL`` or above ``CHORD_HOPELESS_RTOL`` is done,
    a slowly contracting one goes on up to ``CHORD_MAX_ITERATIONS``), so
    where it stops changes the result only at rounding level.  A run whose
    iteration does not converge (residual above ``CHORD_FAIL_RTOL`` of the
    step, far from both the converged and the diverging case) takes that step
    as 2, 4, ... equal implicit sub-steps (up to ``2**CHORD_SPLITS``); the
    time grid stays the schedule's.  A run no split solves stops there
    (its time stays short of ``t_end``).  ``blocks``: ``[P12, Vbar21]`` or
    ``[P12, Vbar21, P22, Vbar22]`` (deviations from ``(P12*, Vbar21*, 0,
    0)``), leading axis ``K``.  Returns ``(deviations, times K x T, losses
    K x T)`` (T = steps + 1; a run that stopped repeats its last value).
    """
    with torch_threads(1):         # these are small batched ops: one thread is fastest
        return _run_flow(sample, blocks, spec, t_end, h_max, max_steps, progress)


def _run_flow(sample, blocks, spec, t_end, h_max, max_steps, progress):
    shapes = [tuple(b.shape[1:]) for b in blocks]
    K = blocks[0].shape[0]
    nred = int(np.prod(shapes[0]) + np.prod(shapes[1]))
    theta = _flat(blocks)
    lam = torch.as_tensor(spec.values, dtype=DTYPE)
    Vec = torch.as_tensor(spec.vectors, dtype=DTYPE)
    dense = spec.dense
    schedule = step_schedule(1.0 / spec.lam_max, h_max, t_end, max_steps)
    chol_cache = {}

    def precond(F, h):
        """``(I + h H*)^{-1}`` on the reduced part, identity on the rest."""
        Fr = F[:, :nred]
        if dense:
            c = Fr @ Vec
            Pr = (c / (1 + h[:, None] * lam[None, :])) @ Vec.T
        else:
            Pr = torch.empty_like(Fr)
            for i in range(F.shape[0]):
                key = float(h[i])
                if key not in chol_cache:
                    chol_cache[key] = cholesky_solver(np.eye(nred) + key * spec.H)
                Pr[i] = torch.as_tensor(chol_cache[key](Fr[i].numpy()))
        return torch.cat([Pr, F[:, nred:]], 1)

    base = sample.construction()

    def grad(v):
        L, g = deviation_grad(sample, base, _unflat(v, shapes))
        return L, _flat(g)

    def implicit_step(th, g, h):
        """One backward-Euler step of size ``h`` (per run) from ``th``:
        ``(x, L(x), grad L(x), solved)``.  Each run iterates until its own
        residual stops it (never its batch mates'), so a run's numbers do not
        depend on which runs share its batch."""
        x = th - h[:, None] * g
        size = (h[:, None] * g).norm(dim=1) + 1e-300
        active = torch.ones(len(h), dtype=torch.bool)
        for it in range(CHORD_MAX_ITERATIONS):
            idx = torch.nonzero(active).flatten()
            _, gx = grad(x[idx])
            F = x[idx] - th[idx] + h[idx, None] * gx
            r = F.norm(dim=1) / size[idx]
            done = r <= CHORD_RTOL
            if it >= CHORD_ITERATIONS:   # at its rounding floor, or hopeless (its step will be split)
                done |= (r <= CHORD_FLOOR_RTOL) | ~(r <= CHORD_HOPELESS_RTOL)
            go = ~done
            if bool(go.any()):
                xn = x[idx[go]] - precond(F[go], h[idx[go]])
                x[idx[go]] = torch.where(torch.isfinite(xn), xn, th[idx[go]])
            active[idx[done]] = False
            if not bool(active.any()):
                break
        Lx, gx = grad(x)
        res = (x - th + h[:, None] * gx).norm(dim=1)
        solved = torch.isfinite(Lx) & (res <= CHORD_FAIL_RTOL * size)
        return x, Lx, gx, solved

    def split_step(th, g, h, level):
        """One run's step of size ``h`` that the chord iteration could not
        solve, as two implicit half-steps, each split again where it is not
        solved, down to ``h / 2**CHORD_SPLITS`` (bisection: only the part of
        the step that needs it is refined).  ``(x, L, grad, solved, depth)``,
        ``depth`` the finest level used."""
        half, depth = h / 2, level
        xa, La, ga, oka = attempt(th, g, half)
        if not bool(oka.all()) and level < CHORD_SPLITS:
            xa, La, ga, oka, da = split_step(th, g, half, level + 1)
            depth = max(depth, da)
        if not bool(oka.all()):
            return xa, La, ga, oka, depth
        xb, Lb, gb, okb = attempt(xa, ga, half)
        if not bool(okb.all()) and level < CHORD_SPLITS:
            xb, Lb, gb, okb, db = split_step(xa, ga, half, level + 1)
            depth = max(depth, db)
        return xb, Lb, gb, okb, depth

    spent = [0]

    def attempt(th, g, h):
        """:func:`implicit_step` of one run, counted against its budget
        (over budget: not solved, and the run stops)."""
        spent[0] += 1
        if spent[0] > REFINE_ATTEMPTS:
            return th, torch.full((1,), math.nan, dtype=DTYPE), g, torch.zeros(1, dtype=torch.bool)
        return implicit_step(th, g, h)

    def refined_step(th, g, h, level):
        """One run's step as ``2**level`` equal implicit sub-steps, each
        bisected further where it is not solved: ``(x, L, grad, solved,
        depth)``."""
        parts, depth = 2 ** level, level
        hs = h / parts
        x, gx, Lx, ok = th, g, None, torch.ones(1, dtype=torch.bool)
        for _ in range(parts):
            xn, Ln, gn, okn = attempt(x, gx, hs)
            if not bool(okn.all()) and level < CHORD_SPLITS:
                xn, Ln, gn, okn, dn = split_step(x, gx, hs, level + 1)
                depth = max(depth, dn)
            x, gx, Lx, ok = xn, gn, Ln, okn
            if not bool(ok.all()):
                break
        return x, Lx, gx, ok, depth

    L, g = grad(theta)
    t = torch.zeros(K, dtype=DTYPE)
    alive = torch.ones(K, dtype=torch.bool)
    #: per run, the sub-step level its next step starts at: one level coarser
    #: than the finest its last step needed (a run far from theta*, where the
    #: preconditioner H* is poor, needs the same refinement step after step;
    #: starting there saves the failed coarse attempts).  A decision of the
    #: run's own residuals, far from their thresholds (CHORD_FAIL_RTOL).
    level = [0] * K
    budget = [0] * K           # refinement attempts spent, per run
    times, losses = [t.clone()], [L.clone()]
    for hk in schedule:
        idx = torch.nonzero(alive).flatten()
        if len(idx) == 0:
            break
        h = torch.full((len(idx),), float(hk), dtype=DTYPE)
        coarse = torch.tensor([level[int(i)] == 0 for i in idx], dtype=torch.bool)
        x, Lx, gx = theta[idx].clone(), L[idx].clone(), g[idx].clone()
        solved = torch.zeros(len(idx), dtype=torch.bool)
        c = torch.nonzero(coarse).flatten()
        if len(c):
            x[c], Lx[c], gx[c], solved[c] = implicit_step(theta[idx[c]], g[idx[c]], h[c])
        for b in range(len(idx)):            # refined or unsolved runs: one at a time
            if bool(coarse[b]) and bool(solved[b]):
                continue
            run = int(idx[b])
            start = max(level[run], 1)             # a coarse run that failed starts at halves
            spent[0] = budget[run]
            xb, Lb, gb, okb, depth = refined_step(theta[run:run + 1], g[run:run + 1], h[b:b + 1], start)
            budget[run] = spent[0]
            x[b], Lx[b], gx[b], solved[b] = xb[0], Lb[0], gb[0], okb[0]
            level[run] = max(depth - 1, 0)
        theta[idx] = torch.where(solved[:, None], x, theta[idx])
        g[idx] = torch.where(solved[:, None], gx, g[idx])
        L[idx] = torch.where(solved, Lx, L[idx])
        t[idx] = t[idx] + torch.where(solved, h, torch.zeros_like(h))
        alive[idx] = solved
        times.append(t.clone())
        losses.append(L.clone())
        if progress:
            progress(1)
    return _unflat(theta, shapes), torch.stack(times, 1), torch.stack(losses, 1)


def fit_rate(times: np.ndarray, losses: np.ndarray, tail: float = 0.4) -> dict:
    """Flow rate of the loss of one run over the last ``tail`` fraction of
    its flow *time* (the points of the fixed time grid with ``t >= (1 - tail)
    t_final``: a window fixed by the schedule, not by the data).  Backward
    Euler multiplies a linear mode by ``1 / (1 + h lambda)`` per step, so over
    steps ``h_i`` the loss falls by ``prod (1 + h_i lambda)^-2``; ``lambda``
    is solved from the observed fall (exact for one linear mode, whatever the
    steps), rate ``2 lambda``.  Also the rate over the first and second half
    of the window (equal when the decay is exponential)."""
    dt = np.diff(times)
    steps = np.flatnonzero(dt > 0) + 1                      # steps taken (a stopped run repeats its time)
    keep = np.concatenate([[0], steps])
    t, L = times[keep], losses[keep]
    good = np.isfinite(L) & (L > 0)
    t, y = t[good], np.log(L[good])
    if len(t):
        inside = t >= (1 - tail) * t[-1]
        t, y = t[inside], y[inside]

    def rate(tt, yy):
        if len(tt) < 3:
            return math.nan
        hs = np.diff(tt)
        fall = -(yy[-1] - yy[0]) / 2                       # = sum log(1 + h_i lambda)
        if not fall > 0:
            return 0.0
        f = lambda lam: np.log1p(hs * lam).sum() - fall
        hi = 1.0 / hs.min()
        while f(hi) < 0:
            hi *= 2
        return float(2 * brentq(f, 0.0, hi, xtol=1e-300, rtol=ROOT_RTOL))
    k = len(t) // 2
    return dict(rate=rate(t, y), rate_first=rate(t[:k + 1], y[:k + 1]), rate_second=rate(t[k:], y[k:]),
                t_start=float(t[0]) if len(t) else math.nan, t_end=float(t[-1]) if len(t) else math.nan,
                steps_in_fit=len(t))


def flow_experiment(dist: MDPDistribution, algorithm="sarsa", parameterization: str = "reduced", *,
                    mdps: int = 20, frames: int = 20, n: int = 20, epsilon: float = 0.1, alpha: float = 0.2,
                    beta: float = 0.2, seed: int = 0, rate_radius: float = 1e-2, rate_runs: int = 3,
                    decay: float = DECAY, step_mu: float = STEP_MU, radii=DEFAULT_RADII, trials: int = 8,
                    basin_time: float | None = None, max_steps: int = 400, progress=None, keep: bool = False) -> dict:
    """The flow experiment (no files written).

    Returns a dict with the ``--json`` keys ``mu``, ``predicted_rate``,
    ``measured_rate``, ``rate_ratio``, ``converged``, ``basin`` (list of
    ``{radius, fraction}``) plus ``details``.
    """
    t0 = time.perf_counter()
    if parameterization not in ("reduced", "full"):
        raise InputError("parameterization", f"unknown {parameterization!r}; expected reduced or full")
    if not (rate_radius > 0):
        raise InputError("rate-radius", f"must be positive, got {rate_radius}")
    radii = [float(r) for r in radii]
    if any(not (r > 0) or not math.isfinite(r) for r in radii):
        raise InputError("radii", f"must be positive numbers, got {radii}")
    if not isinstance(trials, int) or trials < 1:
        raise InputError("trials", f"must be a positive integer, got {trials!r}")
    sample = sample_prompts(algorithm, dist, mdps=mdps, frames_per_mdp=frames, n=n, epsilon=epsilon,
                            alpha=alpha, beta=beta, seed=seed)
    rich = richness(dist, algorithm, parameterization, sample=sample, seed=seed, bootstrap=0, keep=True)
    spec = rich["_spectrum"]
    mu, lam_max = spec.mu, spec.lam_max
    if not math.isfinite(mu):
        raise InputError("distribution", "the Hessian is zero on this sample: no rate to measure")
    h_max = step_mu / mu
    t_end = decay / (2 * mu)
    gen = torch.Generator().manual_seed(seed + 2)
    P12s, Vbar21s = sample.construction()
    m, p, q = sample.m, sample.p, sample.q
    base = join_reduced(P12s, Vbar21s)
    norm = float(base.norm())
    K = spec.kernel
    full = parameterization == "full"

    def perturb(count, radius, project):
        """``count`` random deviations from theta* of norm ``radius * |theta*|``."""
        dim = base.numel() + (p * p + q * p if full else 0)
        Z = torch.randn(count, dim, generator=gen, dtype=DTYPE)
        if project:   # off the reduced kernel (and no P22 / Vbar22 part)
            Zr = Z[:, :base.numel()].numpy()
            Zr = Zr - (Zr @ K) @ K.T
            Z = torch.cat([torch.as_tensor(Zr), torch.zeros(count, dim - base.numel(), dtype=DTYPE)], 1)
        Z = Z / Z.norm(dim=1, keepdim=True) * radius * norm
        blocks = [Z[:, :m * p].reshape(count, m, p), Z[:, m * p:base.numel()].reshape(count, q, m)]
        if full:
            rest = Z[:, base.numel():]
            blocks += [rest[:, :p * p].reshape(count, p, p), rest[:, p * p:].reshape(count, q, p)]
        return blocks

    # ---- rate from small perturbations --------------------------------------
    # full parameterisation: its kernel holds the non-flat P22 / Vbar22
    # directions; they are perturbed too (same radius) to show their effect
    rate_blocks = perturb(rate_runs, rate_radius, project=not full)
    _, times, losses = run_flow(sample, rate_blocks, spec, t_end, h_max, max_steps, progress)
    fits = [fit_rate(times[i].numpy(), losses[i].numpy()) for i in range(rate_runs)]
    measured = float(np.median([f["rate"] for f in fits]))
    predicted = 2 * mu
    ratio = measured / predicted
    # ---- basin -----------------------------------------------------------------
    T = basin_time if basin_time is not None else t_end
    basin, runs = [], []
    for r in radii:
        blocks = perturb(trials, r, project=False)
        end, bt, bl = run_flow(sample, blocks, spec, T, h_max, max_steps, progress)
        t_final = bt[:, -1]
        ok = 0
        for i in range(trials):
            rel, c = distance_of_deviation(end[0][i], end[1][i], P12s, Vbar21s)
            extra = float(torch.cat([end[2][i].reshape(-1), end[3][i].reshape(-1)]).norm()) / norm if full else 0.0
            on = rel < FLOW_MANIFOLD_RTOL and extra < FLOW_MANIFOLD_RTOL
            ok += int(on)
            runs.append(dict(radius=r, rel_distance=rel, c=c, p22_vbar22_rel=extra, final_loss=float(bl[i, -1]),
                             on_manifold=bool(on), flow_time=float(t_final[i]), reached_time=bool(t_final[i] >= T)))
        basin.append(dict(radius=r, fraction=ok / trials))
    converged = bool(math.isfinite(ratio) and abs(ratio - 1) <= FLOW_RATE_RTOL)
    details = dict(prompts=sample.N, mdps=mdps, frames_per_mdp=frames, n=n, d=sample.d, h_max=h_max,
                   h_min=1.0 / lam_max, steps=int(times.shape[1] - 1),
                   lambda_max=lam_max, richness_verdict=rich["verdict"], kernel_dim=rich["kernel_dim"],
                   rate_radius=rate_radius, rate_fits=fits, flow_time=float(t_end),
                   basin_time=float(T), manifold_rtol=FLOW_MANIFOLD_RTOL,
                   rate_rtol=FLOW_RATE_RTOL, basin_runs=runs, seconds=time.perf_counter() - t0)
    out = dict(parameterization=parameterization, mu=mu, predicted_rate=predicted, measured_rate=measured,
               rate_ratio=ratio, converged=converged, basin=basin, details=details)
    if keep:
        out["_curves"] = (times.numpy(), losses.numpy())
    return out
