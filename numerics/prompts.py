"""Prompt builders (paper eq. 4), driven by the layout tables of
``theory.layout``: a new layout is a new table, not new code."""
from __future__ import annotations

import torch

from numerics.algorithms import layout as layout_of
from numerics.sampler import Window
from numerics.teachers import window_features


def context_blocks(feats: dict[str, torch.Tensor], r: torch.Tensor, gamma: torch.Tensor) -> dict[str, torch.Tensor]:
    """Values of every named context block, each ``B x n x size``."""
    out = {"phi": feats["phi"], "gphi_next": gamma[:, None, None] * feats["phi_next"], "r": r.unsqueeze(-1)}
    if "g" in feats:
        out["g"] = feats["g"]
    return out


def build_context(algorithm: str, F: torch.Tensor, win: Window, theta: torch.Tensor, gamma: torch.Tensor,
                  epsilon: float, feats: dict | None = None):
    """``(X, w~)``: context ``X`` (``B x n x m``, rows ``x_i``) and the
    parameter column ``w~ = [1; theta]`` (``B x p``), in layout order."""
    lay = layout_of(algorithm)
    f = feats if feats is not None else window_features(algorithm, F, win, theta, epsilon)
    vals = context_blocks(f, win.r, gamma)
    X = torch.cat([vals[b] for b, _ in lay.context], -1)
    wt = torch.cat([torch.ones_like(theta[:, :1]), theta], -1)
    return X, wt


def assemble_prompt(X: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """The full prompt ``H`` (``B x D x (n+1)``): columns ``0..n-1`` are
    ``[x_i; 0]``, the last is ``[0; w~]``."""
    B, n, m = X.shape
    p = wt.shape[-1]
    H = X.new_zeros(B, m + p, n + 1)
    H[:, :m, :n] = X.transpose(1, 2)
    H[:, m:, n] = wt
    return H
