"""The softmax attention layer of Xie et al. (2026), "Beyond Linear Attention"
(arXiv 2605.07333; THEORY.md section 10), as pure functions on batched
prompts, float64.

Prompt (their ``Z_0 = [X; R; 0; 0]``, ``D = d + 3`` rows, ``n + 1`` columns):
column ``j = 0..n-1`` holds ``phi(s_j)`` and the reward ``r_{j+1}`` of the
transition ``s_j -> s_{j+1}``; the last column (the query) holds ``phi(s_n)``
and a zero reward; the two value-memory rows, *target* (row ``d+1``) and
*current* (row ``d+2``), start at zero and are rewritten by every layer.

One layer (one head):

    Z <- Z + V Z softmax(Z^T A Z + M)

with the softmax over each column (keys down a column; ``torch.softmax``
subtracts the column maximum, so it is the log-sum-exp form and stable in
float64) and ``M`` the additive mask: ``-inf`` on the key row of the query
column, so the query is never a source (:func:`query_mask`).

The two forms of Theorem 1 (as we read them; docs/xie2026.md says what is
confirmed):

* ``one-head``: the layer above, followed by the parameter-free token shift
  of Lemma 1, ``Z <- U Z + W Z Pi`` with ``U = I - e_t e_t^T``,
  ``W = gamma e_t e_c^T`` (``t``, ``c`` the target and current rows) and
  ``Pi`` the shift ``(Z Pi)[:, j] = Z[:, j + 1]`` (zero last column):
  the target row becomes ``gamma`` times the successor's current value.
* ``two-head``: ``Z <- Z + V_1 Z S + V_2 Z S Pi`` with ``S`` the same
  attention; the second head writes the target row with the attention of
  the successor column, so the target row equals ``gamma`` times the
  successor's current value after the layer without a separate map.

The construction: ``A = diag(I_d, 0, 0, 0)``; ``V`` zero but the row that is
written, which is ``alpha [1, 1, -1]`` on (reward, target, current): the TD
error ``r_{j+1} + gamma v(s_{j+1}) - v(s_j)`` of every context column, so
one layer is one iteration of weighted softmax TD with step ``alpha``.

Nothing here knows the algorithm it implements: the independent reference is
``numerics.reference_softmax``.
"""
from __future__ import annotations

import torch

from numerics.core.mrp import sample_trajectories
from numerics.core.tolerances import DTYPE
from theory.errors import InputError

FORMS = ("one-head", "two-head")


def rows(d: int) -> dict:
    """Row indices of the prompt: ``phi`` (a slice), ``r``, ``target``, ``current``; ``D``."""
    return {"phi": slice(0, d), "r": d, "target": d + 1, "current": d + 2, "D": d + 3}


def prompt(X: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``Z_0 = [X; R; 0; 0]`` (``B x (d+3) x (n+1)``) from the features of
    ``s_0 .. s_n`` (``X``: ``B x (n+1) x d``, the last the query) and the
    rewards ``r_1 .. r_n`` (``B x n``)."""
    if X.dim() != 3 or r.dim() != 2 or r.shape[0] != X.shape[0] or r.shape[1] != X.shape[1] - 1:
        raise ValueError(f"prompt: X must be B x (n+1) x d and r B x n; got {tuple(X.shape)} and {tuple(r.shape)}")
    B, cols, d = X.shape
    Z = torch.zeros(B, d + 3, cols, dtype=X.dtype, device=X.device)
    Z[:, :d, :] = X.transpose(1, 2)
    Z[:, d, :-1] = r
    return Z


def query_mask(cols: int, like: torch.Tensor) -> torch.Tensor:
    """The additive mask ``M`` (``cols x cols``, key row by query column):
    ``-inf`` on the last key row (the query is never a source), 0 elsewhere."""
    M = torch.zeros(cols, cols, dtype=like.dtype, device=like.device)
    M[-1, :] = float("-inf")
    return M


def shift_matrix(cols: int, like: torch.Tensor, offset: int = 1) -> torch.Tensor:
    """``Pi`` with ``(Z Pi)[:, j] = Z[:, j + offset]`` (zero where ``j + offset``
    is past the last column): ``Pi[i, j] = 1`` iff ``i = j + offset``."""
    i = torch.arange(cols, device=like.device)
    return (i[:, None] == i[None, :] + offset).to(like.dtype)


def attention(Z: torch.Tensor, A: torch.Tensor, mask: bool = True) -> torch.Tensor:
    """``softmax(Z^T A Z + M)`` over each column (``B x (n+1) x (n+1)``,
    entry ``[i, j]``: the weight of key ``i`` for query ``j``)."""
    scores = Z.transpose(-1, -2) @ A @ Z
    if mask:
        scores = scores + query_mask(Z.shape[-1], Z)
    return torch.softmax(scores, dim=-2)


def token_shift(Z: torch.Tensor, gamma, d: int, offset: int = 1, target: int | None = None,
                current: int | None = None) -> torch.Tensor:
    """Lemma 1's parameter-free map ``U Z + W Z Pi``: the target row becomes
    ``gamma`` times the current row of the column ``offset`` to the right
    (zero past the end); every other row is kept.  ``gamma``: a number or one
    per prompt (``B``).  ``target``, ``current``: the two rows (default: this
    module's layout, :func:`rows`; the block passes its layout's)."""
    R = rows(d)
    t = R["target"] if target is None else target
    c = R["current"] if current is None else current
    g = torch.as_tensor(gamma, dtype=Z.dtype, device=Z.device).reshape(-1, 1)
    out = Z.clone()
    out[:, t, :] = g * (Z[:, c, :] @ shift_matrix(Z.shape[-1], Z, offset))
    return out


def layer(Z: torch.Tensor, V, A: torch.Tensor, *, form: str, gamma, d: int, mask: bool = True,
          offset: int = 1) -> torch.Tensor:
    """One layer of either form.  ``one-head``: ``V`` one ``D x D`` matrix;
    ``two-head``: ``V = (V_1, V_2)`` (a pair or a ``2 x D x D`` tensor), the
    second head's attention shifted by ``Pi``."""
    if form not in FORMS:
        raise ValueError(f"form: unknown {form!r}; expected one of {', '.join(FORMS)}")
    S = attention(Z, A, mask)
    if form == "one-head":
        return token_shift(Z + V @ Z @ S, gamma, d, offset)
    V1, V2 = V[0], V[1]
    return Z + V1 @ Z @ S + V2 @ Z @ S @ shift_matrix(Z.shape[-1], Z, offset)


def forward_layers(Z: torch.Tensor, V, A, *, layers: int, form: str, gamma, d: int, tied: bool = True,
                   mask: bool = True, offset: int = 1) -> list[torch.Tensor]:
    """``[Z_0, Z_1, .., Z_L]``; tied: the same ``(V, A)`` every layer, untied:
    ``V[l]``, ``A[l]`` for layer ``l``."""
    out = [Z]
    for k in range(layers):
        Vk, Ak = (V, A) if tied else (V[k], A[k])
        out.append(layer(out[-1], Vk, Ak, form=form, gamma=gamma, d=d, mask=mask, offset=offset))
    return out


def construction(d: int, gamma: float, form: str, alpha: float = 1.0, dtype=DTYPE):
    """Theorem 1's weights ``(V, A)``: ``A = diag(I_d, 0_3)``; the written row
    ``alpha [1, 1, -1]`` on (reward, target, current) in the current row (and,
    two-head, ``gamma alpha [1, 1, -1]`` in the target row of the second head)."""
    R = rows(d)
    D = R["D"]
    A = torch.zeros(D, D, dtype=dtype)
    A[:d, :d] = torch.eye(d, dtype=dtype)
    cols = [R["r"], R["target"], R["current"]]
    V1 = torch.zeros(D, D, dtype=dtype)
    V1[R["current"], cols] = torch.tensor([alpha, alpha, -alpha], dtype=dtype)
    if form == "one-head":
        return V1, A
    V2 = torch.zeros(D, D, dtype=dtype)
    V2[R["target"], cols] = torch.tensor([gamma * alpha, gamma * alpha, -gamma * alpha], dtype=dtype)
    return torch.stack([V1, V2]), A


def values(Z: torch.Tensor, d: int) -> torch.Tensor:
    """The current-memory row (``B x (n+1)``): the value of every column's state; the last is the query's."""
    return Z[:, rows(d)["current"], :]


def windows(mdp, features: torch.Tensor, n: int, gen: torch.Generator):
    """One trajectory ``s_0 .. s_n`` per MRP: ``(X, r, states)`` with ``X``
    ``B x (n+1) x d`` (the last the query), ``r[:, j] = R(s_j, s_{j+1})``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError("context", f"must be a positive integer, got {n!r}")
    S = sample_trajectories(mdp, n, gen)
    b = torch.arange(S.shape[0])[:, None]
    return features[b, S], mdp.R[b, S[:, :-1], 0, S[:, 1:]], S
