"""Does the block compute the teacher's update?  Run it on sampled prompts
and compare its read-out with the teacher (the computation behind
``icrl-verify check``).

The read-out comes from the prompt (``numerics.core.prompts``); the teacher
is the independent reference (``numerics.reference``: the textbook update
from the raw window, sharing nothing with the prompt builder), so a fault in
the prompt path (a score's sign, the policy of expected SARSA, the state of
Q-learning's argmax) cannot fool both sides.  Windows whose argmax is a near
tie (:data:`numerics.core.tolerances.ARGMAX_TIE_RTOL`) are left out of the
comparison and counted (``near_ties``).

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
from numerics.core.block import lemma_c1, split_full, term_scale
from numerics.core.constructions import constructed_weights
from numerics.core.distributions import MDPDistribution
from numerics.core.stream import Stream
from numerics.core.tolerances import ARGMAX_TIE_RTOL, readout_tolerance
from theory import algorithms


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

    def as_dict(self):
        return dict(self.__dict__)


def run_check(algorithm, dist: MDPDistribution, *, prompts: int = 10_000, mdps: int = 100, n: int = 20,
              epsilon: float = 0.1, alpha: float = 0.2, beta: float = 0.2, seed: int = 0,
              weights: tuple[torch.Tensor, torch.Tensor] | None = None, device=None,
              progress=None, mdp=None, features=None) -> CheckResult:
    """Compare ``TF(H)`` with the teacher on ``prompts`` prompts.

    ``mdp`` (and ``features``) replace the sampled MDPs: every frame then
    checks one prompt per given MDP.

    Holds when, for every prompt, ``|TF(H) - teacher|_inf`` is below
    :func:`numerics.core.tolerances.readout_tolerance` of that prompt's term
    scale (:func:`numerics.core.block.term_scale`).
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
        return CheckResult(record.name, r["done"], r["worst"], r["tol_at_worst"], r["counterexample"] is None,
                           r["counterexample"], 0, "compiled textbook loop (numerics.core.compiled.sarsa_teacher_q)")
    blocks = split_full(index, *weights)
    num_frames = math.ceil(prompts / mdps)
    worst, worst_ratio, tol_at_worst, cex, done, ties = 0.0, -1.0, readout_tolerance(0.0, index.D, n), None, 0, 0
    stream = Stream(record, mdp, F, n=n, epsilon=epsilon, steps=steps, gen=gen)
    F_np = F.detach().cpu().numpy().astype(np.float64)
    gamma_np = mdp.gamma.detach().cpu().numpy().astype(np.float64)
    teacher = {}

    def follow(frame):               # theta <- the reference teacher's output (Algorithm 1)
        win = frame.window
        out, tie = reference.reference_update(record, F_np, win.s.cpu().numpy(), win.a.cpu().numpy(),
                                             win.r.detach().cpu().numpy(), frame.theta.detach().cpu().numpy(),
                                             gamma_np, epsilon, steps, ARGMAX_TIE_RTOL)
        teacher["want"], teacher["tie"] = out, tie
        return torch.from_numpy(out).to(device=frame.theta.device, dtype=frame.theta.dtype)

    for t, frame in enumerate(stream.frames(num_frames, update=follow)):
        take = min(mdps, prompts - done)
        X, wt = frame.X, frame.wt
        want = torch.from_numpy(teacher["want"]).to(device=X.device, dtype=X.dtype)
        tie = torch.from_numpy(teacher["tie"]).to(X.device)[:take]
        got = lemma_c1(X, wt, *blocks)
        err = (got - want).abs().max(-1).values[:take]
        err = torch.where(tie, torch.zeros_like(err), err)        # near ties: not compared, counted
        ties += int(tie.sum())
        tol = readout_tolerance(term_scale(X, wt, *blocks), index.D, n)[:take]
        ratio = err / tol
        b = int(ratio.argmax())
        if not torch.isfinite(err).all():
            b = int((~torch.isfinite(err)).nonzero()[0])
            ratio[b] = math.inf
        if float(err.max()) > worst:
            worst = float(err.max())
        if float(ratio[b]) > worst_ratio:
            worst_ratio, tol_at_worst = float(ratio[b]), float(tol[b])
            if ratio[b] > 1 and cex is None:
                win = frame.window
                cex = dict(states=mdp.states, actions=mdp.actions, d=d, n=n, seed=seed, mdp_index=b,
                           frame=t, gamma=float(mdp.gamma[b]), abs_error=float(err[b]), tolerance=float(tol[b]),
                           theta=frame.theta[b].tolist(),
                           window=dict(s=win.s[b].tolist(), a=win.a[b].tolist(), r=win.r[b].tolist()),
                           expected=want[b].tolist(), got=got[b].tolist(),
                           expected_by="reference teacher (numerics.reference)",
                           got_by="block read-out on the prompt (numerics.core.prompts)")
        done += take
        if progress is not None:
            progress(take)
    return CheckResult(record.name, done, worst, tol_at_worst, cex is None, cex, ties)
