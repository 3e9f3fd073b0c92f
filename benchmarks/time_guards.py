"""Calibration of the time guards (issue 19, ``numerics.analysis.budget``):
each heavy command run in this process at a moderate size, its CPU time
(``time.process_time``: the machine is shared, so wall time would measure
the load) against the guard's estimate.  Prints one row per command with
``estimate / measured``; the throughput constants in ``budget.THROUGHPUT``
are set so these ratios lie within a factor 3 of 1 (an order of magnitude
is the guards' promise, docs/limits.md).

    python benchmarks/time_guards.py            # about 2 CPU minutes
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time

import torch

from numerics.analysis import budget
from numerics.commands.cli import main
from theory import algorithms

SARSA = algorithms.get("sarsa")


def cases(tmp: str):
    """``(name, argv, work)``: a command line and the guard's work model for it."""
    d36 = 36
    yield ("check", ["check", "--prompts", "400000"],
           budget.check_work(SARSA, 400000, 100, 9, 4, d36, 20))
    yield ("richness", ["richness", "--states", "4", "--actions", "3", "--bootstrap", "2", "--out", tmp],
           budget.richness_work(SARSA, 12, 2000, 20, 2))
    yield ("flow", ["flow", "--radii", "0.1", "--trials", "2", "--out", tmp],
           budget.flow_work(SARSA, 6, 400, 20, 5, 110))
    yield ("train", ["train", "--mdps", "512", "--frames", "50", "--no-report",
                     "--out", os.path.join(tmp, "t"), "--checkpoint-every", "0"],
           budget.train_work(SARSA, 512, 50, 9, 4, 36, 20, 64))
    yield ("train-paper", ["train", "--protocol", "paper", "--mdps", "20", "--frames", "1000", "--no-report",
                           "--out", os.path.join(tmp, "p"), "--checkpoint-every", "0"],
           budget.train_work(SARSA, 20, 1000, 9, 4, 36, 20, 64, protocol="paper"))
    yield ("control", ["control", "--constructed", "--seeds", "4", "--mdps", "100", "--rounds", "200", "--no-report"],
           budget.control_work(SARSA, 4, 100, 200, 9, 4, d36, 20, methods=2))
    yield ("check-wang2025", ["check", "--algorithm", "td-preconditioned", "--mdps", "3000", "--layers", "40", "--context", "100",
                              "--features-dim", "3", "--states", "10"],
           budget.layer_check_work(3000, 10, 3, 100, 40))
    yield ("check-softmax", ["check", "--algorithm", "softmax-td", "--mdps", "100", "--layers", "40", "--context", "100",
                             "--features-dim", "9", "--states", "10"],
           budget.softmax_check_work(100, 10, 9, 100, 40))


def main_():
    torch.set_num_threads(1)
    only = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'command':16s} {'measured CPU s':>15s} {'estimate s':>11s} {'ratio':>7s}")
        for name, argv, work in cases(tmp):
            if only and name not in only:
                continue
            for _ in range(2):      # the second run: imports and numba compilation done (the start-up constant)
                t0 = time.process_time()
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    rc = main(argv + ["--json"])
                cpu = time.process_time() - t0
            est = work.seconds - budget.STARTUP_SECONDS
            print(f"{name:16s} {cpu:15.2f} {est:11.2f} {est / cpu:7.2f}   (exit {rc})", flush=True)


if __name__ == "__main__":
    main_()
