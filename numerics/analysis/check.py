"""Does the block compute the teacher's update?  Run it on sampled prompts
and compare its read-out with the teacher (the computation behind
``icrl-verify check``).

MDPs and windows are drawn as in Algorithm 1 (the behaviour policy of the
current parameters, ``theta <- teacher output``, ``s_0 <- s_n``); every frame
of every MDP is one prompt.  The block uses the record's constructed weights
(from ``theory``) or given weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from numerics.analysis import check_compiled
from numerics.core.block import lemma_c1, split_full, term_scale
from numerics.core.constructions import constructed_weights
from numerics.core.distributions import MDPDistribution
from numerics.core.stream import Stream
from numerics.core.tolerances import readout_tolerance
from theory import algorithms


@dataclass
class CheckResult:
    algorithm: str
    prompts: int
    max_abs_error: float
    tolerance: float
    holds: bool
    counterexample: dict | None

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
                           r["counterexample"])
    blocks = split_full(index, *weights)
    num_frames = math.ceil(prompts / mdps)
    worst, worst_ratio, tol_at_worst, cex, done = 0.0, -1.0, readout_tolerance(0.0, index.D, n), None, 0
    stream = Stream(record, mdp, F, n=n, epsilon=epsilon, steps=steps, gen=gen)
    for t, frame in enumerate(stream.frames(num_frames)):
        take = min(mdps, prompts - done)
        X, wt, want = frame.X, frame.wt, frame.target
        got = lemma_c1(X, wt, *blocks)
        err = (got - want).abs().max(-1).values[:take]
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
                cex = dict(states=mdp.states, actions=mdp.actions, d=d, n=n, seed=seed, mdp_index=b,
                           frame=t, gamma=float(mdp.gamma[b]), abs_error=float(err[b]), tolerance=float(tol[b]),
                           theta=frame.theta[b].tolist(), expected=want[b].tolist(), got=got[b].tolist())
        done += take
        if progress is not None:
            progress(take)
    return CheckResult(record.name, done, worst, tol_at_worst, cex is None, cex)
