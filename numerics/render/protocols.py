"""The protocols report: the paper's exact Algorithm 1 beside the minibatch
variant (:func:`numerics.analysis.protocols.compare_protocols`), Markdown,
JSON and the control curves up to the oracle."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from numerics.io.report import run_header, write_report
from numerics.render.training import relative

LABELS = {"exact": "trained, exact protocol", "minibatch": "trained, minibatch protocol", "teacher": "teacher",
          "constructed": "constructed block", "oracle": "oracle", "uniform": "uniform"}


def verdict(res: dict) -> str:
    if res["agree"]:
        return "agree"
    if res["differ"]:
        return "differ"
    return "agree in structure; control equivalence not established at this size"


def curves_figure(res: dict, title: str = ""):
    """Normalised return against round (log-x), 95% bands, the level line."""
    ctrl = res["control"]
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    styles = {"constructed": dict(ls="--", lw=1.6, zorder=5), "teacher": dict(ls="-", lw=3.2, alpha=0.55),
              "oracle": dict(ls=":", color="k"), "uniform": dict(ls=":", color="grey")}
    for m, v in ctrl["methods"].items():
        y = np.asarray(v["curve"])
        ci = np.asarray(v["curve_ci95"])
        x = np.arange(len(y)) + 1
        line, = ax.plot(x, y, label=LABELS.get(m, m), **styles.get(m, {}))
        ax.fill_between(x, ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.15, lw=0)
    ax.axhline(res["level"], color="tab:red", lw=0.8, ls="-.", label=f"{res['level']:g} of the oracle")
    ax.set_xscale("log")
    ax.set_xlabel("round k + 1 (log scale)")
    ax.set_ylabel("normalised return of greedy(Q_{w_k})")
    ax.set_title(title or f"{ctrl['seeds']} seeds x {ctrl['mdps']} unseen MDPs, {ctrl['rounds']} rounds (95% t-bands)",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def _ci(v: dict) -> str:
    return f"{v['mean']:+.4f} [{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}]"


def _rounds(e: dict) -> str:
    txt = (f"mean curve: not within the rollout (ends at {e['final']:.3f})" if e["mean_curve"] is None
           else f"mean curve: {e['mean_curve']}")
    n = len(e["per_seed"])
    if e["ci95"] is not None:
        txt += (f"; each seed's first crossing: mean {e['mean']:.0f}, 95% [{e['ci95'][0]:.0f}, {e['ci95'][1]:.0f}] "
                f"({e['seeds_reached']} of {n} seeds)")
    elif e["seeds_reached"]:
        txt += f"; {e['seeds_reached']} of {n} seeds cross it"
    return txt


def markdown(res: dict, command: str, config: dict | None = None, png_name: str | None = None) -> str:
    tr, st, ho, ctrl = res["training"], res["structure"], res["heldout"], res["control"]
    M = ctrl["methods"]
    R = ctrl["rounds"]
    lines = ["# The paper's exact Algorithm 1 beside the minibatch variant", run_header(command, config),
             "Both blocks are trained by teacher mimicking on the Section 4.1 distribution "
             f"({ctrl['distribution']}); only the protocol differs.", "",
             "| | exact (the paper's Algorithm 1) | minibatch (the CPU scale) |", "|---|---|---|"]
    row = lambda label, f: lines.append(f"| {label} | {f('exact')} | {f('minibatch')} |")
    row("protocol", lambda k: ("one MDP at a time, one Adam step per frame (compiled)" if tr[k]["protocol"] == "paper"
                               else f"{tr[k]['batch_mdps']} MDPs per Adam step (torch)"))
    row("scale", lambda k: f"{tr[k]['mdps']:,} MDPs x {tr[k]['frames']:,} frames = {tr[k]['adam_steps']:,} Adam steps")
    row("learning rate", lambda k: f"{tr[k]['lr']:g} x {tr[k]['lr_decay']:g} every {tr[k]['lr_every']} MDPs")
    row("training time", lambda k: "-" if tr[k]["train_seconds"] is None else f"{tr[k]['train_seconds']:.0f} s")
    row("distance of (P12, Vbar21) to M*", lambda k: f"**{relative(st[k]['distance_to_manifold'])}**")
    row("fitted c", lambda k: f"{st[k]['scale_c']:.5g}")
    row(f"held-out loss (common set: {res['heldout_set']['mdps']} MDPs x {res['heldout_set']['frames']} frames)",
        lambda k: f"{ho[k]['loss']:.3e} ({ho[k]['ratio']:.1e} of the identity map's)")
    row(f"normalised return after {R} rounds (95%)",
        lambda k: f"{M[k]['final_normalized_return']:.4f} [{M[k]['ci95'][0]:.4f}, {M[k]['ci95'][1]:.4f}]")
    row("minus teacher after the last round (paired 95%)", lambda k: _ci(res["minus_teacher"][k][R]))
    row(f"rounds to {res['level']:g} of the oracle", lambda k: _rounds(res["rounds_to_level"][k]))
    lines += ["", "## Do the two protocols agree?", "",
              f"- Structure: both within {res['recovery_rtol']:.0%} of M*: **{res['agree_structure']}**.",
              f"- Control: the paired 95% interval of exact minus minibatch after {R} rounds, "
              f"{_ci(res['exact_minus_minibatch'][R])}, against the margin +-{res['equivalence_atol']:g}: "
              f"**{res['control_equivalence']}** (equivalent: inside it; different: entirely outside it; "
              "inconclusive: wider than it, more seeds or MDPs decide).",
              f"- Verdict: the protocols **{verdict(res)}**.", "",
              "Paired differences (exact minus minibatch) along the rollout: "
              + "; ".join(f"round {k}: {_ci(v)}" for k, v in res["exact_minus_minibatch"].items()) + ".", "",
              f"## Control against the teacher and the oracle ({ctrl['seeds']} seeds x {ctrl['mdps']} unseen MDPs)", "",
              f"Closed loop as in THEORY.md section 7: round k acts epsilon-greedy ({ctrl['epsilon']}) in Q_{{w_k}}, "
              f"collects n = {ctrl['context']} transitions, w_{{k+1}} = TF(H_k); score: the exact normalised return of "
              "greedy(Q_{w_k}), (J - J_unif) / (J* - J_unif), so the oracle scores 1 and the uniform policy 0. "
              "Every method acts on the same MDPs; intervals are 95% Student-t over seeds of the per-seed mean.", "",
              f"| method | return after {R} rounds (95%) | rounds to {res['level']:g} of the oracle | "
              f"change over the last {res['rounds_to_level']['teacher']['late_rounds']} rounds |", "|---|---|---|---|"]
    for m in ("exact", "minibatch", "teacher", "constructed", "oracle", "uniform"):
        v, e = M[m], res["rounds_to_level"][m]
        lines.append(f"| {LABELS[m]} | {v['final_normalized_return']:.4f} [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}] | "
                     f"{_rounds(e)} | {e['late_change']:+.4f} |")
    lv = res["rounds_to_levels"]
    lines += ["", "First round at which the mean curve reaches a fraction of the oracle's normalised return "
              "(- : not within the rollout):", "",
              "| method | " + " | ".join(f"{x:g}" for x in lv) + " |", "|---|" + "---|" * len(lv)]
    for m in ("exact", "minibatch", "teacher", "constructed"):
        lines.append(f"| {LABELS[m]} | " + " | ".join("-" if lv[x][m] is None else str(lv[x][m]) for x in lv) + " |")
    lines += ["", f"The constructed block reproduces the teacher's run: max |w difference| "
              f"{ctrl['max_abs_weight_diff_constructed_vs_teacher']:.1e} (tolerance {ctrl['tolerance']:.0e}), "
              f"identical actions: {ctrl['actions_identical']}.", ""]
    if png_name:
        lines += [f"![normalised return against round]({png_name})", ""]
    lines.append(f"Run time of this comparison: {res['seconds']:.0f} s (control {ctrl['seconds']:.0f} s).")
    return "\n".join(lines) + "\n"


def _thin(res: dict) -> dict:
    """The JSON's copy of the result: per-seed curves dropped and the
    method curves (with their bands) kept at every round up to 100, then at
    every 10th round and the last (``curve_rounds`` says which)."""
    ctrl = res["control"]
    R = ctrl["rounds"]
    keep = sorted(set(range(min(R, 100) + 1)) | set(range(100, R + 1, 10)) | {R})
    methods = {m: dict(v, curve=[v["curve"][k] for k in keep], curve_ci95=[v["curve_ci95"][k] for k in keep])
               for m, v in ctrl["methods"].items()}
    control = {k: v for k, v in ctrl.items() if k != "per_seed"} | {"methods": methods, "curve_rounds": keep}
    return dict(res, control=control)


def write(res: dict, out_dir: str, name: str, command: str, config: dict | None = None) -> dict:
    """``out_dir/name.{md,json,png}``, atomically; returns the paths.  The
    JSON holds the curves thinned (:func:`_thin`)."""
    base = os.path.join(out_dir, name)
    data = dict(_thin(res), command=command)
    return write_report(base, markdown=markdown(res, command, config, png_name=name + ".png"), data=data,
                        figures={"": curves_figure(res)}, dpi=110)
