"""The training report: Markdown, JSON, the loss curve and the heatmaps of the
learned blocks beside the construction."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

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

# ==================================================================== layer-by-layer (mrp) records
# The report of Wang et al.'s Figure 2 experiment (``icrl-verify train`` of an
# mrp record): Markdown, JSON, the curves of their measures over
# training (mean and 95% band over seeds) and the learned weights beside the
# construction.

#: (key, label, what the construction gives) of the measures, in report order.
LAYERS_STRUCTURE = (
    ("written_entry", "V's written entry V[r, r] (their P[-1,-1]), sign-aligned", "> 0 (1 for C = I)"),
    ("others_mean_abs_V", "mean |V| over the other D^2 - 1 entries", "0"),
    ("trace_phi_phi", "tr P[phi, phi] (their Q upper-left), sign-aligned", "-tr C < 0"),
    ("trace_phi_gphi", "tr P[phi, gamma phi'] (their Q upper-right), sign-aligned", "+tr C > 0"),
    ("others_mean_abs_P", "mean |P| off those two diagonals", "0"),
    ("others_P_theirs", "the same by their formula (subtracts signed traces)", "2 tr|C| / (D^2 - 2d) != 0"),
)
LAYERS_FAMILY = (
    ("distance", "distance to the construction family (any C), modulo scaling and sign", "0"),
    ("rel_P", "  of which P: |P - proj P| / |P|", "0"),
    ("rel_V", "  of which V: |V - proj V| / |V|", "0"),
    ("distance_identity", "distance to the subfamily C = c I", "0"),
    ("step_implied", "implied step: V[r, r] tr(A) / d, A the (phi, gamma phi') block", "alpha"),
)
LAYERS_FUNCTIONAL = (
    ("value_difference", "value difference to batch TD (fitted alpha): sum_s d(s) (v_td - v_tf)^2", "0"),
    ("sensitivity_cosine", "sensitivity similarity: sum_s d(s) cos(dv_tf/dphi_q, w_L)", "1"),
    ("implied_weight_cosine", "implied-weight similarity: cos(w_tf, w_L)", "1"),
    ("alpha_fitted", "fitted step size alpha of batch TD (trained alongside, same loss)", ""),
    ("heldout_loss_transformer", "held-out mean squared TD error: transformer", ""),
    ("heldout_loss_batch_td", "held-out mean squared TD error: batch TD, fitted alpha", ""),
    ("heldout_loss_zero", "held-out mean squared TD error: v = 0", ""),
)


def _fmt(s: dict) -> str:
    lo, hi = s["ci95"]
    return f"{s['mean']:.4g} [{lo:.4g}, {hi:.4g}]"


def _band(values: np.ndarray):
    k = values.shape[1]
    mean = values.mean(1)
    half = stats.t.ppf(0.975, k - 1) * values.std(1, ddof=1) / np.sqrt(k)
    return mean, mean - half, mean + half


def layers_curves_figure(res: dict, title: str):
    """Their Figure 2 panels over training: P's written entry vs the rest,
    Q's traces vs the rest, and the functional measures; mean and 95% band over seeds."""
    curve = res["curve"]
    x = np.array([c["mrps"] for c in curve])
    panels = [("structure: V (their P)", ("written_entry", "others_mean_abs_V")),
              ("structure: P (their Q)", ("trace_phi_phi", "trace_phi_gphi", "others_mean_abs_P")),
              ("distance to the construction family", ("distance", "distance_identity")),
              ("functional", ("sensitivity_cosine", "implied_weight_cosine", "value_difference")),
              ("training loss (their objective)", ("train_loss",))]
    fig, axes = plt.subplots(1, 5, figsize=(22, 4))
    for ax, (name, keys) in zip(axes, panels):
        for k in keys:
            v = np.array([c[k] for c in curve], dtype=float)
            mean, lo, hi = _band(v)
            ax.plot(x, mean, label=k)
            ax.fill_between(x, lo, hi, alpha=0.25)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("MRPs seen (per seed)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def layers_weights_figure(P: np.ndarray, V: np.ndarray, title: str):
    """Sign-aligned mean over seeds of the learned ``P`` and ``V`` (first layer
    when untied), one colour scale each."""
    if P.ndim == 4:
        P, V = P[:, 0], V[:, 0]
    s = np.where(V[:, -1, -1] >= 0, 1.0, -1.0)[:, None, None]
    Pm, Vm = (s * P).mean(0), (s * V).mean(0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, M, name in ((axes[0], Pm, "P (their Q), sign-aligned mean over seeds"),
                        (axes[1], Vm, "V (their P), sign-aligned mean over seeds")):
        vmax = float(np.abs(M).max()) or 1.0
        im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("column: phi | gamma phi' | r")
        ax.set_ylabel("row: phi | gamma phi' | r")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def markdown_layers(res: dict, name: str, command: str, config: dict | None, scale_note: str) -> str:
    cfg, f = res["config"], res["final"]
    L = [f"# Training report: {name} (Wang et al. 2025, Figure 2)", run_header(command, config),
         f"An L = {cfg['layers']}-layer ({'tied' if cfg['tied'] else 'untied'}) masked linear transformer trained with "
         "their objective (mean squared TD error of its own value predictions over 64 sliding-window prompts, the next "
         "prompt's value detached) on Boyan chains; batch TD(0) with a step size alpha fitted by Adam on the same loss "
         "and data alongside.",
         "",
         f"- Setting: {cfg['states']} states, d = {cfg['d']} features Unif(-1, 1) (fresh per MRP), n = {cfg['n']}, "
         f"gamma = {cfg['gamma']}; Adam lr {cfg['lr']:g}, weight decay {cfg['weight_decay']:g}; Xavier-normal "
         f"initialisation, gain {cfg['init_gain']:g}{'' if cfg['tied'] else ' / L'}.",
         f"- Scale: {cfg['mrps']} MRPs x {cfg['minibatches']} minibatches = {res['adam_steps']} Adam steps per seed, "
         f"{cfg['seeds']} seeds (base seed {cfg['seed']}); {scale_note}",
         f"- Time: {res['seconds']:.0f} s ({res['steps_per_s']:.1f} steps/s for all seeds together).",
         f"- Measures on {cfg['eval_mrps']} held-out Boyan chains per seed (one context window each, every state as "
         "the query); the curves below on "
         f"{cfg['curve_mrps']} fixed held-out chains every {cfg['log_every']} MRPs. Each entry: mean over seeds "
         "[95% Student-t interval].", "",
         "## Verdict", ""]
    thr = res["recovery_threshold"]
    L.append(f"Distance to the construction family: {_fmt(f['distance'])}; threshold {thr:.0%} on the upper end of the "
             f"interval: **{'RECOVERED' if res['recovered'] else 'NOT RECOVERED'}** "
             f"(upper end {res['distance_upper95']:.3g}).")
    L += ["", "Their Figure 2 reading, each decided on the 95% intervals over seeds: "
          + "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in res["pattern"].items()) + "."]
    L += ["", "## Their structure measures (our notation: their P is our V, their Q our P)", "",
          "| measure | construction | trained |", "|---|---|---|"]
    L += [f"| {label} | {want} | {_fmt(f[k])} |" for k, label, want in LAYERS_STRUCTURE]
    L += ["", "## Our distance to the construction family", "",
          "The family: P zero except -A on (phi, phi) and +A on (phi, gamma phi') (A = C^T, any preconditioner C), V "
          "zero except the written entry; it is a linear space closed under the layer's symmetries (scaling (cP, V/c), "
          "sign), and each relative residual below is invariant under them.", "",
          "| measure | construction | trained |", "|---|---|---|"]
    L += [f"| {label} | {want} | {_fmt(f[k])} |" for k, label, want in LAYERS_FAMILY]
    L += ["", "## Functional measures (theirs, on held-out chains)", "", "| measure | TD | trained |", "|---|---|---|"]
    L += [f"| {label} | {want} | {_fmt(f[k])} |" for k, label, want in LAYERS_FUNCTIONAL]
    L += ["", "Under the mask the query column never enters a key or a value, so the read-out is linear in phi_q: the "
          "sensitivity similarity and the implied-weight similarity coincide up to rounding when the features have "
          "full rank (both are computed independently, by autograd and by a weighted least-squares fit).", "",
          f"![curves]({name}-curves.png)", "", f"![weights]({name}-weights.png)", "",
          f"Weights: one `.npz` per seed ({res.get('weights_dir') or 'not saved'}), arrays P and V in "
          "`icrl-verify check --weights` shapes (an mrp record).", ""]
    return "\n".join(L)


def write_layers(res: dict, name: str, report_dir: str, command: str, config: dict | None, scale_note: str) -> dict:
    base = os.path.join(report_dir, name)
    P, V = res["P"].numpy(), res["V"].numpy()
    if P.ndim == 4:                                    # untied: L x seeds x D x D -> seeds x L x D x D
        P, V = P.transpose(1, 0, 2, 3), V.transpose(1, 0, 2, 3)
    figures = {"-curves": layers_curves_figure(res, f"{name}: mean and 95% band over {res['config']['seeds']} seeds"),
               "-weights": layers_weights_figure(P, V, f"{name}: learned weights")}
    data = {k: v for k, v in res.items() if k not in ("P", "V", "alpha")}
    data.update(name=name, command=command)
    write_report(base, markdown=markdown_layers(res, name, command, config, scale_note), data=data, figures=figures, dpi=80)
    return data
