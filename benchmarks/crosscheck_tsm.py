"""Outside cross-check (issue 21; docs/xie2026.md, "Outside cross-check"):
the unofficial public class ``SingleHeadTSM`` of gh123678/research
(``icrl_softmax/model.py``; Xie et al.'s one-head form with the token shift,
Theorem 1's weights as its default initialisation) against our block on our
prompts, in float64.

Their file is not part of the project: give its path as the argument; it is
imported from there, never copied.  For each ``(d, n, L)`` the script draws
random MRPs (``numerics.analysis.check_softmax.draw``: 10 states, Unif(-1,1)^d
features, one trajectory of ``n`` transitions each), builds our prompt
``[X; R; 0; 0]``, runs

* theirs: ``SingleHeadTSM(d, L, gamma)`` (default init: ``A = diag(I, 0)``,
  ``V`` current row ``[1, 1, -1]``), cast with ``.double()``, one prompt at a
  time (their class is unbatched), every layer through their ``_layer`` and
  the read-out through their ``forward``;
* ours: ``numerics.core.block.forward_layers`` of ``softmax-td-shift`` (the
  one-head form) and of ``softmax-td`` (the two-head form), alpha = 1;

and reports the largest difference of the whole prompt after every layer, of
the read-out (current row, query column, after ``L`` layers), and both against
the float64 rounding bound of the check (the largest of its per-entry bounds
is not used: the comparison is to ``rounding_bound`` of the read-out's
magnitudes, ``2 eps (n + D + 8) |value|`` summed over layers).

    python benchmarks/crosscheck_tsm.py /path/to/icrl_softmax/model.py [--json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time

import torch

from numerics.analysis import check_softmax as CS
from numerics.core.block import forward_layers
from numerics.core.constructions import softmax_weights
from numerics.core.prompts import evaluation_prompt
from numerics.core.tolerances import DTYPE, eps
from theory import algorithms

SIZES = [(3, 10, 1), (3, 100, 3), (5, 50, 3), (5, 100, 40), (9, 30, 40), (9, 100, 40), (1, 1, 1), (4, 20, 10)]


def load_class(path: str):
    spec = importlib.util.spec_from_file_location("outside_tsm_model", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"crosscheck_tsm: cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.SingleHeadTSM


def one(TSM, d: int, n: int, L: int, mrps: int, seed: int, gamma: float) -> dict:
    gen = torch.Generator().manual_seed(seed)
    mdp, sw = CS.draw("random", mrps, 10, d, n, gamma, gen)
    shift, two = algorithms.get("softmax-td-shift"), algorithms.get("softmax-td")
    Z0 = evaluation_prompt(shift, sw.win)
    ours = {}
    for rec in (shift, two):
        A, V = softmax_weights(rec, d, [1.0] * L, gamma)
        ours[rec.name] = forward_layers(rec.spec_at(L, True), A, V, Z0, d, gamma=sw.gamma)
    model = TSM(d, L, gamma).double()
    D = d + 3
    worst = {"prompt_one_head": 0.0, "prompt_two_head": 0.0, "readout_one_head": 0.0, "readout_two_head": 0.0}
    scale = 0.0
    with torch.no_grad():
        for b in range(mrps):
            Z = Z0[b].clone()
            for l in range(1, L + 1):
                Z = model._layer(Z)
                worst["prompt_one_head"] = max(worst["prompt_one_head"],
                                               float((Z - ours["softmax-td-shift"][l, b]).abs().max()))
                worst["prompt_two_head"] = max(worst["prompt_two_head"],
                                               float((Z - ours["softmax-td"][l, b]).abs().max()))
            read = model(Z0[b].clone(), n)
            assert read.dtype == DTYPE
            worst["readout_one_head"] = max(worst["readout_one_head"],
                                            abs(float(read) - float(ours["softmax-td-shift"][L, b, D - 1, -1])))
            worst["readout_two_head"] = max(worst["readout_two_head"],
                                            abs(float(read) - float(ours["softmax-td"][L, b, D - 1, -1])))
            scale = max(scale, float(ours["softmax-td-shift"][:, b, D - 1, :].abs().max()))
    bound = 2 * eps() * (n + D + 8) * L * max(1.0, scale)
    return dict(d=d, n=n, L=L, mrps=mrps, gamma=gamma, seed=seed, **worst, value_scale=scale, bound=bound,
                within=all(v <= bound for v in worst.values()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="path of their icrl_softmax/model.py (not part of the project)")
    p.add_argument("--mrps", type=int, default=10)
    p.add_argument("--gamma", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_default_dtype(torch.float32)          # their module as published: float32 until .double()
    TSM = load_class(args.model)
    t0 = time.perf_counter()
    rows = [one(TSM, d, n, L, args.mrps, args.seed, args.gamma) for d, n, L in SIZES]
    for r in rows:
        print(f"d = {r['d']}, n = {r['n']:3d}, L = {r['L']:2d}: max |theirs - ours| prompt {r['prompt_one_head']:.2e} "
              f"(one head + shift), {r['prompt_two_head']:.2e} (two heads); read-out {r['readout_one_head']:.2e} / "
              f"{r['readout_two_head']:.2e}; bound {r['bound']:.2e}; {'within' if r['within'] else 'ABOVE'}")
    ok = all(r["within"] for r in rows)
    print(f"{len(rows)} sizes x {args.mrps} MRPs in {time.perf_counter() - t0:.1f} s: "
          f"{'every difference within float64 rounding' if ok else 'DIFFERENCES ABOVE ROUNDING'}")
    if args.json:
        print(json.dumps({"rows": rows, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
