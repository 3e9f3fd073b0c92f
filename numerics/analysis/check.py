"""Does the block compute the teacher's update?  Run it on sampled prompts
and compare its read-out with the teacher (the computation behind
``icrl-verify check``).

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
from numerics.core.block import lemma_c1, readout_magnitudes, split_full
from numerics.core.constructions import constructed_weights
from numerics.core.distributions import MDPDistribution
from numerics.core.stream import Stream
from numerics.core.tolerances import (
    ARGMAX_TIE_RTOL,
    DECIDABLE_RTOL,
    HOLDS,
    ROUNDING_FACTOR,
    lemma_c1_depths,
    rounding_bound,
    teacher_depth,
)
from theory import algorithms

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


def _result(name, done, tally: Tally, cex, ties, teacher) -> CheckResult:
    verdict = tally.verdict()
    return CheckResult(name, done, tally.worst, tally.tol_at_worst, verdict == HOLDS, cex, ties, teacher, verdict,
                       tally.worst_ratio_or_zero(), tally.undecidable, tally.undecidable_example)
