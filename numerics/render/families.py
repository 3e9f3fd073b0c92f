"""The family comparison report (``icrl-verify families``): Markdown and JSON."""
from __future__ import annotations

import math
import os

from numerics.io.report import run_header, write_report


def _f(x, fmt=".4g"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def write(res: dict, out_dir: str, name: str, command: str, config: dict | None = None) -> str:
    base = os.path.join(out_dir, name)
    lines = [f"# Richness across MDP families: {name}", run_header(command, config),
             "Each family: the richness analysis of `icrl-verify richness` (SARSA, reduced parameters, Hessian "
             "E[J^T J] at the construction, kernel classified into symmetry / data invariances / non-flat, mu with "
             "its parametric-bootstrap interval), a short gradient-flow training run from small perturbations "
             "off the kernel that measures the local rate next to the predicted 2 mu (`icrl-verify flow`), and, "
             "for a family that is not identifiable, the verdict of a variant that removes its invariances.  "
             "Families and their sources: docs/families.md.", "",
             "| family | d | verdict | kernel = sym + inv + non-flat | mu [95% interval] | flow: measured / predicted rate | Theorem 3.2 local rate | identifiable variant |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        fl = r["flow"]
        flow = (f"{_f(fl['measured_rate'])} / {_f(fl['predicted_rate'])} (ratio {_f(fl['rate_ratio'], '.3f')})"
                if fl else "not run (no rate predicted)")
        var = r["variant"]
        vtxt = (f"{var['label']}: {var['verdict']} (kernel {var['kernel_dim']}, inv {var['data_invariance_dim']})"
                if var else ("already identifiable" if r["verdict"] == "identifiable" else "-"))
        lines.append(f"| {r['label']} | {r['d']} | **{r['verdict']}** | {r['kernel_dim']} = {r['symmetry_dim']} + "
                     f"{r['data_invariance_dim']} + {r['nonflat_dim']} | {_f(r['mu'])} [{_f(r['mu_ci95'][0])}, "
                     f"{_f(r['mu_ci95'][1])}] | {flow} | {r['rate_applies'].split(':')[0]} | {vtxt} |")
    lines += [""]
    for r in res["rows"]:
        lines += [f"## {r['label']}", "", f"- Distribution: {r['distribution']}.",
                  f"- Verdict **{r['verdict']}**: kernel {r['kernel_dim']} = symmetry {r['symmetry_dim']} + data "
                  f"invariances {r['data_invariance_dim']} + non-flat {r['nonflat_dim']}; mu = {_f(r['mu'], '.6g')}, "
                  f"95% interval [{_f(r['mu_ci95'][0], '.6g')}, {_f(r['mu_ci95'][1], '.6g')}] "
                  f"({r['eigensolver']}).",
                  f"- Theorem 3.2's local rate: {r['rate_applies']}."]
        if r["invariances"]:
            lines.append("- Invariances in words:")
            lines += [f"  - {s}" for s in r["invariances"]]
        else:
            lines.append("- No context or parameter column null vector.")
        fl = r["flow"]
        if fl:
            lines.append(f"- Training run (gradient flow on {fl['prompts']} prompts from perturbations off the kernel): "
                         f"measured rate {_f(fl['measured_rate'], '.6g')} vs predicted 2 mu = "
                         f"{_f(fl['predicted_rate'], '.6g')} (ratio {_f(fl['rate_ratio'], '.4f')}, within tolerance: "
                         f"{fl['converged']}); from radius {fl['basin_radius']} x |theta*|, fraction ending on the "
                         f"optimal set {fl['basin_fraction']:.2f}.")
        var = r["variant"]
        if var:
            lines.append(f"- What would make it identifiable: {var['label']} ({var['distribution']}) gives "
                         f"**{var['verdict']}** (kernel {var['kernel_dim']}, data invariances "
                         f"{var['data_invariance_dim']}, non-flat {var['nonflat_dim']}, mu {_f(var['mu'], '.4g')}).")
        lines += [f"- Time {r['seconds']:.1f} s.", ""]
    lines += [f"Total time {res['seconds']:.1f} s.", ""]
    data = dict(res, command=command, report=base + ".md")
    return write_report(base, markdown="\n".join(lines), data=data)["md"]


def _gb(b):
    return "-" if b is None else f"{b / 2 ** 30:.2f} GB"


def write_benchmark(res: dict, out_dir: str, name: str, command: str, config: dict | None = None) -> str:
    """The families at benchmark scale: one row per family, its richness
    result, wall time and peak memory of its own process."""
    base = os.path.join(out_dir, name)
    lines = [f"# Richness of the benchmark families at their own size: {name}", run_header(command, config),
             "Each family runs `icrl-verify richness` (SARSA, reduced parameters, default options, `--solver auto`: "
             "structured for one-hot features above 2,500 parameters, dense below) in a process of its own under "
             "`/usr/bin/time`: wall time and peak resident memory are that process's alone.  Other jobs share this "
             "2-core machine: the load average before and after each run is given.  'undersampled' and "
             "'unresolved' are not verdicts (exit 3): the sample was not adequate within the budget.", "",
             "| family | route | verdict | prompts | kernel (sampled) | closed form: scaling + invariances | "
             "mu [95% interval] | wall time (CPU) | peak RSS | load before / after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        x = r["result"]
        load = f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f}"
        t = f"{r['seconds']:.0f} s ({r['cpu_seconds']:.0f} s)" if r.get("cpu_seconds") is not None else f"{r['seconds']:.0f} s"
        if x is None:
            why = "timed out" if r["timed_out"] else f"exit {r['rc']}: {r['stderr']}"
            lines.append(f"| {r['label']} | - | not computed ({why}) | - | - | - | - | {t} | {_gb(r['peak_rss'])} | {load} |")
            continue
        route = "structured" if "closed_form_kernel" in x else "dense / matrix-free"
        if "closed_form_kernel" in x:
            cf = f"1 + {x['closed_form_kernel'] - 1:,} = {x['closed_form_kernel']:,}"
        else:
            cf = f"{x['symmetry_dim']} + {x['data_invariance_dim']} (+ non-flat {x['nonflat_dim']})"
        kern = "-" if x.get("kernel_dim") is None else f"{x['kernel_dim']:,}"
        prompts = x.get("prompts", "-")
        prompts = f"{prompts:,}" if isinstance(prompts, int) else prompts
        mu = f"{_f(x['mu'])} [{_f(x['mu_ci95'][0])}, {_f(x['mu_ci95'][1])}]"
        lines.append(f"| {r['label']} | {route} | {x['verdict']} | {prompts} | {kern} | {cf} | {mu} | {t} | "
                     f"{_gb(r['peak_rss'])} | {load} |")
    lines += ["", "Reports of each family: `bench-*.md` next to this one.  Reproduce one row with "
              "`icrl-verify richness OPTIONS` (the options are in the JSON, `argv`).", ""]
    return write_report(base, markdown="\n".join(lines), data=dict(res, command=command))["md"]
