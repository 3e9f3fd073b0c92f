"""Richness across MDP families (``icrl-verify families``): for each
family, the richness verdict, mu with its interval and the invariances in
words (:func:`numerics.analysis.richness.richness`), a short gradient-flow
training run from small perturbations that measures the local rate next to
the predicted ``2 mu`` (:func:`numerics.analysis.flow.flow_experiment`),
and, for a Morse-Bott family, the same analysis of a variant that would
remove its invariances (a gamma range, fresh features), computed, not
asserted."""
from __future__ import annotations

import math
import time

from numerics.analysis.flow import flow_experiment
from numerics.analysis.richness import richness

#: What Theorem 3.2's local rate says for each verdict (THEORY.md section 5).
RATE_APPLIES = {
    "identifiable": "yes: exponential local rate 2 mu to the construction (up to scaling)",
    "morse-bott": "yes, to the optimal set: exponential local rate 2 mu, but the limit need not be the "
                  "construction (the flat invariance directions are not corrected)",
    "fails": "no: a non-flat kernel direction makes the loss quartic, no local exponential rate",
}


def compare_one(label: str, dist, *, variant=None, variant_label: str = "", algorithm: str = "sarsa",
                mdps: int = 40, frames: int = 10, bootstrap: int = 5, flow_mdps: int = 20, flow_frames: int = 10,
                seed: int = 0, solver: str = "auto", progress=None) -> dict:
    """One row of the comparison (no files written)."""
    t0 = time.perf_counter()
    rich = richness(dist, algorithm, "reduced", mdps=mdps, frames=frames, seed=seed, bootstrap=bootstrap,
                    solver=solver, progress=progress)
    row = dict(label=label, distribution=dist.describe(), d=rich["details"]["d"], verdict=rich["verdict"],
               kernel_dim=rich["kernel_dim"], symmetry_dim=rich["symmetry_dim"],
               data_invariance_dim=rich["data_invariance_dim"], nonflat_dim=rich["nonflat_dim"], mu=rich["mu"],
               mu_ci95=rich["mu_ci95"], predicted_rate=rich["predicted_rate"],
               invariances=rich["details"]["invariances"]["sentences"], rate_applies=RATE_APPLIES[rich["verdict"]],
               eigensolver=rich["details"]["eigensolver"])
    if math.isfinite(rich["mu"]) and rich["verdict"] != "fails":
        fl = flow_experiment(dist, algorithm, "reduced", mdps=flow_mdps, frames=flow_frames, seed=seed,
                             rate_runs=2, radii=(0.05,), trials=3, progress=progress)
        row["flow"] = dict(mu=fl["mu"], predicted_rate=fl["predicted_rate"], measured_rate=fl["measured_rate"],
                           rate_ratio=fl["rate_ratio"], converged=fl["converged"],
                           basin_fraction=fl["basin"][0]["fraction"], basin_radius=fl["basin"][0]["radius"],
                           prompts=fl["details"]["prompts"])
    else:
        row["flow"] = None
    if variant is not None and rich["verdict"] != "identifiable":
        vr = richness(variant, algorithm, "reduced", mdps=mdps, frames=frames, seed=seed, bootstrap=0,
                      solver=solver, progress=progress)
        row["variant"] = dict(label=variant_label, distribution=variant.describe(), verdict=vr["verdict"],
                              kernel_dim=vr["kernel_dim"], data_invariance_dim=vr["data_invariance_dim"],
                              nonflat_dim=vr["nonflat_dim"], mu=vr["mu"])
    else:
        row["variant"] = None
    row["seconds"] = time.perf_counter() - t0
    return row


def compare(entries, **kw) -> dict:
    """``entries``: ``(label, dist, variant or None, variant_label)``."""
    t0 = time.perf_counter()
    rows = [compare_one(label, dist, variant=var, variant_label=vl, **kw) for label, dist, var, vl in entries]
    return dict(rows=rows, seconds=time.perf_counter() - t0)
