"""Tensors of the constructions, realised from ``theory.constructions``
(the single source; nothing is re-typed here), and their symmetry family."""
from __future__ import annotations

import torch

from numerics import DTYPE
from numerics.algorithms import check_algorithm, layout
from numerics.block import embed_reduced
from theory.constructions import numeric_blocks


def constructed_blocks(algorithm: str, d: int, alpha: float, beta: float = 0.0, dtype=DTYPE, device=None):
    """``(P12*, Vbar21*)`` of Theorem 3.1 / 3.3 as tensors."""
    P12, Vbar21 = numeric_blocks(check_algorithm(algorithm), d, alpha, beta)
    return (torch.tensor(P12, dtype=dtype, device=device), torch.tensor(Vbar21, dtype=dtype, device=device))


def constructed_weights(algorithm: str, d: int, alpha: float, beta: float = 0.0, dtype=DTYPE, device=None):
    """Full ``(P*, V*)``, each ``D x D``, zero outside ``P12*`` and ``Vbar21*``."""
    return embed_reduced(*constructed_blocks(algorithm, d, alpha, beta, dtype, device))


def unread_mask(algorithm: str, d: int, device=None):
    """Boolean masks of the entries of ``P`` and ``V`` the read-out never
    uses (Prop 3.1): ``P11, P21, V11, V12``, the first row of ``V21`` and
    ``V22``.  ``P22`` and ``Vbar22`` are *not* in the mask: each is unread
    only while the other is zero."""
    lay = layout(algorithm)
    m, p = lay.m(d), lay.p(d)
    D = m + p
    mP = torch.zeros(D, D, dtype=torch.bool, device=device)
    mV = torch.zeros(D, D, dtype=torch.bool, device=device)
    mP[:, :m] = True                     # P11, P21
    mV[:m, :] = True                     # V11, V12
    mV[m, :] = True                      # first rows of V21, V22
    return mP, mV


def symmetry_member(P: torch.Tensor, V: torch.Tensor, c: float, algorithm: str, d: int,
                    gen: torch.Generator | None = None, scale: float = 1.0):
    """``(c P, V / c)`` with arbitrary values (``Unif(-scale, scale)``) in
    every never-read block: a member of the construction's symmetry family."""
    if c == 0:
        raise ValueError("c: must be nonzero")
    P2, V2 = c * P, V / c
    if gen is not None:
        mP, mV = unread_mask(algorithm, d, device=P.device)
        noiseP = (torch.rand(P.shape, generator=gen, dtype=P.dtype, device=P.device) * 2 - 1) * scale
        noiseV = (torch.rand(V.shape, generator=gen, dtype=V.dtype, device=V.device) * 2 - 1) * scale
        P2 = torch.where(mP, noiseP, P2)
        V2 = torch.where(mV, noiseV, V2)
    return P2, V2
