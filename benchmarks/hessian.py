"""Speed of the closed-form Hessian spectrum (``icrl-verify richness``)
against the naive route: ``torch.func.hessian`` of the empirical loss
through the literal block (paper eq. 1) in the full parameterisation, then
``numpy.linalg.eigvalsh``.

Both routes see the same prompts (SARSA, 3 states x 3 actions, d = 9,
dense features, constructed weights, Algorithm 1 sampling) in this process.
Ours: E[J^T J] of the reduced block in closed form (numerics.hessian), its
eigenvalues, and the full spectrum as those plus zeros (the full Hessian at
theta* is the reduced one plus zero rows and columns).  ``max_rel_diff`` is
the largest difference of the sorted spectra divided by the largest
eigenvalue.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402

from benchmarks._common import parser, report, timed  # noqa: E402
from numerics.analysis.hessian import gauss_newton_reduced, sample_prompts, structure  # noqa: E402
from numerics.core.block import block_literal, embed_reduced  # noqa: E402
from numerics.core.distributions import MDPDistribution  # noqa: E402
from numerics.core.prompts import assemble_prompt  # noqa: E402


def ours(S):
    H = gauss_newton_reduced(structure(S))
    vals = scipy.linalg.eigvalsh(H, check_finite=False)
    D = S.m + S.p
    return np.sort(np.concatenate([vals, np.zeros(2 * D * D - vals.size)]))


def naive(S):
    m, p = S.m, S.p
    D = m + p
    Hp = assemble_prompt(S.X, S.wt)
    Ps, Vs = embed_reduced(S.index, *S.construction())

    def f(v):
        r = block_literal(v[:D * D].reshape(D, D), v[D * D:].reshape(D, D), Hp)[..., -(p - 1):, -1] - S.target
        return 0.5 * (r * r).sum(-1).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # torch.jit notice inside torch.func
        Ha = torch.func.hessian(f)(torch.cat([Ps.reshape(-1), Vs.reshape(-1)]))
    return np.sort(np.linalg.eigvalsh(Ha.numpy()))


def main(argv=None):
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--mdps", type=int, default=20)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    S = sample_prompts("sarsa", MDPDistribution(states=3, actions=3, features="dense"), mdps=args.mdps,
                       frames_per_mdp=args.frames, n=20, seed=0)
    t_ours, ev_ours = timed(ours, S, repeat=args.repeat)
    t_ref, ev_ref = timed(naive, S, repeat=1)
    diff = float(np.abs(ev_ours - ev_ref).max() / np.abs(ev_ref).max())
    D = S.m + S.p
    res = dict(name="hessian-spectrum-d9-full", ours_s=t_ours, reference_s=t_ref, ratio=t_ref / t_ours,
               max_rel_diff=diff, agree=diff <= 1e-9, parameters=2 * D * D, prompts=S.N, target_ratio=20.0)
    lines = [f"Hessian spectrum, d = 9, full parameterisation ({2 * D * D} parameters, {S.N} prompts)",
             f"closed form + eigh: {t_ours:.4f} s; torch.func.hessian + eigh: {t_ref:.3f} s; ratio {t_ref / t_ours:.1f}x",
             f"spectra agree: max |diff| / lambda_max = {diff:.2e} (required <= 1e-9)"]
    report(res, lines, args.json)
    return 0 if diff <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
