"""Tensors of the constructions, realised from ``theory.constructions`` (the
single source; nothing is re-typed here), and their symmetry family.

* :func:`constructed_weights`: a construction with step sizes (``alpha``,
  ``beta``) as full ``(P, V)``;
* :func:`preconditioned_weights`: a preconditioned construction for
  preconditioners ``C`` (``d x d``: tied layers, or ``L x d x d``: one per
  layer), in the shapes of the block specification
  (``theory.spec.BlockSpec.weight_shape`` / ``value_shape``).
"""
from __future__ import annotations

import torch

from numerics.core.block import embed_reduced
from numerics.core.tolerances import DTYPE
from theory.constructions import numeric_blocks, numeric_entries, numeric_tables
from theory.errors import InputError


def constructed_blocks(record, d: int, steps: dict, dtype=DTYPE, device=None):
    """``(P12*, Vbar21*)`` of the record's construction as tensors; ``steps``:
    ``{"alpha": ..., "beta": ...}``."""
    P12, Vbar21 = numeric_blocks(record, d, steps)
    return (torch.tensor(P12, dtype=dtype, device=device), torch.tensor(Vbar21, dtype=dtype, device=device))


def constructed_weights(record, d: int, steps: dict, dtype=DTYPE, device=None):
    """Full ``(P*, V*)``, each ``D x D``, zero outside ``P12*`` and ``Vbar21*``."""
    return embed_reduced(record.spec.index(d), *constructed_blocks(record, d, steps, dtype, device))


def unread_mask(record, d: int, device=None):
    """Boolean masks of the entries of ``P`` and ``V`` the read-out never
    uses (Prop 3.1, ``theory.spec.Index.never_read``): ``P11, P21, V11,
    V12``, the first row of ``V21`` and ``V22``.  ``P22`` and ``Vbar22`` are
    *not* in the mask: each is unread only while the other is zero."""
    idx = record.spec.index(d)
    masks = {"P": torch.zeros(idx.D, idx.D, dtype=torch.bool, device=device),
             "V": torch.zeros(idx.D, idx.D, dtype=torch.bool, device=device)}
    for which, rows, cols in idx.never_read():
        masks[which][rows, cols] = True
    return masks["P"], masks["V"]


def symmetry_member(P: torch.Tensor, V: torch.Tensor, c: float, record, d: int,
                    gen: torch.Generator | None = None, scale: float = 1.0):
    """``(c P, V / c)`` with arbitrary values (``Unif(-scale, scale)``) in
    every never-read block: a member of the construction's symmetry family."""
    if c == 0:
        raise ValueError("c: must be nonzero")
    P2, V2 = c * P, V / c
    if gen is not None:
        mP, mV = unread_mask(record, d, device=P.device)
        noiseP = (torch.rand(P.shape, generator=gen, dtype=P.dtype, device=P.device) * 2 - 1) * scale
        noiseV = (torch.rand(V.shape, generator=gen, dtype=V.dtype, device=V.device) * 2 - 1) * scale
        P2 = torch.where(mP, noiseP, P2)
        V2 = torch.where(mV, noiseV, V2)
    return P2, V2


def preconditioned_weights(record, C: torch.Tensor):
    """``(P, V)`` of the record's preconditioned construction: ``P`` holds
    ``coef * C^T`` on each table entry, each head's ``V`` its ``1 x 1``
    entries (scaled by nothing: the step is in ``C``).  ``C``: ``d x d``
    (tied) or ``L x d x d`` (untied); returns ``P`` of shape ``(D, D)`` /
    ``(L, D, D)`` and ``V`` with a head axis when the record has several
    heads."""
    C = torch.as_tensor(C, dtype=DTYPE)
    if C.ndim not in (2, 3) or C.shape[-1] != C.shape[-2]:
        raise InputError("preconditioner", f"expected shape (d, d) or (L, d, d), got {tuple(C.shape)}")
    d = C.shape[-1]
    Pt, Vts, D = numeric_tables(record, d)
    lead = C.shape[:-2]
    P = torch.zeros(*lead, D, D, dtype=DTYPE, device=C.device)
    CT = C.transpose(-1, -2)
    for r0, c0, coef in Pt:
        P[..., r0:r0 + d, c0:c0 + d] = coef * CT
    heads = []
    for table in Vts:
        V = torch.zeros(*lead, D, D, dtype=DTYPE, device=C.device)
        for r0, c0, coef in table:
            V[..., r0, c0] = coef
        heads.append(V)
    V = heads[0] if len(heads) == 1 else torch.stack(heads, dim=-3)
    return P, V


def softmax_weights(record, d: int, alphas, gamma: float, tied: bool = True):
    """``(A, V)`` of a softmax record's construction (Xie et al. 2026), read
    off its tables (``theory.constructions.numeric_entries``) with ``alpha``
    and ``gamma`` substituted.  ``alphas``: one step per layer (``L``); tied:
    they must be equal and the weights are ``D x D`` (``V``: ``heads x D x D``
    with several heads), untied: one per layer (``L x ...``)."""
    from theory.symbols import alpha as ALPHA, gamma as GAMMA
    alphas = [float(a) for a in alphas]
    if tied and any(a != alphas[0] for a in alphas):
        raise InputError("alpha", "tied layers need one alpha for every layer")

    def one(a):
        Pt, Vts, D = numeric_entries(record, d, {ALPHA: a, GAMMA: float(gamma)})
        A = torch.zeros(D, D, dtype=DTYPE)
        for r0, c0, size, v in Pt:
            A[r0:r0 + size, c0:c0 + size] += v * torch.eye(size, dtype=DTYPE)
        heads = []
        for table in Vts:
            V = torch.zeros(D, D, dtype=DTYPE)
            for r0, c0, size, v in table:
                V[r0:r0 + size, c0:c0 + size] += v * torch.eye(size, dtype=DTYPE)
            heads.append(V)
        return A, heads[0] if len(heads) == 1 else torch.stack(heads)

    if tied:
        return one(alphas[0])
    pairs = [one(a) for a in alphas]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
