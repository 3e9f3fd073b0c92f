"""Prompt builders (paper eq. 4), driven by the algorithm record: the
per-transition quantities of a window (:func:`window_quantities`) and the
context recipe ``block = coefficient * quantity`` (:func:`build_context`);
for the layer-by-layer (``mrp``) records the whole prompt ``Z_0`` of an MRP
window (:func:`evaluation_prompt`: the recipe in the context columns, the
layout's query blocks in the last column).  A new layout or algorithm is a
new record, not new code.

This is the prompt path that ``check`` tests; the reference teacher
(``numerics.reference``) computes the same quantities independently.
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp
import torch

from numerics.core.policies import behaviour_probs, gather, softmax_probs, split_theta
from numerics.core.tolerances import DTYPE
from theory.symbols import gamma as GAMMA


def window_quantities(record, F: torch.Tensor, win, theta: torch.Tensor, epsilon: float) -> dict[str, torch.Tensor]:
    """The named per-transition quantities the record's prompt needs.

    ``phi`` (``B x n x d``): ``phi(s_i, a_i)``; ``phi_next``: the next
    state-action's features (``taken``), their epsilon-greedy expectation in
    ``Q_w`` (``expected``), or the features of the greedy next action
    (``greedy``: argmax over ``Q_w``, first maximiser); ``g``: the softmax
    score ``phi_i - sum_b pi_lam(b|s_i) phi(s_i, b)``; ``r`` (``B x n``) the
    rewards; ``one`` (``B x n``) ones.
    """
    s, a = win.s, win.a
    phi = gather(F, s[:, :-1], a[:, :-1])
    out = {"phi": phi, "r": win.r}
    need = record.quantities
    if "phi_next" in need:
        if record.next_rule == "taken":
            out["phi_next"] = gather(F, s[:, 1:], a[:, 1:])
        else:
            Fn = gather(F, s[:, 1:])                      # B x n x A x d
            if record.next_rule == "expected":
                pi = behaviour_probs(record, Fn, theta, epsilon)
                out["phi_next"] = (pi.unsqueeze(-1) * Fn).sum(-2)
            else:  # greedy
                w = split_theta(record, theta)["w"]
                Q = (Fn @ w[:, None, :, None]).squeeze(-1)
                best = Q.argmax(-1)
                out["phi_next"] = torch.gather(Fn, 2, best[..., None, None].expand(*best.shape, 1, Fn.shape[-1])).squeeze(2)
    if "g" in need:
        Fs = gather(F, s[:, :-1])
        lam = split_theta(record, theta)["lam"]
        pi = softmax_probs((Fs @ lam[:, None, :, None]).squeeze(-1))
        out["g"] = phi - (pi.unsqueeze(-1) * Fs).sum(-2)
    if "one" in need:
        out["one"] = torch.ones_like(win.r)
    return out


@lru_cache(maxsize=None)
def _coefficient(coef: sp.Expr):
    """``1``, ``"gamma"`` or a function of the per-MDP discounts."""
    if coef == 1:
        return 1
    if coef == GAMMA:
        return "gamma"
    if coef.free_symbols <= {GAMMA}:
        return sp.lambdify(GAMMA, coef, modules="math")
    raise ValueError(f"context coefficient {coef} may depend on gamma only")


def build_context(record, q: dict[str, torch.Tensor], theta: torch.Tensor, gamma: torch.Tensor):
    """``(X, w~)``: context ``X`` (``B x n x m``, rows ``x_i``) filled by the
    record's recipe, and the parameter column ``w~ = [1; theta]`` (``B x p``)."""
    parts = []
    for _, coef, name in record.context:
        v = q[name]
        if v.ndim == 2:
            v = v.unsqueeze(-1)
        c = _coefficient(coef)
        if c == "gamma":
            v = gamma[:, None, None] * v
        elif c != 1:
            v = torch.as_tensor([c(float(g)) for g in gamma], dtype=v.dtype, device=v.device)[:, None, None] * v
        parts.append(v)
    X = torch.cat(parts, -1)
    wt = torch.cat([torch.ones_like(theta[:, :1]), theta], -1)
    return X, wt


def prompt_from_window(record, F: torch.Tensor, win, theta: torch.Tensor, gamma: torch.Tensor, epsilon: float):
    """``(X, w~)`` of a window: :func:`window_quantities` then :func:`build_context`."""
    return build_context(record, window_quantities(record, F, win, theta, epsilon), theta, gamma)


def assemble_prompt(X: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """The full prompt ``H`` (``B x D x (n+1)``): columns ``0..n-1`` are
    ``[x_i; 0]``, the last is ``[0; w~]``."""
    B, n, m = X.shape
    p = wt.shape[-1]
    H = X.new_zeros(B, m + p, n + 1)
    H[:, :m, :n] = X.transpose(1, 2)
    H[:, m:, n] = wt
    return H


def _per_prompt(coef, g: torch.Tensor) -> torch.Tensor:
    """A context coefficient (a SymPy expression in gamma) per prompt (``g``: the discounts)."""
    c = _coefficient(coef)
    if c == "gamma":
        return g
    if c == 1:
        return torch.ones_like(g)
    return torch.as_tensor([c(float(x)) for x in g], dtype=g.dtype, device=g.device)


def evaluation_prompt(record, win) -> torch.Tensor:
    """``Z_0`` of an ``mrp`` record (``B x D x (n+1)``) from MRP windows
    (``numerics.core.mrp.Windows``): context column ``j`` filled by the
    record's recipe (``gphi_next = gamma phi_next``; ``zero``: a row left at
    0), the query column holding ``phi_q`` in the layout's query blocks and
    zeros elsewhere."""
    lay = record.layout
    B, n, d = win.phi.shape
    off = lay.offsets("rows", d)
    source = {"phi": win.phi, "phi_next": win.phi_next}
    Z = torch.zeros(B, int(lay.D(d)), n + 1, dtype=DTYPE, device=win.phi.device)
    for block, coef, quantity in record.context:
        r0, r1 = off[block]
        c = _per_prompt(coef, win.gamma.to(DTYPE))
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
