"""The ablation report: Markdown, JSON and the plot of where trained weights
end up, next to each distribution's richness verdict."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from numerics.analysis.ablation import classify_run, consistent
from numerics.io.report import run_header, write_report


def _stat(values):
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.min()), float(v.max())


def ablation_figure(result: dict):
    """Distance to M* and its split along / off the extra kernel, per distribution."""
    rows = result["rows"]
    FLOOR = 1e-6
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(rows))
    for off, key, label in ((-0.2, "distance_to_manifold", "distance to M*"),
                            (0.0, "invariance_component", "along extra kernel"),
                            (0.2, "other_component", "rest")):
        vals = [[r[key] for r in row["runs"]] for row in rows]
        mean = [max(np.mean(v), FLOOR) for v in vals]
        lo = [max(0.0, mean[i] - max(min(v), FLOOR)) for i, v in enumerate(vals)]
        hi = [max(0.0, max(v) - mean[i]) for i, v in enumerate(vals)]
        ax.bar(x + off, mean, width=0.2, yerr=[lo, hi], label=label, capsize=3)
    ax.set_yscale("log")
    ax.set_ylim(bottom=FLOOR)
    ax.axhline(0.05, color="k", ls="--", lw=0.8, label="5% threshold")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r['name']}\n({r['verdict'] or 'no verdict'})" for r in rows], fontsize=8)
    ax.set_ylabel(f"relative to |closest point of M*| (0 drawn at {FLOOR:g})")
    ax.set_title("Where trained weights end up (mean, min-max over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write(result: dict, out_dir: str, command: str, config: dict | None = None) -> str:
    """``out_dir/ablation.md`` (+ ``.json``, ``.png``), atomically; returns the Markdown path."""
    base = os.path.join(out_dir, "ablation")
    cfg = result["config"]
    lines = ["# Richness ablation: where trained weights end up", run_header(command, config),
             f"Block ({cfg['parameterization']} parameterisation) trained by teacher mimicking ({cfg['algorithm']}, "
             f"{cfg['states']} states, {cfg['actions']} actions, n = {cfg['n']}; {cfg['mdps']} MDPs x "
             f"{cfg['frames']} frames, {cfg['batch_mdps']} MDPs per Adam step, lr {cfg['lr']:g} x "
             f"{cfg['lr_decay']:g} every {cfg['lr_every']} MDPs) on each distribution, seeds {result['seeds']}. "
             "Same budget for every distribution.", "",
             "Columns: richness verdict of `numerics.richness` (kernel dimension, data invariances, mu); "
             "`extra ker` = dimension of the kernel of H_L at theta* (as found by numerics.richness) beyond the "
             "scaling tangent (these are the data invariances when the verdict is morse-bott); then, over seeds (mean [min, max]), the held-out loss relative to the identity map's, "
             "the relative distance to M*, and the offset from the closest point of M* split into its component "
             "along the extra kernel and the rest (both relative to the norm of that point).", "",
             "| distribution | verdict | kernel | invariances | mu | extra ker | loss / identity | distance to M* "
             "| along extra kernel | rest |", "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda t: f"{t[0]:.2e} [{t[1]:.2e}, {t[2]:.2e}]"
    na = lambda v: "n/a" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
    for row in result["rows"]:
        runs = row["runs"]
        lines.append(f"| {row['name']} | {row['verdict'] or 'unavailable'} | {na(row['kernel_dim'])} | "
                     f"{na(row['data_invariance_dim'])} | {na(row['mu'])} | {row['extra_kernel_dim']} | "
                     f"{fmt(_stat([r['final_loss'] / r['identity_loss'] for r in runs]))} | "
                     f"{fmt(_stat([r['distance_to_manifold'] for r in runs]))} | "
                     f"{fmt(_stat([r['invariance_component'] for r in runs]))} | "
                     f"{fmt(_stat([r['other_component'] for r in runs]))} |")
    lines += ["", "Distributions:", ""] + [f"- `{r['name']}`: {r['distribution']}" for r in result["rows"]]
    lines += ["", "## Reading", ""]
    for row in result["rows"]:
        kinds = [classify_run(r) for r in row["runs"]]
        counts = ", ".join(f"{kinds.count(k)} {k}" for k in ("on-manifold", "invariance", "not-converged",
                                                                "contradiction") if kinds.count(k))
        lines.append(f"- `{row['name']}` ({row['verdict']}; mu {na(row['mu'])}; extra kernel "
                     f"{row['extra_kernel_dim']}): {counts}.")
    lines += ["", "Run classes: `on-manifold` = within 5% of M*; `invariance` = off M*, but less than 5% "
              "off it outside the extra kernel (the weights moved along zero-loss directions that the richness "
              "analysis predicts); `not-converged` = off M* outside the extra kernel with a held-out loss still "
              "above 1e-6 of the identity map's (the budget did not reach the zero-loss set: compare mu); "
              "`contradiction` = zero loss off M* outside the extra kernel (never expected). "
              f"Verdict of this ablation: {'CONSISTENT' if consistent(result) else 'INCONSISTENT'} with the "
              "richness analysis."]
    lines += ["", "![ablation](ablation.png)", ""]
    return write_report(base, markdown="\n".join(lines), data=result, figures={"": ablation_figure(result)},
                        dpi=80)["md"]
