"""Does the L-layer masked block compute L steps of batch TD?  Run it on
windows of random MRPs and compare every layer with the independent loop
(the computation behind ``icrl-verify check --layout wang2025``).

The block is ``numerics.core.block.forward_layers`` on the record's
specification (``depth = L``, tied or untied, the mask, the heads); the
weights are the record's construction for preconditioners ``C`` or given
ones; the reference is ``numerics.core.wang_reference.batch_td_loop``, which
reads only the raw window.  After every layer ``l`` three quantities are
compared, each relative to ``max(1, largest magnitude of the loop's numbers
and of the prompt for that window)``: the read-out (``w_l.phi_q``), the carried row (``delta_j(w_l)``
or ``y_j``) and every other entry of the prompt (features, the query, the
zeros under it), which must never change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from numerics.core.block import forward_layers
from numerics.core.mrp import Windows, sample_mrps, sample_trajectories, uniform_features, windows_from_states
from numerics.core.tolerances import DTYPE, WANG_CHECK_RTOL
from numerics.core.wang import construction, prompt, readout
from numerics.core.wang_reference import batch_td_loop
from theory import wang as W
from theory.errors import InputError


@dataclass
class WangCheckResult:
    algorithm: str
    prompts: int
    layers: int
    tied: bool
    mask: str
    max_rel_error: float
    errors: dict
    tolerance: float
    holds: bool
    counterexample: dict | None

    def as_dict(self):
        return dict(self.__dict__)


def draw_windows(kind: str, mrps: int, states: int, d: int, n: int, gamma, gen: torch.Generator,
                 shared_features: bool = False) -> Windows:
    """One window per MRP: ``kind`` (``random`` or ``boyan``) MRPs,
    ``Unif(-1, 1)^d`` features (fresh per MRP, or one draw shared by all)."""
    mdp = sample_mrps(kind, mrps, states, gen, gamma)
    F = uniform_features(1 if shared_features else mrps, states, d, gen).expand(mrps, states, d)
    return windows_from_states(mdp, F, sample_trajectories(mdp, n + 1, gen), n)


def random_preconditioners(layers: int, d: int, gen: torch.Generator, scale: float = 1.0, spread: float = 0.3):
    """``C_l = scale (I + spread G_l / sqrt(d))``, ``G_l`` standard normal: generic
    (not symmetric, so ``C`` and ``C^T`` differ), close enough to ``scale I`` that
    40 steps of batch TD stay bounded."""
    G = torch.randn(layers, d, d, generator=gen, dtype=DTYPE)
    return scale * (torch.eye(d, dtype=DTYPE) + spread * G / d ** 0.5)


def check_against_loop(algorithm, win: Windows, Cs, *, layers: int, tied: bool, lam: float | None = None,
                       weights=None, mask: str | None = None, tol: float = WANG_CHECK_RTOL,
                       progress=None) -> WangCheckResult:
    """Compare every layer of the block with :func:`batch_td_loop`.

    ``Cs``: the teacher's preconditioners (``L x d x d``); ``weights``: ``(P,
    V)`` in the specification's shapes (default: the construction for ``Cs``,
    tied when ``tied``, in which case every ``C_l`` must be equal); ``mask``
    overrides the specification's mask (``"none"``: the query column is a
    key and a value).
    """
    record = W.get(algorithm)
    Cs = torch.as_tensor(Cs, dtype=DTYPE)
    if Cs.ndim != 3 or Cs.shape[0] != layers:
        raise InputError("preconditioner", f"expected {layers} matrices (L, d, d), got shape {tuple(Cs.shape)}")
    if record.uses_lambda and lam is None:
        raise InputError("lam", "TD(lambda) needs --lam")
    spec = record.spec_at(layers, tied, lam_value=lam, mask=mask)
    n, d = win.n, win.d
    if weights is None:
        if tied and not torch.equal(Cs, Cs[:1].expand_as(Cs)):
            raise InputError("preconditioner", "tied layers need one preconditioner for every layer")
        weights = construction(record, Cs[0] if tied else Cs)
    P, V = weights
    Z0 = prompt(record, win)
    with torch.no_grad():
        Zs = forward_layers(spec, P, V, Z0, d)                     # (L+1) x B x D x (n+1)
    values = readout(record, Zs).numpy()                           # (L+1) x B
    carried_row = record.layout.offsets("rows", d)[record.carried][0]
    others = [i for i in range(Z0.shape[1]) if i != carried_row]
    Zn, Z0n = Zs.numpy(), Z0.numpy()
    errors = {"value": 0.0, "carried": 0.0, "untouched": 0.0}
    best, cex = -1.0, None
    gammas = win.gamma.numpy()
    for b in range(Z0.shape[0]):
        tr = batch_td_loop(win.phi[b].numpy(), win.phi_next[b].numpy(), win.r[b].numpy(), win.phi_q[b].numpy(),
                           float(gammas[b]), Cs.numpy(), record.direction, record.centered,
                           0.0 if lam is None else float(lam))
        got = {"value": values[:, b], "carried": Zn[:, b, carried_row, :n], "untouched": Zn[:, b][:, others, :]}
        want = {"value": tr.value, "carried": tr.carried,
                "untouched": np.broadcast_to(Z0n[b][others, :], got["untouched"].shape)}
        scale = max(1.0, *(float(np.abs(v).max()) for v in want.values()))
        for key in errors:
            diff = np.abs(got[key] - want[key])
            worst = float(diff.max()) / scale if np.isfinite(diff).all() else float("inf")
            errors[key] = max(errors[key], worst)
            if worst > best:
                best = worst
                flat = int(np.nan_to_num(diff, nan=np.inf).argmax())
                idx = np.unravel_index(flat, diff.shape)
                cex = dict(prompt=b, layer=int(idx[0]), quantity=key,
                           entry=None if key == "value" else [int(i) for i in idx[1:]],
                           block=float(got[key][idx]), loop=float(want[key][idx]), relative_error=worst,
                           gamma=float(gammas[b]), n=n, d=d)
        if progress is not None:
            progress(1)
    mx = max(errors.values())
    holds = bool(mx <= tol)
    return WangCheckResult(record.name, int(Z0.shape[0]), layers, tied, spec.mask, mx, errors, tol, holds,
                           None if holds else cex)
