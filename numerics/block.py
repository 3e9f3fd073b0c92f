"""The linear self-attention block (paper eq. 1) and its read-out.

``H_out = H + (1/n) (V H)(H^T P H)``; the read-out is the last ``q`` entries
of the last column.  Lemma C.1 turns the read-out into
``TF(H) = w + Vbar21 Sigma P12 w~ + (1/n) Vbar22 w~ w~^T P22 w~`` with
``Sigma = (1/n) sum_i x_i x_i^T``; :func:`readout_fast` evaluates it in
``O(n m)`` per prompt after ``P12 w~`` without forming ``Sigma``.
"""
from __future__ import annotations

import torch
from torch import nn

from numerics import DTYPE


def block_literal(P: torch.Tensor, V: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Paper eq. 1 literally: ``H + (1/n) (V H)(H^T P H)``; ``H`` is ``B x D x (n+1)``."""
    n = H.shape[-1] - 1
    return H + (V @ H) @ (H.transpose(-1, -2) @ P @ H) / n


def readout_literal(P: torch.Tensor, V: torch.Tensor, H: torch.Tensor, q: int) -> torch.Tensor:
    """Last ``q`` entries of the last column of :func:`block_literal`."""
    return block_literal(P, V, H)[..., -q:, -1]


def split_full(P: torch.Tensor, V: torch.Tensor, m: int):
    """``(P12, Vbar21, P22, Vbar22)`` of full ``D x D`` weights (THEORY.md section 3)."""
    return P[..., :m, m:], V[..., m + 1:, :m], P[..., m:, m:], V[..., m + 1:, m:]


def embed_reduced(P12: torch.Tensor, Vbar21: torch.Tensor, P22=None, Vbar22=None):
    """Full ``(P, V)`` with the given blocks and zeros elsewhere."""
    m, p = P12.shape[-2:]
    D = m + p
    P = P12.new_zeros(*P12.shape[:-2], D, D)
    V = P12.new_zeros(*P12.shape[:-2], D, D)
    P[..., :m, m:] = P12
    V[..., m + 1:, :m] = Vbar21
    if P22 is not None:
        P[..., m:, m:] = P22
    if Vbar22 is not None:
        V[..., m + 1:, m:] = Vbar22
    return P, V


def readout_fast(X: torch.Tensor, wt: torch.Tensor, P12: torch.Tensor, Vbar21: torch.Tensor,
                 P22: torch.Tensor | None = None, Vbar22: torch.Tensor | None = None) -> torch.Tensor:
    """Lemma C.1 read-out, batched.

    Args:
      X: ``B x n x m`` context rows ``x_i``; wt: ``B x p`` parameter column.
      P12: ``m x p``; Vbar21: ``q x m``; P22: ``p x p``; Vbar22: ``q x p``
      (the last two optional: the reduced parameterisation).
    Returns: ``B x q``.
    """
    n = X.shape[1]
    a = (wt @ P12.transpose(-1, -2)).unsqueeze(1)               # B x 1 x m: (P12 w~)^T
    u = a @ X.transpose(1, 2)                                   # B x 1 x n: x_i^T P12 w~
    s = (u @ X).squeeze(1) / n                                  # B x m:     Sigma P12 w~
    # (row-vector products: batched GEMV as 1 x k GEMMs is ~2x faster than
    # X @ a with a column, measured by benchmarks/check_throughput.py)
    out = wt[:, 1:] + s @ Vbar21.transpose(-1, -2)
    if P22 is not None and Vbar22 is not None:
        quad = ((wt @ P22.transpose(-1, -2)) * wt).sum(-1)       # w~^T P22 w~
        out = out + (quad / n).unsqueeze(-1) * (wt @ Vbar22.transpose(-1, -2))
    return out


class LSABlock(nn.Module):
    """One linear self-attention block, full or reduced parameterisation.

    ``reduced``: parameters ``P12`` (``m x p``) and ``Vbar21`` (``q x m``),
    Prop 3.1's restriction (every other block zero).  ``full``: ``P`` and
    ``V``, each ``D x D``.
    """

    def __init__(self, m: int, p: int, parameterization: str = "reduced", dtype=DTYPE, device=None):
        super().__init__()
        if parameterization not in ("reduced", "full"):
            raise ValueError(f"parameterization: unknown {parameterization!r}; expected reduced or full")
        self.m, self.p, self.q = m, p, p - 1
        self.parameterization = parameterization
        D = m + p
        if parameterization == "reduced":
            self.P12 = nn.Parameter(torch.zeros(m, p, dtype=dtype, device=device))
            self.Vbar21 = nn.Parameter(torch.zeros(p - 1, m, dtype=dtype, device=device))
        else:
            self.P = nn.Parameter(torch.zeros(D, D, dtype=dtype, device=device))
            self.V = nn.Parameter(torch.zeros(D, D, dtype=dtype, device=device))

    def blocks(self):
        if self.parameterization == "reduced":
            return self.P12, self.Vbar21, None, None
        return split_full(self.P, self.V, self.m)

    def full_weights(self):
        """``(P, V)`` as ``D x D`` tensors (zeros outside the reduced blocks)."""
        if self.parameterization == "full":
            return self.P, self.V
        return embed_reduced(self.P12, self.Vbar21)

    def set_weights(self, P: torch.Tensor, V: torch.Tensor):
        with torch.no_grad():
            if self.parameterization == "full":
                self.P.copy_(P)
                self.V.copy_(V)
            else:
                P12, Vbar21, _, _ = split_full(P, V, self.m)
                self.P12.copy_(P12)
                self.Vbar21.copy_(Vbar21)
        return self

    def readout(self, X: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        return readout_fast(X, wt, *self.blocks())

    def forward(self, H: torch.Tensor) -> torch.Tensor:
        P, V = self.full_weights()
        return block_literal(P, V, H)
