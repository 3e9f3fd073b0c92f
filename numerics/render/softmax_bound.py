"""The Theorem 2 report (Xie et al. 2026): Markdown, JSON and the plot of
:func:`numerics.analysis.softmax_bound.experiment` for each family."""
from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np

from numerics.analysis.softmax_bound import BOOTSTRAP, BOUND_RTOL, floor_term
from numerics.io.report import run_header, write_report


def _f(x, digits=3) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _ci(d: dict, digits=3) -> str:
    return f"{_f(d['mean'], digits)} [{_f(d['lo'], digits)}, {_f(d['hi'], digits)}]"


def _count(c: dict) -> str:
    return f"{c['pairs']}/{c['of']} ({c['mrps']}/{c['of_mrps']} MRPs)"


def figure(results: list):
    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.6 * len(results)), squeeze=False)
    for (ax, bx), res in zip(axes, results):
        s = res["summary"]
        grp = s.get("holding", s["all"])
        who = "MRPs meeting 5.1" if "holding" in s else "all MRPs (none meet 5.1)"
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(grp["cells"])))
        L = np.arange(res["layers"] + 1)
        for col, cell in zip(colors, grp["cells"]):
            e = cell["err"]
            ax.semilogy(L, e["mean"], color=col, lw=1.2, label=f"n={cell['n']}")
            ax.fill_between(L, e["lo"], e["hi"], color=col, alpha=0.2)
            if "geometric" in cell:
                ax.semilogy(L, cell["geometric"]["mean"] + cell["floor_n"], "--", color=col, lw=0.8)
        if "holding" in s:
            g = grp["cells"][-1]["geometric"]["mean"]
            ax.semilogy(L, g, "k:", lw=1, label="(1-C)^L e0 (mean)")
        ax.set_xlabel("depth L")
        ax.set_ylabel("||v_L - v_pi||_inf (mean, 95% CI)")
        ax.set_title(f"{res['family']} (tau={res['tau']:g}, gamma={res['gamma']:g}): {who}; dashed: "
                     "(1-C)^L e0 + floor_n", fontsize=8)
        ax.legend(fontsize=6, ncol=2)
        ns = np.array([c["n"] for c in grp["cells"]], float)
        eL = np.array([c["err_at_L"]["mean"] for c in grp["cells"]])
        lo = np.array([c["err_at_L"]["lo"] for c in grp["cells"]])
        hi = np.array([c["err_at_L"]["hi"] for c in grp["cells"]])
        bx.loglog(ns, eL, "o-", label=f"error at L={res['layers']}")
        bx.fill_between(ns, lo, hi, alpha=0.2)
        fl = np.array([c["floor"]["mean"] for c in grp["cells"]])
        if np.all(np.isfinite(fl)):
            bx.loglog(ns, fl, "s--", ms=3, lw=0.8, label="window fixed point floor (mean)")
        if "cprime" in s:
            cp = s["cprime"]["value"]
            bx.loglog(ns, floor_term(cp, ns, s["cprime"]["delta"]), "k--", lw=1,
                      label=f"C' sqrt(log(C'/delta)/n), C'={cp:.3g}")
        if np.all(eL > 0) and np.all(np.isfinite(eL)):
            bx.loglog(ns, eL[0] * np.sqrt(ns[0] / ns), "k:", lw=0.8, label="n^-1/2")
        bx.set_xlabel("context length n")
        bx.set_ylabel("error")
        bx.set_title("floor against n", fontsize=8)
        bx.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _public(res: dict) -> dict:
    return {k: v for k, v in res.items() if not k.startswith("_")}


def family_lines(res: dict) -> list[str]:
    m, rt, s = res["margin"], res["rate"], res["summary"]
    lines = [f"## Family `{res['family']}`", "",
             f"{res['describe']}; {res['states']} states, d = {res['d']}, tau = {res['tau']:g}, gamma = "
             f"{res['gamma']:g}, alpha = {res['alpha']:g}, {m['mrps']} MRPs, contexts {res['contexts']}, "
             f"L = 0..{res['layers']}.", "",
             f"**Assumption 5.1**: met by {m['fraction_holds']:.1%} of the MRPs; C quantiles (5/25/50/75/95%): "
             + ", ".join(_f(m["C"][k], 4) for k in ("q05", "q25", "q50", "q75", "q95"))
             + f" (allowed range (0, {_f(m['C_max_allowed'], 3)})).", "",
             f"**Population iteration** (first {rt['mrps']} MRPs, the error map measured by a plain loop from the "
             f"definition): inf-norm within 2(1 - min M_pi(s,s)) + gamma = 1 - 2C for "
             f"{rt['fraction_op_norm_within_1m2C']:.1%} of them ({'ok' if rt['ok'] else 'FAILS'})."]
    if rt.get("op_norm"):
        lines[-1] += (f" On the {rt['mrps_holding']} meeting 5.1: operator norm median {_f(rt['op_norm']['q50'])} "
                      f"(max {_f(rt['op_norm']['q100'])}); measured rate of the iteration from v_0 = 0 median "
                      f"{_f(rt['iter_rate']['q50'])} (max {_f(rt['iter_rate']['q100'])}); 1 - 2C median "
                      f"{_f(rt['bound_1m2C']['q50'])}, 1 - C median {_f(rt['bound_1mC']['q50'])}; rate <= 1 - 2C for "
                      f"{rt['fraction_iter_rate_le_1m2C']:.0%}, <= 1 - C for {rt['fraction_iter_rate_le_1mC']:.0%}.")
    lines.append("")
    a = s["all"]
    lines += ["All MRPs (whether or not they meet 5.1): error at the largest L and the window's own floor:", "",
              "| n | error at L max, mean [95% CI] | floor mean [CI] (windows with a limit) | no limit | diverged | "
              "coverage | rho_n median / max |",
              "|---|---|---|---|---|---|---|"]
    for c in a["cells"]:
        lines.append(f"| {c['n']} | {_ci(c['err_at_L'])} | {_ci(c['floor'])} | {c['no_limit']} | {c['diverged']} | "
                     f"{c['coverage']:.2f} | {_f(c['rho_n']['q50'])} / {_f(c['rho_n']['q100'])} |")
    if a.get("floor_fit"):
        ff = a["floor_fit"]
        lines += ["", f"Fit log(error at L max) = a + b log n over all MRPs: b = {_f(ff['slope_err_at_L'])}; "
                      f"floor: b = {_f(ff['slope'])} [{_f(ff['slope_lo'])}, {_f(ff['slope_hi'])}]."]
    lines.append("")
    if "holding" not in s:
        return lines + [f"*{s.get('note', '')}*", ""]
    h = s["holding"]
    lines += [f"MRPs meeting Assumption 5.1 ({h['mrps']}):", "",
              "| n | error at L max [CI] | floor [CI] | floor q95 | floor_n (cal. q95) | measured rate median / max | "
              "1-C median | rate <= 1-C | rate <= 1-2C | geometric viol. | 1-2C viol. | floor_n viol. | C' viol. |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    med_1mc = 1 - h["C"]["q50"]                       # over the MRPs meeting 5.1
    for c in h["cells"]:
        mr, v = c["measured_rate"], c["violations"]
        lines.append(f"| {c['n']} | {_ci(c['err_at_L'])} | {_ci(c['floor'])} | {_f(c['floor'].get('q95'))} | "
                     f"{_f(c['floor_n'])} | {_f(mr.get('q50'))} / {_f(mr.get('q100'))} | {_f(med_1mc)} | "
                     f"{c['fraction_rate_le_1mC']:.2f} | {c['fraction_rate_le_1m2C']:.2f} | {_count(v['geometric'])} | "
                     f"{_count(v['geometric_1m2C'])} | {_count(v['floor_n'])} | {_count(v['cprime'])} |")
    ff, cp, bf = h.get("floor_fit", {}), s["cprime"], s["bound_fails"]
    lines += ["",
              f"- **Geometric part, rate 1 - C**: error - floor > (1-C)^L e0 at "
              f"{sum(c['violations']['geometric']['pairs'] for c in h['cells'])} of "
              f"{sum(c['violations']['geometric']['of'] for c in h['cells'])} (MRP, n, L) triples "
              f"({'holds' if not bf['geometric'] else 'FAILS'}); with the derived 1 - 2C: "
              f"{sum(c['violations']['geometric_1m2C']['pairs'] for c in h['cells'])}.",
              f"- **Floor**: the error at L = {res['layers']} against n: slope {_f(ff.get('slope_err_at_L'))} in "
              f"log-log; the window fixed point's floor: slope {_f(ff.get('slope'))} "
              f"[{_f(ff.get('slope_lo'))}, {_f(ff.get('slope_hi'))}] (bootstrap over MRPs; -0.5 is n^-1/2).",
              f"- **C'** (delta = {cp['delta']}): the smallest C' whose term covers the calibration half's 95% floor "
              f"quantile at every n: {_f(cp['value'], 4)}; on the held-out half the full bound fails in "
              f"{cp['violations']['windows']} of {cp['violations']['of_windows']} windows "
              f"({bf['cprime_rate']:.1%}, against delta = {cp['delta']:.0%}; "
              f"{cp['violations']['triples']} of {cp['violations']['of']} (window, L) pairs).",
              f"- **Largest n** ({h['cells'][-1]['n']}): error > (1-C)^L e0 + floor_n at "
              f"{_count(bf['floor_n_at_largest_n'])} held-out (MRP, L) pairs.", ""]
    return lines


def write(results: list, out_dir: str, name: str, command: str, config: dict | None = None) -> dict:
    base = os.path.join(out_dir, name)
    lines = [f"# Theorem 2 of Xie et al. (2026) measured: {name}", run_header(command, config),
             "Theorem 2 (as transcribed): under Assumption 5.1 (C in (0, (1-gamma)/2) with min_s M_pi(s,s) >= "
             "(1+gamma)/2 + C), ||v_L - v_pi||_inf <= (1-C)^L ||v_0 - v_pi||_inf + C' sqrt(log(C'/delta)/n) with "
             "probability 1 - delta.  M_pi(s,s') = mu(s') exp g(s,s') / sum_m mu(m) exp g(s,m) (our reading; "
             "docs/xie2026.md).  v_L is the current-memory row of the softmax block (numerics.core.softmax, one "
             "head plus token shift, Theorem 1's weights, v_0 = 0), one fresh window per MRP and n; errors over the "
             "states of the window; e0 = ||v_pi||_inf over them.  Means with 95% percentile-bootstrap intervals "
             f"({BOOTSTRAP} resamples of the MRPs).  The floor of a window is ||v_inf - v_pi||_inf, v_inf the "
             "fixed point of the window's own affine iteration (solved in state space, not by the block; "
             "'no limit' where the map's spectral radius is >= 1 or it is singular, e.g. a state seen only as the "
             "query; there the geometric check uses the error at the largest L); "
             "floor_n is the 95% quantile of the floors of the first half of the MRPs meeting 5.1, and the bound "
             f"with floor_n or C' is tested on the second half.  Comparisons have a slack of {BOUND_RTOL:g} times "
             "(1 + e0).  The measured rate of a window: the largest (||v_L - v_inf|| / ||v_0 - v_inf||)^(1/L) over "
             "L while the distance is above rounding.", ""]
    for res in results:
        lines += family_lines(res)
    data = {"name": name, "command": command, "families": [_public(r) for r in results]}
    return write_report(base, markdown="\n".join(lines) + "\n", data=data, figures={"": figure(results)})
