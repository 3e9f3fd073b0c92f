"""``icrl-verify ablation``: the richness ablation.  Train the block by
teacher mimicking on narrow and rich MDP distributions and show where the
weights end up, next to each distribution's richness verdict.

Distributions (same states, actions, gamma, n, teacher):

* ``onehot-fixed-gamma``: one-hot features, one fixed gamma (narrow: every
  context column is orthogonal to ``(gamma 1, -1, 0)``, THEORY.md section 5);
* ``onehot-gamma-range``: one-hot features, gamma drawn per MDP;
* ``dense-shared``: one dense feature draw shared by every MDP, fixed gamma;
* ``section-4.1``: dense features drawn afresh per MDP (Section 4.1).

For each, several seeds of ``numerics.train`` (same budget everywhere), and
per seed: the held-out loss, the relative distance of ``(P12, Vbar21)`` to
``M*``, the fitted ``c``, and the component of the learned weights'
offset from ``M*`` along the extra kernel of the Hessian ``H_L`` at the
construction (the kernel minus the scaling tangent: for a ``morse-bott``
verdict these are exactly the data-invariance directions), each relative to
the norm of the closest point of ``M*``.  Prediction of Theorem 3.2's
richness condition: identifiable distributions end on ``M*``; Morse-Bott
ones end on the larger zero-loss set, off ``M*`` along the invariances.
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import torch

from numerics.errors import InputError
from numerics.train import TrainConfig, reproduce_command, train_block

#: (name, description, TrainConfig overrides).
DISTRIBUTIONS = (
    ("onehot-fixed-gamma", "one-hot features, fixed gamma (narrow)", dict(features="onehot")),
    ("onehot-gamma-range", "one-hot features, gamma ~ Unif(0.3, 0.7) per MDP",
     dict(features="onehot", gamma_range=(0.3, 0.7))),
    ("dense-shared", "one dense feature draw shared by all MDPs, fixed gamma", dict(features="dense-shared")),
    ("section-4.1", "dense features drawn per MDP, fixed gamma (Section 4.1)", dict(features="dense")),
)

#: Default small scale (a few minutes on 2 cores for all four distributions x 2 seeds).
ABLATION_SCALE = dict(states=3, actions=2, n=10, mdps=640, frames=40, batch_mdps=32, lr=2e-2, lr_decay=0.85,
                      lr_every=32, eval_mdps=32)


def richness_and_kernel(cfg: TrainConfig, sample_mdps: int = 200, sample_frames: int = 10, seed: int = 12345):
    """The richness helper's analysis of ``cfg``'s distribution
    (:func:`numerics.richness.richness`, reduced parameters, no bootstrap)
    and, from the same prompt sample, an orthonormal basis (columns, reduced
    coordinates at ``c = 1``) of the kernel of ``H_L = E[J^T J]`` at
    ``theta*`` minus the scaling tangent: the "extra kernel", which is
    exactly the data-invariance subspace when the verdict is ``morse-bott``.

    Returns ``(richness fields, basis)``; the fields are ``verdict``,
    ``kernel_dim``, ``data_invariance_dim``, ``mu``.
    """
    from numerics.hessian import join_reduced, sample_prompts
    from numerics.richness import richness
    sample = sample_prompts(cfg.algorithm, cfg.distribution(), mdps=sample_mdps, frames_per_mdp=sample_frames,
                            n=cfg.n, epsilon=cfg.epsilon, alpha=cfg.alpha, beta=cfg.beta, seed=seed)
    out = richness(cfg.distribution(), cfg.algorithm, "reduced", n=cfg.n, epsilon=cfg.epsilon, alpha=cfg.alpha,
                   beta=cfg.beta, seed=seed, bootstrap=0, sample=sample, keep=True)
    K = np.asarray(out["_spectrum"].kernel)
    P12s, Vbar21s = sample.construction()
    t = join_reduced(P12s, -Vbar21s).numpy()
    t = t / np.linalg.norm(t)
    if K.shape[1] == 0:
        basis = K
    else:
        U, s, _ = np.linalg.svd(K - np.outer(t, t @ K), full_matrices=False)
        basis = U[:, s > 0.5]
    return {k: out[k] for k in ("verdict", "kernel_dim", "data_invariance_dim", "mu")}, basis


def invariance_component(P12, Vbar21, c: float, P12s, Vbar21s, basis: np.ndarray) -> dict:
    """Split the learned ``(P12, Vbar21)``'s offset from ``M*`` into a part
    along the extra kernel and the rest.

    The extra kernel at ``c = 1`` (``basis``, columns) is carried to the
    point ``(c' P12*, Vbar21*/c')`` by the symmetry ``(P, V) -> (c' P, V/c')``;
    the learned weights are fitted by ``(c' P12*, Vbar21*/c') + S_c' K a``
    over ``c'`` (same sign as ``c``, 1-D search) and ``a`` (least squares).
    Returns ``invariance_component`` = ``|S_c' K a|`` and
    ``other_component`` = the fit's residual, both relative to the norm of
    the closest point ``(c P12*, Vbar21*/c)`` of ``M*``, and ``fit_c`` = ``c'``.
    For one-hot features with a fixed gamma this set (M* plus its
    invariance directions) is exactly the zero-loss set (THEORY.md section 5).
    """
    from scipy.optimize import minimize_scalar
    from numerics.hessian import join_reduced, split_reduced
    to_t = lambda x: torch.as_tensor(x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x))
    P12, Vbar21, P12s, Vbar21s = (to_t(x) for x in (P12, Vbar21, P12s, Vbar21s))
    m, p = P12s.shape
    theta = join_reduced(P12, Vbar21).numpy()
    norm = float(np.linalg.norm(join_reduced(c * P12s, Vbar21s / c).numpy()))
    if basis.shape[1] == 0:
        r = theta - join_reduced(c * P12s, Vbar21s / c).numpy()
        return {"invariance_component": 0.0, "other_component": float(np.linalg.norm(r)) / norm, "fit_c": c}
    dP, dV = split_reduced(torch.as_tensor(basis.T), m, p)

    def fit(cc):
        r = theta - join_reduced(cc * P12s, Vbar21s / cc).numpy()
        B = join_reduced(cc * dP, dV / cc).numpy().T
        coef, *_ = np.linalg.lstsq(B, r, rcond=None)
        along = B @ coef
        return float(np.linalg.norm(r - along)), float(np.linalg.norm(along))

    sign, mag = math.copysign(1.0, c), abs(c)
    grid = mag * np.logspace(-1.5, 1.5, 61)
    best = min(grid, key=lambda g: fit(sign * g)[0])
    opt = minimize_scalar(lambda g: fit(sign * g)[0], bounds=(best / 1.2, best * 1.2), method="bounded",
                          options={"xatol": 1e-10 * mag})
    cc = sign * (opt.x if fit(sign * opt.x)[0] <= fit(sign * best)[0] else best)
    rest, along = fit(cc)
    return {"invariance_component": along / norm, "other_component": rest / norm, "fit_c": float(cc)}


def run_ablation(base: TrainConfig | None = None, *, seeds=(0, 1), distributions=None, device="cpu",
                 progress=None, threads: int | None = 1, **overrides) -> dict:
    """Train on every distribution of :data:`DISTRIBUTIONS` (or the named
    subset) for each seed; returns ``{"rows": [...], "config": ...}`` where
    each row has ``name``, ``description``, the richness fields
    (``verdict``, ``kernel_dim``, ``data_invariance_dim``, ``mu``),
    ``extra_kernel_dim`` (the kernel of ``numerics.richness`` minus the
    scaling tangent, on the same prompt sample) and
    ``runs``: per seed ``final_loss``, ``identity_loss``,
    ``distance_to_manifold``, ``scale_c``, ``invariance_component``,
    ``other_component``, ``seconds``.  Writes nothing."""
    from numerics.recovery import learned_blocks
    from numerics.constructions import constructed_blocks
    base = dataclasses.replace(base or TrainConfig(**ABLATION_SCALE), **overrides)
    if base.model != "lsa":
        raise InputError("model", "the ablation trains the block (lsa)")
    names = [d[0] for d in DISTRIBUTIONS]
    chosen = distributions or names
    for nm in chosen:
        if nm not in names:
            raise InputError("distributions", f"unknown {nm!r}; expected some of {', '.join(names)}")
    if not seeds:
        raise InputError("seeds", "need at least one seed")
    rows = []
    for name, desc, over in DISTRIBUTIONS:
        if name not in chosen:
            continue
        cfg0 = dataclasses.replace(base, **over)
        rich, basis = richness_and_kernel(cfg0)
        P12s, Vbar21s = constructed_blocks(cfg0.algorithm, cfg0.d, cfg0.alpha, cfg0.beta)
        runs = []
        for s in seeds:
            cfg = dataclasses.replace(cfg0, seed=s, feature_seed=cfg0.feature_seed)
            res = train_block(cfg, device=device, threads=threads)
            P12, Vbar21, _, _ = learned_blocks(res["model"])
            comp = invariance_component(P12, Vbar21, res["scale_c"], P12s, Vbar21s, basis)
            runs.append(dict(seed=s, final_loss=res["final_loss"], identity_loss=res["identity_loss"],
                             distance_to_manifold=res["distance_to_manifold"], scale_c=res["scale_c"],
                             seconds=res["seconds"], **comp))
            if progress is not None:
                progress(1)
        rows.append(dict(name=name, description=desc, distribution=cfg0.distribution().describe(), **rich,
                         extra_kernel_dim=basis.shape[1], runs=runs))
    return {"rows": rows, "config": base.as_dict(), "seeds": list(seeds)}


def _stat(values):
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.min()), float(v.max())


def plot_ablation(result: dict, path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from numerics.io import atomic_savefig
    rows = result["rows"]
    FLOOR = 1e-6
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(rows))
    for off, key, label in ((-0.2, "distance_to_manifold", "distance to M*"),
                            (0.0, "invariance_component", "along extra kernel"),
                            (0.2, "other_component", "rest")):
        vals = [[r[key] for r in row["runs"]] for row in rows]
        mean = [max(np.mean(v), FLOOR) for v in vals]
        lo = [max(0.0, mean[i] - max(min(v), FLOOR)) for i, v in enumerate(vals)]
        hi = [max(0.0, max(v) - mean[i]) for i, v in enumerate(vals)]
        ax.bar(x + off, mean, width=0.2, yerr=[lo, hi], label=label, capsize=3)
    ax.set_yscale("log")
    ax.set_ylim(bottom=FLOOR)
    ax.axhline(0.05, color="k", ls="--", lw=0.8, label="5% threshold")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r['name']}\n({r['verdict'] or 'no verdict'})" for r in rows], fontsize=8)
    ax.set_ylabel(f"relative to |closest point of M*| (0 drawn at {FLOOR:g})")
    ax.set_title("Where trained weights end up (mean, min-max over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=80)
    plt.close(fig)


def write_report(result: dict, out_dir: str, command: str, args=None) -> str:
    from numerics.io import atomic_write, atomic_write_json, run_header
    base = os.path.join(out_dir, "ablation")
    plot_ablation(result, base + ".png")
    cfg = result["config"]
    lines = ["# Richness ablation: where trained weights end up", run_header(command, args),
             f"Block ({cfg['parameterization']} parameterisation) trained by teacher mimicking ({cfg['algorithm']}, "
             f"{cfg['states']} states, {cfg['actions']} actions, n = {cfg['n']}; {cfg['mdps']} MDPs x "
             f"{cfg['frames']} frames, {cfg['batch_mdps']} MDPs per Adam step, lr {cfg['lr']:g} x "
             f"{cfg['lr_decay']:g} every {cfg['lr_every']} MDPs) on each distribution, seeds {result['seeds']}. "
             "Same budget for every distribution.", "",
             "Columns: richness verdict of `numerics.richness` (kernel dimension, data invariances, mu); "
             "`extra ker` = dimension of the kernel of H_L at theta* (as found by numerics.richness) beyond the "
             "scaling tangent (these are the data invariances when the verdict is morse-bott); then, over seeds (mean [min, max]), the held-out loss relative to the identity map's, "
             "the relative distance to M*, and the offset from the closest point of M* split into its component "
             "along the extra kernel and the rest (both relative to the norm of that point).", "",
             "| distribution | verdict | kernel | invariances | mu | extra ker | loss / identity | distance to M* "
             "| along extra kernel | rest |", "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda t: f"{t[0]:.2e} [{t[1]:.2e}, {t[2]:.2e}]"
    na = lambda v: "n/a" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
    for row in result["rows"]:
        runs = row["runs"]
        lines.append(f"| {row['name']} | {row['verdict'] or 'unavailable'} | {na(row['kernel_dim'])} | "
                     f"{na(row['data_invariance_dim'])} | {na(row['mu'])} | {row['extra_kernel_dim']} | "
                     f"{fmt(_stat([r['final_loss'] / r['identity_loss'] for r in runs]))} | "
                     f"{fmt(_stat([r['distance_to_manifold'] for r in runs]))} | "
                     f"{fmt(_stat([r['invariance_component'] for r in runs]))} | "
                     f"{fmt(_stat([r['other_component'] for r in runs]))} |")
    lines += ["", "Distributions:", ""] + [f"- `{r['name']}`: {r['distribution']}" for r in result["rows"]]
    lines += ["", "## Reading", ""]
    for row in result["rows"]:
        kinds = [classify_run(r) for r in row["runs"]]
        counts = ", ".join(f"{kinds.count(k)} {k}" for k in ("on-manifold", "invariance", "not-converged",
                                                                "contradiction") if kinds.count(k))
        lines.append(f"- `{row['name']}` ({row['verdict']}; mu {na(row['mu'])}; extra kernel "
                     f"{row['extra_kernel_dim']}): {counts}.")
    lines += ["", "Run classes: `on-manifold` = within 5% of M*; `invariance` = off M*, but less than 5% "
              "off it outside the extra kernel (the weights moved along zero-loss directions that the richness "
              "analysis predicts); `not-converged` = off M* outside the extra kernel with a held-out loss still "
              "above 1e-6 of the identity map's (the budget did not reach the zero-loss set: compare mu); "
              "`contradiction` = zero loss off M* outside the extra kernel (never expected). "
              f"Verdict of this ablation: {'CONSISTENT' if consistent(result) else 'INCONSISTENT'} with the "
              "richness analysis."]
    lines += ["", "![ablation](ablation.png)", ""]
    atomic_write_json(base + ".json", result)
    atomic_write(base + ".md", "\n".join(lines))
    return base + ".md"


def classify_run(run: dict) -> str:
    """Where one run ended: ``on-manifold`` (within 5% of M*),
    ``invariance`` (off M*, the offset mostly along the extra kernel, whose
    directions keep the loss at zero), ``contradiction`` (held-out loss zero
    to :data:`~numerics.tolerances.ZERO_LOSS_RTOL` of the identity map's, yet
    5% or more off M* outside the extra kernel: a zero-loss point the
    richness analysis does not predict), or ``not-converged`` (off M* with
    a loss above that: the budget did not reach the zero-loss set)."""
    from numerics.tolerances import STRUCTURE_RECOVERY_RTOL, ZERO_LOSS_RTOL
    if run["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL:
        return "on-manifold"
    if run["other_component"] < STRUCTURE_RECOVERY_RTOL:
        return "invariance"
    if run["final_loss"] <= ZERO_LOSS_RTOL * run["identity_loss"]:
        return "contradiction"
    return "not-converged"


def consistent(result: dict) -> bool:
    """No run is a ``contradiction`` (:func:`classify_run`), and no run of
    an ``identifiable`` distribution ends off M* along an extra kernel (it
    has none)."""
    for row in result["rows"]:
        for r in row["runs"]:
            kind = classify_run(r)
            if kind == "contradiction":
                return False
            if kind == "invariance" and row.get("verdict") == "identifiable":
                return False
    return True


def add_arguments(p):
    from numerics.config import finite_float, positive_int
    from theory.constructions import ALGORITHMS
    s = ABLATION_SCALE
    g = p.add_argument_group("distribution sizes and teacher (small defaults: a few minutes)")
    g.add_argument("--algorithm", choices=[a for a in ALGORITHMS if a != "actor-critic"], default="sarsa",
                   help="teacher (sarsa)")
    g.add_argument("--states", type=positive_int, default=s["states"], help=f"states ({s['states']})")
    g.add_argument("--actions", type=positive_int, default=s["actions"], help=f"actions ({s['actions']})")
    g.add_argument("--gamma", type=finite_float, default=0.5, help="the fixed discount (0.5)")
    g.add_argument("--context", type=positive_int, default=s["n"], help=f"window length n ({s['n']})")
    g.add_argument("--epsilon", type=finite_float, default=0.1, help="epsilon-greedy exploration (0.1)")
    g.add_argument("--alpha", type=finite_float, default=0.2, help="critic step size (0.2)")
    g.add_argument("--distributions", nargs="+", default=None, metavar="NAME",
                   help="subset of: " + ", ".join(d[0] for d in DISTRIBUTIONS) + " (all)")
    t = p.add_argument_group("training budget (the same for every distribution)")
    t.add_argument("--seeds", type=positive_int, default=2, help="seeds per distribution: 0..K-1 (2)")
    t.add_argument("--mdps", type=positive_int, default=s["mdps"], help=f"MDPs ({s['mdps']})")
    t.add_argument("--frames", type=positive_int, default=s["frames"], help=f"frames per MDP ({s['frames']})")
    t.add_argument("--batch-mdps", type=positive_int, default=s["batch_mdps"], help=f"MDPs per step ({s['batch_mdps']})")
    t.add_argument("--lr", type=finite_float, default=s["lr"], help=f"Adam learning rate ({s['lr']:g})")
    t.add_argument("--lr-decay", type=finite_float, default=s["lr_decay"], help=f"decay factor ({s['lr_decay']:g})")
    t.add_argument("--lr-every", type=positive_int, default=s["lr_every"], help=f"decay period in MDPs ({s['lr_every']})")
    t.add_argument("--config", metavar="FILE.toml", default=None, help="read options from a TOML file")
    t.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    t.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads while training (1)")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", default=os.path.join("reports", "ablation"),
                   help="report directory: ablation.md, .json, .png (reports/ablation)")
    o.add_argument("--no-report", action="store_true", help="print only")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result as the last line")


def run(args) -> int:
    from numerics.cli import emit, progress_bar
    from numerics.config import device_from_args
    device = device_from_args(args)
    base = TrainConfig(**{**ABLATION_SCALE, **dict(
        algorithm=args.algorithm, states=args.states, actions=args.actions, gamma=args.gamma, n=args.context,
        epsilon=args.epsilon, alpha=args.alpha, mdps=args.mdps, frames=args.frames, batch_mdps=args.batch_mdps,
        lr=args.lr, lr_decay=args.lr_decay, lr_every=args.lr_every)})
    chosen = args.distributions or [d[0] for d in DISTRIBUTIONS]
    for nm in chosen:
        if nm not in [d[0] for d in DISTRIBUTIONS]:
            raise InputError("distributions", f"unknown {nm!r}; expected some of {', '.join(d[0] for d in DISTRIBUTIONS)}")
    command = reproduce_command("ablation", args, add_arguments)
    with progress_bar(total=len(chosen) * args.seeds, desc="ablation", disable=args.json, unit="run") as bar:
        res = run_ablation(base, seeds=tuple(range(args.seeds)), distributions=chosen, device=device,
                           progress=bar.update, threads=args.threads)
    report = None if args.no_report else write_report(res, args.out, command, args)
    lines = []
    for row in res["rows"]:
        d = [r["distance_to_manifold"] for r in row["runs"]]
        inv = [r["invariance_component"] for r in row["runs"]]
        lines.append(f"{row['name']:20s} verdict {str(row['verdict']):13s} extra kernel {row['extra_kernel_dim']:3d}  "
                     f"distance to M* {np.mean(d):.2e} [{min(d):.2e}, {max(d):.2e}]  along extra kernel {np.mean(inv):.2e}  "
                     + ", ".join(classify_run(r) for r in row["runs"]))
    ok = consistent(res)
    lines.append(("CONSISTENT" if ok else "INCONSISTENT") + " with the richness analysis: no zero-loss end point "
                 "off M* outside the extra kernel" + (f"; report: {report}" if report else ""))
    out = {"rows": res["rows"], "consistent": ok, "report": report}
    emit(lines, out, args.json)
    return 0 if ok else 1
