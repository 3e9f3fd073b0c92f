"""icrl-verify softmax-train: Theorem 3 of Xie et al. (2026), "Beyond Linear
Attention": is the constructed (V, A) a global minimiser of the pretraining
loss J_{L,n} on the class the App. F.2 sparsity masks leave free?

The paper's definition of J_{L,n} and of the masks could not be read, so the
claim is decided under stated readings (docs/xie2026.md, "Theorem 3"):
--reading neu (the squared norm of weighted softmax TD's update at the
block's output, with the fixed feature kernel), value (the query's squared
error against v_pi) or both.  Masked class: A free on the phi x phi block,
V free on the written row's (reward, target, current) entries; tied layers
(--untied: one (V, A) per layer).

On a fixed sample of random MRPs (features of norm sqrt(tau), Assumption 5.1
holding for every MRP kept) and a held-out sample of the same size, for each
reading and depth: the gradient at the construction with its standard error
over prompts, the Hessian on the masked class (its smallest eigenvalue, its
flat directions, the softmax symmetries), --inits random starts trained by
Adam then L-BFGS, an L-BFGS descent from the construction and the family's
best member (A = c I, row alpha [1, 1, -1]), each with its distance to the
construction and to the family (the symmetries quotiented out), and a
verdict per reading and depth (holds / fails, with the witness).

Writes DIR/NAME.md, .json and .png (loss curves and Hessian spectra),
atomically.  Exit 0 when every verdict holds, 1 when one fails, 2 on bad
input or a job above --max-memory or --max-time.  The default is a quick
run (about 30 CPU s); --full a larger sample and budget (about 3 CPU min).
"""
from __future__ import annotations

import os

from numerics.analysis import budget
from numerics.analysis import softmax_train as st
from numerics.commands.cli import add_max_memory, at_boundary, config_of, emit, plain_name, progress_bar
from numerics.core.runtime import check_interrupt
from numerics.io.commandline import reproduce_command
from numerics.io.config import finite_float, positive_int
from numerics.io.options import COUNT, SEED, Folder, Name, Path
from numerics.render import softmax_train as render

FULL = st.FULL


def add_arguments(p):
    q = st.TrainConfig()
    g = p.add_argument_group("the claim and the sample (defaults: the quick run)")
    g.add_argument("--reading", choices=(*st.READINGS, "both"), default="both",
                   help="the loss J_{L,n} under which Theorem 3 is decided (both)")
    g.add_argument("--form", choices=("one-head", "two-head"), default=q.form, help=f"block form ({q.form})")
    g.add_argument("--untied", action="store_true", help="one (V, A) per layer (default: tied)")
    g.add_argument("--layers", type=positive_int, nargs="+", default=list(q.layers), metavar="L",
                   help="depths L (" + " ".join(map(str, q.layers)) + ")")
    g.add_argument("--context", type=positive_int, default=q.n, help=f"window length n ({q.n})")
    g.add_argument("--features", choices=st.FEATURE_KINDS, default=q.features,
                   help="random (directions uniform on the sphere) or onehot (d = states) features, norm sqrt(tau) "
                        f"({q.features})")
    g.add_argument("--features-dim", type=positive_int, default=q.d, help=f"feature dimension d ({q.d})")
    g.add_argument("--states", type=positive_int, default=q.states, help=f"states per MRP ({q.states})")
    g.add_argument("--mrps", type=positive_int, default=None,
                   help=f"MRPs in the sample and in the held-out sample ({q.mrps}; --full {FULL['mrps']})")
    g.add_argument("--gamma", type=finite_float, default=q.gamma, help=f"discount ({q.gamma})")
    g.add_argument("--tau", type=finite_float, default=q.tau, help=f"squared feature norm ({q.tau})")
    g.add_argument("--seed", type=SEED, default=q.seed, help=f"random seed ({q.seed})")
    g.add_argument("--config", type=Path(), metavar="FILE.toml", default=None,
                   help="read options from a TOML file (keys: the long option names; flags override)")
    t = p.add_argument_group("training")
    t.add_argument("--inits", type=positive_int, default=q.inits, help=f"random starts ({q.inits})")
    t.add_argument("--steps", type=positive_int, default=None, help=f"Adam steps ({q.steps}; --full {FULL['steps']})")
    t.add_argument("--polish", type=COUNT, default=None,
                   help=f"L-BFGS iterations after Adam, and for the descent from the construction ({q.polish}; "
                        f"--full {FULL['polish']})")
    t.add_argument("--lr", type=finite_float, default=q.lr,
                   help=f"Adam's first step size, decaying to 1/100 of it ({q.lr})")
    t.add_argument("--full", action="store_true",
                   help="the full run: --mrps {mrps} --steps {steps} --polish {polish} unless given".format(**FULL))
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Folder(), metavar="DIR", default=os.path.join("reports", "xie2026"),
                   help="report folder (reports/xie2026)")
    o.add_argument("--name", type=Name(), default=None, help="report name (theorem3-FORM[-untied][-full])")
    add_max_memory(o)
    p.add_argument("--json", action="store_true", help="print one JSON object with the result as the last line")


def config_from_args(args) -> st.TrainConfig:
    q = st.TrainConfig()
    pick = (lambda key: getattr(args, key) if getattr(args, key) is not None else
            (FULL[key] if args.full else getattr(q, key)))
    readings = st.READINGS if args.reading == "both" else (args.reading,)
    return st.TrainConfig(readings=readings, layers=tuple(args.layers), form=args.form, tied=not args.untied,
                          n=args.context, d=args.features_dim, states=args.states, mrps=pick("mrps"),
                          gamma=args.gamma, tau=args.tau, features=args.features, seed=args.seed, inits=args.inits,
                          steps=pick("steps"), polish=pick("polish"), lr=args.lr)


def run(args) -> int:
    cfg = config_from_args(args)
    name = plain_name(args.name or f"theorem3-{cfg.form}" + ("-untied" if not cfg.tied else "")
                      + ("-full" if args.full else ""))
    budget.guard(st.memory(cfg), budget.max_memory(args.max_memory),
                 f"softmax-train ({cfg.mrps} MRPs, {cfg.inits} starts, n = {cfg.n})",
                 "use fewer --mrps/--inits/--layers or a smaller --context")
    budget.guard_time(st.work(cfg), budget.max_time(args.max_time),
                      f"softmax-train ({len(cfg.readings)} readings x {len(cfg.layers)} depths, {cfg.mrps} MRPs, "
                      f"{cfg.inits} starts)",
                      "use fewer --mrps/--inits/--steps/--polish/--layers or a smaller --context")
    total = len(cfg.readings) * len(cfg.layers) * (cfg.steps + cfg.inits)
    with progress_bar(total=total, desc="softmax-train", disable=args.json, unit="step") as bar:
        res = st.experiment(cfg, progress=at_boundary(bar.update))
    check_interrupt()
    command = reproduce_command("softmax-train", args, add_arguments)
    report = render.write(res, args.out, name, command, config_of(args))
    lines, summary = [], []
    for c in res["cases"]:
        best = "none finite" if c["best_loss"] is None else f"{c['best_loss']:.4g} (held-out {c['best_heldout']:.4g})"
        lines.append(f"{c['reading']} L={c['layers']}: J* {c['loss_star']:.4g}; |grad| {c['grad_norm']:.3g} "
                     f"(se {c['grad_se']:.2g}); lambda_min {c['lam_min']:.3g} (se {c['lam_min_se']:.2g}); best of "
                     f"{cfg.inits} starts {best}; family best c={c['family']['c']:.3g} alpha={c['family']['alpha']:.3g}"
                     f" {c['family']['heldout_loss']:.4g} held-out: {c['verdict'].upper()}")
        lines += [f"  - {r}" for r in c["reasons"]]
        summary.append({k: c[k] for k in ("reading", "layers", "loss_star", "heldout_star", "grad_norm", "grad_se",
                                          "lam_min", "lam_min_se", "lam_max", "best_loss", "best_heldout", "verdict",
                                          "witness")})
    lines.append(f"report: {report}")
    failed = any(c["verdict"] != "holds" for c in res["cases"])
    emit(lines, {"cases": summary, "verdict": "fails" if failed else "holds", "report": report}, args.json)
    return 1 if failed else 0
