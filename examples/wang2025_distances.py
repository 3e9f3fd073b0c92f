"""Wang et al.'s Figure 2 run, longer than the claims' (issue 21): train the
claims' configuration (10 seeds, base seed 0, their setting) to ``--mrps``
MRPs, keep the weights every ``--every`` MRPs (a snapshot at m is the run of
``--mdps m``, m a multiple of 50) and write every distance of
numerics.analysis.distances at each snapshot (JSON), with a table on stdout.

    PYTHONPATH=. OMP_NUM_THREADS=1 python examples/wang2025_distances.py --mrps 8000 --every 500 \\
        --out reports/training/wang2025-distances.json

Cost: the training's (docs/wang2025.md section 12: about 1,000 MRPs per 100 s
of one core) plus about 15 s of distances per snapshot.  docs/wang2025.md
section 12 quotes its numbers.
"""
from __future__ import annotations

import argparse
import sys
import time

from numerics.analysis.distances import learned_distances
from numerics.analysis.train import LAYERS_CHUNK, LayersTrainConfig, heldout_draws, train_layers
from numerics.io.files import atomic_write_json
from numerics.io.report import versions


def _row(m: int, x: dict) -> str:
    iv = lambda k, src=x: (f"{src[k]['mean']:.3f} [{src[k]['ci95'][0]:.3f}, {src[k]['ci95'][1]:.3f}]"
                           if src[k]["ci95"] else "-")
    conv = x["split"]["converged"]
    per = ", ".join(f"{d:.2f}" for d in conv["weight_distance"]["per_seed"])
    return (f"| {m} | {iv('weight_distance')} | {iv('function_distance')} | {len(conv['seeds'])} "
            f"({per}) | {x['seed_average']['distance']:.3f} "
            f"| {iv('diagonal_share', conv)} | {iv('zeroing_change_percent', conv)} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mrps", type=int, default=8000, help="MRPs per seed to train (default 8000)")
    ap.add_argument("--every", type=int, default=500, help="snapshot every this many MRPs (a multiple of 50)")
    ap.add_argument("--seed", type=int, default=0, help="base seed (the claims': 0)")
    ap.add_argument("--out", required=True, help="the JSON written (atomically)")
    a = ap.parse_args(argv)
    if a.mrps < 1:
        print(f"error: mrps: must be a positive integer, got {a.mrps}", file=sys.stderr)
        return 2
    if a.every < 1 or a.every % LAYERS_CHUNK:
        print(f"error: every: must be a positive multiple of {LAYERS_CHUNK}, got {a.every}", file=sys.stderr)
        return 2
    cfg = LayersTrainConfig(mrps=a.mrps, seed=a.seed, log_every=100)
    t0 = time.perf_counter()
    r = train_layers(cfg, snapshots=range(a.every, a.mrps + 1, a.every))
    held = heldout_draws(cfg)
    out = {}
    print("| MRPs | weight distance | function-space distance | converged (their weight distances) | seed-averaged "
          "| converged: gamma phi' diagonals' share | converged: zeroing change % |")
    print("|---|---|---|---|---|---|---|")
    for m, w in sorted(r["snapshots"].items()):
        out[m] = learned_distances(cfg, w["P"], w["V"], w["alpha"], held)
        out[m].pop("fitted_preconditioner")
        print(_row(m, out[m]), flush=True)
    atomic_write_json(a.out, dict(config=cfg.as_dict(), every=a.every, seconds=time.perf_counter() - t0,
                                  curve=r["curve"], snapshots=out, versions=versions(),
                                  command="python examples/wang2025_distances.py " + " ".join(argv or sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
