"""Throughput of ``icrl-verify check``: the batched Lemma C.1 read-out
against a per-prompt loop over the literal block formula (paper eq. 1).

Both paths check the same prompts (Section 4.1 sizes, SARSA, constructed
weights) against the same teacher targets, in this process.  ``ratio`` =
reference time / ours for the check itself (read-out + comparison);
``end_to_end_s`` is ``run_check`` on the same number of prompts including
sampling the MDPs and windows (Algorithm 1).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks._common import parser, report, timed  # noqa: E402
from numerics.analysis.check import run_check  # noqa: E402
from numerics.core.block import block_literal, lemma_c1, split_full  # noqa: E402
from numerics.core.constructions import constructed_weights  # noqa: E402
from numerics.core.distributions import MDPDistribution  # noqa: E402
from numerics.core.prompts import assemble_prompt  # noqa: E402
from numerics.core.stream import Stream  # noqa: E402
from theory.algorithms import get  # noqa: E402

SARSA = get("sarsa")


def sample_prompts(prompts: int, mdps: int, seed: int = 0):
    """Prompts and teacher targets from Algorithm 1's stream (Section 4.1, SARSA)."""
    dist = MDPDistribution()
    gen = torch.Generator().manual_seed(seed)
    mdp, F = dist.sample(mdps, gen)
    stream = Stream(SARSA, mdp, F, n=20, epsilon=0.1, steps={"alpha": 0.2}, gen=gen)
    frames = list(stream.frames(prompts // mdps))
    return (torch.cat([f.X for f in frames]), torch.cat([f.wt for f in frames]),
            torch.cat([f.target for f in frames]), dist.d)


def batched(X, wt, want, P, V, chunk: int):
    """The check's own path: Lemma C.1 read-out of ``chunk`` prompts at a
    time (``run_check`` handles one frame of ``mdps`` prompts per batch)."""
    blocks = split_full(SARSA.spec.index((X.shape[-1] - 1) // 2), P, V)
    worst = 0.0
    for i in range(0, X.shape[0], chunk):
        got = lemma_c1(X[i:i + chunk], wt[i:i + chunk], *blocks)
        worst = max(worst, float((got - want[i:i + chunk]).abs().max()))
    return worst


def looped(X, wt, want, P, V):
    q = wt.shape[-1] - 1
    worst = 0.0
    for i in range(X.shape[0]):
        H = assemble_prompt(X[i:i + 1], wt[i:i + 1])[0]
        got = block_literal(P, V, H)[-q:, -1]
        worst = max(worst, float((got - want[i]).abs().max()))
    return worst


def main():
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=100_000)
    p.add_argument("--mdps", type=int, default=10_000)
    args = p.parse_args()
    sampling_s, (X, wt, want, d) = timed(sample_prompts, args.prompts, args.mdps)
    P, V = constructed_weights(SARSA, d, {"alpha": 0.2})
    ours_s, err_ours = timed(batched, X, wt, want, P, V, args.mdps, repeat=3)
    reference_s, err_ref = timed(looped, X, wt, want, P, V)
    e2e_s, res = timed(run_check, SARSA, MDPDistribution(), prompts=args.prompts, mdps=args.mdps)
    result = dict(name="check_throughput", prompts=int(X.shape[0]), d=d, n=20,
                  ours_s=ours_s, reference_s=reference_s, ratio=reference_s / ours_s,
                  sampling_s=sampling_s, end_to_end_s=e2e_s, end_to_end_holds=res.holds,
                  max_abs_error_ours=err_ours, max_abs_error_reference=err_ref,
                  threads=torch.get_num_threads())
    lines = [f"{result['prompts']} prompts, d = {d}, n = 20 (Section 4.1), SARSA construction",
             f"batched Lemma C.1 read-out + compare ({args.mdps} prompts a batch, as in check): {ours_s:.3f} s   (max error {err_ours:.2e})",
             f"per-prompt literal block loop:       {reference_s:.3f} s   (max error {err_ref:.2e})",
             f"ratio (reference / ours): {result['ratio']:.1f}x",
             f"end to end (sampling MDPs + windows + check): {e2e_s:.2f} s, holds = {res.holds}"]
    report(result, lines, args.json)


if __name__ == "__main__":
    main()
