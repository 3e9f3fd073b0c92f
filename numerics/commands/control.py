"""icrl-verify control: in-context control on unseen MDPs (THEORY.md section 7)
and on Gymnasium's tabular environments.

Closed loop, per method and per MDP: w_0 ~ Unif(-1, 1)^q and s_0 ~ rho0 as in
training; round k acts with the behaviour policy of w_k (epsilon-greedy in
Q_{w_k}; the softmax actor for actor-critic), collects a window of n
transitions and sets w_{k+1} = TF(H_k), the method's own output on the
prompt of that window (s_0 <- s_n).  Round k is scored by the exact
discounted return of the greedy policy in Q_{w_k} (of the actor for
actor-critic), normalised (J - J_unif) / (J* - J_unif) with pi* from value
iteration.

Methods: teacher (the update is the teacher's step), constructed (the block
with the weights of Theorem 3.1 / 3.3 from theory: it must reproduce the
teacher's run exactly), trained (--weights), mlp (--mlp), lstm (--lstm),
oracle (pi*) and uniform.  Intervals: 95% Student-t over seeds of the
per-seed mean over MDPs.  Exit 1 when the constructed block's weights leave
the teacher's by more than 1e-12 (or its actions differ), 2 on bad input.
"""
from __future__ import annotations

import re

from numerics.analysis import budget
from numerics.analysis.control import GYM_DEFAULT_GAMMA, run_control
from numerics.commands.cli import add_max_memory, at_boundary, config_of, emit, plain_name, progress_bar
from numerics.core.distributions import MDPDistribution
from numerics.core.runtime import check_interrupt
from numerics.core.tolerances import CLOSED_LOOP_ATOL
from numerics.io.commandline import reproduce_command
from numerics.io.config import add_common, device_from_args, positive_int
from numerics.io.models import load_lsa, load_model
from numerics.io.options import Folder, Name, Path, Text
from numerics.io.sources import MDPSource, add_source_options, source_config, source_from_args
from numerics.render import control as render
from theory import algorithms
from theory.errors import InputError


def load_models(args, device) -> dict:
    models = {}
    if args.weights:
        models["trained"] = load_lsa(args.weights, args.algorithm, device)
    for name, path in (("mlp", args.mlp), ("lstm", args.lstm)):
        if path:
            model, meta = load_model(path, device=device)
            if meta["model"]["kind"] != name:
                raise InputError(name, f"{path} holds a {meta['model']['kind']} model, not an {name}")
            models[name] = model
    for m in models.values():
        m.eval()
    return models


def default_name(env: str, algorithm: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", f"{env}-{algorithm}".lower()).strip("-")


def add_arguments(p):
    add_common(p, mdps=100, algorithms=tuple(a for a in algorithms.names() if algorithms.get(a).controls))
    add_source_options(p)
    for a in p._actions:
        if a.dest == "gamma":
            a.default = None
            a.help = (f"fixed discount (random: 0.5, Section 4.1; Gymnasium envs: {GYM_DEFAULT_GAMMA})")
        elif a.dest == "mdps":
            a.help = "MDPs per seed (100); for a Gymnasium env, copies with their own features"
        elif a.dest == "algorithm":
            a.help = "teacher (default sarsa; td evaluates and does not control)"
    g = p.add_argument_group("control")
    g.add_argument("--env", type=Text(), default="random",
                   help="'random' (unseen MDPs from the training distribution) or a Gymnasium id whose "
                        "environment exposes unwrapped.P, e.g. FrozenLake-v1, CliffWalking-v1, Taxi-v4")
    g.add_argument("--seeds", type=positive_int, default=10, help="independent seeds (10; at least 2)")
    g.add_argument("--rounds", type=positive_int, default=50, help="closed-loop rounds (50)")
    g.add_argument("--feature-dim", type=positive_int, default=None,
                   help="Gymnasium envs: feature dimension d (default: the trained models' d, else "
                        "states x actions of the distribution, 36 at Section 4.1; |S||A| of the env for onehot)")
    g.add_argument("--weights", type=Path(), metavar="FILE.npz", default=None,
                   help="trained LSA block (save_model file, or a bare .npz of P and V as for check)")
    g.add_argument("--mlp", type=Path(), metavar="FILE", default=None, help="trained MLP baseline (save_model file)")
    g.add_argument("--lstm", type=Path(), metavar="FILE", default=None, help="trained LSTM baseline (save_model file)")
    g.add_argument("--constructed", action="store_true",
                   help="run only the construction and the references (teacher, oracle, uniform)")
    g.add_argument("--out", type=Folder(), default="reports/control", help="report folder (reports/control)")
    g.add_argument("--name", type=Name(), default=None, help="report name (default: <env>-<algorithm>)")
    g.add_argument("--no-report", action="store_true", help="print the result only; write no files")
    add_max_memory(g)


def run(args) -> int:
    device = device_from_args(args)
    if args.constructed and (args.weights or args.mlp or args.lstm):
        raise InputError("constructed", "--constructed runs no trained model; drop --weights/--mlp/--lstm")
    gamma = args.gamma
    if args.env == "random":
        args.gamma = 0.5 if gamma is None else gamma
        gamma = None
    elif args.gamma_range:
        raise InputError("gamma-range", "Gymnasium environments take one --gamma")
    if args.seed < 0:
        raise InputError("seed", f"must be a non-negative integer, got {args.seed}")
    source = control_source(args)
    budget.guard_source(source, args)
    dist = source.distribution() if args.env == "random" else _gym_dist(args)
    models = {} if args.constructed else load_models(args, device)
    if args.env == "random":       # a Gymnasium table's size is known once it is loaded (they are small)
        d = args.feature_dim or dist.d
        budget.guard(budget.control(algorithms.get(args.algorithm), args.mdps, dist.states, dist.actions, d,
                                    args.context, args.rounds, methods=2 + len(models)),
                     budget.max_memory(args.max_memory),
                     f"control of {args.mdps} MDPs x {dist.states} states x {dist.actions} actions (d = {d}), "
                     f"n = {args.context}, {args.rounds} rounds,",
                     "use fewer --mdps/--rounds or smaller --states/--actions/--context/--feature-dim")
    d = args.feature_dim or dist.d
    budget.guard_time(budget.control_work(algorithms.get(args.algorithm), args.seeds, args.mdps, args.rounds,
                                          dist.states, dist.actions, d, args.context, methods=2 + len(models)),
                      budget.max_time(args.max_time),
                      f"control of {args.seeds} seeds x {args.mdps} MDPs x {args.rounds} rounds ({dist.states} states "
                      f"x {dist.actions} actions, d = {d}, n = {args.context})",
                      "use fewer --seeds/--mdps/--rounds or smaller --states/--actions/--context/--feature-dim")
    total = args.seeds * (args.rounds + 1)
    with progress_bar(total=total, desc=f"control {args.env} {args.algorithm}", disable=args.json,
                      unit="seed-round") as bar:
        res = run_control(args.env, args.algorithm, dist=dist, gamma=gamma, features=args.features,
                          feature_dim=args.feature_dim, seeds=args.seeds, mdps=args.mdps, rounds=args.rounds,
                          n=args.context, epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                          models=models, device=device, progress=at_boundary(bar.update))
    if args.env != "random":
        args.gamma = res["gamma"]
    check_interrupt()
    command = reproduce_command("control", args, add_arguments)
    res["report"] = None
    if not args.no_report:
        name = plain_name(args.name or default_name(args.env, args.algorithm))
        config = source_config(args, source) if args.env == "random" else config_of(args)
        res["report"] = render.write(res, args.out, name, command, config)["md"]
    lines = [f"control {args.env} {args.algorithm}: {args.seeds} seeds x {args.mdps} MDPs, {args.rounds} rounds, "
             f"d = {res['feature_dim']} ({res['seconds']:.1f} s)"]
    for m, v in res["methods"].items():
        lines.append(f"  {m:12s} final normalised return {v['final_normalized_return']:.4f} "
                     f"[{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]")
    lines.append(f"max |w_constructed - w_teacher| = {res['max_abs_weight_diff_constructed_vs_teacher']:.3e} "
                 f"(tolerance {CLOSED_LOOP_ATOL:.0e}); actions identical: {res['actions_identical']}")
    lines.append("HOLDS: the constructed block reproduces the teacher's closed loop" if res["reproduces_teacher"]
                 else "FAILS: the constructed block does not reproduce the teacher's closed loop")
    if res["report"]:
        lines.append(f"report: {res['report']}")
    out = {k: v for k, v in res.items()}
    emit(lines, out, args.json)
    return 0 if res["reproduces_teacher"] else 1


def control_source(args) -> MDPSource:
    """The MDP source of ``--env random`` (any source); for a Gymnasium env,
    none may be named and the Section 4.1 options only size the default
    feature dimension."""
    if args.env == "random":
        return source_from_args(args)
    if args.family != "section41" or args.mdp_batch or args.distribution:
        raise InputError("env", "--family / --mdp-batch / --distribution replace --env random; give one of them")
    return MDPSource.section41(_gym_dist(args))


def _gym_dist(args) -> MDPDistribution:
    """The training distribution's sizes (for the default feature dimension);
    its gamma is not used for a Gymnasium env."""
    return MDPDistribution(states=args.states, actions=args.actions, features=args.features,
                           feature_seed=args.seed)
