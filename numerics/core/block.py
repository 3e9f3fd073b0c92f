"""The self-attention block (paper eq. 1; THEORY.md sections 3, 9, 10),
driven by a block specification (``theory.spec.BlockSpec``).  One forward
for every layer kind: ``linear`` below, ``softmax`` (Xie et al. 2026) through
``numerics.core.softmax`` (:func:`softmax_layer`).

One layer: ``H + (1/n) W (V H) M (H^T P H)`` (``M`` the mask over columns,
``W`` the written rows; with several heads ``sum_h (V_h H) R_h M``);
``depth`` layers in turn, tied or untied; the read-out is the layout's
signed entries of the last column (:func:`forward`, :func:`forward_layers`,
:func:`readout_literal`).

For the single-layer, unmasked block with a parameter column (Liang & Lai),
Lemma C.1 turns the read-out into
``TF(H) = w + Vbar21 Sigma P12 w~ + (1/n) Vbar22 w~ w~^T P22 w~`` with
``Sigma = (1/n) sum_i x_i x_i^T``; :func:`lemma_c1` evaluates it in
``O(n m)`` per prompt after ``P12 w~`` without forming ``Sigma``.  Block
slices come from ``spec.index(d)``, written once in ``theory.spec``.
"""
from __future__ import annotations

import torch
from torch import nn

from numerics.core import softmax as SM
from numerics.core.tolerances import DTYPE
from theory.spec import BlockSpec, Index

PARAMETERIZATIONS = ("reduced", "full")


def block_literal(P: torch.Tensor, V: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Paper eq. 1 literally: ``H + (1/n) (V H)(H^T P H)``; ``H`` is ``B x D x (n+1)``."""
    n = H.shape[-1] - 1
    return H + (V @ H) @ (H.transpose(-1, -2) @ P @ H) / n


def _mask(spec: BlockSpec, cols: int, like: torch.Tensor) -> torch.Tensor | None:
    """None (no mask), a vector (the diagonal ``context`` mask) or the full
    ``(n+1) x (n+1)`` matrix (``context`` with a decay: ``M_ij = decay^(i-j)``,
    ``j <= i < n``, zero last row and column)."""
    if spec.mask == "none":
        return None
    n = cols - 1
    if not spec.has_decay:
        m = torch.ones(cols, dtype=like.dtype, device=like.device)
        m[-1] = 0.0                               # "context": the last column is never a key or value
        return m
    lam = float(spec.decay)                       # TypeError for a symbolic decay: substitute a value first
    i = torch.arange(n, device=like.device)
    k = (i[:, None] - i[None, :]).to(like.dtype)
    M = torch.zeros(cols, cols, dtype=like.dtype, device=like.device)
    M[:n, :n] = torch.where(k >= 0, torch.as_tensor(lam, dtype=like.dtype, device=like.device) ** k.clamp(min=0),
                            torch.zeros((), dtype=like.dtype, device=like.device))
    return M


def running_mean(cols: int, like: torch.Tensor) -> torch.Tensor:
    """The value-side operator ``running-mean`` (``cols x cols``): ``(H R)[:, j]``
    is the mean of columns ``0..j`` of ``H`` minus column ``j``."""
    j = torch.arange(cols, device=like.device)
    R = torch.where(j[:, None] <= j[None, :], 1.0 / (j[None, :] + 1).to(like.dtype),
                    torch.zeros((), dtype=like.dtype, device=like.device))
    return R - torch.eye(cols, dtype=like.dtype, device=like.device)


def softmax_layer(spec: BlockSpec, A: torch.Tensor, V: torch.Tensor, H: torch.Tensor, d: int,
                  magnitudes: bool = False, gamma=None) -> torch.Tensor:
    """One layer of the ``softmax`` kind (Xie et al. 2026; ``theory.spec``):
    ``H + sum_h V_h H S R_h`` with ``S = softmax(H^T A H + M)`` over each
    column (``numerics.core.softmax.attention``; ``M``: ``-inf`` on the
    query's key row under the ``context`` mask), ``R_h`` the identity or, for
    a ``successor`` head, the shift ``Pi`` by ``spec.shift``; then the
    ``post`` map (``token-shift``: the layout's ``target`` row becomes
    ``gamma`` times its ``current`` row ``spec.shift`` columns to the right;
    ``gamma`` a number or one per prompt).

    ``magnitudes``: the same layer on ``|V|``, ``|H|`` (and ``|gamma|``) with
    the attention of the actual scores (``S >= 0``): every entry is the sum
    of the magnitudes of the terms that enter it."""
    S = SM.attention(H, A, mask=spec.mask == "context")
    if magnitudes:
        V, H = V.abs(), H.abs()
    heads = (V,) if len(spec.heads) == 1 else tuple(V[..., h, :, :] for h in range(len(spec.heads)))
    out = H
    for Vh, mix in zip(heads, spec.heads):
        VS = Vh @ H @ S
        if mix == "successor":
            VS = VS @ SM.shift_matrix(H.shape[-1], H, spec.shift)
        out = out + VS
    if spec.post == "token-shift":
        if gamma is None:
            raise ValueError("softmax_layer: the token shift needs gamma")
        off = spec.layout.offsets("rows", d)
        g = torch.as_tensor(gamma, dtype=H.dtype, device=H.device)
        out = SM.token_shift(out, g.abs() if magnitudes else g, d, spec.shift, target=off["target"][0],
                             current=off["current"][0])
    return out


def layer(spec: BlockSpec, P: torch.Tensor, V: torch.Tensor, H: torch.Tensor, d: int,
          magnitudes: bool = False, gamma=None) -> torch.Tensor:
    """One layer of ``spec`` on ``H`` (``B x D x (n+1)``); ``V`` is ``D x D``, or
    ``heads x D x D`` when the specification has several heads.  A ``softmax``
    layer is :func:`softmax_layer` (``P`` holds its ``A``; ``gamma`` for the
    token shift); the linear layer ignores ``gamma``.

    ``magnitudes``: the same layer on the absolute values of ``P``, ``V``,
    ``H`` and of the mixing operators (the running mean), so that every entry
    is the sum of the magnitudes of the terms that enter it (what its
    rounding error scales with; ``numerics.core.tolerances``)."""
    if spec.kind == "softmax":
        return softmax_layer(spec, P, V, H, d, magnitudes=magnitudes, gamma=gamma)
    n = H.shape[-1] - 1
    if magnitudes:
        P, V, H = P.abs(), V.abs(), H.abs()
    M = _mask(spec, H.shape[-1], H)
    if magnitudes and M is not None:
        M = M.abs()
    heads = (V,) if len(spec.heads) == 1 else tuple(V[..., h, :, :] for h in range(len(spec.heads)))
    values = None                                 # sum_h (V_h H) R_h M: D x (n+1)
    for Vh, mix in zip(heads, spec.heads):
        VH = Vh @ H
        if mix == "running-mean":
            R = running_mean(H.shape[-1], H)
            VH = VH @ (R.abs() if magnitudes else R)
        if M is not None:
            VH = VH * M if M.ndim == 1 else VH @ M    # (V H) M with M = diag(mask), or the full mask
        values = VH if values is None else values + VH
    if H.shape[-2] < H.shape[-1]:
        # D < n+1: the same product associated through D x D matrices, ((values H^T) P) H, is the cheaper order
        upd = ((values @ H.transpose(-1, -2)) @ P) @ H
    else:
        upd = values @ (H.transpose(-1, -2) @ P @ H)    # eq. 1's order: the scores H^T P H, (n+1) x (n+1)
    upd = upd / n
    rows = spec.written_rows(d)
    if rows is not None:
        keep = torch.zeros(H.shape[-2], 1, dtype=H.dtype, device=H.device)
        for r0, r1 in rows:
            keep[r0:r1] = 1.0
        upd = upd * keep
    return H + upd


def _layer_weights(spec: BlockSpec, P, V, k: int):
    return (P, V) if spec.tied else (P[k], V[k])


def forward(spec: BlockSpec, P: torch.Tensor, V: torch.Tensor, H: torch.Tensor, d: int, gamma=None) -> torch.Tensor:
    """Every layer of ``spec`` in turn; ``P``: ``D x D`` (tied) or
    ``L x D x D`` (untied); ``V``: :meth:`theory.spec.BlockSpec.value_shape`;
    ``gamma``: the token shift's (softmax kind), else unused."""
    for k in range(spec.depth):
        H = layer(spec, *_layer_weights(spec, P, V, k), H, d, gamma=gamma)
    return H


def forward_layers(spec: BlockSpec, P: torch.Tensor, V: torch.Tensor, H: torch.Tensor, d: int,
                   gamma=None) -> torch.Tensor:
    """``H_0, H_1, ..., H_L`` (the prompt after each layer), stacked as
    ``(L+1) x B x D x (n+1)``: the same layers as :func:`forward`."""
    out = [H]
    for k in range(spec.depth):
        H = layer(spec, *_layer_weights(spec, P, V, k), H, d, gamma=gamma)
        out.append(H)
    return torch.stack(out)


def readout_literal(spec: BlockSpec, P: torch.Tensor, V: torch.Tensor, H: torch.Tensor, d: int) -> torch.Tensor:
    """The read-out (``B x q``): the layout's signed entries of the last
    column of :func:`forward`."""
    out = forward(spec, P, V, H, d)
    return torch.cat([sign * out[..., r0:r1, -1] for r0, r1, sign in spec.readout_rows(d)], -1)


def readout_entry(layout, Z: torch.Tensor) -> torch.Tensor:
    """``sign * Z[..., row, -1]`` for a layout that reads one signed entry of
    the last column (``-Z[-1, -1]``; ``+`` for average-reward TD)."""
    (block, sign), = layout.readout
    d = layout.feature_dim(Z.shape[-2])
    return sign * Z[..., layout.offsets("rows", d)[block][0], -1]


def split_full(index: Index, P: torch.Tensor, V: torch.Tensor):
    """``(P12, Vbar21, P22, Vbar22)`` of full ``D x D`` weights (THEORY.md section 3)."""
    return P[(..., *index.p12)], V[(..., *index.vbar21)], P[(..., *index.p22)], V[(..., *index.vbar22)]


def embed_reduced(index: Index, P12: torch.Tensor, Vbar21: torch.Tensor, P22=None, Vbar22=None):
    """Full ``(P, V)`` with the given blocks and zeros elsewhere."""
    P = P12.new_zeros(*P12.shape[:-2], index.D, index.D)
    V = P12.new_zeros(*P12.shape[:-2], index.D, index.D)
    P[(..., *index.p12)] = P12
    V[(..., *index.vbar21)] = Vbar21
    if P22 is not None:
        P[(..., *index.p22)] = P22
    if Vbar22 is not None:
        V[(..., *index.vbar22)] = Vbar22
    return P, V


def lemma_c1(X: torch.Tensor, wt: torch.Tensor, P12: torch.Tensor, Vbar21: torch.Tensor,
             P22: torch.Tensor | None = None, Vbar22: torch.Tensor | None = None, parts: bool = False):
    """Lemma C.1 read-out, batched.

    Args:
      X: ``B x n x m`` context rows ``x_i``; wt: ``B x p`` parameter column.
      P12: ``m x p``; Vbar21: ``q x m``; P22: ``p x p``; Vbar22: ``q x p``
      (the last two optional: the reduced parameterisation).  Each may carry
      a leading axis ``K`` of weight sets (then the result is ``K x B x q``).
      parts: also return ``s = Sigma P12 w~`` and ``w~^T P22 w~`` (for
      closed-form gradients).
    Returns: ``B x q`` (or ``K x B x q``).
    """
    n = X.shape[1]
    if P12.ndim == 3:
        return _lemma_c1_sets(X, wt, P12, Vbar21, P22, Vbar22, parts)
    a = (wt @ P12.transpose(-1, -2)).unsqueeze(-2)              # B x 1 x m: (P12 w~)^T
    u = a @ X.transpose(1, 2)                                   # B x 1 x n: x_i^T P12 w~
    s = (u @ X).squeeze(-2) / n                                 # B x m:     Sigma P12 w~
    # (row-vector products: batched GEMV as 1 x k GEMMs is ~2x faster than
    # X @ a with a column, measured by benchmarks/check_throughput.py)
    out = wt[:, 1:] + s @ Vbar21.transpose(-1, -2)
    quad = None
    if P22 is not None and Vbar22 is not None:
        quad = ((wt @ P22.transpose(-1, -2)) * wt).sum(-1)       # w~^T P22 w~
        out = out + (quad / n).unsqueeze(-1) * (wt @ Vbar22.transpose(-1, -2))
    return (out, s, quad) if parts else out


def _lemma_c1_sets(X, wt, P12, Vbar21, P22, Vbar22, parts):
    """:func:`lemma_c1` for ``K`` weight sets at once (leading axis ``K`` on
    the weights), the same products taken as einsum contractions over
    ``(K, prompts)``: the order the gradient-flow experiment has always used,
    so its implicit-Euler step decisions, and hence its numbers, do not move."""
    n = X.shape[1]
    z = torch.einsum("np,kmp->knm", wt, P12)                    # P12 w~
    u = torch.einsum("nim,knm->kni", X, z)                      # x_i . P12 w~
    s = torch.einsum("nim,kni->knm", X, u) / n                  # Sigma P12 w~
    out = wt[None, :, 1:] + torch.einsum("knm,kqm->knq", s, Vbar21)
    quad = None
    if P22 is not None and Vbar22 is not None:
        quad = torch.einsum("np,kpr,nr->kn", wt, P22, wt)
        out = out + (quad / n)[..., None] * torch.einsum("np,kqp->knq", wt, Vbar22)
    return (out, s, quad) if parts else out


def term_scale(X: torch.Tensor, wt: torch.Tensor, P12, Vbar21, P22=None, Vbar22=None) -> torch.Tensor:
    """Per prompt, the largest sum of absolute values of the terms a read-out
    entry adds up (the size that rounding errors scale with): Lemma C.1 on
    absolute values."""
    ab = lambda t: None if t is None else t.abs()
    return lemma_c1(X.abs(), wt.abs(), P12.abs(), Vbar21.abs(), ab(P22), ab(Vbar22)).max(-1).values


def readout_magnitudes(X: torch.Tensor, wt: torch.Tensor, P12, Vbar21, P22=None, Vbar22=None) -> dict:
    """The magnitudes of the terms of each Lemma C.1 read-out entry, part by
    part (``B x q`` each): ``w`` (``|w|``, carried through), ``linear``
    (``|Vbar21| (1/n) sum_i |x_i| |x_i|^T |P12| |w~|``, the linear term's
    products term-wise) and ``cubic`` (``|Vbar22| |w~| (|w~|^T |P22| |w~|) /
    n``; zero in the reduced parameterisation).  The per-quantity rounding
    bound of ``check`` (``numerics.core.tolerances.rounding_bound``) weighs
    each by its own depth."""
    n = X.shape[1]
    Xa, wa = X.abs(), wt.abs()
    a = (wa @ P12.abs().transpose(-1, -2)).unsqueeze(-2)
    lin = ((a @ Xa.transpose(1, 2)) @ Xa).squeeze(-2) / n @ Vbar21.abs().transpose(-1, -2)
    cub = torch.zeros_like(lin)
    if P22 is not None and Vbar22 is not None:
        quad = ((wa @ P22.abs().transpose(-1, -2)) * wa).sum(-1)
        cub = (quad / n).unsqueeze(-1) * (wa @ Vbar22.abs().transpose(-1, -2))
    return {"w": wa[:, 1:], "linear": lin, "cubic": cub}


def mimic_loss(readout: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Teacher-mimicking loss ``1/2 mean_j ||TF(H_j) - teacher_j||^2`` (THEORY.md
    section 5); a leading axis of weight sets gives one loss each."""
    return 0.5 * ((readout - target) ** 2).sum(-1).mean(-1)


class LSABlock(nn.Module):
    """A linear self-attention block of specification ``spec`` at feature
    dimension ``d``.

    ``reduced`` (Lemma C.1 specifications only): parameters ``P12`` (``m x
    p``) and ``Vbar21`` (``q x m``), Prop 3.1's restriction (every other block
    zero).  ``full``: ``P`` and ``V`` of ``spec.weight_shape(d)``.
    """

    def __init__(self, spec: BlockSpec, d: int, parameterization: str = "reduced", dtype=DTYPE, device=None):
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization: unknown {parameterization!r}; expected reduced or full")
        if parameterization == "reduced" and not spec.lemma_c1:
            raise ValueError("parameterization: reduced needs a single-layer unmasked block with a parameter column")
        self.spec, self.d, self.parameterization = spec, d, parameterization
        self.index = spec.index(d)
        self.m, self.p, self.q = self.index.m, self.index.p, self.index.q
        if parameterization == "reduced":
            self.P12 = nn.Parameter(torch.zeros(self.m, self.p, dtype=dtype, device=device))
            self.Vbar21 = nn.Parameter(torch.zeros(self.q, self.m, dtype=dtype, device=device))
        else:
            self.P = nn.Parameter(torch.zeros(*spec.weight_shape(d), dtype=dtype, device=device))
            self.V = nn.Parameter(torch.zeros(*spec.value_shape(d), dtype=dtype, device=device))

    def blocks(self):
        """``(P12, Vbar21, P22, Vbar22)``; the last two None when reduced."""
        if self.parameterization == "reduced":
            return self.P12, self.Vbar21, None, None
        return split_full(self.index, self.P, self.V)

    def full_weights(self):
        """``(P, V)`` in the spec's weight shape (zeros outside the reduced blocks)."""
        if self.parameterization == "full":
            return self.P, self.V
        return embed_reduced(self.index, self.P12, self.Vbar21)

    def set_weights(self, P: torch.Tensor, V: torch.Tensor):
        with torch.no_grad():
            if self.parameterization == "full":
                self.P.copy_(P)
                self.V.copy_(V)
            else:
                P12, Vbar21, _, _ = split_full(self.index, P, V)
                self.P12.copy_(P12)
                self.Vbar21.copy_(Vbar21)
        return self

    def readout(self, X: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        """Lemma C.1 read-out of the prompt ``(X, w~)``."""
        return lemma_c1(X, wt, *self.blocks())

    def readout_prompt(self, H: torch.Tensor) -> torch.Tensor:
        """The read-out of the whole prompt ``H`` through every layer (any
        specification; for Lemma C.1 specifications it equals :meth:`readout`)."""
        P, V = self.full_weights()
        return readout_literal(self.spec, P, V, H, self.d)

    def forward(self, H: torch.Tensor) -> torch.Tensor:
        P, V = self.full_weights()
        return forward(self.spec, P, V, H, self.d)
