"""Distances of Wang et al.'s trained transformers (issue 21, "distances
that say what they measure"), each per seed, next to the weight distance
of :func:`numerics.analysis.train.family_distance`:

- :func:`function_distance`: in function space.  The trained block's outputs
  on held-out prompts against the best member of the construction family,
  whose preconditioner ``C`` is fitted by least squares on the same prompts
  (:func:`fit_preconditioner`); the member's outputs are computed in weight
  space, ``w_L(C) . phi_q`` with ``w_{l+1} = w_l + (1/n) C Phi^T delta(w_l)``
  (:func:`preconditioned_td_values`), never through the block.
- :func:`split_converged`: the seeds that left the initialisation
  (``WANG_CONVERGED_DISTANCE``) and those that did not.
- :func:`seed_average_distance`: the weight distance of the seed-averaged
  weights, each seed first brought to one representative of its symmetry
  class (:func:`canonical`), with a bootstrap interval over seeds.
- :func:`gphi_diagonals` and :func:`diagonal_measures`: where the weights
  leave the construction, the pair of diagonals in ``V``'s ``gphi_next`` rows
  (value rows that write ``gamma phi'``), its share of ``V``'s
  off-construction norm and what zeroing it changes in the output.

Everything takes the trainer's shapes: ``P``, ``V`` ``seeds x D x D`` (tied)
or ``L x seeds x D x D`` (untied).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from numerics.analysis.train import (
    LayersTrainConfig,
    heldout_draws,
    family_distance,
    sliding_windows,
    t_interval,
    values,
)
from numerics.core.mrp import Windows
from numerics.core.prompts import evaluation_prompt
from numerics.core.tolerances import DTYPE, WANG_CONVERGED_DISTANCE

#: Levenberg-Marquardt iterations of :func:`fit_preconditioner` (each start) and
#: its stop: the relative decrease of the squared residual below this.
FIT_ITERATIONS = 100
FIT_STOP = 1e-10
#: Bootstrap resamples of seeds for the seed-averaged distance's interval.
BOOTSTRAP = 2000


# ---- the construction family in function space ----------------------------------------------

def preconditioned_td_values(win: Windows, C: torch.Tensor, layers: int) -> torch.Tensor:
    """``w_L . phi_q`` of ``L`` steps of batch TD(0) with preconditioner ``C``
    from ``w_0 = 0``: ``w_{l+1} = w_l + (1/n) C_l Phi^T (r + gamma Phi' w_l -
    Phi w_l)`` (Wang et al.'s TD(0) construction; ``C``: ``d x d``, one for
    every layer, or ``L x d x d``, one per layer).  ``win`` batched (``B``
    windows); returns ``B`` values, differentiable in ``C``."""
    phi, phin, r = win.phi, win.phi_next, win.r
    n = phi.shape[1]
    w = torch.zeros(phi.shape[0], phi.shape[2], dtype=DTYPE)
    for k in range(layers):
        Ck = C if C.ndim == 2 else C[k]
        delta = r + win.gamma[:, None] * (phin @ w[..., None]).squeeze(-1) - (phi @ w[..., None]).squeeze(-1)
        w = w + ((phi.transpose(1, 2) @ delta[..., None]).squeeze(-1) @ Ck.T) / n
    return (w * win.phi_q).sum(-1)


def implied_preconditioner(P: torch.Tensor, V: torch.Tensor, d: int) -> torch.Tensor:
    """The ``C`` of the family member nearest in weight space: ``C = v A^T``
    with ``A = (P[phi, gphi] - P[phi, phi]) / 2`` and ``v`` the written entry
    of ``V`` (invariant under ``(cP, V/c)``; the construction ``(P(C), E_rr)``
    gives back ``C``).  Leading axes kept."""
    A = (P[..., :d, d:2 * d] - P[..., :d, :d]) / 2
    return V[..., -1, -1, None, None] * A.transpose(-1, -2)


def td_terms(win: Windows) -> tuple[torch.Tensor, torch.Tensor]:
    """``b = Phi^T r / n`` (``B x d``) and ``M = Phi^T (gamma Phi' - Phi) / n``
    (``B x d x d``): one TD step is ``w <- w + C (b + M w)``."""
    n = win.phi.shape[1]
    PhiT = win.phi.transpose(1, 2)
    b = (PhiT @ win.r[..., None]).squeeze(-1) / n
    M = PhiT @ (win.gamma[:, None, None] * win.phi_next - win.phi) / n
    return b, M


def td_values_and_jacobian(b, M, phi_q, C: torch.Tensor, layers: int, jacobian: bool = True):
    """``v = w_L(C) . phi_q`` (``B``) and its Jacobian in ``C`` (``B x K d d``,
    ``C``: ``K x d x d``, ``K = 1`` one preconditioner for every layer, ``K =
    L`` one per layer), by the adjoint of ``w_{l+1} = w_l + C_l u_l``, ``u_l =
    b + M w_l``: with ``lambda_L = phi_q`` and ``lambda_l = lambda_{l+1} +
    M^T C_l^T lambda_{l+1}``, ``dv/dC_l = lambda_{l+1} u_l^T`` (summed over
    the layers sharing one ``C``).  ``jacobian`` false: ``None`` in its place."""
    B, d = b.shape
    K = C.shape[0]
    w = torch.zeros(B, d, dtype=DTYPE)
    us = []
    for k in range(layers):
        Ck = C[0 if K == 1 else k]
        u = b + (M @ w[..., None]).squeeze(-1)
        us.append(u)
        w = w + u @ Ck.T
    v = (w * phi_q).sum(-1)
    if not jacobian:
        return v, None
    J = torch.zeros(B, K, d, d, dtype=DTYPE)
    lam = phi_q
    for k in reversed(range(layers)):
        kk = 0 if K == 1 else k
        J[:, kk] += lam[:, :, None] * us[k][:, None, :]
        lam = lam + ((lam @ C[kk])[:, None, :] @ M).squeeze(1)
    return v, J.reshape(B, -1)


def _levenberg_marquardt(resid_jac, theta: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Minimise ``|r(theta)|^2`` from ``theta`` (Levenberg-Marquardt with
    Marquardt's diagonal scaling; ``resid_jac(theta, jacobian) -> (r,
    dr/dtheta or None)``); returns ``(theta, squared residual)``, never worse
    than the start."""
    r, J = resid_jac(theta, True)
    cost, lam = float(r @ r), 1e-3
    for _ in range(FIT_ITERATIONS):
        JtJ, g = J.T @ J, J.T @ r
        decrease = None
        for _ in range(30):
            step = torch.linalg.solve(JtJ + lam * torch.diag(torch.diagonal(JtJ).clamp_min(1e-12)), -g)
            r_new, _ = resid_jac(theta + step, False)
            c_new = float(r_new @ r_new)
            if c_new < cost:
                decrease = (cost - c_new) / max(cost, 1e-300)
                theta, r, cost = theta + step, r_new, c_new
                J = resid_jac(theta, True)[1]
                lam = max(lam / 3, 1e-12)
                break
            lam *= 3
        if decrease is None or decrease < FIT_STOP:
            break
    return theta, cost


def fit_preconditioner(win: Windows, target: torch.Tensor, layers: int, starts,
                       identity: bool = False) -> tuple[torch.Tensor, float]:
    """The least-squares preconditioner: ``C`` (``K x d x d``) minimising
    ``sum_prompts (w_L(C) . phi_q - target)^2`` over the windows of ``win``
    (``identity``: over ``C = c I`` only).  The problem is a polynomial of
    degree ``2 L`` in ``C``, so each start in ``starts`` is refined by
    Levenberg-Marquardt and the best kept, never worse than ``C = 0`` (whose
    residual is the target's norm): an upper bound on the minimum.  Returns
    ``(C, relative residual |fit - target|_2 / |target|_2)``."""
    b, M = td_terms(win)
    d = b.shape[1]
    eye = torch.eye(d, dtype=DTYPE)
    norm2 = float(target @ target)
    best_C, best = torch.zeros_like(starts[0]), norm2
    for C0 in starts:
        if identity:
            def resid_jac(t, jac, _K=C0.shape[0]):
                v, J = td_values_and_jacobian(b, M, win.phi_q, t[:, None, None] * eye, layers, jac)
                return v - target, (J.reshape(-1, _K, d * d)[:, :, ::d + 1].sum(-1) if jac else None)
            theta0 = torch.diagonal(C0, dim1=-2, dim2=-1).mean(-1)
            unpack = lambda t: t[:, None, None] * eye
        else:
            def resid_jac(t, jac, _shape=C0.shape):
                v, J = td_values_and_jacobian(b, M, win.phi_q, t.reshape(_shape), layers, jac)
                return v - target, J
            theta0 = C0.reshape(-1).clone()
            unpack = lambda t, _shape=C0.shape: t.reshape(_shape)
        theta, cost = _levenberg_marquardt(resid_jac, theta0)
        if cost < best:
            best_C, best = unpack(theta), cost
    return best_C, math.sqrt(best / max(norm2, 1e-300))


def heldout_windows(cfg: LayersTrainConfig, held) -> tuple[Windows, torch.Tensor]:
    """The held-out prompts of every seed (the sliding windows of
    :func:`numerics.analysis.train.heldout_loss`), ``seeds * E * (steps + 1)``
    windows seed-major, and their prompts ``seeds x prompts x D x (n+1)``."""
    F, r, T, mu, states = held
    Sd, E = F.shape[:2]
    win, _ = sliding_windows(F.reshape(Sd * E, cfg.states, cfg.d), r.reshape(Sd * E, cfg.states),
                             states.reshape(Sd * E, -1), cfg.n, cfg.gamma)
    Z = evaluation_prompt(cfg.record, win).reshape(Sd, -1, cfg.D, cfg.n + 1)
    return win, Z


def _seed_windows(win: Windows, seeds: int, s: int) -> Windows:
    per = win.batch // seeds
    sl = slice(s * per, (s + 1) * per)
    return Windows(win.phi[sl], win.phi_next[sl], win.r[sl], win.phi_q[sl], win.gamma[sl])





def function_distance(cfg: LayersTrainConfig, win: Windows, v_tf: torch.Tensor, P, V, alpha) -> dict:
    """Per seed, on the held-out windows ``win`` (:func:`heldout_windows`),
    ``v_tf`` the trained block's outputs on them (``seeds x prompts``):
    ``function_distance`` ``min_C |v_tf - v_C|_2 / |v_tf|_2``, the Euclidean
    norm over the seed's prompts of the block's outputs minus those of the
    construction with preconditioner ``C`` (tied: one ``C``; untied: one per
    layer), ``C`` fitted by :func:`fit_preconditioner` from the implied ``C``
    (:func:`implied_preconditioner`) and from ``alpha I`` (the fitted step of
    their batch TD).  0: the block computes a member of the family; 1: the
    best member predicts no better than ``C = 0`` (which is in the family), so
    the distance is at most 1.  ``function_distance_identity``: the same
    over ``C = c I`` (their hard-coded TD).  Also the fitted ``C`` per seed."""
    Cimp = implied_preconditioner(P, V, cfg.d)
    eye = torch.eye(cfg.d, dtype=DTYPE)
    dist, dist_i, fitted = [], [], []
    for s in range(cfg.seeds):
        w = _seed_windows(win, cfg.seeds, s)
        implied = Cimp[s][None] if cfg.tied else Cimp[:, s]
        scaled = float(alpha[s]) * eye.expand(implied.shape[0], cfg.d, cfg.d)
        C, rel = fit_preconditioner(w, v_tf[s], cfg.layers, [implied, scaled])
        dist.append(rel)
        fitted.append(C)
        dist_i.append(fit_preconditioner(w, v_tf[s], cfg.layers, [implied, scaled], identity=True)[1])
    return dict(function_distance=np.array(dist), function_distance_identity=np.array(dist_i),
                fitted_preconditioner=torch.stack(fitted))


# ---- converged or not ---------------------------------------------------------------------------

def split_converged(distance) -> dict:
    """The seeds whose weight distance (:func:`numerics.analysis.train.family_distance`)
    is below ``WANG_CONVERGED_DISTANCE`` (converged: left the initialisation
    for the construction's basin) and the rest; indices and each group's
    distances with a 95% interval over the group (``None`` for fewer than two
    seeds)."""
    distance = np.asarray(distance, dtype=float)
    out = {"rule": f"weight distance < {WANG_CONVERGED_DISTANCE:g}", "threshold": WANG_CONVERGED_DISTANCE}
    for name, sel in (("converged", distance < WANG_CONVERGED_DISTANCE),
                      ("not_converged", ~(distance < WANG_CONVERGED_DISTANCE))):
        out[name] = dict(seeds=np.flatnonzero(sel).tolist(), **interval(distance[sel]))
    return out


def interval(x) -> dict:
    """Mean, 95% Student-t interval over the seeds (``None`` for fewer than
    two) and the values."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return dict(mean=float(x.mean()) if x.size else None, ci95=None, per_seed=x.tolist())
    mean, lo, hi = t_interval(x)
    return dict(mean=float(mean), ci95=[float(lo), float(hi)], per_seed=x.tolist())


# ---- the seed-averaged weights ------------------------------------------------------------------

def canonical(P: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One representative of each seed's class under the layer's symmetries
    ``(cP, V/c)``, ``c != 0`` (the ones :func:`family_distance` quotients by):
    the sign that makes ``V``'s written entry non-negative, and ``|c|`` that
    makes ``|cP|_F = |V/c|_F`` (norms over all layers of an untied stack).
    Seeds on the leading axis (tied) or the second (untied)."""
    tied = P.ndim == 3
    sum_axes = (-1, -2) if tied else (0, -1, -2)
    sign = torch.where(V[..., -1, -1] >= 0, 1.0, -1.0).to(DTYPE)
    if not tied:
        sign = torch.where(V[..., -1, -1].sum(0) >= 0, 1.0, -1.0).to(DTYPE)
    scale = ((V ** 2).sum(sum_axes) / (P ** 2).sum(sum_axes).clamp_min(1e-300)) ** 0.25
    c = (sign * scale)[..., None, None]
    return c * P, V / c


def seed_average_distance(P, V, d: int, seeds=None, resamples: int = BOOTSTRAP, seed: int = 0) -> dict:
    """The weight distance (:func:`family_distance`) of the mean over seeds
    of the canonical weights (:func:`canonical`), over ``seeds`` (indices;
    all by default), with a percentile-bootstrap 95% interval (``resamples``
    resamplings of the seeds with replacement, a fixed generator ``seed``)."""
    Pc, Vc = canonical(P, V)
    axis = 0 if P.ndim == 3 else 1
    idx = torch.arange(Pc.shape[axis]) if seeds is None else torch.as_tensor(list(seeds), dtype=torch.long)
    if idx.numel() == 0:
        return dict(distance=None, ci95=None, seeds=[])
    g = torch.Generator().manual_seed(seed)
    draws = torch.cat([idx[None], idx[torch.randint(idx.numel(), (resamples, idx.numel()), generator=g)]])
    Pm = Pc.index_select(axis, draws.reshape(-1)).unflatten(axis, draws.shape).mean(axis + 1)
    Vm = Vc.index_select(axis, draws.reshape(-1)).unflatten(axis, draws.shape).mean(axis + 1)
    dists = family_distance(Pm, Vm, d)["distance"].numpy()              # the sample first, then the resamples
    lo, hi = np.percentile(dists[1:], [2.5, 97.5]) if idx.numel() > 1 else (None, None)
    return dict(distance=float(dists[0]), ci95=None if lo is None else [float(lo), float(hi)], seeds=idx.tolist())


# ---- where the weights leave the construction ---------------------------------------------------

def gphi_diagonals(layout, d: int) -> torch.Tensor:
    """The pair of diagonals in ``V``'s ``gphi_next`` rows (the value rows that
    write ``gamma phi'``): ``V[gphi_i, phi_i]`` and ``V[gphi_i, gphi_i]``,
    ``i = 1..d``; a boolean ``D x D`` mask (none of them is in the
    construction, whose ``V`` is the written entry alone)."""
    off = layout.offsets("rows", d)
    (g0, _), (p0, _) = off["gphi_next"], off["phi"]
    D = int(layout.D(d))
    mask = torch.zeros(D, D, dtype=torch.bool)
    i = torch.arange(d)
    mask[g0 + i, p0 + i] = True
    mask[g0 + i, g0 + i] = True
    return mask


def diagonal_measures(cfg: LayersTrainConfig, P, V, Z: torch.Tensor, v: torch.Tensor) -> dict:
    """Per seed: ``diagonal_share`` ``|V_diag|_F^2 / |V - proj V|_F^2``, the
    share of the squared norm of ``V``'s off-construction part (everything
    but the written entry) on :func:`gphi_diagonals` (invariant under the
    symmetries); ``zeroing_change`` ``100 |v(P, V') - v(P, V)|_2 / |v(P,
    V)|_2``, percent, ``V'`` with those diagonals zeroed, norms over the
    seed's held-out prompts ``Z`` (:func:`heldout_windows`; ``v`` the
    block's outputs on them, ``seeds x prompts``)."""
    mask = gphi_diagonals(cfg.record.layout, cfg.d).to(DTYPE)
    off = V.clone()
    off[..., -1, -1] = 0
    sum_axes = (-1, -2) if cfg.tied else (0, -1, -2)
    share = ((off * mask) ** 2).sum(sum_axes) / (off ** 2).sum(sum_axes).clamp_min(1e-300)
    with torch.no_grad():
        v0 = values(cfg, P, V * (1 - mask), Z)
    change = 100 * (v0 - v).norm(dim=-1) / v.norm(dim=-1).clamp_min(1e-300)
    return dict(diagonal_share=share.numpy(), zeroing_change=change.numpy())


# ---- all of them ------------------------------------------------------------------------------

#: Which distance the claim's threshold (``WANG_RECOVERY_RTOL``) applies to.
THRESHOLD_APPLIES_TO = ("the weight distance (numerics.analysis.train.family_distance: max(|P - proj P| / |P|, "
                        "|V - proj V| / |V|), modulo scaling and sign), on the upper end of the 95% interval of its "
                        "mean over seeds; the function-space distance, the split and the seed-averaged distance are "
                        "reported beside it and decide nothing")


def learned_distances(cfg: LayersTrainConfig, P, V, alpha, held) -> dict:
    """Every distance of this module for trained weights (``P``, ``V``,
    ``alpha`` as :func:`numerics.analysis.train.train_layers` returns them)
    on held-out draws ``held`` (:func:`numerics.analysis.train._heldout`),
    JSON-ready: each per seed with its 95% interval over seeds, and per
    group of :func:`split_converged`."""
    P, V, alpha = P.detach(), V.detach(), alpha.detach()
    win, Z = heldout_windows(cfg, held)
    with torch.no_grad():
        v = values(cfg, P, V, Z)
    weight = family_distance(P, V, cfg.d)["distance"].numpy()
    fn = function_distance(cfg, win, v, P, V, alpha)
    diag = diagonal_measures(cfg, P, V, Z, v)
    split = split_converged(weight)
    per_seed = dict(weight_distance=weight, function_distance=fn["function_distance"],
                    function_distance_identity=fn["function_distance_identity"],
                    diagonal_share=diag["diagonal_share"], zeroing_change_percent=diag["zeroing_change"])
    groups = {}
    for g in ("converged", "not_converged"):
        sel = split[g]["seeds"]
        groups[g] = {k: interval(np.asarray(x)[sel]) for k, x in per_seed.items()}
        groups[g]["seeds"] = sel
        groups[g]["seed_average"] = seed_average_distance(P, V, cfg.d, sel)
    return dict(**{k: interval(x) for k, x in per_seed.items()},
                seed_average=seed_average_distance(P, V, cfg.d),
                split=dict(rule=split["rule"], threshold=split["threshold"], **groups),
                fitted_preconditioner=fn["fitted_preconditioner"].tolist(),
                prompts_per_seed=int(v.shape[-1]), threshold_applies_to=THRESHOLD_APPLIES_TO)

