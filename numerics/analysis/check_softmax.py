"""``check`` of a softmax record (Xie et al. 2026, THEORY.md section 10): the
block's value rows after every layer against weighted softmax TD computed by
the independent reference (``numerics.reference_softmax``: per-state loops,
its own log-sum-exp, no torch), entry by entry, each against the rounding
bound of the magnitudes entering it (docs/check.md, "Tolerances" and "Softmax
records").

Windows are one trajectory ``s_0 .. s_n`` per MRP (the query is ``s_n``, the
successor of the last context state); the prompt is the record's
(``numerics.core.prompts.evaluation_prompt``: ``[X; R; 0; 0]`` for Theorem 1's
layout) and the block the one forward of ``numerics.core.block`` (the softmax
kind dispatches to ``numerics.core.softmax``).

Per window and layer ``l``:

* every row but the value rows (features, reward) is compared exactly with the
  prompt;
* the ``current`` row (the read-out's) at column ``j`` against ``v_l(s_j)``;
  the ``target`` row against ``gamma v_l(s_{j+1})`` (0 at the query);
* each is judged by the error layer ``l`` adds: the difference ``D_l``
  (block minus reference) less the previous differences carried through the
  layer (the iteration is affine in the values: ``D_{l-1} + alpha_l K^T
  (D^t_{l-1} - D^c_{l-1})`` for the current row, the same times ``gamma``
  shifted for a successor head, ``gamma`` times the new current row shifted
  for the token shift), against the bound of the magnitudes entering layer
  ``l``: the carried ``|v|``, the step's terms ``alpha sum_k K |delta_k|`` with
  ``|delta_k| = |r_k| + gamma |v(s_k)| + |v(s_{k-1})|`` at the depth of its
  sums (``n + D``), the same terms times the score magnitude ``G_j = max_k``
  of ``|phi(s_k)| . |phi(s_j)|`` (the reference's) and ``(|Z|^T |A| |Z|)_{kj}``
  (the block's) at depth ``2 D + 6`` (the relative error of ``exp`` of a
  rounded score), and the block's layer on absolute values.

A layer whose bound is not small against its step's terms is undecidable;
values past ``DIVERGENCE_RATIO`` times the window's size diverge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from numerics import reference_softmax as REF
from numerics.analysis.check import LayerCheckResult
from numerics.core.block import forward_layers, layer
from numerics.core.constructions import softmax_weights
from numerics.core.mrp import Windows, sample_mrps, sample_trajectories, uniform_features
from numerics.core.prompts import evaluation_prompt
from numerics.core.tolerances import (
    DIVERGENCE_RATIO,
    DTYPE,
    HOLDS,
    SOFTMAX_LINEAR_SLOPE_ATOL,
    SOFTMAX_TABULAR_RTOL,
    changed,
    decidable,
    exceeds,
    layer_ratios,
    rounding_bound,
)
from numerics.core.tolerances import verdict as verdict_of
from theory import algorithms
from theory.errors import InputError

#: The rule, in one line (the JSON's ``rule``; derivation in docs/check.md).
RULE = ("per entry and layer: |layer l's own error| <= 2 eps [(n + D + 8) |block layer on |.||  + (n + d + 8) "
        "(|v| + alpha sum_k K |delta_k|) + (2 D + 6) G alpha sum_k K |delta_k| + (n + d + 4) |propagated "
        "differences|]; features and rewards compared exactly")

#: Spread of the per-layer steps of an untied check: ``alpha_l = alpha exp(UNTIED_SPREAD g_l)``, ``g_l`` standard
#: normal (as the linear records' check draws ``C_l = alpha (I + 0.3 G_l / sqrt(d))``).
UNTIED_SPREAD = 0.3

#: Special cases (``--case``).  ``tabular``: one-hot features ``sqrt(tau) e_s``; ``linear``: features ``eps psi``.
CASES = ("general", "tabular", "linear")
#: The default ``tau`` of the tabular case: ``exp(-tau)`` (the weight of a non-matching state) is below
#: float64's resolution, so the block equals batch tabular TD to the rounding bound.
TABULAR_TAU = 40.0
#: The feature scales of the linear case, largest first (the error's slope is fitted over them).
LINEAR_EPS = (0.4, 0.2, 0.1, 0.05)


@dataclass
class SoftmaxWindows:
    """What the check runs on: the MRPs' feature tables ``F`` (``B x S x d``),
    the trajectories ``states`` (``B x (n+1)``, the query ``s_n`` last), the
    rewards ``r`` (``B x n``), ``gamma`` (``B``) and the window as
    :class:`numerics.core.mrp.Windows` (for the prompt)."""

    F: torch.Tensor
    states: torch.Tensor
    r: torch.Tensor
    gamma: torch.Tensor
    win: Windows


def softmax_windows(mdp, F: torch.Tensor, S: torch.Tensor) -> SoftmaxWindows:
    """The window of trajectories ``S`` (``B x (n+1)``): context column ``j``
    holds ``phi(s_j)`` and ``r_{j+1} = R(s_j, s_{j+1})``, the query ``phi(s_n)``."""
    B, cols = S.shape
    n = cols - 1
    b = torch.arange(B)[:, None]
    r = mdp.R[b, S[:, :-1], 0, S[:, 1:]]
    win = Windows(F[b, S[:, :n]], F[b, S[:, 1:]], r, F[torch.arange(B), S[:, n]], mdp.gamma.clone(), S)
    return SoftmaxWindows(F, S, r, mdp.gamma.clone(), win)


def case_features(case: str, mrps: int, states: int, d: int, gen: torch.Generator, tau: float = TABULAR_TAU,
                  eps: float = 1.0, shared: bool = False) -> torch.Tensor:
    """The feature table of a case: ``general`` ``Unif(-1, 1)^d``; ``tabular``
    ``sqrt(tau) e_s`` (``d = states``); ``linear`` ``eps`` times ``Unif(-1, 1)^d``."""
    if case == "tabular":
        return math.sqrt(tau) * torch.eye(states, dtype=DTYPE).expand(mrps, states, states).clone()
    F = uniform_features(1 if shared else mrps, states, d, gen).expand(mrps, states, d).clone()
    return eps * F if case == "linear" else F


def draw(kind: str, mrps: int, states: int, d: int, n: int, gamma, gen: torch.Generator, case: str = "general",
         tau: float = TABULAR_TAU, shared_features: bool = False) -> tuple:
    """``(mdp, SoftmaxWindows)``: ``kind`` MRPs, the case's features, one
    trajectory of ``n`` transitions per MRP."""
    mdp = sample_mrps(kind, mrps, states, gen, gamma)
    F = case_features(case, mrps, states, d, gen, tau=tau, shared=shared_features)
    return mdp, softmax_windows(mdp, F, sample_trajectories(mdp, n, gen))


def untied_alphas(layers: int, alpha: float, gen: torch.Generator) -> list[float]:
    """One step per layer, ``alpha exp(UNTIED_SPREAD g_l)``."""
    g = torch.randn(layers, generator=gen, dtype=DTYPE)
    return [float(alpha * math.exp(UNTIED_SPREAD * float(x))) for x in g]


@dataclass
class SoftmaxCheckResult(LayerCheckResult):
    """:class:`numerics.analysis.check.LayerCheckResult` with the block's form,
    each layer's step and the tolerance rule."""

    form: str = ""
    alphas: list | None = None
    rule: str = RULE


def block_layers(record, sw: SoftmaxWindows, layers: int, tied: bool, alphas, weights=None, mask=None):
    """``(Zs, mags, scores, spec)``: the prompt after every layer (``(L+1) x B
    x D x (n+1)``), the block's layers on absolute values (the magnitudes
    entering each entry), the largest score magnitude ``|Z|^T |A| |Z|`` over
    the keys of each query column (``(L+1) x B x (n+1)``, zero at layer 0) and
    the specification run."""
    spec = record.spec_at(layers, tied, mask=mask)
    d = sw.F.shape[-1]
    gammas = sw.gamma
    if weights is None:
        g0 = float(gammas[0])
        if not torch.all(gammas == g0):
            raise InputError("gamma-range", "a softmax construction holds gamma in its weights; give one --gamma")
        weights = softmax_weights(record, d, alphas, g0, tied=tied)
    A, V = weights
    Z0 = evaluation_prompt(record, sw.win)
    with torch.no_grad():
        Zs = forward_layers(spec, A, V, Z0, d, gamma=gammas)
        per = [(A, V) if spec.tied else (A[k], V[k]) for k in range(layers)]
        mags = torch.stack([Z0.abs()] + [layer(spec, *per[k], Zs[k], d, magnitudes=True, gamma=gammas)
                                         for k in range(layers)])
        # the scores' magnitudes |Z|^T |A| |Z| of each layer, largest over the keys: what exp's argument is rounded to
        scores = torch.stack([torch.zeros_like(Z0[:, 0, :])] + [
            (Zs[k].abs().transpose(-1, -2) @ per[k][0].abs() @ Zs[k].abs()).amax(-2) for k in range(layers)])
    return Zs, mags, scores, spec


def check_softmax(algorithm, sw: SoftmaxWindows, alphas, *, layers: int, tied: bool, weights=None,
                  mask: str | None = None, progress=None, reference=None) -> SoftmaxCheckResult:
    """Every layer of the block against ``L`` iterations of weighted softmax TD
    (module docstring).  ``alphas``: the step of each layer (the reference's
    ``alpha_l``; the construction's when ``weights`` is None); ``weights``:
    ``(A, V)`` in the specification's shapes; ``mask`` overrides the record's
    (``none``: the planted missing mask); ``reference``: the reference
    function (default :func:`numerics.reference_softmax.weighted_softmax_td`;
    a test passes a faulty one)."""
    record = algorithms.get(algorithm)
    if record.spec.kind != "softmax":
        raise InputError("algorithm", f"{record.name!r} is not a softmax record")
    alphas = [float(a) for a in alphas]
    if len(alphas) != layers:
        raise InputError("alpha", f"expected {layers} steps (one per layer), got {len(alphas)}")
    reference = REF.weighted_softmax_td if reference is None else reference
    Zs, mags, scores, spec = block_layers(record, sw, layers, tied, alphas, weights, mask)
    Zn, Mn, Gn = Zs.numpy(), mags.numpy(), scores.numpy()
    B, D, cols = Zn.shape[1:]
    n, d = cols - 1, sw.F.shape[-1]
    off = record.layout.offsets("rows", d)
    cur = off[record.carried][0]
    tgt = off["target"][0] if "target" in off else None
    value_rows = [cur] + ([tgt] if tgt is not None else [])
    others = [i for i in range(D) if i not in value_rows]
    token_shift = spec.post == "token-shift"
    Fn, Sn, rn, gn = sw.F.numpy(), sw.states.numpy(), sw.r.numpy(), sw.gamma.numpy()
    errors = {"current": 0.0, "target": 0.0, "untouched": 0.0}
    worst_ratio, tol_at_worst, cex, failed = 0.0, 0.0, None, False
    undecidable, und_ratio, und_example, divergence = 0, 0.0, None, None
    k_block, k_step, k_exp, k_prop = n + D + 8, n + d + 8, 2 * D + 6, n + d + 4
    for b in range(B):
        F, st, r, g = Fn[b], [int(x) for x in Sn[b]], rn[b], float(gn[b])
        ref = reference(F, st, r, g, alphas)
        moved = changed(Zn[:, b][:, others, :], np.broadcast_to(Zn[0, b][others, :], Zn[:, b][:, others, :].shape))
        if moved.any():
            l = int(np.flatnonzero(moved.reshape(layers + 1, -1).any(-1))[0])
            ri = int(np.flatnonzero(moved[l].any(-1))[0])
            col = int(np.flatnonzero(moved[l, ri])[0])
            failed = True
            errors["untouched"] = math.inf
            if cex is None or l < cex["layer"]:
                got_u, want_u = float(Zn[l, b, others[ri], col]), float(Zn[0, b, others[ri], col])
                cex = dict(prompt=b, layer=l, quantity="untouched", row=others[ri], column=col, state=st[col],
                           got=got_u, want=want_u, abs_error=abs(got_u - want_u), bound=0.0,
                           gamma=g, n=n, d=d, why="a feature or reward entry changed; such entries are compared "
                                                  "exactly")
        Kc = ref.kernel[st, :].T                                   # n x (n+1): K(s_k, s_j), key column k
        feats = F[st]                                              # (n+1) x d
        G_ref = (np.abs(feats) @ np.abs(feats[:n]).T).max(-1)      # (n+1): max_k |phi(s_k)| . |phi(s_j)|
        size = max(float(np.abs(F).max()), float(np.abs(r).max()) if n else 0.0)
        want_c = ref.v[:, st]                                      # (L+1) x (n+1)
        want_t = np.concatenate([g * ref.v[:, st[1:]], np.zeros((layers + 1, 1))], -1)
        got_c = Zn[:, b, cur, :]
        got_t = Zn[:, b, tgt, :] if tgt is not None else want_t
        Dc, Dt = got_c - want_c, got_t - want_t
        for l in range(layers + 1):
            if l == 0:
                Rc, Rt = Dc[0], Dt[0]
                bc = bt = np.zeros(cols)
                signal = None
            else:
                a = alphas[l - 1]
                v_prev = ref.v[l - 1]
                delta_abs = np.abs(r) + g * np.abs(v_prev[st[1:]]) + np.abs(v_prev[st[:-1]])
                incr = a * (Kc.T @ delta_abs)                      # (n+1): the step's own terms
                u = a * (Kc.T @ (Dt[l - 1][:n] - Dc[l - 1][:n]))
                Rc = Dc[l] - (Dc[l - 1] + u)
                prop = a * (Kc.T @ (np.abs(Dt[l - 1][:n]) + np.abs(Dc[l - 1][:n]))) + np.abs(Dc[l - 1]) \
                    + np.abs(Dc[l])
                bc = rounding_bound([(Mn[l, b, cur, :], k_block), (np.abs(want_c[l - 1]) + incr, k_step),
                                     (incr * np.maximum(G_ref, Gn[l, b]), k_exp), (prop, k_prop)])
                if token_shift:
                    Rt = Dt[l] - g * _shift(Dc[l])
                    bt = rounding_bound([(g * np.abs(_shift(got_c[l])), 2), (np.abs(want_t[l]), 2),
                                         (g * _shift(np.abs(Dc[l])), 2)])
                else:
                    Rt = Dt[l] - (Dt[l - 1] + g * _shift(u))
                    bt = g * _shift(bc) + rounding_bound([(Mn[l, b, tgt, :], k_block) if tgt is not None else
                                                          (0.0, 0), (np.abs(want_t[l]), 4),
                                                          (np.abs(Dt[l - 1]) + np.abs(Dt[l]), k_prop)])
                signal = float(incr.max())
                if divergence is None or l < divergence["layer"]:
                    big = max(float(np.abs(want_c[l]).max()), float(np.abs(got_c[l]).max()))
                    big = big if np.isfinite(big) else math.inf
                    if not big <= DIVERGENCE_RATIO * size:
                        divergence = dict(prompt=b, layer=l, magnitude=big, window_size=size,
                                          ratio_bound=DIVERGENCE_RATIO)
            rows = [("current", cur, Rc, bc, got_c[l], want_c[l])]
            if tgt is not None:
                rows.append(("target", tgt, Rt, bt, got_t[l], want_t[l]))
            for key, row, R, bound, got, want in rows:
                err = np.abs(got - want)
                rel, ratio = layer_ratios(err, R, bound, np.maximum(np.abs(want), size))
                errors[key] = max(errors[key], float(rel.max()))
                j = int(ratio.argmax())
                if ratio[j] > worst_ratio:
                    worst_ratio, tol_at_worst = float(ratio[j]), float(bound[j])
                if exceeds(ratio[j], 1.0) and (cex is None or l < cex["layer"]):
                    failed = True
                    cex = dict(prompt=b, layer=l, quantity=key, row=row, column=j, state=st[j], got=float(got[j]),
                               want=float(want[j]), abs_error=float(err[j]), layer_residual=float(R[j]),
                               bound=float(bound[j]), relative_error=float(rel[j]), gamma=g, n=n, d=d,
                               why=f"layer {l}'s own error exceeds the rounding bound of the magnitudes entering it")
                if signal is not None and not decidable(float(np.max(bound)), signal):
                    undecidable += 1
                    ratio_bs = float(np.max(bound)) / signal if signal > 0 else math.inf
                    if und_example is None or ratio_bs > und_ratio:
                        und_ratio = ratio_bs
                        und_example = dict(prompt=b, layer=l, quantity=key, bound=float(np.max(bound)),
                                           signal=signal, bound_over_signal=ratio_bs,
                                           suggestion="float64 cannot decide this layer: its rounding bound is not "
                                                      "small against the TD step's own terms")
        if progress is not None:
            progress(1)
    verdict = verdict_of(failed=failed, undecidable=undecidable > 0, diverged=divergence is not None)
    return SoftmaxCheckResult(record.name, B, layers, spec.tied, spec.mask, max(errors.values()), errors,
                              tol_at_worst, verdict == HOLDS, cex, verdict, worst_ratio, undecidable, und_example,
                              divergence, form=record.form or "", alphas=alphas)


def _shift(x: np.ndarray) -> np.ndarray:
    """``x[j + 1]`` at ``j`` (0 at the last entry): the successor column."""
    out = np.zeros_like(x)
    out[:-1] = x[1:]
    return out


# ============================================================================ special cases

def tabular_case(record, mrps: int, states: int, n: int, layers: int, gamma: float, alphas, gen: torch.Generator,
                 kind: str = "random", tau: float = TABULAR_TAU, tied: bool = True) -> dict:
    """The tabular case: features ``sqrt(tau) e_s`` (``d = states``); the
    block's values at the window's states against batch tabular TD that
    averages each state's TD errors (``numerics.reference_softmax.tabular_batch_td``),
    every layer.  ``max_abs_error`` and ``max_rel_error`` (to ``max(1, |v|)``)
    over windows, layers and columns; the weight of a non-matching state is
    ``exp(-tau)`` relative to a match."""
    mdp, sw = draw(kind, mrps, states, states, n, gamma, gen, case="tabular", tau=tau)
    Zs = block_layers(record, sw, layers, tied, alphas)[0]
    cur = record.layout.offsets("rows", states)[record.carried][0]
    worst_abs, worst_rel = 0.0, 0.0
    for b in range(mrps):
        st = [int(x) for x in sw.states[b]]
        want = REF.tabular_batch_td(st, sw.r[b].numpy(), float(sw.gamma[b]), alphas, states)[:, st]
        err = np.abs(Zs[:, b, cur, :].numpy() - want)
        worst_abs = max(worst_abs, float(err.max()))
        worst_rel = max(worst_rel, float((err / np.maximum(1.0, np.abs(want))).max()))
    return dict(case="tabular", tau=tau, states=states, n=n, layers=layers, mrps=mrps,
                non_match_weight=math.exp(-tau), max_abs_error=worst_abs, max_rel_error=worst_rel,
                rtol=SOFTMAX_TABULAR_RTOL, holds=bool(worst_rel <= SOFTMAX_TABULAR_RTOL),
                compared_with="batch tabular TD averaging each state's TD errors (numerics.reference_softmax."
                              "tabular_batch_td)")


def linear_case(record, mrps: int, states: int, d: int, n: int, layers: int, gamma: float, alphas,
                gen: torch.Generator, kind: str = "random", eps_values=LINEAR_EPS, tied: bool = True) -> dict:
    """The linear case: features ``eps psi`` (``psi ~ Unif(-1, 1)^d``); the
    block's values against batch linear TD(0) (``numerics.reference_softmax.linear_td``)
    with two feature maps, each fitted for the slope of its error in ``eps``
    (log-log least squares over ``eps_values``):

    * ``centered``: value features ``[1; eps psi(s)]`` and update direction
      ``[1; eps (psi(s) - psibar)]`` (``psibar`` the mean of ``psi`` over the
      context's sources): the expansion ``exp(eps^2 x) = 1 + eps^2 x +
      O(eps^4)`` of the kernel gives exactly this update, so the error is
      ``O(eps^4)``;
    * ``symmetric``: features ``[1; eps (psi(s) - psibar)]`` on both sides
      (plain linear TD with centred features): differs from the kernel's
      first order by a constant ``eps^2`` shift of every value, ``O(eps^2)``.

    The values ``v_L`` at the window's states (every layer) are compared;
    the error is ``max |v_block - v_linear|``."""
    mdp = sample_mrps(kind, mrps, states, gen, gamma)
    psi = uniform_features(mrps, states, d, gen)
    S = sample_trajectories(mdp, n, gen)
    errs = {"centered": [], "symmetric": []}
    for eps in eps_values:
        sw = softmax_windows(mdp, eps * psi, S)
        Zs = block_layers(record, sw, layers, tied, alphas)[0]
        cur = record.layout.offsets("rows", d)[record.carried][0]
        worst = {"centered": 0.0, "symmetric": 0.0}
        for b in range(mrps):
            st = [int(x) for x in S[b]]
            P = psi[b].numpy()
            pbar = P[st[:-1]].mean(0)
            one = np.ones((states, 1))
            got = Zs[:, b, cur, :].numpy()
            sym = REF.linear_td(np.hstack([one, eps * (P - pbar)]), st, sw.r[b].numpy(), gamma, alphas)[:, st]
            cen = REF.linear_td(np.hstack([one, eps * P]), st, sw.r[b].numpy(), gamma, alphas,
                                direction=np.hstack([one, eps * (P - pbar)]))[:, st]
            worst["symmetric"] = max(worst["symmetric"], float(np.abs(got - sym).max()))
            worst["centered"] = max(worst["centered"], float(np.abs(got - cen).max()))
        for k in errs:
            errs[k].append(worst[k])
    x = np.log(np.asarray(eps_values))
    out = dict(case="linear", eps=list(eps_values), d=d, n=n, layers=layers, mrps=mrps, states=states)
    for k, e in errs.items():
        y = np.log(np.maximum(np.asarray(e), 1e-300))
        slope = float(np.polyfit(x, y, 1)[0])
        out[k] = dict(max_abs_error=e, slope=slope)
    out["holds"] = bool(abs(out["centered"]["slope"] - 4.0) <= SOFTMAX_LINEAR_SLOPE_ATOL)
    out["slope_atol"] = SOFTMAX_LINEAR_SLOPE_ATOL
    out["compared_with"] = ("batch linear TD(0) with value features [1; eps psi] and direction [1; eps (psi - psibar)] "
                            "(centered: O(eps^4) expected), and with [1; eps (psi - psibar)] on both sides "
                            "(symmetric: O(eps^2), a constant eps^2 shift)")
    return out

