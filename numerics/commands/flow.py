"""icrl-verify flow: gradient flow of the teacher-mimicking loss near the
optimal set (Theorem 3.2): measured local rate against the predicted 2 mu,
and the basin of attraction of M* over a grid of radii.

The loss is the empirical loss on one fixed sample of prompts drawn as in
Algorithm 1 (the data never depend on the model, so the flow is well
defined); mu comes from the richness analysis of the same sample.  The flow
is integrated by implicit (backward) Euler with the true gradient on a fixed
step schedule (no step accepted or refused, so the numbers are the same under
any thread count).  Rate: start at theta* plus a small random perturbation
projected off the Hessian's kernel, fit log L on the last 40% of the flow
time.  Basin: for each radius r
(relative to |theta*|), random perturbations; a run ends on M* when its
relative distance to M* is below 1e-3 at flow time 20 / (2 mu).

Defaults here: 3 states, 2 actions, 20 MDPs (a size where the flow takes
about 3 CPU minutes); every other option as in Section 4.1.
"""
from __future__ import annotations

import os

from numerics.analysis import budget
from numerics.analysis.flow import DECAY, DEFAULT_RADII, STEP_MU, flow_experiment, schedule_length_bound
from numerics.commands.cli import add_max_memory, at_boundary, config_of, emit, plain_name, progress_bar
from numerics.core.runtime import check_interrupt
from numerics.io.commandline import reproduce_command
from numerics.io.config import add_common, finite_float, positive_int
from numerics.io.options import Folder, Name
from numerics.io.sources import source_from_args
from numerics.render import flow as render
from theory import algorithms


def add_arguments(p):
    add_common(p, mdps=20)
    p.set_defaults(states=3, actions=2)
    for a in p._actions:      # the shared help strings name Section 4.1's defaults; say ours
        if a.dest == "states":
            a.help = "number of states (3 here; Section 4.1 has 9)"
        elif a.dest == "actions":
            a.help = "number of actions (2 here; Section 4.1 has 4)"
    p.add_argument("--parameterization", choices=("reduced", "full"), default="reduced",
                   help="reduced (P12, Vbar21) or full (P, V) (default reduced)")
    p.add_argument("--frames", type=positive_int, default=20, help="frames (prompts) per MDP in the fixed sample (20)")
    p.add_argument("--rate-radius", type=finite_float, default=1e-2,
                   help="perturbation radius of the rate runs, relative to |theta*| (1e-2)")
    p.add_argument("--radii", type=finite_float, nargs="+", default=list(DEFAULT_RADII),
                   help="basin radii, relative to |theta*| (0.01 0.1 0.3 1)")
    p.add_argument("--trials", type=positive_int, default=8, help="random perturbations per basin radius (8)")
    p.add_argument("--max-steps", type=positive_int, default=400, help="cap on implicit-Euler steps per batch of runs (400)")
    p.add_argument("--name", type=Name(), default=None, help="report name (default: ALGORITHM-FEATURES-PARAMETERIZATION)")
    p.add_argument("--out", type=Folder(), default=os.path.join("reports", "flow"), help="report folder (reports/flow)")
    add_max_memory(p)


def run(args) -> int:
    dist = source_from_args(args).distribution()       # the Section 4.1 options (flow takes no other source)
    name = plain_name(args.name or f"{args.algorithm}-{args.features}-{args.parameterization}")
    record, prompts, limit = algorithms.get(args.algorithm), args.mdps * args.frames, budget.max_memory(args.max_memory)
    what = f"flow at {dist.states} states x {dist.actions} actions (d = {dist.d}), {prompts} prompts,"
    budget.guard_hessian(record, dist.d, prompts, args.context, limit, what, parameterization=args.parameterization)
    budget.guard(budget.flow(record, dist.d, prompts, args.context, max(args.trials, 3), args.parameterization),
                 limit, what, "use fewer --trials/--mdps/--frames or smaller --states/--actions")
    runs, steps = 3 + args.trials * len(args.radii), min(args.max_steps, schedule_length_bound(DECAY, STEP_MU))
    budget.guard_time(budget.flow_work(record, dist.d, prompts, args.context, runs, steps, args.parameterization),
                      budget.max_time(args.max_time), f"{what} {runs} runs of up to {steps} steps",
                      "use fewer --trials/--radii/--mdps/--frames/--max-steps or smaller --states/--actions/--context")
    with progress_bar(desc="flow", disable=args.json, unit="step") as bar:
        res = flow_experiment(dist, args.algorithm, args.parameterization, mdps=args.mdps, frames=args.frames,
                              n=args.context, epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                              rate_radius=args.rate_radius, radii=args.radii, trials=args.trials,
                              max_steps=args.max_steps, progress=at_boundary(bar.update), keep=True)
    check_interrupt()
    command = reproduce_command("flow", args, add_arguments)
    report = render.write(res, args.out, name, command, config_of(args))
    public = {k: res[k] for k in ("mu", "predicted_rate", "measured_rate", "rate_ratio", "converged", "basin")}
    public["report"] = report
    lines = [f"flow {args.algorithm} ({args.parameterization}): {dist.describe()}",
             f"mu = {res['mu']:.6g}; predicted rate 2 mu = {res['predicted_rate']:.6g}; measured {res['measured_rate']:.6g}; "
             f"ratio {res['rate_ratio']:.4f}", "basin: " + ", ".join(f"r={b['radius']:g}: {b['fraction']:.2f}" for b in res["basin"]),
             f"report: {report}"]
    emit(lines, public, args.json)
    return 0
