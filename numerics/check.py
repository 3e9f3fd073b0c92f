"""``icrl-verify check``: run the block on sampled prompts and compare its
read-out with the teacher update.

MDPs and windows are drawn as in Algorithm 1 (epsilon-greedy in ``Q_w``,
``w <- teacher output``, ``s_0 <- s_n``); every frame of every MDP is one
prompt.  The block uses the constructed weights (Theorem 3.1 / 3.3, taken
from ``theory``) or ``--weights FILE.npz``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from numerics.algorithms import layout
from numerics.block import readout_fast, split_full
from numerics.config import add_common, device_from_args, distribution_from_args, positive_int
from numerics.constructions import constructed_weights
from numerics.distributions import MDPDistribution
from numerics.mdp_file import load_mdp_file
from numerics.prompts import build_context
from numerics.sampler import frames
from numerics.teachers import teacher_update, window_features
from numerics.tolerances import READOUT_FACTOR, eps, readout_tolerance
from numerics.weights import load_weights


def term_scale(X: torch.Tensor, wt: torch.Tensor, P12, Vbar21, P22=None, Vbar22=None) -> torch.Tensor:
    """Per prompt, the sum of absolute values of the terms the read-out adds
    up (the size that rounding errors scale with)."""
    n = X.shape[1]
    a = X.abs() @ (wt.abs() @ P12.abs().transpose(-1, -2)).unsqueeze(-1)
    s = (X.abs().transpose(1, 2) @ a).squeeze(-1) / n
    out = wt[:, 1:].abs() + s @ Vbar21.abs().transpose(-1, -2)
    if P22 is not None and Vbar22 is not None:
        quad = ((wt.abs() @ P22.abs().transpose(-1, -2)) * wt.abs()).sum(-1)
        out = out + (quad / n).unsqueeze(-1) * (wt.abs() @ Vbar22.abs().transpose(-1, -2))
    return out.max(-1).values


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


def run_check(algorithm: str, dist: MDPDistribution, *, prompts: int = 10_000, mdps: int = 100, n: int = 20,
              epsilon: float = 0.1, alpha: float = 0.2, beta: float = 0.2, seed: int = 0,
              weights: tuple[torch.Tensor, torch.Tensor] | None = None, device=None,
              progress=None, mdp=None, features=None) -> CheckResult:
    """Compare ``TF(H)`` with the teacher on ``prompts`` prompts.

    ``mdp`` (and ``features``) replace the sampled MDPs: every frame then
    checks one prompt per given MDP.

    Holds when, for every prompt, ``|TF(H) - teacher|_inf`` is below
    :func:`numerics.tolerances.readout_tolerance` of that prompt's term scale.
    """
    device = torch.device(device or "cpu")
    gen = torch.Generator(device=device).manual_seed(seed)
    if mdp is None:
        mdp, F = dist.sample(mdps, gen, device=device)
    else:
        F = features if features is not None else dist.draw_features(mdp.batch, gen, device)
        mdps = mdp.batch
    lay = layout(algorithm)
    d = F.shape[-1]
    m = lay.m(d)
    if weights is None:
        weights = constructed_weights(algorithm, d, alpha, beta, device=device)
    blocks = split_full(*weights, m)
    num_frames = math.ceil(prompts / mdps)
    worst, worst_ratio, tol_at_worst, cex, done = 0.0, -1.0, readout_tolerance(0.0, m, n), None, 0
    teacher = lambda th, w: teacher_update(algorithm, F, w, th, mdp.gamma, epsilon, alpha, beta)
    for t, (theta, win) in enumerate(frames(algorithm, mdp, F, n, epsilon, num_frames, gen, teacher)):
        take = min(mdps, prompts - done)
        feats = window_features(algorithm, F, win, theta, epsilon)
        want = teacher_update(algorithm, F, win, theta, mdp.gamma, epsilon, alpha, beta, feats=feats)
        X, wt = build_context(algorithm, F, win, theta, mdp.gamma, epsilon, feats=feats)
        got = readout_fast(X, wt, *blocks)
        err = (got - want).abs().max(-1).values[:take]
        tol = READOUT_FACTOR * (m + n) * eps(X.dtype) * term_scale(X, wt, *blocks).clamp_min(1.0)[:take]
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
                cex = dict(states=dist.states, actions=dist.actions, d=d, n=n, seed=seed, mdp_index=b,
                           frame=t, gamma=float(mdp.gamma[b]), abs_error=float(err[b]), tolerance=float(tol[b]),
                           theta=theta[b].tolist(), expected=want[b].tolist(), got=got[b].tolist())
        done += take
        if progress is not None:
            progress(take)
    holds = cex is None
    return CheckResult(algorithm, done, worst, tol_at_worst, holds, cex)


def add_arguments(p):
    add_common(p, mdps=100)
    p.add_argument("--prompts", type=positive_int, default=10_000, help="number of prompts to check (10000)")
    p.add_argument("--weights", metavar="FILE.npz", default=None,
                   help="check these weights (arrays P and V, each D x D) instead of the construction")
    p.add_argument("--mdp", metavar="FILE.npz", default=None,
                   help="check on these MDPs (arrays T, R, gamma, optional rho0, features; see numerics/mdp_file.py) "
                        "instead of sampled ones")


def run(args) -> int:
    from numerics.cli import emit, progress_bar
    dist = distribution_from_args(args)
    device = device_from_args(args)
    lay = layout(args.algorithm)
    mdp, F = load_mdp_file(args.mdp, device=device) if args.mdp else (None, None)
    if mdp is not None and F is None and (mdp.states, mdp.actions) != (dist.states, dist.actions):
        dist = replace(dist, states=mdp.states, actions=mdp.actions)
    d = F.shape[-1] if F is not None else dist.d
    weights = load_weights(args.weights, lay.D(d), device=device) if args.weights else None
    with progress_bar(total=args.prompts, desc=f"check {args.algorithm}", disable=args.json) as bar:
        res = run_check(args.algorithm, dist, prompts=args.prompts, mdps=args.mdps, n=args.context,
                        epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                        weights=weights, device=device, progress=bar.update, mdp=mdp, features=F)
    src = args.weights or f"construction ({'Theorem 3.3' if args.algorithm == 'actor-critic' else 'Theorem 3.1'})"
    what = f"MDPs from {args.mdp}" if args.mdp else dist.describe()
    lines = [f"check {args.algorithm}: {res.prompts} prompts, {what}, n = {args.context}",
             f"weights: {src}",
             f"max |TF(H) - teacher| = {res.max_abs_error:.3e}; tolerance {res.tolerance:.3e} "
             f"({READOUT_FACTOR:g} (m+n) eps x term scale, per prompt)",
             "HOLDS: the block's read-out equals the teacher update on every prompt" if res.holds else
             "FAILS: counterexample below"]
    if res.counterexample:
        c = res.counterexample
        lines.append(f"counterexample: mdp {c['mdp_index']}, frame {c['frame']}, seed {c['seed']}, "
                     f"|error| {c['abs_error']:.3e} > tolerance {c['tolerance']:.3e}")
        lines.append(f"  expected[:4] = {[round(v, 6) for v in c['expected'][:4]]}  got[:4] = {[round(v, 6) for v in c['got'][:4]]}")
    emit(lines, res.as_dict(), args.json)
    return 0 if res.holds else 1
