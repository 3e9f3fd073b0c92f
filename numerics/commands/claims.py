"""icrl-verify claims: a claim-by-claim verdict on Liang & Lai (2026) and on
its referee's objections, on Wang et al. (ICLR 2025) and on Xie et al. (2026,
softmax attention), with the evidence and a command that reproduces each
piece of it.

Every claim names the checks that decide it (symbolic, numeric, property,
experiment) and a rule from evidence to verdict: holds, holds with
qualification, fails, or not checked (a check did not run; never reported as
holds).  --quick (default) runs every check at a size that finishes within 10
minutes on 2 cores; --full uses the larger settings and runs the experiments
the checks share (trainings, richness samples, flow, ablation) first, in
parallel, on the sweep engine (docs/sweep.md): an embedded Dask LocalCluster
(--workers), or the running cluster at --scheduler ADDRESS; the checks then
run here on their results.  Exit 0 when every check
ran (whatever the verdicts), 1 when a check could not run, 2 on bad input.
"""
from __future__ import annotations

import os
import sys
import time

from numerics.analysis import budget
from numerics.analysis.exact import PAPER_SCALE
from numerics.analysis.train import CPU_SCALE
from numerics.claims import evidence as registry
from numerics.claims.evidence import Settings, evaluate, experiments_of, run_checks, run_experiments
from numerics.claims.report import render_markdown
from numerics.commands.cli import add_max_time, emit, progress_bar
from numerics.core.runtime import check_interrupt
from numerics.io.config import positive_int
from numerics.io.options import SEED, Folder, Path, Text
from numerics.io.report import run_header, write_report
from theory import algorithms
from theory.errors import InputError


def add_arguments(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="small settings, within 10 minutes on 2 cores (default)")
    g.add_argument("--full", dest="mode", action="store_const", const="full", help="the larger settings")
    p.set_defaults(mode="quick")
    p.add_argument("--out", type=Folder(), default="reports/claims", help="output folder for claims.md, claims.json, figures")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (0)")
    p.add_argument("--only", type=Text(), nargs="+", metavar="CLAIM", default=None, help="run only these claim ids")
    p.add_argument("--config", type=Path(), metavar="FILE.toml", default=None, help="read options from a TOML file")
    p.add_argument("--scheduler", type=Text(), metavar="ADDRESS", default=None,
                   help="run the shared experiments on the Dask cluster at ADDRESS (with --quick too; default with "
                        "--full: an embedded LocalCluster)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="worker processes of the embedded cluster (one per core, at most one per experiment)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the verdicts as the last line")
    add_max_time(p)


#: ``claims --quick`` on the project's 2-core machine at load 1: 7 min 7 s
#: (the lead's run that regenerated reports/claims, commit be2bf5e).
QUICK_SECONDS = 427.0


def estimate(mode: str) -> budget.Work:
    """The run time of ``claims``: ``--quick`` as measured; ``--full`` (not
    measured end to end) that plus its largest jobs counted by the time
    guards' model: the paper's exact protocol at its scale, the minibatch
    block and the MLP and LSTM baselines at the whole CPU data budget, and
    10 seeds x 100 MDPs x 2,000 rounds of control with four methods."""
    w = budget.Work().add("the --quick checks (measured)", QUICK_SECONDS * budget.THROUGHPUT["batched"])
    if mode == "full":
        rec = algorithms.get("sarsa")
        w = w.merged(budget.train_work(rec, PAPER_SCALE["mdps"], PAPER_SCALE["frames"], 9, 4, 36, 20, 64,
                                       protocol="paper"))
        for model in ("lsa", "mlp", "lstm"):
            w = w.merged(budget.train_work(rec, CPU_SCALE["mdps"], CPU_SCALE["frames"], 9, 4, 36, 20, 64,
                                           model=model).scaled(1, f"{model}: "))
        w = w.merged(budget.control_work(rec, 10, 100, 2000, 9, 4, 36, 20, methods=4))
    return w


def run(args) -> int:
    every_claim = registry.claims()         # the registered claims, in report order
    claims = every_claim
    if args.only:
        known = {c.id for c in claims}
        bad = [c for c in args.only if c not in known]
        if bad:
            raise InputError("only", f"unknown claim id {bad[0]!r}; expected some of {', '.join(sorted(known))}")
        claims = [c for c in claims if c.id in args.only]
    settings = Settings(mode=args.mode, seed=args.seed, out=args.out)
    checks = list(dict.fromkeys(k for c in claims for k in c.checks))
    names = [k.name for k in checks]
    every = {k.name for c in every_claim for k in c.checks}
    budget.guard_time(estimate(args.mode).scaled(len(names) / len(every)), budget.max_time(args.max_time),
                      f"claims --{args.mode} ({len(names)} of its {len(every)} checks; counted as their share of "
                      "the whole run)", "use --quick or --only CLAIM")
    t0 = time.perf_counter()

    def progress(name, ev):
        status = {True: "ok", False: "FAILED", None: "DID NOT RUN"}[ev.passed]
        print(f"  [{len(done) + 1}/{len(names)}] {name}: {status} ({ev.seconds:.1f} s)", file=sys.stderr)
        done.append(name)
        check_interrupt()
    done: list[str] = []
    print(f"icrl-verify claims --{args.mode}: {len(names)} checks for {len(claims)} claims", file=sys.stderr)
    failed = {}
    if args.mode == "full" or args.scheduler:
        wanted = experiments_of(checks)
        where = args.scheduler or "an embedded Dask LocalCluster"
        print(f"  {len(wanted)} shared experiments on {where}: {', '.join(e.name for e in wanted)}", file=sys.stderr)
        with progress_bar(total=len(wanted), desc="claims experiments", disable=args.json, unit="experiment") as bar:
            failed = run_experiments(checks, settings, scheduler=args.scheduler, workers=args.workers,
                                     progress=bar.update)
        for name, msg in failed.items():
            print(f"  experiment {name} failed on the cluster ({msg}); its checks compute it here", file=sys.stderr)
    evidence = run_checks(checks, settings, progress=progress)
    rows = [dict(r, paper=c.paper) for c, r in zip(claims, evaluate(claims, evidence))]
    total = time.perf_counter() - t0
    check_interrupt()
    cmd = f"icrl-verify claims --{args.mode} --seed {args.seed} --out {args.out}"
    md = render_markdown(rows, settings, run_header(cmd), total)
    doc = dict(mode=args.mode, seed=args.seed, seconds=total, claims=rows)
    write_report(os.path.join(args.out, "claims"), markdown=md, data=doc)
    not_run = [n for n, e in evidence.items() if e.passed is None]
    lines = [f"{r['verdict']:>26}  {r['id']}: {r['title']}" for r in rows]
    lines.append(f"report: {os.path.join(args.out, 'claims.md')} ({total:.0f} s)")
    if not_run:
        lines.append(f"checks that could not run: {', '.join(not_run)}")
    emit(lines, dict(report=os.path.join(args.out, "claims.md"), claims={r["id"]: r["verdict"] for r in rows},
                     not_run=not_run), args.json)
    return 1 if not_run else 0
