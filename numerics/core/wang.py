"""Wang et al.'s prompts and constructions as tensors (the records of
:mod:`theory.wang` realised; nothing is re-typed here).

* :func:`prompt`: ``Z_0`` (``B x D x (n+1)``) from windows, read off the
  record's context recipe (``gphi_next = gamma phi_next``; average reward:
  ``phi_next`` undiscounted and a row ``y = 0``) and the layout's query
  blocks (``[phi_q; 0; ...]``).
* :func:`construction`: ``(P, V)`` of the record for preconditioners ``C``
  (``d x d``: tied layers, or ``L x d x d``: one per layer), in the shapes of
  the block specification (``theory.spec.BlockSpec.weight_shape`` /
  ``value_shape``), so that ``numerics.core.block.forward`` runs it.
* :func:`readout`: the layout's signed entry of the last column.
"""
from __future__ import annotations

import torch

from numerics.core.mrp import Windows
from numerics.core.tolerances import DTYPE
from theory.errors import InputError
from theory.symbols import gamma as GAMMA
from theory.wang import WangAlgorithm, numeric_tables


def _coefficient(coef, g: torch.Tensor) -> torch.Tensor:
    """A context coefficient (a SymPy expression in gamma) per prompt."""
    if coef == GAMMA:
        return g
    if getattr(coef, "free_symbols", None):
        raise InputError("algorithm", f"context coefficient {coef} is not 1 or gamma")
    return torch.full_like(g, float(coef))


def prompt(record: WangAlgorithm, win: Windows) -> torch.Tensor:
    """``Z_0``: context column ``j`` filled by the record's recipe, the query
    column holding ``phi_q`` in the layout's query blocks and zeros elsewhere."""
    lay = record.layout
    B, n, d = win.phi.shape
    off = lay.offsets("rows", d)
    source = {"phi": win.phi, "phi_next": win.phi_next}
    Z = torch.zeros(B, int(lay.D(d)), n + 1, dtype=DTYPE, device=win.phi.device)
    for block, coef, quantity in record.context:
        r0, r1 = off[block]
        c = _coefficient(coef, win.gamma.to(DTYPE))
        if quantity == "zero":
            continue
        if quantity == "r":
            Z[:, r0, :n] = c[:, None] * win.r
        else:
            Z[:, r0:r1, :n] = c[:, None, None] * source[quantity].transpose(1, 2)
    for block in lay.query:
        r0, r1 = off[block]
        Z[:, r0:r1, n] = win.phi_q
    return Z


def construction(record: WangAlgorithm, C: torch.Tensor):
    """``(P, V)`` of the record's construction: ``P`` holds ``coef * C^T`` on
    each table entry, each head's ``V`` its ``1 x 1`` entries (scaled by
    nothing: the step is in ``C``).  ``C``: ``d x d`` (tied) or ``L x d x d``
    (untied); returns ``P`` of shape ``(D, D)`` / ``(L, D, D)`` and ``V`` with a
    head axis when the record has several heads."""
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


def readout(record: WangAlgorithm, Z: torch.Tensor) -> torch.Tensor:
    """``sign * Z[..., row, -1]`` (``-Z[-1, -1]``; ``+`` for average-reward TD)."""
    (block, sign), = record.layout.readout
    d = record.layout.feature_dim(Z.shape[-2])
    return sign * Z[..., record.layout.offsets("rows", d)[block][0], -1]
