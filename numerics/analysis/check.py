"""Does the block compute the teacher's update?  Run it on sampled prompts
and compare its read-out with the teacher (the computation behind
``icrl-verify check``).  One entry, :func:`check`, for every record: an
``mdp`` record's read-out against the reference teacher (:func:`run_check`),
an ``mrp`` record's every layer against the teacher applied layer by layer
(:func:`check_against_loop`, below).

The read-out comes from the prompt (``numerics.core.prompts``); the teacher
is the independent reference (``numerics.reference``: the textbook update
from the raw window, sharing nothing with the prompt builder), so a fault in
the prompt path (a score's sign, the policy of expected SARSA, the state of
Q-learning's argmax) cannot fool both sides.  Windows whose argmax is a near
tie (:data:`numerics.core.tolerances.ARGMAX_TIE_RTOL`) are left out of the
comparison and counted (``near_ties``).  Every read-out entry is judged
against its own float64 rounding bound; weights whose bound is not small
against the teacher update's terms are ``undecidable`` (docs/check.md,
"Tolerances").

MDPs and windows are drawn as in Algorithm 1 (the behaviour policy of the
current parameters, ``theta <- teacher output``, ``s_0 <- s_n``); every frame
of every MDP is one prompt.  The block uses the record's constructed weights
(from ``theory``) or given weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from numerics import reference
from numerics.analysis import check_compiled
from numerics.analysis.check_verdict import Tally, entry_stats
from numerics.core.block import forward_layers, layer, lemma_c1, readout_entry, readout_magnitudes, split_full
from numerics.core.constructions import constructed_weights, preconditioned_weights
from numerics.core.distributions import MDPDistribution
from numerics.core.mrp import Windows, sample_mrps, sample_trajectories, uniform_features, windows_from_states
from numerics.core.prompts import evaluation_prompt
from numerics.core.stream import Stream
from numerics.core.tolerances import (
    ARGMAX_TIE_RTOL,
    DECIDABLE_RTOL,
    DIVERGENCE_RATIO,
    DTYPE,
    HOLDS,
    ROUNDING_FACTOR,
    changed,
    decidable,
    exceeds,
    layer_ratios,
    layer_depth,
    lemma_c1_depths,
    loop_depth,
    rounding_bound,
    teacher_depth,
)
from numerics.core.tolerances import verdict as verdict_of
from theory import algorithms
from theory.errors import InputError

#: The rule, in one line (the JSON's ``rule``; derivation in docs/check.md).
RULE = (f"per entry: |TF(H) - teacher| <= {ROUNDING_FACTOR:g} eps sum_parts depth x magnitude (the read-out's "
        f"|w|, linear and cubic terms, the teacher's |theta| and increment); undecidable when a prompt's bound > "
        f"{DECIDABLE_RTOL:g} x the teacher increment's terms")


@dataclass
class CheckResult:
    algorithm: str
    prompts: int
    max_abs_error: float
    tolerance: float
    holds: bool
    counterexample: dict | None
    near_ties: int = 0
    teacher: str = "reference"
    verdict: str = HOLDS
    worst_error_over_bound: float = 0.0
    undecidable: int = 0
    undecidable_example: dict | None = None
    rule: str = RULE

    def as_dict(self):
        return dict(self.__dict__)


def run_check(algorithm, dist: MDPDistribution, *, prompts: int = 10_000, mdps: int = 100, n: int = 20,
              epsilon: float = 0.1, alpha: float = 0.2, beta: float = 0.2, seed: int = 0,
              weights: tuple[torch.Tensor, torch.Tensor] | None = None, device=None,
              progress=None, mdp=None, features=None) -> CheckResult:
    """Compare ``TF(H)`` with the teacher on ``prompts`` prompts.

    ``mdp`` (and ``features``) replace the sampled MDPs: every frame then
    checks one prompt per given MDP.

    Each entry of each prompt's read-out is judged against its own rounding
    bound (:func:`numerics.core.tolerances.rounding_bound` of the magnitudes
    that enter it: :func:`numerics.core.block.readout_magnitudes` and the
    reference teacher's :func:`numerics.reference.reference_magnitudes`).
    Verdict ``fails`` when an error exceeds its bound, ``undecidable`` when a
    prompt's bound is not small against the teacher update's own terms
    (:func:`numerics.core.tolerances.decidable`), else ``holds``.
    """
    record = algorithms.get(algorithm)
    steps = {"alpha": alpha, "beta": beta}
    device = torch.device(device or "cpu")
    gen = torch.Generator(device=device).manual_seed(seed)
    if mdp is None:
        mdp, F = dist.sample(mdps, gen, device=device)
    else:
        F = features if features is not None else dist.draw_features(mdp.batch, gen, device)
        mdps = mdp.batch
    d = F.shape[-1]
    index = record.spec.index(d)
    if weights is None:
        weights = constructed_weights(record, d, steps, device=device)
    if check_compiled.applies(record, F, device):       # the same prompts and rule, compiled (issue 14)
        r = check_compiled.run_check_compiled(record, mdp, F, weights, index, prompts=prompts, n=n, epsilon=epsilon,
                                              alpha=alpha, seed=seed, gen=gen, progress=progress)
        tally = r["tally"]
        return _result(record.name, r["done"], tally, r["counterexample"], 0,
                       "compiled textbook loop (numerics.core.compiled.sarsa_teacher_q)")
    blocks = split_full(index, *weights)
    depth = lemma_c1_depths(index.m, index.p, n)
    k_teacher = teacher_depth(d, n, mdp.actions)
    num_frames = math.ceil(prompts / mdps)
    tally, cex, done, ties = Tally(), None, 0, 0
    stream = Stream(record, mdp, F, n=n, epsilon=epsilon, steps=steps, gen=gen)
    F_np = F.detach().cpu().numpy().astype(np.float64)
    gamma_np = mdp.gamma.detach().cpu().numpy().astype(np.float64)
    teacher = {}

    def follow(frame):               # theta <- the reference teacher's output (Algorithm 1)
        win = frame.window
        raw = (F_np, win.s.cpu().numpy(), win.a.cpu().numpy(), win.r.detach().cpu().numpy(),
               frame.theta.detach().cpu().numpy(), gamma_np, epsilon, steps)
        out, tie = reference.reference_update(record, *raw, ARGMAX_TIE_RTOL)
        teacher["want"], teacher["tie"] = out, tie
        teacher["abs"], teacher["increment"] = reference.reference_magnitudes(record, *raw)
        return torch.from_numpy(out).to(device=frame.theta.device, dtype=frame.theta.dtype)

    for t, frame in enumerate(stream.frames(num_frames, update=follow)):
        take = min(mdps, prompts - done)
        X, wt = frame.X, frame.wt
        want = torch.from_numpy(teacher["want"]).to(device=X.device, dtype=X.dtype)
        tie = teacher["tie"][:take]
        got = lemma_c1(X, wt, *blocks)
        mag = {k: v.detach().cpu().numpy() for k, v in readout_magnitudes(X, wt, *blocks).items()}
        bound = rounding_bound([(mag["w"], depth["w"]), (mag["linear"], depth["linear"]),
                                (mag["cubic"], depth["cubic"]), (teacher["abs"], 1),
                                (teacher["increment"], k_teacher)])[:take]
        err = (got - want).abs().detach().cpu().numpy()[:take]
        signal = teacher["increment"].max(-1)[:take]
        err[tie], bound[tie], signal[tie] = 0.0, 0.0, 0.0               # near ties: not compared, counted
        ties += int(tie.sum())
        stats = entry_stats(err, bound, signal)
        fail, undecided = tally.add(stats)
        if undecided is not None:
            tally.example(stats[undecided], mdp_index=undecided, frame=t, seed=seed)
        if fail is not None:
            b, win = fail, frame.window
            cex = dict(states=mdp.states, actions=mdp.actions, d=d, n=n, seed=seed, mdp_index=b,
                       frame=t, gamma=float(mdp.gamma[b]), abs_error=float(stats[b, 0]),
                       tolerance=float(stats[b, 2]), error_over_bound=float(stats[b, 1]),
                       theta=frame.theta[b].tolist(),
                       window=dict(s=win.s[b].tolist(), a=win.a[b].tolist(), r=win.r[b].tolist()),
                       expected=want[b].tolist(), got=got[b].tolist(),
                       expected_by="reference teacher (numerics.reference)",
                       got_by="block read-out on the prompt (numerics.core.prompts)")
        done += take
        if progress is not None:
            progress(take)
    return _result(record.name, done, tally, cex, ties, "reference")


def check(record, windows, weights=None, **options):
    """``check(record, windows, weights)``: ``windows`` is what the record runs
    on, an MDP distribution (``mdp`` records; options of :func:`run_check`)
    or MRP windows (``mrp`` records; ``Cs``, ``layers``, ``tied`` and the
    other options of :func:`check_against_loop`)."""
    record = algorithms.get(record)
    if record.data == "mrp":
        return check_against_loop(record, windows, weights=weights, **options)
    return run_check(record, windows, weights=weights, **options)


def _result(name, done, tally: Tally, cex, ties, teacher) -> CheckResult:
    verdict = tally.verdict()
    return CheckResult(name, done, tally.worst, tally.tol_at_worst, verdict == HOLDS, cex, ties, teacher, verdict,
                       tally.worst_ratio_or_zero(), tally.undecidable, tally.undecidable_example)

@dataclass
class LayerCheckResult:
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
    verdict: str = HOLDS
    worst_error_over_bound: float = 0.0
    undecidable: int = 0
    undecidable_example: dict | None = None
    divergence: dict | None = None

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


def _iteration(record, phi, phi_next, r, phi_q, gamma: float, lam: float):
    """The batch-TD iteration of one window as matrices (an independent
    writing of THEORY.md section 9, used only to bound rounding, never as
    the reference): carried ``c(w) = const - s Psi^T w`` with ``s = +1`` for
    TD errors, ``-1`` for the average-reward row ``y = Psi^T w``; the step
    ``w <- w + (1/n) C Vec^T delta``.  Returns ``Psi``, ``Vec`` (``n x d``),
    the magnitudes ``|Psi|`` (``|phi| + g |phi'|`` term-wise), ``|Vec|``,
    ``|target|`` (``n``) and ``s``."""
    n, d = phi.shape
    g = 1.0 if record.centered else gamma
    Psi = phi - g * phi_next
    Psi_abs = np.abs(phi) + abs(g) * np.abs(phi_next)
    target_abs = np.abs(r)
    if record.centered:
        target_abs = target_abs + np.cumsum(np.abs(r)) / np.arange(1, n + 1)
    if record.direction == "trace":
        Vec, Vec_abs = np.zeros_like(phi), np.zeros_like(phi)
        e, ea = np.zeros(d), np.zeros(d)
        for j in range(n):
            e, ea = lam * e + phi[j], abs(lam) * ea + np.abs(phi[j])
            Vec[j], Vec_abs[j] = e, ea
    elif record.direction == "residual":
        Vec, Vec_abs = Psi, Psi_abs
    else:
        Vec, Vec_abs = phi, np.abs(phi)
    return Psi, Vec, Psi_abs, Vec_abs, target_abs, (-1.0 if record.centered else 1.0)


def check_against_loop(algorithm, win: Windows, Cs, *, layers: int, tied: bool, lam: float | None = None,
                       weights=None, mask: str | None = None, progress=None) -> LayerCheckResult:
    """Compare every layer of the block with :func:`batch_td_loop`, each
    quantity against its own rounding bound (docs/check.md, Tolerances).

    ``Cs``: the teacher's preconditioners (``L x d x d``); ``weights``: ``(P,
    V)`` in the specification's shapes (default: the construction for ``Cs``,
    tied when ``tied``, in which case every ``C_l`` must be equal); ``mask``
    overrides the specification's mask (``"none"``: the query column is a
    key and a value).

    Per window and layer ``l``: every entry that must stay unchanged (every
    row but the carried one) is compared exactly with the prompt; the
    carried row and the read-out are judged one layer at a time: the
    difference ``D_l`` (block minus loop) less the previous difference
    carried through the iteration's step (``D_l - T_l D_{l-1}``, ``T_l = I -
    (1/n) Psi^T C_l Vec``; the value: ``+ s (1/n) phi_q^T C_l Vec D_{l-1}``)
    is what layer ``l``'s roundings alone can produce, and is compared with
    the bound of the magnitudes entering layer ``l`` (the block's layer on
    absolute values, the loop's step on absolute values).  Errors of other
    layers therefore neither hide nor excuse it.  A layer whose bound exceeds
    ``DECIDABLE_RTOL`` of that step's own terms is undecidable; loop values
    past ``DIVERGENCE_RATIO`` times the window's size mark divergence.
    """
    record = algorithms.get(algorithm)
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
        weights = preconditioned_weights(record, Cs[0] if tied else Cs)
    P, V = weights
    Z0 = evaluation_prompt(record, win)
    with torch.no_grad():
        Zs = forward_layers(spec, P, V, Z0, d)                     # (L+1) x B x D x (n+1)
        per_layer = [(P, V) if spec.tied else (P[k], V[k]) for k in range(layers)]
        mags = torch.stack([Z0.abs()] + [layer(spec, *per_layer[k], Zs[k], d, magnitudes=True)   # |layer|(|Z_{l-1}|)
                                         for k in range(layers)])
    values = readout_entry(record.layout, Zs).numpy()                           # (L+1) x B
    row = record.layout.offsets("rows", d)[record.carried][0]
    read_row = record.layout.offsets("rows", d)[record.layout.readout[0][0]][0]
    others = [i for i in range(Z0.shape[1]) if i != row]
    Zn, Z0n, Mn = Zs.numpy(), Z0.numpy(), mags.numpy()
    C = Cs.numpy()
    D = Z0.shape[1]
    k_layer, k_loop = layer_depth(D, n), loop_depth(d, n)
    errors = {"value": 0.0, "carried": 0.0, "untouched": 0.0}
    worst_ratio, tol_at_worst, cex, failed = 0.0, 0.0, None, False
    undecidable, und_ratio, und_example, divergence = 0, 0.0, None, None
    gammas = win.gamma.numpy()
    lam_f = 0.0 if lam is None else float(lam)
    for b in range(Z0.shape[0]):
        phi, phin, r, phq = (x[b].numpy() for x in (win.phi, win.phi_next, win.r, win.phi_q))
        tr = reference.batch_td_loop(phi, phin, r, phq, float(gammas[b]), C, record.direction, record.centered, lam_f)
        Psi, Vec, Psi_abs, Vec_abs, target_abs, sgn = _iteration(record, phi, phin, r, phq, float(gammas[b]), lam_f)
        # entries that must stay unchanged: exact
        moved = changed(Zn[:, b][:, others, :], np.broadcast_to(Z0n[b][others, :], Zn[:, b][:, others, :].shape))
        if moved.any():
            l = int(np.flatnonzero(moved.reshape(layers + 1, -1).any(-1))[0])
            rows_changed = sorted({others[i] for i in np.flatnonzero(moved[l].any(-1))})
            ri = int(np.flatnonzero(moved[l].any(-1))[0])
            col = int(np.flatnonzero(moved[l, ri])[0])
            kept = abs(float(Z0n[b, others[ri], col]))
            diff = abs(float(Zn[l, b, others[ri], col]) - float(Z0n[b, others[ri], col]))
            rel_u = diff / kept if (kept > 0 and np.isfinite(diff)) else float("inf")   # against its own size
            errors["untouched"] = max(errors["untouched"], rel_u)
            failed = True
            if cex is None or l < cex["layer"]:                    # the earliest layer that fails is reported
                cex = dict(prompt=b, layer=l, quantity="untouched", entry=[others[ri], col], rows=rows_changed,
                           block=float(Zn[l, b, others[ri], col]), loop=float(Z0n[b, others[ri], col]),
                           relative_error=rel_u, bound=0.0, gamma=float(gammas[b]), n=n, d=d,
                           why="an entry the construction must keep (a feature, the query or a zero row) changed; "
                               "such entries are compared exactly")
        size = max(float(np.abs(x).max()) for x in (phi, phin, r, phq))
        carried_abs = np.zeros(n) if record.centered else target_abs     # y = Psi^T w has no target
        Dc = Zn[:, b, row, :n] - tr.carried                        # (L+1) x n
        Dv = values[:, b] - tr.value                               # L+1
        for l in range(layers + 1):
            w_l = tr.w[l]
            Mc_l = carried_abs + Psi_abs @ np.abs(w_l)
            Mv_l = np.abs(phq) @ np.abs(w_l)
            if l == 0:                                             # the prompt itself: a few roundings
                bc = rounding_bound([(Mc_l, d + 4), (Mn[0, b, row, :n], 4)])
                bv = rounding_bound([(Mv_l, d + 4), (Mn[0, b, read_row, n], 4)])
                Rc, Rv, signal = Dc[0], Dv[0], None
            else:
                Cl = C[l - 1]
                w_prev = tr.w[l - 1]
                K = Psi @ Cl @ Vec.T / n                           # T_l = I - K
                qv = phq @ Cl @ Vec.T / n
                Rc = Dc[l] - (Dc[l - 1] - K @ Dc[l - 1])
                Rv = Dv[l] - Dv[l - 1] - sgn * (qv @ Dc[l - 1])
                T_abs = np.abs(np.eye(n) - K)
                Mc_prev = carried_abs + Psi_abs @ np.abs(w_prev)
                delta_abs = target_abs + Psi_abs @ np.abs(w_prev)
                incr = np.abs(Cl) @ (Vec_abs.T @ delta_abs) / n    # the step's own terms
                Mw = np.abs(w_prev) + incr
                bc = rounding_bound([(Mn[l, b, row, :n], k_layer), (Psi_abs @ Mw, k_loop), (Mc_l, k_loop),
                                     (T_abs @ Mc_prev, k_loop), (T_abs @ np.abs(Dc[l - 1]) + np.abs(Dc[l]), n + d + 4)])
                bv = rounding_bound([(Mn[l, b, read_row, n], k_layer), (np.abs(phq) @ Mw, k_loop), (Mv_l, k_loop),
                                     (np.abs(phq) @ np.abs(w_prev), k_loop), (np.abs(qv) @ Mc_prev, k_loop),
                                     (np.abs(qv) @ np.abs(Dc[l - 1]) + abs(Dv[l - 1]) + abs(Dv[l]), n + d + 4)])
                signal = max(float((Psi_abs @ incr).max()), float(np.abs(phq) @ incr))
                if divergence is None or l < divergence["layer"]:
                    big = max(float(np.abs(tr.carried[l]).max()), abs(float(tr.value[l])),   # the loop's, and
                              float(np.abs(Zn[l, b, row, :n]).max()), abs(float(values[l, b])))   # the block's
                    big = big if np.isfinite(big) else float("inf")
                    if not big <= DIVERGENCE_RATIO * size:
                        divergence = dict(prompt=b, layer=l, magnitude=big, window_size=size,
                                          ratio_bound=DIVERGENCE_RATIO)
            for key, R, bound, got, want, mag in (("carried", Rc, bc, Zn[l, b, row, :n], tr.carried[l], Mc_l),
                                                  ("value", np.atleast_1d(Rv), np.atleast_1d(bv),
                                                   np.atleast_1d(values[l, b]), np.atleast_1d(tr.value[l]),
                                                   np.atleast_1d(Mv_l))):
                err = np.abs(got - want)
                rel, ratio = layer_ratios(err, R, bound, np.maximum(mag, np.abs(want)))
                errors[key] = max(errors[key], float(rel.max()))
                i = int(ratio.argmax())
                if ratio[i] > worst_ratio:
                    worst_ratio, tol_at_worst = float(ratio[i]), float(bound[i])
                if exceeds(ratio[i], 1.0) and (cex is None or l < cex["layer"]):
                    failed = True
                    cex = dict(prompt=b, layer=l, quantity=key, entry=None if key == "value" else [row, i],
                               rows=[row if key == "carried" else read_row], block=float(got[i]), loop=float(want[i]),
                               relative_error=float(rel[i]), layer_residual=float(R[i]), bound=float(bound[i]),
                               gamma=float(gammas[b]), n=n, d=d,
                               why=f"layer {l}'s own error exceeds the rounding bound of the magnitudes entering it")
                if signal is not None and not decidable(float(bound.max()), signal):
                    undecidable += 1
                    ratio_bs = float(bound.max()) / signal if signal > 0 else float("inf")
                    if und_example is None or ratio_bs > und_ratio:
                        und_ratio = ratio_bs
                        und_example = dict(prompt=b, layer=l, quantity=key, bound=float(bound.max()),
                                           signal=signal, bound_over_signal=ratio_bs, decidable_rtol=DECIDABLE_RTOL,
                                           suggestion="float64 cannot decide this layer: the rounding of the "
                                                      "magnitudes entering it is not small against the TD step's "
                                                      "own terms (prove proves the construction "
                                                      "exactly)")
        if progress is not None:
            progress(1)
    verdict = verdict_of(failed=failed, undecidable=undecidable > 0, diverged=divergence is not None)
    mx = max(errors.values())
    return LayerCheckResult(record.name, int(Z0.shape[0]), layers, tied, spec.mask, mx, errors, tol_at_worst,
                           verdict == HOLDS, cex, verdict, worst_ratio, undecidable, und_example, divergence)
