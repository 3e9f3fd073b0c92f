"""The richness report: Markdown, JSON and the spectrum plot of
:func:`numerics.analysis.richness.richness`."""
from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np

from numerics.analysis.richness import BOOTSTRAP_SEED_OFFSET
from numerics.core.tolerances import FLAT_RTOL, FLAT_STEP_RTOL, KERNEL_RTOL
from numerics.io.report import run_header, write_report

CONDITION = ("Checkable richness condition at theta* (THEORY.md section 5): the kernel of H = E[J^T J] on the "
             "sample equals the symmetry tangent (identifiable), or every extra kernel direction is flat: the "
             "read-out's second-order term B(v, u) lies in the range of J for every kernel direction u "
             "(Morse-Bott; the zero set is a manifold through theta*).  A kernel direction v with B(v, v) outside "
             "the range of J makes the loss rise as t^4 along every curve tangent to v: no local exponential rate.")


def write(res: dict, out_dir: str, name: str, command: str, config: dict | None = None) -> str:
    """``out_dir/name.md`` (+ ``.json``, ``.png``), atomically; returns the Markdown path."""
    dt = res["details"]
    spec = res["_spectrum"]
    base = os.path.join(out_dir, name)
    vals = np.clip(spec.values, 1e-300, None)
    fig, ax = plt.subplots(figsize=(7, 4))
    idx = np.arange(vals.size)
    ker = spec.values < spec.threshold
    ax.semilogy(idx[ker], np.maximum(np.abs(spec.values[ker]), 1e-20), ".", color="tab:red",
                label=f"kernel ({int(ker.sum())}, |lambda| plotted, floor 1e-20)")
    ax.semilogy(idx[~ker], vals[~ker], ".", ms=2, color="tab:blue", label="off the kernel")
    ax.axhline(spec.threshold, color="k", ls="--", lw=0.8, label=f"threshold {KERNEL_RTOL:g} lambda_max")
    if math.isfinite(spec.mu):
        ax.axhline(spec.mu, color="tab:green", ls=":", lw=1, label=f"mu = {spec.mu:.3g} (gap x{spec.gap:.2g})")
    part = "" if spec.dense else f" (bottom {vals.size} of {dt['reduced_parameters']}; lambda_max = {spec.lam_max:.3g})"
    ax.set_title(f"E[J^T J] at theta*, reduced block{part}", fontsize=9)
    ax.set_xlabel("eigenvalue index (ascending)")
    ax.set_ylabel("eigenvalue")
    ax.legend(fontsize=7)
    fig.tight_layout()
    public = {k: v for k, v in res.items() if not k.startswith("_")}
    public["report"] = base + ".md"
    public["condition"] = CONDITION
    public["command"] = command
    sc = dt["symmetry_checks"]
    inv = dt["invariances"]
    lines = [f"# Richness report: {name}", run_header(command, config),
             f"**Verdict: {res['verdict']}**  ({res['parameterization']} parameterisation, "
             f"{res['parameters']} parameters)", "",
             "| quantity | value |", "|---|---|",
             f"| kernel dim | {res['kernel_dim']} |", f"| symmetry tangent dim (theory formula {dt['symmetry_formula']}) | {res['symmetry_dim']} |",
             f"| data invariances | {res['data_invariance_dim']} |", f"| non-flat kernel dims | {res['nonflat_dim']} |",
             f"| mu (smallest eigenvalue off the kernel) | {res['mu']:.6g} |",
             f"| mu 95% interval, parametric bootstrap ({dt['bootstrap_reps']} fresh MDP samples) | [{res['mu_ci95'][0]:.6g}, {res['mu_ci95'][1]:.6g}] |",
             f"| mean / relative spread of the bootstrap mus | {dt['bootstrap_mu_mean']:.6g} / {dt['bootstrap_mu_rel_spread']:.2g} |",
             f"| predicted local rate of the loss, 2 mu | {res['predicted_rate']:.6g} |",
             f"| mu inside its bootstrap interval | {dt['mu_in_ci95']} |",
             f"| lambda_max | {dt['lambda_max']:.6g} |",
             f"| spectral gap mu / largest kernel eigenvalue | {dt['spectral_gap']:.3g} |", "",
             "## Condition checked", "", CONDITION, "",
             "## The bootstrap interval", "",
             f"Parametric bootstrap over MDP samples.  The MDP distribution is known, so each of the "
             f"{dt['bootstrap_reps']} replicates draws a fresh sample of the same size from it ({dt['mdps']} new MDPs x "
             f"{dt['frames_per_mdp']} frames, n = {dt['n']}, drawn as in Algorithm 1 with seeds "
             f"{', '.join(str(x) for x in dt['bootstrap_seeds']) or '-'} = seed + {BOOTSTRAP_SEED_OFFSET} + k), forms "
             f"its E[J^T J] in closed form and takes the smallest eigenvalue above {KERNEL_RTOL:g} x its own "
             f"lambda_max (same eigensolver as above, with this sample's reduced kernel dimension {dt['reduced_kernel_dim']}).  "
             f"Replicate mus: {', '.join(f'{x:.4g}' for x in dt['bootstrap_mus']) or 'none'}; mean "
             f"{dt['bootstrap_mu_mean']:.4g}, relative spread (standard deviation / mean) "
             f"{dt['bootstrap_mu_rel_spread']:.2g}.  The interval is the 2.5 and 97.5 percentiles of the replicate "
             "mus: it describes the sampling variability of mu for a sample of this size from this distribution "
             "(where the mu of another such sample would fall), not a confidence interval for a population value "
             "and not an error bar of the eigensolver.  The main sample's mu is itself one such draw; with R "
             f"replicates an independent draw lies inside their range with probability (R - 1) / (R + 1) = "
             f"{dt['bootstrap_coverage_of_range']:.2f} (the interpolated percentiles are slightly narrower), so "
             "'mu inside its bootstrap interval' is a consistency check that can fail by chance when R is small; for "
             "small R the interval is close to the replicates' range and '95%' is nominal only (the mean and the "
             "relative spread are then the more useful numbers; raise --bootstrap for a sharper interval).  "
             "The rate prediction for a given sample uses that sample's own mu.", "",
             "## How", "",
             f"- Sample: {dt['prompts']} prompts = {dt['mdps']} MDPs x {dt['frames_per_mdp']} frames, n = {dt['n']}, "
             f"drawn as in Algorithm 1; d = {dt['d']}, m = {dt['m']}, p = {dt['p']}.",
             "- H = E[J^T J] at theta* in closed form from the Lemma C.1 structure (numerics/hessian.py), "
             f"eigensolver: {dt['eigensolver']}.",
             f"- Rank decision: eigenvalue < {KERNEL_RTOL:g} x lambda_max = {dt['kernel_threshold']:.3g}; largest kernel "
             f"eigenvalue {dt['largest_kernel_eigenvalue']:.3g}, mu = {res['mu']:.3g}: gap x{dt['spectral_gap']:.3g}.",
             f"- Zero residual at theta*: loss / zero-update loss = {sc['theta_star_rel_loss']:.2e}, so H = E[J^T J].",
             f"- Symmetries: |H v_scale| / (lambda_max |v|) = {sc['scaling_H_residual']:.2e}; part of v_scale outside "
             f"the kernel {sc['scaling_outside_kernel']:.2e}; loss on the exact orbit (c = -2, 0.5, 3) relative to the "
             f"zero-update loss {sc['orbit_max_rel_loss']:.2e}.",
             f"- Flatness: Gram of the second-order term projected off range(J) on the kernel; eigenvalues relative "
             f"to the unprojected Gram's largest: {', '.join(f'{x:.2e}' for x in dt['flat_gram_eigenvalues'][:12])}"
             f"{' ...' if len(dt['flat_gram_eigenvalues']) > 12 else ''} (flat below {FLAT_RTOL:g}; gap x{dt['flat_gap']:.3g}).",
             f"- Straight-line flat subspace of the flat directions: dim {dt['straight_flat_dim']}; unit steps along "
             f"random combinations: largest loss / zero-update loss = {dt['finite_step_max_rel_loss']:.2e} "
             f"(exactly flat below {FLAT_STEP_RTOL:g})."]
    if dt.get("quartic_rise"):
        qr = dt["quartic_rise"]
        lines.append(f"- Non-flat reduced direction: loss / t^4 at t = 1e-3, 1e-2, 1e-1: "
                     f"{', '.join(f'{x:.4g}' for x in qr['loss_over_t4'])}; quartic coefficient after the best "
                     f"second-order correction {qr['projected_quartic']:.4g} > 0.")
    if "full_symmetry_check" in dt:
        fs, pv = dt["full_symmetry_check"], dt["p22_vbar22"]
        lines += [f"- Full parameterisation: never-read entries ({fs['never_read']}) and antisymmetric P22 "
                  f"({fs['antisymmetric_p22']}) changed at a random (P, V): read-out change {fs['max_readout_change']:.2e} "
                  f"(read-out scale {fs['readout_scale']:.3g}); at theta* the Jacobian in P22 and Vbar22 is zero, so the "
                  f"full Hessian is the reduced one plus zero rows.",
                  f"- (P22 symmetric, Vbar22): {pv['dim']} kernel directions; flat combinations need w~^T P22 w~ = 0 and "
                  f"Vbar22 w~ = 0 on every prompt; rank of the quadratic forms {pv['rank_quadratic_forms']}, of the "
                  f"parameter columns {pv['rank_parameter_columns']}: {pv['radical']} flat, {pv['dim'] - pv['radical']} not."]
        if "quartic_rise_p22_vbar22" in dt:
            qr = dt["quartic_rise_p22_vbar22"]
            fa = dt["flat_alone"]
            lines.append(f"- P22 = e1 e1^T with Vbar22 = 1 e1^T / sqrt(q): each alone leaves the loss at "
                         f"{fa['p22']:.2e} / {fa['vbar22']:.2e}; together loss / t^4 = "
                         f"{', '.join(f'{x:.4g}' for x in qr['loss_over_t4'])} (t = 1e-3, 1e-2, 1e-1), after the best "
                         f"second-order correction {qr['projected_quartic']:.4g}: the cubic term of Lemma C.1 makes "
                         f"the loss quartic, so the zero set is not a manifold at theta*.")
    lines += ["", "## Invariances in the prompt's own terms", ""]
    if inv["sentences"]:
        lines += [f"- {s}" for s in inv["sentences"]]
        lines.append(f"- These explain {inv['explained']} of the {inv['found']} reduced data-invariance dimensions found "
                     f"(all inside the flat kernel: {inv['explanations_in_kernel']}).")
    else:
        lines.append(f"- No context or parameter column null vector; reduced data invariances found: {inv['found']}.")
    lines += ["", f"![spectrum]({name}.png)", "", f"Runtime {dt['seconds']:.1f} s.", ""]
    return write_report(base, markdown="\n".join(lines), data=public, figures={"": fig}, dpi=110)["md"]


def _fmt(x, spec=".4g"):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _extrapolate(dt: dict) -> str:
    """Coverage grows about linearly with the number of MDPs: the size at which
    the least-covered pair would reach d + 1, from the last two sizes."""
    lad = [s for s in dt["ladder"] if s.get("coverage_min")]
    if len(lad) < 2 or lad[-1]["coverage_ok"]:
        return ""
    a, b = lad[-2], lad[-1]
    rate = (b["coverage_min"] - a["coverage_min"]) / max(b["mdps"] - a["mdps"], 1)
    if rate <= 0:
        return ""
    need = b["mdps"] + (dt["adequacy"]["coverage_needed"] - b["coverage_min"]) / rate
    return (f"  Extrapolated from the last two sizes (coverage grows by {rate:.3f} MDPs per added MDP): about "
            f"{need:,.0f} MDPs ({need * dt['frames_per_mdp']:,.0f} prompts) for d + 1 per pair, an estimate, "
            "not a measurement.")


def write_structured(res: dict, out_dir: str, name: str, command: str, config: dict | None = None) -> str:
    """The report of the structured (one-hot) route: verdict or
    ``undersampled``, the sample ladder, the closed-form invariances in words,
    counts per decade; ``out_dir/name.md`` (+ ``.json``, ``.png``), atomically."""
    dt = res["details"]
    cf, ad = dt["closed_form"], dt["adequacy"]
    base = os.path.join(out_dir, name)
    fig, ax = plt.subplots(figsize=(7, 4))
    for s in dt["ladder"]:
        if s.get("counts"):
            xs = [float(k) for k in s["counts"]]
            ax.semilogx(xs, list(s["counts"].values()), "o", label=f"{s['prompts']} prompts")
    if dt.get("decade_counts"):
        xs = [float(k) for k in dt["decade_counts"]]
        ax.semilogx(xs, list(dt["decade_counts"].values()), "k-", lw=1, label="final sample, every decade")
    ax.axhline(cf["expected_kernel"], color="tab:green", ls=":", label=f"closed form + scaling ({cf['expected_kernel']})")
    ax.axvline(KERNEL_RTOL, color="k", ls="--", lw=0.8, label=f"kernel threshold {KERNEL_RTOL:g}")
    ax.set_xlabel("x / lambda_max")
    ax.set_ylabel("eigenvalues of E[J^T J] below x")
    ax.set_title("Eigenvalue counts by inertia (structured route)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    public = {k: v for k, v in res.items() if not k.startswith("_")}
    public["report"] = base + ".md"
    public["command"] = command
    verdict = res["verdict"]
    head = f"**Verdict: {verdict}**" if verdict not in ("undersampled", "unresolved") else \
        f"**No verdict: {verdict}**"
    last = dt["ladder"][-1]
    lines = [f"# Richness report: {name}", run_header(command, config),
             f"{head}  (reduced parameterisation, {res['parameters']:,} parameters, d = {dt['d']}; structured route: "
             "exact eigenvalue counts by inertia, no p x p matrix)", ""]
    if verdict == "undersampled":
        lines += [f"The sample is not adequate, so no verdict is given: {ad['reason']}.  Last size: "
                  f"{last['prompts']:,} prompts from {last['mdps']:,} MDPs; least-covered visited state-action seen by "
                  f"{last['coverage_min']} distinct MDPs (needed d + 1 = {ad['coverage_needed']}); sampled kernel "
                  f"{_fmt(res['kernel_dim'], 'd') if res['kernel_dim'] is not None else 'not computed'} against the "
                  f"closed-form count {cf['expected_kernel']:,} (scaling + {cf['invariance_dim']:,} invariances).  "
                  "Raise --max-prompts / --time-limit, or give --prompts." + _extrapolate(dt), ""]
    elif verdict == "unresolved":
        lines += [f"The sample is adequate but its kernel ({res['kernel_dim']:,}) exceeds the closed-form count "
                  f"({cf['expected_kernel']:,}): {res['kernel_dim'] - cf['expected_kernel']} kernel directions no "
                  "closed form explains; the structured route does not classify them (use --solver dense at a "
                  "smaller size).", ""]
    lines += ["| quantity | value |", "|---|---|",
              f"| prompts used (final sample) | {res['prompts']:,} |",
              f"| kernel dim (sampled) | {_fmt(res['kernel_dim'], ',') if res['kernel_dim'] is not None else '-'} |",
              f"| closed-form kernel: scaling + invariances | 1 + {cf['invariance_dim']:,} = {cf['expected_kernel']:,} "
              f"({cf['context_null']} context null vectors x (p + q) = {dt['p'] + dt['q']}) |",
              f"| sampled kernel reached the closed form | {res['kernel_dim'] == cf['expected_kernel']} |",
              f"| data invariances | {_fmt(res['data_invariance_dim'], ',') if res['data_invariance_dim'] is not None else '-'} |",
              f"| mu (smallest eigenvalue above {KERNEL_RTOL:g} lambda_max) | {_fmt(res['mu'], '.6g')} |",
              f"| mu 95% interval, parametric bootstrap ({dt['bootstrap_reps']} fresh samples of the final size) | "
              f"[{_fmt(res['mu_ci95'][0], '.4g')}, {_fmt(res['mu_ci95'][1], '.4g')}] |",
              f"| predicted local rate of the loss, 2 mu | {_fmt(res['predicted_rate'], '.6g')} |",
              *([f"| mu | {dt['mu_note']} |"] if dt.get("mu_note") else []),
              f"| adequate sample | {ad['adequate']} (coverage {ad['coverage_ok']}, gap {ad['gap_ok']}, stable "
              f"{ad['stable']}, replicates agree {ad['replicates_agree']}) |",
              f"| runtime | {dt['seconds']:.1f} s |", "",
              "## Sample sizes", "",
              "| MDPs | prompts | visited pairs | min / median MDPs per pair | kernel | count < 1e-12 lambda_max | gap | "
              "mu | mu certified by inertia | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in dt["ladder"]:
        c = s.get("counts") or {}
        lines.append(f"| {s['mdps']:,} | {s['prompts']:,} | {s['visited_pairs']} | {s['coverage_min']} / "
                     f"{s['coverage_median']:.0f} | {_fmt(s.get('kernel'), ',') if s.get('kernel') is not None else s.get('kernel_note', 'skipped (coverage)')} | "
                     f"{c.get('1e-12', '-')} | {s.get('gap', '-')} | {_fmt(s.get('mu'))} | {s.get('mu_certified', '-')} | "
                     f"{_fmt(s.get('seconds'), '.1f')} |")
    if dt["replicates"]:
        lines += ["", "Bootstrap replicates (fresh samples of the final size, seeds from (seed, 1000 + k, chunk)): "
                  + "; ".join(f"kernel {r.get('kernel')}, mu {_fmt(r.get('mu'))}" for r in dt["replicates"]) + "."]
    if dt.get("decade_counts"):
        lines += ["", "## Eigenvalue counts per decade (final sample)", "",
                  "| x / lambda_max | " + " | ".join(dt["decade_counts"]) + " |",
                  "|---|" + "---|" * len(dt["decade_counts"]),
                  "| eigenvalues below x | " + " | ".join(str(v) for v in dt["decade_counts"].values()) + " |"]
    sc = dt.get("symmetry_checks") or {}
    lines += ["", "## How", "",
              f"- Sample: Algorithm 1 windows (n = {dt['n']}, {dt['frames_per_mdp']} frames per MDP), drawn in chunks "
              f"of {dt['chunk_mdps']} MDPs with their own seeds, so a larger sample contains the smaller; the sample "
              "doubles until the kernel is the same at two sizes with a gap and every state-action visited by d + 1 "
              "MDPs, then the bootstrap replicates must agree.",
              "- Spectrum: H = E[J^T J] held as per-pair Jacobian data; the count of eigenvalues below x is the "
              "number of negative pivots of N (H - x): the V block eliminated by its Schur complement (N C_s "
              "diagonalised once), the dP rows split into components that share no pair, each factorised by "
              "Bunch-Kaufman LDL^T (LAPACK sytrf), the reward row last (Haynsworth inertia additivity).  "
              "mu: shift-invert Lanczos on (H - sigma)^{-1} with sigma below mu from the counts, Rayleigh "
              "quotients with H, certified by the counts at mu (1 -+ 1e-9).  lambda_max: Lanczos on H.",
              f"- Symmetry and invariances inside the kernel: |H v_scale| / (lambda_max |v|) = {_fmt(sc.get('scaling'), '.2e')}; "
              f"random closed-form invariance directions {_fmt(sc.get('invariances'), '.2e')}.",
              f"- Population Hessian: {dt['population']}.", "",
              "## Invariances in words", "",
              f"Computed from the support of {cf['support_mdps']} MDPs of the family ({cf['support_columns']:,} possible "
              f"context columns): {cf['context_null']} context null vectors c (every column x has x . c = 0), each giving "
              f"P12 + c v^T and Vbar21 + u c^T: {cf['invariance_dim']:,} flat directions.  {cf['named']} of them are "
              "named below (one group of state-actions each):", ""]
    sent = cf["sentences"]
    lines += [f"- {s}" for s in sent[:12]]
    if len(sent) > 12:
        lines.append(f"- ... and {len(sent) - 12} more groups of the same kind (all in the JSON).")
    lines += ["", "What would remove them: a gamma drawn per MDP (--gamma-range: the factor gamma then differs between "
              "columns), features that are not one-hot per pair (fresh features per MDP), or windows in which the "
              "pairs of a group are not always followed by the same next pairs.", "",
              f"![counts]({name}.png)", ""]
    return write_report(base, markdown="\n".join(lines), data=public, figures={"": fig}, dpi=110)["md"]
