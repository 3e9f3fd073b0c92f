"""The control report: Markdown, JSON and the normalised-return curves of
:func:`numerics.analysis.control.run_control`."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from numerics.io.report import run_header, write_report
from theory import algorithms


def curves_figure(result: dict):
    """Normalised return against round, one line and 95% band per method."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"constructed": dict(ls="--", lw=2.2, zorder=5), "teacher": dict(ls="-", lw=3.5, alpha=0.6),
              "oracle": dict(ls=":", color="k"), "uniform": dict(ls=":", color="grey")}
    for m, v in result["methods"].items():
        y = np.asarray(v["curve"])
        ci = np.asarray(v["curve_ci95"])
        x = np.arange(len(y))
        line, = ax.plot(x, y, label=m, **styles.get(m, {}))
        ax.fill_between(x, ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("round k")
    ax.set_ylabel("normalised return of greedy(Q_{w_k})")
    ax.set_title(f"{result['env']}, {result['algorithm']}: {result['seeds']} seeds x {result['mdps']} MDPs (95% t-band)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def markdown(result: dict, command: str, config: dict | None = None, png_name: str | None = None) -> str:
    record = algorithms.get(result["algorithm"])
    r = result
    ok = r["reproduces_teacher"]
    lines = [f"# In-context control: {r['env']}, {r['algorithm']}", run_header(command, config)]
    if r["env"] == "random":
        lines.append(f"Environment: {r['seeds']} seeds x {r['mdps']} unseen MDPs from the training distribution "
                     f"({r['distribution']}).")
    else:
        lines.append(f"Environment: Gymnasium `{r['env']}` ({r['states']} states including the absorbing state of "
                     f"terminal transitions, {r['actions']} actions), gamma = {r['gamma']}, {r['features']} features "
                     f"of dimension d = {r['feature_dim']} drawn per MDP copy (zero on the absorbing state); "
                     f"{r['seeds']} seeds x {r['mdps']} copies (feature draws, w_0, trajectories). "
                     "The absorbing state restarts from rho0 while acting; returns are those of the absorbing MDP.")
    lines += ["",
              f"Closed loop: {r['rounds']} rounds of n = {r['context']} transitions, epsilon = {r['epsilon']}, "
              f"alpha = {r['alpha']}" + (f", beta = {r['beta']}" if "beta" in record.steps else "") +
              f"; w_{{k+1}} = TF(H_k). Score of round k: normalised discounted return of the greedy policy in "
              f"{'the actor' if record.acts_with == 'lam' else 'Q_{w_k}'} ({r['evaluation']}), "
              "(J - J_unif) / (J* - J_unif), J* by value iteration.",
              "Intervals: 95% Student-t over seeds of the per-seed mean over MDPs.", "",
              "| method | normalised return after the last round | 95% interval | minus teacher (paired, 95%) |",
              "|---|---|---|---|"]
    for m, v in r["methods"].items():
        dv = r["difference_vs_teacher"].get(m)
        dtxt = f"{dv['mean']:+.4f} [{dv['ci95'][0]:+.4f}, {dv['ci95'][1]:+.4f}]" if dv else "-"
        lines.append(f"| {m} | {v['final_normalized_return']:.4f} | [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}] | {dtxt} |")
    lines += ["",
              "## Constructed block vs teacher (Theorem 3.1 / 3.3 in closed loop)", "",
              f"Max |w_constructed - w_teacher| over every round, MDP and coordinate: "
              f"{r['max_abs_weight_diff_constructed_vs_teacher']:.3e} (tolerance {r['tolerance']:.0e}, "
              f"CLOSED_LOOP_ATOL; largest |w_teacher| {r['max_abs_teacher_weight']:.3g}); "
              f"identical states and actions in every window: {r['actions_identical']}.", "",
              ("HOLDS: the constructed block reproduces the teacher's run exactly (same seed, same actions)." if ok else
               "FAILS: the constructed block's run leaves the teacher's."), ""]
    nf = {m: v.get("nonfinite_final", 0) for m, v in r["methods"].items() if v.get("nonfinite_final")}
    if nf:
        lines += [f"Non-finite weights after the last round (MDPs): {nf}.", ""]
    if png_name:
        lines += [f"![normalised return against round]({png_name})", ""]
    lines.append(f"Run time: {r['seconds']:.1f} s.")
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: str, name: str, command: str, config: dict | None = None) -> dict:
    """Write ``out_dir/name.{md,json,png}`` atomically; returns their paths."""
    base = os.path.join(out_dir, name)
    return write_report(base, markdown=markdown(result, command, config, png_name=name + ".png"),
                        data=dict(result, command=command), figures={"": curves_figure(result)}, dpi=120)
