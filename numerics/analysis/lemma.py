"""Numeric checks of the block's algebra that hold for arbitrary weights:
Lemma C.1's fast read-out against the literal block, and Proposition 3.1's
zero gradients (autograd through the read-out)."""
from __future__ import annotations

import torch

from numerics.core.block import lemma_c1, mimic_loss, readout_literal, split_full, term_scale
from numerics.core.constructions import unread_mask
from numerics.core.prompts import assemble_prompt
from numerics.core.tolerances import DTYPE, readout_tolerance
from theory import algorithms

#: (algorithm, d, n) of the Lemma C.1 comparison: Section 4.1 sizes and small ones, both layouts.
LEMMA_CASES = (("sarsa", 36, 20), ("actor-critic", 36, 20), ("sarsa", 3, 1), ("actor-critic", 2, 5))


def _random_prompts(record, d: int, n: int, B: int, gen: torch.Generator, uniform: bool = True):
    idx = record.spec.index(d)
    draw = (lambda *shape: torch.rand(*shape, generator=gen, dtype=DTYPE) * 2 - 1) if uniform else \
        (lambda *shape: torch.randn(*shape, generator=gen, dtype=DTYPE))
    X = draw(B, n, idx.m)
    wt = torch.cat([torch.ones(B, 1, dtype=DTYPE), draw(B, idx.p - 1)], -1)
    return idx, X, wt


def lemma_c1_against_literal(seed: int, prompts: int, cases=LEMMA_CASES) -> dict:
    """Lemma C.1's read-out vs the literal block ``H + (1/n)(VH)(H^T P H)`` on
    ``prompts`` random prompts per case, with random dense ``P``, ``V``.

    Returns ``max_abs_error``, ``worst_error_over_tolerance`` (per-prompt
    :func:`numerics.core.tolerances.readout_tolerance`) and ``prompts``.
    """
    gen = torch.Generator().manual_seed(seed)
    worst, worst_ratio, cases_run = 0.0, 0.0, 0
    for alg, d, n in cases:
        record = algorithms.get(alg)
        D = record.spec.index(d).D
        P = torch.randn(D, D, generator=gen, dtype=DTYPE)
        V = torch.randn(D, D, generator=gen, dtype=DTYPE)
        idx, X, wt = _random_prompts(record, d, n, prompts, gen)
        blocks = split_full(idx, P, V)
        fast = lemma_c1(X, wt, *blocks)
        lit = readout_literal(record.spec, P, V, assemble_prompt(X, wt), d)
        err = (fast - lit).abs().max(-1).values
        tol = readout_tolerance(term_scale(X, wt, *blocks), D, n)
        worst = max(worst, float(err.max()))
        worst_ratio = max(worst_ratio, float((err / tol).max()))
        cases_run += prompts
    return dict(max_abs_error=worst, worst_error_over_tolerance=worst_ratio, prompts=cases_run)


def proposition_3_1_gradients(seed: int, d: int = 4, n: int = 5, B: int = 64) -> dict:
    """Autograd of the teacher-mimicking loss at random weights, both layouts:
    the largest gradient on the never-read entries (generic weights, and with
    ``P22 = 0`` or ``Vbar22 = 0``), of ``Vbar22`` when ``P22 = 0`` and of
    ``P22`` when ``Vbar22 = 0`` (all must be exactly zero), and, as a
    control that the check can see a gradient, of ``P22`` at generic weights
    (must be nonzero).  Keys ``ALGORITHM/CASE/WHAT``."""
    gen = torch.Generator().manual_seed(seed)
    res = {}
    for alg in ("sarsa", "actor-critic"):
        record = algorithms.get(alg)
        idx, X, wt = _random_prompts(record, d, n, B, gen, uniform=False)
        target = torch.randn(B, idx.q, generator=gen, dtype=DTYPE)
        mP, mV = unread_mask(record, d)
        for case in ("generic", "P22=0", "Vbar22=0"):
            P = torch.randn(idx.D, idx.D, generator=gen, dtype=DTYPE)
            V = torch.randn(idx.D, idx.D, generator=gen, dtype=DTYPE)
            if case == "P22=0":
                P[idx.p22] = 0
            if case == "Vbar22=0":
                V[idx.vbar22] = 0
            P.requires_grad_(True)
            V.requires_grad_(True)
            loss = mimic_loss(lemma_c1(X, wt, *split_full(idx, P, V)), target)
            gP, gV = torch.autograd.grad(loss, (P, V))
            res[f"{alg}/{case}/never-read"] = float(max(gP[mP].abs().max(), gV[mV].abs().max()))
            if case == "P22=0":
                res[f"{alg}/{case}/grad Vbar22"] = float(gV[idx.vbar22].abs().max())
            if case == "Vbar22=0":
                res[f"{alg}/{case}/grad P22"] = float(gP[idx.p22].abs().max())
            if case == "generic":
                res[f"{alg}/{case}/grad P22 (control, expected nonzero)"] = float(gP[idx.p22].abs().max())
    return res
