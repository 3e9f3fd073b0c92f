"""The training report: Markdown, JSON, the loss curve and the heatmaps of the
learned blocks beside the construction."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from numerics.analysis.manifold import distance_to_manifold
from numerics.analysis.recovery import construction_of, learned_blocks
from numerics.core.tolerances import STRUCTURE_RECOVERY_RTOL
from numerics.io.report import run_header, write_report


def relative(x: float) -> str:
    """A relative distance as a percentage, in scientific notation when it
    is below 0.1% (so 3.6e-6 does not print as 0.000%)."""
    return f"{x:.3%}" if x >= 1e-3 else f"{100 * x:.2e}%"


def heatmaps_figure(model, cfg, title: str = ""):
    """Learned ``P12`` and ``Vbar21`` beside ``c P12*`` and ``Vbar21*/c``
    (``c`` fitted), one shared colour scale per block."""
    P12, Vbar21, _, _ = learned_blocks(model)
    P12s, Vbar21s = construction_of(cfg)
    rel, c = distance_to_manifold(P12, Vbar21, P12s, Vbar21s)
    panels = [(P12, "learned P12"), (c * P12s, f"construction c P12* (c = {c:.3g})"),
              (Vbar21, "learned Vbar21"), (Vbar21s / c, "construction Vbar21*/c")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 9))
    fig.subplots_adjust(hspace=0.35)
    for row in range(2):
        A, B = panels[2 * row][0], panels[2 * row + 1][0]
        vmax = float(max(A.abs().max(), B.abs().max())) or 1.0
        for col in range(2):
            M, name = panels[2 * row + col]
            ax = axes[row, col]
            im = ax.imshow(M.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest", aspect="auto")
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("parameter column (1, w)" if row == 0 else "context row (phi, gamma phi+, r)")
            ax.set_ylabel("context row (phi, gamma phi+, r)" if row == 0 else "read-out (w)")
        fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.8)
    fig.suptitle(title or f"{cfg.record.name}, {cfg.parameterization}: relative distance to M* = {relative(rel)}")
    return fig


def curve_figure(curve, title: str):
    """Training loss per MDP batch (log scale)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(np.arange(1, len(curve) + 1), np.maximum(np.asarray(curve), 1e-300))
    ax.set_xlabel("MDP batch")
    ax.set_ylabel("mean training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def write(res: dict, cfg, name: str, report_dir: str, command: str, config: dict | None, device) -> dict:
    """``report_dir/<name>.md`` + ``.json`` + ``-curve.png`` (+ ``-heatmaps.png``
    for the block), atomically; returns the JSON summary."""
    base = os.path.join(report_dir, name)
    figures = {"-curve": curve_figure(res["curve"], f"{name}: training loss per MDP batch")}
    pngs = [os.path.basename(base) + "-curve.png"]
    if cfg.model == "lsa":
        figures["-heatmaps"] = heatmaps_figure(res["model"], cfg)
        pngs.append(os.path.basename(base) + "-heatmaps.png")
    dist = cfg.distribution()
    lines = [f"# Training report: {name}", run_header(command, config),
             f"Teacher mimicking (Algorithm 1, THEORY.md section 5) of **{cfg.record.name}** by the "
             f"**{cfg.model}** model"
             + (f" ({cfg.parameterization} parameterisation)" if cfg.model == "lsa" else "") + ".",
             "", f"- Distribution: {dist.describe()}; n = {cfg.n}, epsilon = {cfg.epsilon}, alpha = {cfg.alpha}"
             + (f", beta = {cfg.beta}" if "beta" in cfg.record.steps else "") + ".",
             f"- Scale: {cfg.mdps} MDPs x {cfg.frames} frames, {cfg.batch_mdps} MDPs per optimiser step "
             f"({cfg.num_batches * cfg.frames} Adam steps); lr {cfg.lr:g} x {cfg.lr_decay:g} every {cfg.lr_every} MDPs; "
             f"seed {cfg.seed}; device {device}.",
             f"- Time: {res['total_seconds']:.1f} s of training; {res['frames_per_s']:.1f} optimiser steps/s, "
             f"{res['mdp_frames_per_s']:.0f} MDP-frames/s" + _load_text(res) + ".",
             *(_protocol_line(res),),
             "", "## Result", "",
             f"- Held-out loss (1/2 ||TF(H) - teacher||^2, {cfg.eval_mdps} fresh MDPs x {cfg.frames} frames): "
             f"**{res['final_loss']:.3e}** (the identity map w -> w scores {res['identity_loss']:.3e}).",
             ]
    if cfg.model == "lsa":
        rec = res["recovery"]
        ok = rec["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL
        lines += [f"- Relative distance of (P12, Vbar21) to M* = {{(c P12*, Vbar21*/c)}}: "
                  f"**{relative(rec['distance_to_manifold'])}** at fitted c = {rec['scale_c']:.4g} "
                  f"(threshold {STRUCTURE_RECOVERY_RTOL:.0%}: {'RECOVERED' if ok else 'NOT RECOVERED'}).",
                  f"- Per block: |P12 - c P12*| / |c P12*| = {relative(rec['p12_rel_error'])}, "
                  f"|Vbar21 - Vbar21*/c| / |Vbar21*/c| = {relative(rec['vbar21_rel_error'])}."]
        if rec["p22_norm"] is not None:
            lines.append(f"- Full parameterisation: |P22| = {rec['p22_norm']:.3e} (symmetric part "
                         f"{rec['p22_sym_norm']:.3e}), |Vbar22| = {rec['vbar22_norm']:.3e}. The construction has both "
                         "at zero; together they make the cubic term (1/n) Vbar22 w~ w~^T P22 w~ of Lemma C.1, which "
                         "sees only the symmetric part of P22 (its antisymmetric part is never read), and which is "
                         "quartic in the loss: no exponential pull towards zero (THEORY.md section 5).")
        lines += ["", "Construction blocks come from `theory/` (numerics.core.constructions); the distance is the "
                  "exact minimum over c of either sign (numerics.analysis.manifold.distance_to_manifold), divided by "
                  "the norm of the closest point of M*.", "", f"![heatmaps]({pngs[1]})"]
    else:
        lines.append("- No structure to recover: the baseline has no (P12, Vbar21).")
    lines += ["", f"![loss curve]({pngs[0]})", "",
              f"Weights: `{res['weights']}` (+ `.json` metadata)." if res["weights"] else "Weights: not saved.", ""]
    summary = {k: res[k] for k in ("final_loss", "identity_loss", "distance_to_manifold", "scale_c", "weights",
                                   "seconds", "total_seconds", "frames_per_s", "mdp_frames_per_s")}
    summary.update(name=name, command=command, config=cfg.as_dict(), device=str(device),
                   recovery=res["recovery"], loss_curve=res["curve"], pngs=pngs,
                   protocol=res.get("protocol", "minibatch"), numba=res.get("numba"))
    write_report(base, markdown="\n".join(lines), data=summary, figures=figures, dpi=80)
    return summary


def _load_text(res: dict) -> str:
    la = res.get("load_average")
    if not la:
        return ""
    return (f" (1-minute load average {la[0]:.1f} at the start and {la[1]:.1f} at the end, on {res.get('cores')} "
            "cores: the time includes waiting for a core when the load exceeds the cores)")


def _protocol_line(res: dict) -> str:
    if res.get("protocol") == "paper":
        return (f"- Protocol: the paper's exact Algorithm 1 (one MDP at a time, one Adam step per frame), as the "
                f"compiled loop of numerics.core.compiled (numba {res.get('numba')}); differential-tested against "
                "the torch trainer (property_tests/test_compiled_exact.py).")
    return "- Protocol: minibatch Algorithm 1 in torch (docs/training.md: why it is the same algorithm)."


def seeds_figure(results: list[dict], cfgs, title: str):
    """Training loss per MDP (batch) of every seed (log scale)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for c, r in zip(cfgs, results):
        ax.semilogy(np.arange(1, len(r["curve"]) + 1), np.maximum(np.asarray(r["curve"]), 1e-300), lw=0.8,
                    label=f"seed {c.seed}")
    ax.set_xlabel("MDP" if cfgs[0].batch_mdps == 1 else "MDP batch")
    ax.set_ylabel("mean training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_seeds(results: list[dict], cfgs, name: str, report_dir: str, command: str, config: dict | None, device,
                protocol: str, workers: int) -> dict:
    """The report of ``train --seeds K``: a row per seed, the loss curves,
    the heatmaps of the first seed; atomically.  Returns the JSON summary."""
    base = os.path.join(report_dir, name)
    cfg = cfgs[0]
    lsa = cfg.model == "lsa"
    figures = {"-curve": seeds_figure(results, cfgs, f"{name}: training loss, {len(cfgs)} seeds")}
    pngs = [os.path.basename(base) + "-curve.png"]
    if lsa:
        figures["-heatmaps"] = heatmaps_figure(results[0]["model"], cfg, f"seed {cfg.seed}")
        pngs.append(os.path.basename(base) + "-heatmaps.png")
    lines = [f"# Training report: {name} ({len(cfgs)} seeds)", run_header(command, config),
             f"Teacher mimicking (Algorithm 1, THEORY.md section 5) of **{cfg.record.name}** by the "
             f"**{cfg.model}** model"
             + (f" ({cfg.parameterization} parameterisation)" if lsa else "") + f", seeds {cfgs[0].seed}.."
             f"{cfgs[-1].seed}, run in {workers} parallel process(es) (each seed an independent run).", "",
             f"- Distribution: {cfg.distribution().describe()}; n = {cfg.n}, epsilon = {cfg.epsilon}, "
             f"alpha = {cfg.alpha}.",
             f"- Scale: {cfg.mdps} MDPs x {cfg.frames} frames, {cfg.batch_mdps} MDPs per optimiser step "
             f"({cfg.num_batches * cfg.frames} Adam steps per seed); lr {cfg.lr:g} x {cfg.lr_decay:g} every "
             f"{cfg.lr_every} MDPs; device {device}.", _protocol_line(results[0]), "", "## Result", "",
             "| seed | held-out loss | identity map | distance to M* | fitted c | seconds | Adam steps/s | weights |",
             "|---|---|---|---|---|---|---|---|"]
    rows = []
    for c, r in zip(cfgs, results):
        dist = relative(r["distance_to_manifold"]) if lsa else "-"
        sc = f"{r['scale_c']:.4g}" if lsa else "-"
        lines.append(f"| {c.seed} | {r['final_loss']:.3e} | {r['identity_loss']:.3e} | {dist} | {sc} | "
                     f"{r['total_seconds']:.1f} | {r['frames_per_s']:,.0f} | `{r['weights']}` |")
        rows.append({k: r[k] for k in ("final_loss", "identity_loss", "distance_to_manifold", "scale_c", "weights",
                                       "total_seconds", "frames_per_s")} | {"seed": c.seed, "loss_curve": r["curve"],
                                                                             "recovery": r["recovery"]})
    if lsa:
        ok = sum(r["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL for r in results)
        lines += ["", f"Recovered (within {STRUCTURE_RECOVERY_RTOL:.0%} of M*) on {ok} of {len(results)} seeds.", "",
                  f"![heatmaps of seed {cfg.seed}]({pngs[1]})"]
    lines += ["", f"![loss curves]({pngs[0]})", ""]
    summary = dict(name=name, command=command, config=cfg.as_dict(), protocol=protocol, workers=workers,
                   device=str(device), seeds=rows, pngs=pngs)
    write_report(base, markdown="\n".join(lines), data=summary, figures=figures, dpi=80)
    return summary
