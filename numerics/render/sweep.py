"""The sweep report: per grid point every numeric metric's mean and 95%
interval over seeds, the reproduce command of each cell, the failed cells
with their messages (Markdown, JSON, PNG).  No wall times: a rerun of a
finished sweep writes the same bytes."""
from __future__ import annotations

import json
import math
import os

import matplotlib.pyplot as plt
import numpy as np

from numerics.io.report import run_header, write_report

#: Metrics plotted in the PNG (the first ones of the first grid point); all are in the Markdown and JSON.
PLOTTED = 6


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.6g}"


def _point(point: dict) -> str:
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in point.items()) or "(single point)"


def write(rows: list[dict], spec, out_dir: str, command: str, summary: dict) -> dict:
    """``out_dir/<spec.name>.md`` (+ ``.json``, ``.png``), atomically."""
    base = os.path.join(out_dir, spec.name)
    total = sum(len(r["cells"]) for r in rows)
    failed = [c for r in rows for c in r["cells"] if c["status"] == "failed"]
    lines = [f"# Sweep report: {spec.name}", run_header(command, dict(command=spec.command, options=spec.options,
                                                                        grid=spec.grid, retries=spec.retries)),
             f"`icrl-verify {spec.command}` over {total} cells in {len(rows)} grid points; "
             f"{total - len(failed)} finished, {len(failed)} failed.  Per grid point: every numeric metric of the "
             "cells' results (booleans as 0/1), the mean over the seeds that finished and its 95% Student-t "
             "interval (nan with one seed).", ""]
    for i, r in enumerate(rows):
        lines += [f"## Point {i + 1}: {_point(r['point'])}", "",
                  f"seeds: {', '.join(str(s) for s in r['seeds'])}", "",
                  "| metric | mean | 95% interval | n |", "|---|---|---|---|"]
        for name, m in r["metrics"].items():
            lines.append(f"| {name} | {_fmt(m['mean'])} | [{_fmt(m['ci95'][0])}, {_fmt(m['ci95'][1])}] | {m['n']} |")
        lines += ["", "| cell | seed | status | reproduce |", "|---|---|---|---|"]
        for c in r["cells"]:
            lines.append(f"| `{c['key']}` | {c['seed']} | {c['status']} | `{c['command']}` |")
        lines.append("")
    if failed:
        lines += ["## Failed cells", "", "| cell | error |", "|---|---|"]
        lines += [f"| `{c['key']}` | {c['error']} |" for c in failed]
        lines.append("")
    data = dict(name=spec.name, command=spec.command, options=spec.options, grid=spec.grid, retries=spec.retries,
                cells=total, failed=len(failed), points=rows, report_command=command, **summary)
    return write_report(base, markdown="\n".join(lines), data=data, figures={"": _figure(rows, spec)})


def _figure(rows: list[dict], spec):
    names = list(dict.fromkeys(k for r in rows for k in r["metrics"]))[:PLOTTED]
    fig, axes = plt.subplots(max(1, len(names)), 1, figsize=(7, 1.8 * max(1, len(names)) + 0.6), squeeze=False)
    x = np.arange(len(rows))
    for ax, name in zip(axes[:, 0], names):
        mean = np.array([r["metrics"].get(name, {}).get("mean", np.nan) for r in rows], dtype=float)
        lo = np.array([r["metrics"].get(name, {}).get("ci95", [np.nan, np.nan])[0] for r in rows], dtype=float)
        hi = np.array([r["metrics"].get(name, {}).get("ci95", [np.nan, np.nan])[1] for r in rows], dtype=float)
        err = np.vstack([np.nan_to_num(mean - lo), np.nan_to_num(hi - mean)])
        ax.errorbar(x, mean, yerr=err, fmt="o", capsize=3)
        ax.set_ylabel(name, fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels([str(i + 1) for i in x], fontsize=7)
    axes[-1, 0].set_xlabel("grid point (see the report)")
    axes[0, 0].set_title(f"sweep {spec.name}: mean and 95% interval over seeds", fontsize=9)
    fig.tight_layout()
    return fig
