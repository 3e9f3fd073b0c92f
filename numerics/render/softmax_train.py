"""The Theorem 3 report (Xie et al. 2026): Markdown, JSON and a PNG (the
loss curves of the random starts with the construction's loss as a line,
and the Hessian spectrum at the construction) of
:func:`numerics.analysis.softmax_train.experiment`."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from numerics.analysis.softmax_train import FLAT_RTOL, ROUNDING_RTOL, SIGMAS
from numerics.io.report import run_header, write_report

READING_TEXT = {
    "neu": "NEU: E (1/(n+1)) sum_j (sum_k delta_k(v_L) K(s_{k-1}, s_j))^2, K the fixed feature softmax kernel",
    "value": "value: E (v_L(s_n) - v_pi(s_n))^2",
}


def public(res: dict) -> dict:
    """The result without tensors of parameters (kept: the numbers a reader checks)."""
    cases = []
    for c in res["cases"]:
        c = dict(c)
        c.pop("curves", None)
        c["hessian_eigenvalues"] = c["hessian_eigenvalues"].tolist()
        c["grad"] = c["grad"].tolist()
        c["lam_min_vector"] = c["lam_min_vector"].tolist()
        c["runs"] = [{k: (v.reshape(-1).tolist() if hasattr(v, "reshape") else v) for k, v in r.items()}
                     for r in c["runs"]]
        for key in ("family", "descent"):
            c[key] = {k: (v.reshape(-1).tolist() if hasattr(v, "reshape") else v) for k, v in c[key].items()}
        cases.append(c)
    out = {k: v for k, v in res.items() if k != "cases"}
    out["symmetry_directions"] = res["symmetry_directions"].tolist()
    out["cases"] = cases
    return out


def figure(res: dict):
    cases = res["cases"]
    fig, axes = plt.subplots(2, len(cases), figsize=(4 * len(cases), 7), squeeze=False)
    for k, c in enumerate(cases):
        ax = axes[0, k]
        curves = c["curves"].numpy()
        steps = np.arange(curves.shape[1])
        for i in range(curves.shape[0]):
            ax.semilogy(steps, curves[i], lw=0.8, alpha=0.8)
        finals = [r["train_loss"] for r in c["runs"] if "train_loss" in r]
        ax.semilogy(np.full(len(finals), curves.shape[1] + 2), finals, "k.", ms=4, label="after L-BFGS")
        ax.axhline(c["loss_star"], color="r", ls="--", lw=1, label="construction")
        ax.axhline(c["family"]["train_loss"], color="b", ls=":", lw=1, label="best family member")
        ax.set_title(f"{c['reading']}, L = {c['layers']}: {c['verdict']}", fontsize=9)
        ax.set_xlabel("Adam step")
        ax.set_ylabel("loss (training sample)")
        ax.legend(fontsize=6)
        ax = axes[1, k]
        lam = c["hessian_eigenvalues"].numpy()
        ax.semilogy(np.arange(len(lam)), np.abs(lam), "o", ms=3, color="gray", label="|lambda|")
        neg = lam < 0
        ax.semilogy(np.arange(len(lam))[neg], np.abs(lam[neg]), "rx", ms=5, label="negative")
        ax.set_xlabel("eigenvalue index")
        ax.set_ylabel("|eigenvalue| of the Hessian at the construction")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def write(res: dict, out_dir: str, name: str, command: str, config: dict) -> str:
    """``out_dir/name.md`` (+ ``.json``, ``.png``) atomically; returns the Markdown path."""
    base = os.path.join(out_dir, name)
    cfg = res["config"]
    cls = ("A[phi, phi] (d^2) and the current row's (r, target, current) entries (3)" if cfg["form"] == "one-head" else
           "A[phi, phi] (d^2), head 1's current row and head 2's target row on (r, target, current) (3 + 3)")
    lines = [f"# Theorem 3 (Xie et al. 2026): is the construction a global minimiser? ({name})",
             run_header(command, config),
             "The paper's loss J_{L,n} and its App. F.2 masks could not be read (docs/xie2026.md, \"Theorem 3\"); "
             "the claim is decided under these readings, stated, not the paper's:", ""]
    for r in cfg["readings"]:
        lines.append(f"- {READING_TEXT[r]}")
    lines += ["", f"Masked class (our reading of F.2): {cls}, everything else zero; "
              f"{'tied' if cfg['tied'] else 'untied'} layers, {cfg['form']}.  Family: A[phi, phi] = c I, row "
              f"alpha [1, 1, -1] (two-head: and gamma alpha [1, 1, -1]); the construction is c = alpha = 1.", "",
              f"Sample: {cfg['mrps']} random MRPs ({cfg['states']} states, Dirichlet rows, rewards U(-1, 1), "
              f"gamma = {cfg['gamma']}), {cfg['features']} features of norm sqrt(tau) = sqrt({cfg['tau']}) in d = "
              f"{cfg['d']}, each MRP kept only when Assumption 5.1 holds with our reading of M_pi (margins: min "
              f"{res['margin_min']:.3g}, median {res['margin_median']:.3g}); one window of n = {cfg['n']} per MRP; "
              f"a second, held-out sample of the same size.  Softmax symmetries (directions of A that add a "
              f"constant to every score of a query column for every feature set): {len(res['symmetry_directions'])}.",
              "",
              f"Verdict rule: holds iff |grad| <= {SIGMAS:g} se + {ROUNDING_RTOL:g} J*/|theta*|, lambda_min >= "
              f"-({SIGMAS:g} se + {ROUNDING_RTOL:g} lambda_max), and no candidate (the {cfg['inits']} random starts "
              f"after {cfg['steps']} Adam steps and {cfg['polish']} L-BFGS iterations, L-BFGS descent from the "
              f"construction, the family's best member) has a held-out loss below the construction's by more than "
              f"{SIGMAS:g} paired standard errors + {ROUNDING_RTOL:g} J*.  Standard errors are over prompts.", "",
              "| reading | L | J* (train / held-out) | abs grad (se) | abs grad abs theta*/J* | lambda_min (se) "
              "| lambda_max "
              "| best start: train / held-out | family best (c, alpha): held-out | descent: held-out | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        f, dsc = c["family"], c["descent"]
        best = "diverged" if c["best_loss"] is None else f"{c['best_loss']:.4g} / {c['best_heldout']:.4g}"
        lines.append(f"| {c['reading']} | {c['layers']} | {c['loss_star']:.4g} / {c['heldout_star']:.4g} | "
                     f"{c['grad_norm']:.3g} ({c['grad_se']:.2g}) | {c['grad_relative']:.3g} | "
                     f"{c['lam_min']:.3g} ({c['lam_min_se']:.2g}) | {c['lam_max']:.3g} | {best} | "
                     f"({f['c']:.3g}, {f['alpha']:.3g}): {f['heldout_loss']:.4g} | {dsc['heldout_loss']:.4g} | "
                     f"**{c['verdict']}** |")
    for c in res["cases"]:
        lines += ["", f"## {c['reading']}, L = {c['layers']}: {c['verdict']}", ""]
        lines += [f"- {r}" for r in c["reasons"]] or ["- gradient zero, Hessian PSD and no lower loss, within the rule"]
        lines += [f"- {c['parameters']} parameters; Hessian eigenvalues flat (below {FLAT_RTOL:g} lambda_max): "
                  f"{c['flat_count']}; exact softmax symmetries: {c['symmetries']}"
                  + ("" if c["symmetries_explain_flat"] is None else
                     " (smallest cosine between the flat space and the symmetries: "
                     f"{c['symmetries_explain_flat']:.3g})")
                  + f"; loss change along them through forward_layers: {c['symmetry_loss_change']:.2g}.",
                  f"- Full, unmasked class (every entry of V and A, through forward_layers): |grad| "
                  f"{c['full_gradient']['norm']:.3g}, of which {c['full_gradient']['masked']:.3g} on the masked "
                  f"entries and {c['full_gradient']['off_mask']:.3g} off them (largest off-mask entry "
                  f"{c['full_gradient']['largest_off_mask']:.3g} at {c['full_gradient']['largest_off_mask_at']}: "
                  f"(matrix, layer, [head,] row, column), rows 0..d-1 phi, d reward, d+1 target, d+2 current).",
                  f"- Fast path vs forward_layers at the construction: loss {c['fast_vs_block_loss']:.2g}, gradient "
                  f"{c['fast_vs_block_grad']:.2g}, Hessian-vector product {c['fast_vs_block_hvp']:.2g} (max abs).",
                  f"- Descent from the construction (L-BFGS): train {c['descent']['train_loss']:.6g}, held-out "
                  f"{c['descent']['heldout_loss']:.6g}, distance to the construction "
                  f"{c['descent']['to_construction']:.3g}"
                  f", to the family {c['descent']['to_family']:.3g} (c = {c['descent']['family_c']:.4g}, alpha = "
                  f"{c['descent']['family_alpha']:.4g}).", "",
                  "| start | after Adam | train | held-out | held-out - J* (se) | dist. to construction | "
                  "dist. to family | fitted c | fitted alpha |", "|---|---|---|---|---|---|---|---|---|"]
        for r in c["runs"]:
            if "train_loss" not in r:
                lines.append(f"| {r['init']} | diverged | | | | | | | |")
                continue
            lines.append(f"| {r['init']} | {r['adam_loss']:.4g} | {r['train_loss']:.6g} | {r['heldout_loss']:.6g} | "
                         f"{r['heldout_loss'] - c['heldout_star']:+.3g} ({r['diff_se']:.2g}) | "
                         f"{r['to_construction']:.3g} | {r['to_family']:.3g} | {r['family_c']:.3g} | "
                         f"{r['family_alpha']:.3g} |")
    lines += ["", "Distances: to the construction, |theta - theta* - y S| / |theta*| minimised over the symmetry "
              "directions S; to the family, the sine of the angle between theta (its symmetry part removed) and the "
              "plane {c a + alpha v}: 0 on the family, 1 orthogonal to it.", "",
              f"![loss curves and Hessian spectra]({name}.png)", ""]
    data = public(res)
    data["command"] = command
    data["report"] = base + ".md"
    write_report(base, markdown="\n".join(lines), data=data, figures={"": figure(res)})
    return base + ".md"
