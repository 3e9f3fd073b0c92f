"""Issue 21's acceptance grid for ``check`` of the softmax records (slow):
``icrl-verify check --algorithm softmax-td`` and ``softmax-td-shift`` at L =
1, 3, 40, d = 3..9, n = 5, 30, 100 (30 random MRPs of 10 states each, alpha
1, gamma 0.9, seed 0), every run through the command line's ``main``; all
hold.  The worst error over its bound is printed (``pytest -s``) and
recorded in docs/xie2026.md."""
from __future__ import annotations

import json
import time

import pytest

from numerics.commands.cli import main

pytestmark = pytest.mark.slow

GRID = [(alg, L, d, n) for alg in ("softmax-td", "softmax-td-shift") for L in (1, 3, 40) for d in range(3, 10)
        for n in (5, 30, 100)]


def test_the_acceptance_grid_holds(capsys):
    t0 = time.perf_counter()
    worst = (0.0, None)
    worst_rel = 0.0
    for alg, L, d, n in GRID:
        rc = main(["check", "--algorithm", alg, "--layers", str(L), "--features-dim", str(d), "--context", str(n),
                   "--json"])
        res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert rc == 0 and res["verdict"] == "holds", (alg, L, d, n, res["counterexample"])
        if res["worst_error_over_bound"] > worst[0]:
            worst = (res["worst_error_over_bound"], (alg, L, d, n))
        worst_rel = max(worst_rel, res["max_rel_error"])
    with capsys.disabled():
        print(f"\nsoftmax acceptance grid: {len(GRID)} checks hold in {time.perf_counter() - t0:.1f} s; worst error "
              f"over bound {worst[0]:.3g} at {worst[1]}; worst relative error {worst_rel:.3g}")
