"""Sweep throughput: 8 short training cells on a 2-worker Dask LocalCluster
(``numerics.analysis.sweep.run_cells``, the engine of ``icrl-verify
sweep``) against the same cells run serially in this process
(``run_serial``).

Both sides run torch single-threaded (the workers set one thread in each
task; this process with ``torch.set_num_threads(1)``), so the ratio is what
two processes buy over one.  Both are warm: this process has trained one
tiny cell before timing, and the cluster's workers have run the same tiny
cell (imports, numba's cached kernels) before the timed sweep; the cluster's
start-up is reported separately (``startup_s``) and in
``ratio_with_startup``.  The cells' results must be equal on both sides
(checked; exit 1 otherwise).  Target: ``ratio`` = serial_s / sweep_s >= 1.7
on 2 free cores.  The load average is printed with the numbers: on a
machine shared with other jobs the ratio falls with the load.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from benchmarks._common import parser, report  # noqa: E402
from numerics.analysis.sweep import SweepSpec, run_cells, run_serial  # noqa: E402
from numerics.commands.cells import run_cell  # noqa: E402
from numerics.commands.sweep import build_cells  # noqa: E402


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def main():
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=8, help="training cells, seeds 0..CELLS-1 (8)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster (2)")
    p.add_argument("--mdps", type=int, default=128, help="MDPs per cell (128)")
    p.add_argument("--frames", type=int, default=50, help="frames per MDP (50)")
    args = p.parse_args()
    torch.set_num_threads(1)
    options = {"mdps": args.mdps, "frames": args.frames, "batch-mdps": 4, "eval-mdps": 16}
    cells = build_cells(SweepSpec("bench", "train", options, {"seed": list(range(args.cells))}))
    warm = build_cells(SweepSpec("warm", "train", {"mdps": 4, "frames": 4, "batch-mdps": 2, "eval-mdps": 2},
                                 {"seed": [100]}))[0]
    load0 = os.getloadavg()
    run_cell("train", warm.argv)
    t0, c0 = time.perf_counter(), time.process_time()
    serial = run_serial(cells, run_cell, "train")
    serial_s, serial_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(args.workers)
        client.gather([client.submit(run_cell, "train", warm.argv, pure=False, workers=[w])
              for w in client.scheduler_info()["workers"]])
        startup_s = time.perf_counter() - t0
        cores_seen = sorted(set(client.run(_cores).values()))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = run_cells(cells, run_cell, "train", tmp, client=client)
            sweep_s = time.perf_counter() - t0
    load1 = os.getloadavg()
    equal = all(res["done"][c.key]["result"] == json.loads(json.dumps(s["result"])) for c, s in zip(cells, serial))
    cell_wall_serial = sum(x["timing"]["seconds"] for x in serial)
    cell_wall_workers = sum(res["done"][c.key]["timing"]["seconds"] for c in cells)
    result = dict(cell_seconds_serial=cell_wall_serial, cell_seconds_workers=cell_wall_workers,
                  serial_cpu_s=serial_cpu_s, worker_cores_visible=cores_seen, name="sweep", cells=args.cells, workers=args.workers, mdps=args.mdps, frames=args.frames,
                  serial_s=serial_s, sweep_s=sweep_s, startup_s=startup_s, ratio=serial_s / sweep_s,
                  ratio_with_startup=serial_s / (sweep_s + startup_s), results_equal=equal,
                  failed=len(res["failed"]), torch_threads=1, cores=os.cpu_count(),
                  load_average_before=load0[0], load_average_after=load1[0])
    lines = [f"sweep of {args.cells} training cells ({args.mdps} MDPs x {args.frames} frames, batch 4), torch 1 "
             f"thread everywhere, {os.cpu_count()} cores, load average {load0[0]:.2f} before / {load1[0]:.2f} after",
             f"serial in this process: {serial_s:.2f} s",
             f"Dask LocalCluster, {args.workers} workers (warm): {sweep_s:.2f} s; start-up {startup_s:.2f} s",
             f"ratio serial / sweep = {result['ratio']:.2f} (target >= 1.7); with start-up "
             f"{result['ratio_with_startup']:.2f}",
             f"sum of the cells' own wall times: serial {cell_wall_serial:.2f} s, on the workers "
             f"{cell_wall_workers:.2f} s (each cell slower on a worker = the cores were shared); serial CPU "
             f"{serial_cpu_s:.2f} s of {serial_s:.2f} s wall; cores visible to each worker: {cores_seen}",
             "results equal to the serial run: " + ("yes" if equal else "NO")]
    report(result, lines, args.json)
    return 0 if equal and not res["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
