"""The report of Wang et al.'s Figure 2 experiment (``icrl-verify train
--layout wang2025``): Markdown, JSON, the curves of their measures over
training (mean and 95% band over seeds) and the learned weights beside the
construction."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from numerics.io.report import run_header, write_report

#: (key, label, what the construction gives) of the measures, in report order.
STRUCTURE = (
    ("written_entry", "V's written entry V[r, r] (their P[-1,-1]), sign-aligned", "> 0 (1 for C = I)"),
    ("others_mean_abs_V", "mean |V| over the other D^2 - 1 entries", "0"),
    ("trace_phi_phi", "tr P[phi, phi] (their Q upper-left), sign-aligned", "-tr C < 0"),
    ("trace_phi_gphi", "tr P[phi, gamma phi'] (their Q upper-right), sign-aligned", "+tr C > 0"),
    ("others_mean_abs_P", "mean |P| off those two diagonals", "0"),
    ("others_P_theirs", "the same by their formula (subtracts signed traces)", "2 tr|C| / (D^2 - 2d) != 0"),
)
FAMILY = (
    ("distance", "distance to the construction family (any C), modulo scaling and sign", "0"),
    ("rel_P", "  of which P: |P - proj P| / |P|", "0"),
    ("rel_V", "  of which V: |V - proj V| / |V|", "0"),
    ("distance_identity", "distance to the subfamily C = c I", "0"),
    ("step_implied", "implied step: V[r, r] tr(A) / d, A the (phi, gamma phi') block", "alpha"),
)
FUNCTIONAL = (
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


def curves_figure(res: dict, title: str):
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


def weights_figure(P: np.ndarray, V: np.ndarray, title: str):
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


def markdown(res: dict, name: str, command: str, config: dict | None, scale_note: str) -> str:
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
    L += [f"| {label} | {want} | {_fmt(f[k])} |" for k, label, want in STRUCTURE]
    L += ["", "## Our distance to the construction family", "",
          "The family: P zero except -A on (phi, phi) and +A on (phi, gamma phi') (A = C^T, any preconditioner C), V "
          "zero except the written entry; it is a linear space closed under the layer's symmetries (scaling (cP, V/c), "
          "sign), and each relative residual below is invariant under them.", "",
          "| measure | construction | trained |", "|---|---|---|"]
    L += [f"| {label} | {want} | {_fmt(f[k])} |" for k, label, want in FAMILY]
    L += ["", "## Functional measures (theirs, on held-out chains)", "", "| measure | TD | trained |", "|---|---|---|"]
    L += [f"| {label} | {want} | {_fmt(f[k])} |" for k, label, want in FUNCTIONAL]
    L += ["", "Under the mask the query column never enters a key or a value, so the read-out is linear in phi_q: the "
          "sensitivity similarity and the implied-weight similarity coincide up to rounding when the features have "
          "full rank (both are computed independently, by autograd and by a weighted least-squares fit).", "",
          f"![curves]({name}-curves.png)", "", f"![weights]({name}-weights.png)", "",
          f"Weights: one `.npz` per seed ({res.get('weights_dir') or 'not saved'}), arrays P and V in "
          "`icrl-verify check --layout wang2025 --weights` shapes.", ""]
    return "\n".join(L)


def write(res: dict, name: str, report_dir: str, command: str, config: dict | None, scale_note: str) -> dict:
    base = os.path.join(report_dir, name)
    P, V = res["P"].numpy(), res["V"].numpy()
    if P.ndim == 4:                                    # untied: L x seeds x D x D -> seeds x L x D x D
        P, V = P.transpose(1, 0, 2, 3), V.transpose(1, 0, 2, 3)
    figures = {"-curves": curves_figure(res, f"{name}: mean and 95% band over {res['config']['seeds']} seeds"),
               "-weights": weights_figure(P, V, f"{name}: learned weights")}
    data = {k: v for k, v in res.items() if k not in ("P", "V", "alpha")}
    data.update(name=name, command=command)
    write_report(base, markdown=markdown(res, name, command, config, scale_note), data=data, figures=figures, dpi=80)
    return data
