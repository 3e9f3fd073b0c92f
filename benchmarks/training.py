"""Training throughput: the batched trainer (``numerics.train``, B MDPs per
Adam step) against a straightforward one-MDP-per-step loop of Algorithm 1.

Both train the reduced block on Section 4.1's distribution (SARSA, 9
states, 4 actions, d = 36, n = 20) in this process, float64.  A *frame* is
one prompt of one MDP (one window, one teacher target): the unit of data of
Algorithm 1.  The reference is the plain loop: per MDP, per frame,
``numerics.sampler.frames`` draws the window, the prompt and teacher are
built, and Adam takes one step on that single prompt.

``frames_per_s_*`` are frames of data processed per second;
``ours_s`` / ``reference_s`` are the seconds each needs per 10,000 frames
(measured on ``--frames-ours`` / ``--frames-reference`` frames; the work per
frame is constant, so the time is linear in frames); ``ratio`` =
reference_s / ours_s.  Target: ratio >= 10.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks._common import parser, report  # noqa: E402
from numerics.analysis.train import TrainConfig, train  # noqa: E402
from property_tests.references import algorithm1_loop  # noqa: E402


def main():
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--batch-mdps", type=int, default=64, help="MDPs per step of the batched trainer (64)")
    p.add_argument("--frames-ours", type=int, default=64 * 200, help="frames for the batched trainer (12800)")
    p.add_argument("--frames-reference", type=int, default=400, help="frames for the reference loop (400)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both paths (1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    per_mdp = 50
    ours_cfg = TrainConfig(mdps=max(args.batch_mdps, args.frames_ours // per_mdp), frames=per_mdp,
                           batch_mdps=args.batch_mdps)
    ref_cfg = TrainConfig(mdps=max(1, args.frames_reference // per_mdp), frames=per_mdp, batch_mdps=1)
    train(TrainConfig(mdps=2, frames=2, batch_mdps=2), threads=args.threads)   # warm-up (imports, allocator)
    t0 = time.perf_counter()
    _, info = train(ours_cfg, threads=args.threads)
    ours_raw = time.perf_counter() - t0
    ours_frames = info["mdp_frames"]
    t0 = time.perf_counter()
    _, ref_frames = algorithm1_loop(ref_cfg)
    ref_raw = time.perf_counter() - t0
    fps_ours, fps_ref = ours_frames / ours_raw, ref_frames / ref_raw
    ours_s, reference_s = 1e4 / fps_ours, 1e4 / fps_ref
    result = dict(name="training", ours_s=ours_s, reference_s=reference_s, ratio=reference_s / ours_s,
                  frames_per_s_ours=fps_ours, frames_per_s_reference=fps_ref,
                  frames_ours=ours_frames, frames_reference=ref_frames, measured_ours_s=ours_raw,
                  measured_reference_s=ref_raw, batch_mdps=args.batch_mdps, threads=torch.get_num_threads())
    lines = ["Algorithm 1 training throughput, Section 4.1 sizes (SARSA, d = 36, n = 20), reduced block, float64",
             f"batched trainer ({args.batch_mdps} MDPs per step): {ours_frames} frames in {ours_raw:.2f} s "
             f"= {fps_ours:.0f} frames/s",
             f"one-MDP-per-step loop:                 {ref_frames} frames in {ref_raw:.2f} s = {fps_ref:.0f} frames/s",
             f"ratio: {result['ratio']:.1f}x (target >= 10x)"]
    report(result, lines, args.json)


if __name__ == "__main__":
    main()
