"""Throughput of ``icrl-verify check``: the batched Lemma C.1 read-out
against a per-prompt loop over the literal block formula (paper eq. 1).

Both paths check the same prompts (Section 4.1 sizes, SARSA, constructed
weights) against the same teacher targets, in this process.  ``ratio`` =
reference time / ours for the check itself (read-out + comparison).

End to end (issue 14): ``run_check`` on the same number of prompts,
sampling the MDPs and windows (Algorithm 1) included, as ``icrl-verify
check --prompts N`` runs it: for SARSA on the CPU through the compiled
stream (``numerics.analysis.check_compiled``).  ``prompts_per_s_end_to_end``
is measured at check's default of 100 MDPs a frame (target >= 1e5), and
``prompts_per_s_end_to_end_wide`` at ``--mdps`` (10,000) MDPs a frame, where
drawing the 10,000 MDPs themselves (torch's Dirichlet and feature draws) is
a third of the time; ``*_cpu`` divide by this process's CPU seconds instead
of wall seconds (on a shared machine the wall time includes waiting for a
core; the load average is in the JSON).  ``end_to_end_s`` keeps its meaning
(``--mdps`` MDPs a frame).
"""
from __future__ import annotations

import os
import sys
import time

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


def end_to_end(prompts: int, mdps: int) -> dict:
    """``run_check`` end to end: wall and CPU seconds, and its result."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_check(SARSA, MDPDistribution(), prompts=prompts, mdps=mdps)
    return dict(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0, result=res)


def main():
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=100_000)
    p.add_argument("--mdps", type=int, default=10_000)
    args = p.parse_args()
    sampling_s, (X, wt, want, d) = timed(sample_prompts, args.prompts, args.mdps)
    P, V = constructed_weights(SARSA, d, {"alpha": 0.2})
    ours_s, err_ours = timed(batched, X, wt, want, P, V, args.mdps, repeat=3)
    reference_s, err_ref = timed(looped, X, wt, want, P, V)
    run_check(SARSA, MDPDistribution(), prompts=200, mdps=100)           # warm-up: load the compiled kernels
    e2e = {k: end_to_end(args.prompts, mdps) for k, mdps in (("default", 100), ("wide", args.mdps))}
    e2e_s, res = e2e["wide"]["seconds"], e2e["wide"]["result"]
    result = dict(name="check_throughput", prompts=int(X.shape[0]), d=d, n=20,
                  ours_s=ours_s, reference_s=reference_s, ratio=reference_s / ours_s,
                  sampling_s=sampling_s, end_to_end_s=e2e_s, end_to_end_holds=res.holds,
                  prompts_per_s_end_to_end=args.prompts / e2e["default"]["seconds"],
                  prompts_per_s_end_to_end_cpu=args.prompts / e2e["default"]["cpu_seconds"],
                  prompts_per_s_end_to_end_wide=args.prompts / e2e_s,
                  prompts_per_s_end_to_end_wide_cpu=args.prompts / e2e["wide"]["cpu_seconds"],
                  end_to_end_mdps=100, end_to_end_wide_mdps=args.mdps,
                  end_to_end_holds_default=e2e["default"]["result"].holds,
                  max_abs_error_end_to_end=e2e["default"]["result"].max_abs_error,
                  max_abs_error_ours=err_ours, max_abs_error_reference=err_ref,
                  threads=torch.get_num_threads(), load_average=os.getloadavg())
    lines = [f"{result['prompts']} prompts, d = {d}, n = 20 (Section 4.1), SARSA construction",
             f"batched Lemma C.1 read-out + compare ({args.mdps} prompts a batch, as in check): {ours_s:.3f} s   (max error {err_ours:.2e})",
             f"per-prompt literal block loop:       {reference_s:.3f} s   (max error {err_ref:.2e})",
             f"ratio (reference / ours): {result['ratio']:.1f}x",
             f"end to end (sampling MDPs + windows + check, as icrl-verify check): 100 MDPs a frame "
             f"{e2e['default']['seconds']:.2f} s = {result['prompts_per_s_end_to_end']:,.0f} prompts/s "
             f"({result['prompts_per_s_end_to_end_cpu']:,.0f} per CPU second; target >= 100,000); "
             f"{args.mdps} MDPs a frame {e2e_s:.2f} s = {result['prompts_per_s_end_to_end_wide']:,.0f} prompts/s; "
             f"holds = {res.holds and e2e['default']['result'].holds}; load average {result['load_average'][0]:.2f}"]
    report(result, lines, args.json)


if __name__ == "__main__":
    main()
