"""The richness ablation (the computation behind ``icrl-verify ablation``).  Train the block by
teacher mimicking on narrow and rich MDP distributions and show where the
weights end up, next to each distribution's richness verdict.

Distributions (same states, actions, gamma, n, teacher):

* ``onehot-fixed-gamma``: one-hot features, one fixed gamma (narrow: every
  context column is orthogonal to ``(gamma 1, -1, 0)``, THEORY.md section 5);
* ``onehot-gamma-range``: one-hot features, gamma drawn per MDP;
* ``dense-shared``: one dense feature draw shared by every MDP, fixed gamma;
* ``section-4.1``: dense features drawn afresh per MDP (Section 4.1).

For each, several seeds of ``numerics.train`` (same budget everywhere), and
per seed: the held-out loss, the relative distance of ``(P12, Vbar21)`` to
``M*``, the fitted ``c``, and the component of the learned weights'
offset from ``M*`` along the extra kernel of the Hessian ``H_L`` at the
construction (the kernel minus the scaling tangent: for a ``morse-bott``
verdict these are exactly the data-invariance directions), each relative to
the norm of the closest point of ``M*``.  Prediction of Theorem 3.2's
richness condition: identifiable distributions end on ``M*``; Morse-Bott
ones end on the larger zero-loss set, off ``M*`` along the invariances.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from scipy.optimize import brentq

from numerics.analysis.hessian import join_reduced, sample_prompts, split_reduced
from numerics.analysis.recovery import construction_of, learned_blocks
from numerics.analysis.richness import richness
from numerics.analysis.train import TrainConfig, train_block
from numerics.core.tolerances import ROOT_RTOL, STRUCTURE_RECOVERY_RTOL, ZERO_LOSS_RTOL
from theory.errors import InputError

#: (name, description, TrainConfig overrides).
DISTRIBUTIONS = (
    ("onehot-fixed-gamma", "one-hot features, fixed gamma (narrow)", dict(features="onehot")),
    ("onehot-gamma-range", "one-hot features, gamma ~ Unif(0.3, 0.7) per MDP",
     dict(features="onehot", gamma_range=(0.3, 0.7))),
    ("dense-shared", "one dense feature draw shared by all MDPs, fixed gamma", dict(features="dense-shared")),
    ("section-4.1", "dense features drawn per MDP, fixed gamma (Section 4.1)", dict(features="dense")),
)

#: Default small scale (a few minutes on 2 cores for all four distributions x 2 seeds).
ABLATION_SCALE = dict(states=3, actions=2, n=10, mdps=640, frames=40, batch_mdps=32, lr=2e-2, lr_decay=0.85,
                      lr_every=32, eval_mdps=32)


def richness_and_kernel(cfg: TrainConfig, sample_mdps: int = 200, sample_frames: int = 10, seed: int = 12345):
    """The richness helper's analysis of ``cfg``'s distribution
    (:func:`numerics.richness.richness`, reduced parameters, no bootstrap)
    and, from the same prompt sample, an orthonormal basis (columns, reduced
    coordinates at ``c = 1``) of the kernel of ``H_L = E[J^T J]`` at
    ``theta*`` minus the scaling tangent: the "extra kernel", which is
    exactly the data-invariance subspace when the verdict is ``morse-bott``.

    Returns ``(richness fields, basis)``; the fields are ``verdict``,
    ``kernel_dim``, ``data_invariance_dim``, ``mu``.
    """
    sample = sample_prompts(cfg.algorithm, cfg.distribution(), mdps=sample_mdps, frames_per_mdp=sample_frames,
                            n=cfg.n, epsilon=cfg.epsilon, alpha=cfg.alpha, beta=cfg.beta, seed=seed)
    out = richness(cfg.distribution(), cfg.algorithm, "reduced", n=cfg.n, epsilon=cfg.epsilon, alpha=cfg.alpha,
                   beta=cfg.beta, seed=seed, bootstrap=0, sample=sample, keep=True)
    K = np.asarray(out["_spectrum"].kernel)
    P12s, Vbar21s = sample.construction()
    t = join_reduced(P12s, -Vbar21s).numpy()
    t = t / np.linalg.norm(t)
    if K.shape[1] == 0:
        basis = K
    else:
        U, s, _ = np.linalg.svd(K - np.outer(t, t @ K), full_matrices=False)
        basis = U[:, s > 0.5]
    return {k: out[k] for k in ("verdict", "kernel_dim", "data_invariance_dim", "mu")}, basis


def invariance_component(P12, Vbar21, c: float, P12s, Vbar21s, basis: np.ndarray) -> dict:
    """Split the learned ``(P12, Vbar21)``'s offset from ``M*`` into a part
    along the extra kernel and the rest.

    The extra kernel at ``c = 1`` (``basis``, columns) is carried to the
    point ``(c' P12*, Vbar21*/c')`` by the symmetry ``(P, V) -> (c' P, V/c')``;
    the learned weights are fitted by ``(c' P12*, Vbar21*/c') + S_c' K a``
    over ``c'`` (same sign as ``c``: a grid, then the root of the residual's
    slope in ``c'``, well-posed where the minimum itself is flat) and ``a``
    (least squares).
    Returns ``invariance_component`` = ``|S_c' K a|`` and
    ``other_component`` = the fit's residual, both relative to the norm of
    the closest point ``(c P12*, Vbar21*/c)`` of ``M*``, and ``fit_c`` = ``c'``.
    For one-hot features with a fixed gamma this set (M* plus its
    invariance directions) is exactly the zero-loss set (THEORY.md section 5).
    """
    to_t = lambda x: torch.as_tensor(x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x))
    P12, Vbar21, P12s, Vbar21s = (to_t(x) for x in (P12, Vbar21, P12s, Vbar21s))
    m, p = P12s.shape
    theta = join_reduced(P12, Vbar21).numpy()
    norm = float(np.linalg.norm(join_reduced(c * P12s, Vbar21s / c).numpy()))
    if basis.shape[1] == 0:
        r = theta - join_reduced(c * P12s, Vbar21s / c).numpy()
        return {"invariance_component": 0.0, "other_component": float(np.linalg.norm(r)) / norm, "fit_c": c}
    dP, dV = split_reduced(torch.as_tensor(basis.T), m, p)

    def solve(cc):
        """The least-squares fit at ``cc``: ``(residual, part along the kernel, a)``."""
        r = theta - join_reduced(cc * P12s, Vbar21s / cc).numpy()
        B = join_reduced(cc * dP, dV / cc).numpy().T
        coef, *_ = np.linalg.lstsq(B, r, rcond=None)
        along = B @ coef
        return r - along, along, coef

    def fit(cc):
        res, along, _ = solve(cc)
        return float(np.linalg.norm(res)), float(np.linalg.norm(along))

    def slope(g):
        """``d/dc' (1/2) |residual|^2`` at ``c' = sign g`` (envelope theorem:
        ``a`` is optimal, so only the explicit dependence on ``c'`` counts):
        ``-res . (P12* + dP a, -(Vbar21* + dV a) / c'^2)``.  A dot product, so
        rounding moves its root by ~1e-16 relative; the minimum of ``|res|``
        itself is flat and pins ``c'`` only to ~sqrt(rounding) (a thread
        count's summation order moved ``fit_c`` by 9e-8 that way)."""
        cc = sign * g
        res, _, coef = solve(cc)
        a = torch.as_tensor(coef)
        dir_ = join_reduced(P12s + torch.einsum("kmp,k->mp", dP, a),
                            -(Vbar21s + torch.einsum("kqm,k->qm", dV, a)) / cc ** 2).numpy()
        return -sign * float(res @ dir_)

    sign, mag = math.copysign(1.0, c), abs(c)
    grid = mag * np.logspace(-1.5, 1.5, 61)
    best = min(grid, key=lambda g: fit(sign * g)[0])
    lo, hi = best / 1.2, best * 1.2
    s_lo, s_hi = slope(lo), slope(hi)
    if s_lo < 0 < s_hi:      # the minimum inside the bracket: the root of the slope
        g = brentq(slope, lo, hi, xtol=1e-300, rtol=ROOT_RTOL)
    else:                    # at the bracket's edge (the grid's end): the better end
        g = lo if fit(sign * lo)[0] <= fit(sign * hi)[0] else hi
    cc = sign * g
    rest, along = fit(cc)
    return {"invariance_component": along / norm, "other_component": rest / norm, "fit_c": float(cc)}


def run_ablation(base: TrainConfig | None = None, *, seeds=(0, 1), distributions=None, device="cpu",
                 progress=None, threads: int | None = 1, **overrides) -> dict:
    """Train on every distribution of :data:`DISTRIBUTIONS` (or the named
    subset) for each seed; returns ``{"rows": [...], "config": ...}`` where
    each row has ``name``, ``description``, the richness fields
    (``verdict``, ``kernel_dim``, ``data_invariance_dim``, ``mu``),
    ``extra_kernel_dim`` (the kernel of ``numerics.richness`` minus the
    scaling tangent, on the same prompt sample) and
    ``runs``: per seed ``final_loss``, ``identity_loss``,
    ``distance_to_manifold``, ``scale_c``, ``invariance_component``,
    ``other_component``, ``seconds``.  Writes nothing."""
    base = dataclasses.replace(base or TrainConfig(**ABLATION_SCALE), **overrides)
    if base.model != "lsa":
        raise InputError("model", "the ablation trains the block (lsa)")
    names = [d[0] for d in DISTRIBUTIONS]
    chosen = distributions or names
    for nm in chosen:
        if nm not in names:
            raise InputError("distributions", f"unknown {nm!r}; expected some of {', '.join(names)}")
    if not seeds:
        raise InputError("seeds", "need at least one seed")
    rows = []
    for name, desc, over in DISTRIBUTIONS:
        if name not in chosen:
            continue
        cfg0 = dataclasses.replace(base, **over)
        rich, basis = richness_and_kernel(cfg0)
        P12s, Vbar21s = construction_of(cfg0)
        runs = []
        for s in seeds:
            cfg = dataclasses.replace(cfg0, seed=s, feature_seed=cfg0.feature_seed)
            res = train_block(cfg, device=device, threads=threads)
            P12, Vbar21, _, _ = learned_blocks(res["model"])
            comp = invariance_component(P12, Vbar21, res["scale_c"], P12s, Vbar21s, basis)
            runs.append(dict(seed=s, final_loss=res["final_loss"], identity_loss=res["identity_loss"],
                             distance_to_manifold=res["distance_to_manifold"], scale_c=res["scale_c"],
                             seconds=res["seconds"], **comp))
            if progress is not None:
                progress(1)
        rows.append(dict(name=name, description=desc, distribution=cfg0.distribution().describe(), **rich,
                         extra_kernel_dim=basis.shape[1], runs=runs))
    return {"rows": rows, "config": base.as_dict(), "seeds": list(seeds)}


def classify_run(run: dict) -> str:
    """Where one run ended: ``on-manifold`` (within 5% of M*),
    ``invariance`` (off M*, the offset mostly along the extra kernel, whose
    directions keep the loss at zero), ``contradiction`` (held-out loss zero
    to :data:`~numerics.core.tolerances.ZERO_LOSS_RTOL` of the identity map's, yet
    5% or more off M* outside the extra kernel: a zero-loss point the
    richness analysis does not predict), or ``not-converged`` (off M* with
    a loss above that: the budget did not reach the zero-loss set)."""
    if run["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL:
        return "on-manifold"
    if run["other_component"] < STRUCTURE_RECOVERY_RTOL:
        return "invariance"
    if run["final_loss"] <= ZERO_LOSS_RTOL * run["identity_loss"]:
        return "contradiction"
    return "not-converged"


def consistent(result: dict) -> bool:
    """No run is a ``contradiction`` (:func:`classify_run`), and no run of
    an ``identifiable`` distribution ends off M* along an extra kernel (it
    has none)."""
    for row in result["rows"]:
        for r in row["runs"]:
            kind = classify_run(r)
            if kind == "contradiction":
                return False
            if kind == "invariance" and row.get("verdict") == "identifiable":
                return False
    return True
