"""icrl-verify softmax-bound: Theorem 2 of Xie et al. (2026) measured.

Assumption 5.1's margin C of every MRP (M_pi the population kernel, our
reading: mu(s') exp g(s,s') / sum_m mu(m) exp g(s,m)), a check that the
population iteration's inf-norm contraction is within 1 - 2C (a plain loop
from the definition against the margin), and the error ||v_L - v_pi||_inf of
the softmax block (Theorem 1's weights, alpha = 1) against depth L and
context length n beside the bound's two terms: the geometric (1-C)^L e0 and
the floor (measured, its slope in log n, a fitted C').

Families: onehot and boyan-orth meet the assumption for most draws at their
default tau; dense and aliased do not.  Defaults: 5 states, 50 MRPs,
contexts 25 50 100 200, L = 0..40, gamma = 0.5 (under a minute); --full:
200 MRPs, contexts 25 .. 800.

--margin-only prints the margin (no measurement): of the family's MRPs, or
of the MRPs of --mdp-file F.npz (one action; features S x 1 x d from the
file, else one-hot sqrt(tau) e_s).

Exit status: 0 measured (the report says whether the bound holds); 1 the
population iteration exceeds 1 - 2C for some MRP (our derivation fails; the
MRP is printed); 2 bad input.  docs/xie2026.md, section "Theorem 2".
"""
from __future__ import annotations

import os

import torch

from numerics.analysis import budget
from numerics.analysis import softmax_bound as sb
from numerics.commands.cli import add_max_time, at_boundary, config_of, emit, plain_name, progress_bar
from numerics.core.runtime import check_interrupt
from numerics.core.tolerances import DTYPE
from numerics.io.commandline import reproduce_command
from numerics.io.config import finite_float, positive_int
from numerics.io.mdp_file import load_mdp_file
from numerics.io.options import SEED, Folder, Name, Path
from numerics.render import softmax_bound as render
from theory.errors import InputError

DEFAULT, FULL, DEFAULT_FAMILIES = sb.DEFAULT, sb.FULL, sb.DEFAULT_FAMILIES


def add_arguments(p):
    p.add_argument("--family", nargs="+", choices=list(sb.FAMILIES), default=None, metavar="FAMILY",
                   help="MRP families (default: " + " ".join(DEFAULT_FAMILIES) + "); choices: "
                        + ", ".join(sb.FAMILIES))
    p.add_argument("--mrps", type=positive_int, default=None, help="MRPs per family (50; --full 200)")
    p.add_argument("--layers", type=positive_int, default=40, help="largest depth L (40)")
    p.add_argument("--contexts", type=positive_int, nargs="+", default=None, metavar="N",
                   help="context lengths n (25 50 100 200; --full 25 50 100 200 400 800)")
    p.add_argument("--states", type=positive_int, default=5, help="states per MRP (5)")
    p.add_argument("--features-dim", type=positive_int, default=10,
                   help="d of the boyan-orth and dense features (10; onehot: d = states, aliased: states - 1)")
    p.add_argument("--tau", type=finite_float, default=None,
                   help="feature scale: phi has squared norm tau (default per family: "
                        + ", ".join(f"{k} {f.tau:g}" for k, f in sb.FAMILIES.items()) + ")")
    p.add_argument("--gamma", type=finite_float, default=0.5, help="discount, 0 <= gamma < 1 (0.5)")
    p.add_argument("--rate-mrps", type=positive_int, default=50,
                   help="MRPs per family in the population-rate check (a plain loop; 50)")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (0)")
    p.add_argument("--full", action="store_true", help="the full size: 200 MRPs, contexts 25 .. 800")
    p.add_argument("--margin-only", action="store_true",
                   help="print Assumption 5.1's margin only (of --mdp-file, else of each family's MRPs)")
    p.add_argument("--mdp-file", type=Path(), default=None, metavar="F.npz",
                   help="with --margin-only: MRPs from an .npz file (T S x 1 x S, R, gamma, optional rho0, "
                        "features S x 1 x d; docs/xie2026.md)")
    p.add_argument("--name", type=Name(), default=None, help="report name (default: theorem2, or theorem2-full)")
    p.add_argument("--out", type=Folder(), default=os.path.join("reports", "softmax-bound"),
                   help="report folder (reports/softmax-bound)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result as the last line")
    p.add_argument("--config", type=Path(), metavar="FILE.toml", default=None,
                   help="read options from a TOML file (keys: the long option names; flags override)")
    add_max_time(p)


def _gamma(g: float) -> float:
    if not 0 <= g < 1:
        raise InputError("gamma", f"must satisfy 0 <= gamma < 1, got {g}")
    return g


def work(families, mrps: int, states: int, dim: int, contexts, layers: int, rate_mrps: int) -> budget.Work:
    """Multiply-adds: per family, every layer of every window (scores
    ``(n+1)^2 d``, the softmax and ``V Z S``: ``(n+1)^2 (d + 3)``, about 4
    passes) and the plain-loop rate check (``S^4`` per MRP, Python)."""
    w = budget.Work()
    for name in families:
        d = states if name == "onehot" else states - 1 if name == "aliased" else dim
        for n in contexts:
            w.add("block layers (families x mrps x layers x (n+1)^2 x (2d+3))",
                  4.0 * mrps * layers * (n + 1) ** 2 * (2 * d + 3))
        w.add("population rate loop (families x MRPs x states^4, Python)", 2e3 * min(rate_mrps, mrps) * states ** 4)
    return w


def margin_only(args) -> int:
    if args.mdp_file:
        mdp, F = load_mdp_file(args.mdp_file)
        if mdp.actions != 1:
            raise InputError("mdp", f"{args.mdp_file}: an MRP has one action, got {mdp.actions}")
        tau = 5.0 if args.tau is None else args.tau
        if tau <= 0:
            raise InputError("tau", f"must be positive, got {tau}")
        F = F[:, :, 0, :] if F is not None else tau ** 0.5 * torch.eye(mdp.states, dtype=DTYPE).expand(
            mdp.batch, mdp.states, mdp.states)
        m = sb.margin(mdp, F)
        per = [{"mrp": b, "min_diag": m["min_diag"][b].item(), "C": m["C"][b].item(), "holds": bool(m["holds"][b]),
                "gamma": m["gamma"][b].item(), "rate_bound_1m2C": m["rate_bound"][b].item()} for b in range(mdp.batch)]
        result = {"source": args.mdp_file, "per_mrp": per, "summary": sb.margin_summary(m)}
        lines = [f"MRP {r['mrp']}: min M_pi(s,s) = {r['min_diag']:.6g}, C = {r['C']:.6g} "
                 f"({'meets' if r['holds'] else 'does not meet'} Assumption 5.1: "
                 f"C in (0, {(1 - r['gamma']) / 2:.4g})); "
                 f"population contraction <= 1 - 2C = {r['rate_bound_1m2C']:.6g}" for r in per[:20]]
        if len(per) > 20:
            lines.append(f"... {len(per) - 20} more (--json)")
        lines.append(f"{result['summary']['fraction_holds']:.1%} of {mdp.batch} MRPs meet Assumption 5.1")
        emit(lines, result, args.json)
        return 0
    gamma = _gamma(args.gamma)
    families = list(dict.fromkeys(args.family or DEFAULT_FAMILIES))
    mrps = args.mrps or DEFAULT["mrps"]
    ops = 4.0 * len(families) * mrps * args.states ** 2 * (args.features_dim + args.states)
    budget.guard_time(budget.Work().add("margins (families x mrps x states^2 x (d + states))", ops),
                      budget.max_time(args.max_time), f"margins of {len(families)} families x {mrps} MRPs",
                      "use fewer --mrps or smaller --states/--features-dim")
    out, lines = {}, []
    for i, name in enumerate(families):
        fam = sb.family(name)
        tau = fam.tau if args.tau is None else args.tau
        gen = torch.Generator().manual_seed(args.seed + 1000 * i)       # the MRPs the measurement draws
        mdp, F = sb.sample_family(fam, mrps, args.states, args.features_dim, tau, gamma, gen)
        s = sb.margin_summary(sb.margin(mdp, F))
        out[name] = s
        lines.append(f"{name} (tau {tau:g}): {s['fraction_holds']:.1%} of {s['mrps']} MRPs meet Assumption 5.1; "
                     f"C median {s['C']['q50']:.4g} [5%: {s['C']['q05']:.4g}, 95%: {s['C']['q95']:.4g}]")
    emit(lines, {"families": out}, args.json)
    return 0


def run(args) -> int:
    if args.mdp_file and not args.margin_only:
        raise InputError("mdp-file", "is read only with --margin-only")
    if args.margin_only:
        return margin_only(args)
    gamma = _gamma(args.gamma)
    size = FULL if args.full else DEFAULT
    mrps = args.mrps or size["mrps"]
    contexts = sorted(set(args.contexts or size["contexts"]))
    families = list(dict.fromkeys(args.family or DEFAULT_FAMILIES))
    if args.tau is not None and args.tau <= 0:
        raise InputError("tau", f"must be positive, got {args.tau}")
    if "aliased" in families and args.states < 2 or "boyan-orth" in families and args.states < 2:
        raise InputError("states", f"the boyan-orth and aliased families need at least 2 states, got {args.states}")
    name = plain_name(args.name or ("theorem2-full" if args.full else "theorem2"))
    budget.guard_time(work(families, mrps, args.states, args.features_dim, contexts, args.layers, args.rate_mrps),
                      budget.max_time(args.max_time), f"softmax-bound on {len(families)} families x {mrps} MRPs, "
                      f"contexts up to {max(contexts)}, {args.layers} layers",
                      "use fewer --mrps/--contexts/--layers/--family")
    with progress_bar(total=len(families) * len(contexts), desc="softmax-bound", disable=args.json,
                      unit="cell") as bar:
        results = sb.experiments(families, mrps=mrps, states=args.states, dim=args.features_dim, tau=args.tau,
                                 gamma=gamma, contexts=contexts, layers=args.layers, seed=args.seed,
                                 rate_mrps=args.rate_mrps, progress=at_boundary(bar.update))
    check_interrupt()
    command = reproduce_command("softmax-bound", args, add_arguments)
    paths = render.write(results, args.out, name, command, config_of(args))
    lines, public = [], {"report": paths["md"], "families": {}}
    status = 0
    for r in results:
        s, rt = r["summary"], r["rate"]
        row = {"fraction_holds": r["margin"]["fraction_holds"], "C_median": r["margin"]["C"]["q50"],
               "rate_check_ok": rt["ok"]}
        line = (f"{r['family']}: {r['margin']['fraction_holds']:.0%} meet 5.1 "
                f"(C median {r['margin']['C']['q50']:.3g}); "
                f"population contraction within 1 - 2C: {'yes' if rt['ok'] else 'NO'}")
        if not rt["ok"]:
            status = 1
            b = int((~rt["within"]).nonzero()[0])
            line += (f" (counterexample: MRP {b}, operator norm {rt['op_norm'][b].item():.6g} > 1 - 2C = "
                     f"{rt['bound_1m2C'][b].item():.6g})")
        if "holding" in s:
            h = s["holding"]
            cells = h["cells"]
            geo = sum(c["violations"]["geometric"]["pairs"] for c in cells)
            row.update({"geometric_violations": geo, "cprime": s["cprime"]["value"],
                        "cprime_window_violation_rate": s["bound_fails"]["cprime_rate"],
                        "floor_slope": h.get("floor_fit", {}).get("slope_err_at_L"),
                        "error_at_L_max_n": cells[-1]["err_at_L"]["mean"],
                        "measured_rate_median": cells[-1]["measured_rate"].get("q50")})
            line += (f"; error at L={args.layers}, n={cells[-1]['n']}: {cells[-1]['err_at_L']['mean']:.3g} "
                     f"[{cells[-1]['err_at_L']['lo']:.3g}, {cells[-1]['err_at_L']['hi']:.3g}]; floor slope "
                     f"{row['floor_slope'] if row['floor_slope'] is None else format(row['floor_slope'], '.3g')}; "
                     f"geometric violations (rate 1-C) {geo}; C' = {s['cprime']['value']:.3g}, held-out windows "
                     f"over the bound {s['bound_fails']['cprime_rate']:.1%}")
        else:
            a = s["all"]["cells"][-1]
            line += f"; bound not tested; error at L={args.layers}, n={a['n']}: {a['err_at_L']['mean']:.3g}"
        public["families"][r["family"]] = row
        lines.append(line)
    lines.append(f"report: {paths['md']}")
    emit(lines, public, args.json)
    return status
