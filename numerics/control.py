"""``icrl-verify control``: in-context control on unseen MDPs (THEORY.md
section 7) and on Gymnasium's tabular environments.

Closed loop, per method and per MDP: ``w_0 ~ Unif(-1, 1)^q`` and
``s_0 ~ rho0`` as in training; round ``k`` acts with the behaviour policy
of ``w_k`` (epsilon-greedy in ``Q_{w_k}``; the softmax actor for
actor-critic), collects a window of ``n`` transitions and sets
``w_{k+1} = TF(H_k)``, the method's own output on the prompt of that window
(``s_0 <- s_n``).  Round ``k`` is scored by the exact discounted return of
the greedy policy in ``Q_{w_k}`` (of the actor for actor-critic),
normalised ``(J - J_unif) / (J* - J_unif)`` with ``pi*`` from value
iteration.

Methods: ``teacher`` (the update is the teacher's step), ``constructed``
(the block with the weights of Theorem 3.1 / 3.3 from ``theory``: it must
reproduce the teacher's run exactly; every method uses its own generator,
seeded identically, so equal weights give equal actions), ``trained``
(``--weights``), ``mlp`` (``--mlp``), ``lstm`` (``--lstm``), ``oracle``
(``pi*``) and ``uniform``.  Intervals: 95% Student-t over seeds of the
per-seed mean over MDPs.  Exit 1 when the constructed block's weights leave
the teacher's by more than ``CLOSED_LOOP_ATOL`` (or its actions differ).
"""
from __future__ import annotations

import math
import re
import shlex
import time

import numpy as np
import torch

from numerics import DTYPE
from numerics.algorithms import check_algorithm, layout, split_theta
from numerics.block import readout_fast
from numerics.constructions import constructed_blocks
from numerics.io import torch_threads
from numerics.distributions import MDPDistribution
from numerics.envs import FEATURE_KINDS, broadcast_mdp, env_features, load_gym_env
from numerics.errors import InputError
from numerics.mdp import (MDP, discounted_return, greedy_policy, uniform_policy,
                          value_iteration)
from numerics.prompts import build_context
from numerics.sampler import frames
from numerics.teachers import teacher_update
from numerics.tolerances import CLOSED_LOOP_ATOL, VI_TOL

#: Fixed reference methods, always run (in this order in tables and plots).
FIXED_METHODS = ("constructed", "teacher", "oracle", "uniform")
#: Names of the trained models the CLI loads.
MODEL_METHODS = ("trained", "mlp", "lstm")

#: Discount for Gymnasium environments when ``--gamma`` is not given: their
#: rewards are sparse and delayed (FrozenLake pays only at the goal, ~6+
#: steps away), so Section 4.1's 0.5 would make J* - J_unif vanish.
GYM_DEFAULT_GAMMA = 0.9

#: Up to this many states returns are exact linear solves
#: (:func:`numerics.mdp.discounted_return`); above it (Taxi-v4: 501) the
#: deterministic greedy policy is evaluated by a sparse fixed-point
#: iteration to a Bellman residual below ``VI_TOL`` (a dense solve per
#: policy and round would cost O(S^3) each).
DENSE_SOLVE_MAX_STATES = 128

#: Memory budget for one chunk of seeds (features and evaluation matrices);
#: decides how many seeds run in one batch.  Depends on sizes only, so a
#: given configuration always runs the same chunks.
CHUNK_BYTES = 256 * 2 ** 20


# ---------------------------------------------------------------------------
# scoring

def greedy_actions(algorithm: str, F: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Greedy action per state (``B x S``, first maximiser) of ``Q_w``, or of
    the actor's logits ``lam . phi`` for actor-critic."""
    parts = split_theta(algorithm, theta)
    v = parts["lam"] if algorithm == "actor-critic" else parts["w"]
    return (F @ v[:, None, :, None]).squeeze(-1).argmax(-1)


def _sparse_table(mdp: MDP):
    """``(next, prob)`` (``S x A x K``) of the nonzero transitions of a
    one-MDP batch, zero-padded to the largest support ``K``."""
    T = mdp.T[0]
    K = int((T > 0).sum(-1).max())
    prob, nxt = T.topk(K, dim=-1)
    return nxt, prob


class Evaluator:
    """Normalised returns of deterministic policies on a batch of MDPs.

    ``mdp`` is the evaluation MDP (batch ``B``, possibly a stride-0 view of
    one table, then ``table`` is that one-MDP batch).  ``J_opt`` (value
    iteration) and ``J_unif`` are computed once.
    """

    def __init__(self, mdp: MDP, table: MDP | None = None):
        self.mdp = mdp
        self.table = table
        base = table if table is not None else mdp
        _, Qs = value_iteration(base)
        self.opt_actions = Qs.argmax(-1).expand(mdp.batch, -1)
        J_opt = discounted_return(base, greedy_policy(Qs))
        J_unif = discounted_return(base, uniform_policy(base))
        self.J_opt, self.J_unif = J_opt.expand(mdp.batch), J_unif.expand(mdp.batch)
        self.sparse = table is not None and table.states > DENSE_SOLVE_MAX_STATES
        if table is not None:
            self.r = table.expected_reward()[0]
        if self.sparse:
            self.nxt, self.prob = _sparse_table(table)

    def returns(self, actions: torch.Tensor) -> torch.Tensor:
        """``J(pi) = rho0 . V^pi`` of the deterministic policies ``actions`` (``B x S``)."""
        if self.table is None:
            pi = torch.nn.functional.one_hot(actions, self.mdp.actions).to(self.mdp.T.dtype)
            return discounted_return(self.mdp, pi)
        if self.sparse:
            return sparse_policy_return(self.nxt, self.prob, self.r, self.mdp.gamma, self.mdp.rho0, actions)
        return table_policy_return(self.table, self.mdp.gamma, actions)

    def uniform_returns(self) -> torch.Tensor:
        """``J`` of the uniform policy, by a linear solve (``B``)."""
        base = self.table if self.table is not None else self.mdp
        return discounted_return(base, uniform_policy(base)).expand(self.mdp.batch)

    def normalize(self, J: torch.Tensor) -> torch.Tensor:
        """``(J - J_unif) / (J* - J_unif)`` (with the guard of
        :func:`numerics.mdp.normalized_return` for ``J* = J_unif``)."""
        denom = self.J_opt - self.J_unif
        denom = torch.where(denom.abs() < 1e-12, torch.ones_like(denom), denom)
        return (J - self.J_unif) / denom

    def normalized(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised return of the deterministic policies ``actions``."""
        return self.normalize(self.returns(actions))


def table_policy_return(table: MDP, gamma: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``J(pi)`` of deterministic policies (``B x S``) on one shared table
    (a one-MDP batch) by the linear solve ``V = (I - gamma P_pi)^{-1} r_pi``;
    ``P_pi`` is gathered row by row (no ``B x S x A x S`` product)."""
    B, S = actions.shape
    rows = torch.arange(S, device=actions.device)[None, :]
    P_pi = table.T[0][rows, actions]                        # B x S x S
    r_pi = table.expected_reward()[0][rows, actions]        # B x S
    eye = torch.eye(S, dtype=P_pi.dtype, device=P_pi.device)
    V = torch.linalg.solve(eye - gamma[:, None, None] * P_pi, r_pi.unsqueeze(-1)).squeeze(-1)
    return (table.rho0 * V).sum(-1)


def sparse_policy_return(nxt, prob, r, gamma, rho0, actions, tol: float = VI_TOL, max_iter: int = 1_000_000):
    """``J(pi)`` of deterministic policies on one shared sparse table by the
    fixed-point iteration ``V <- r_pi + gamma P_pi V``, stopped when the
    sup-norm residual is at most ``tol`` (value error at most
    ``tol * gamma / (1 - gamma)``).

    Shapes: ``nxt``, ``prob`` ``S x A x K``; ``r`` ``S x A``; ``gamma`` ``B``;
    ``rho0`` ``B x S``; ``actions`` ``B x S``.
    """
    B, S = actions.shape
    rows = torch.arange(S, device=actions.device)[None, :]
    idx = nxt[rows, actions].reshape(B, -1)                 # B x (S K)
    p = prob[rows, actions]                                 # B x S x K
    rr = r[rows, actions]                                   # B x S
    g = gamma[:, None]
    if nxt.shape[-1] == 1:
        return (rho0 * _deterministic_values(idx, rr, g, tol)).sum(-1)
    V = torch.zeros(B, S, dtype=r.dtype, device=r.device)
    for _ in range(max_iter):
        V_new = rr + g * (p * V.gather(1, idx).reshape(p.shape)).sum(-1)
        done = (V_new - V).abs().max() <= tol
        V = V_new
        if done:
            break
    return (rho0 * V).sum(-1)


def _deterministic_values(idx: torch.Tensor, rr: torch.Tensor, g: torch.Tensor, tol: float) -> torch.Tensor:
    """``V^pi`` when every state has one successor (Taxi-v4), by doubling:
    after step ``k``, ``acc[s] = sum_{t < 2^k} gamma^t r(s_t)`` and
    ``idx[s] = s_{2^k}``; stops when the tail ``gamma^{2^k} max|r| / (1 - gamma)``
    is at most ``tol`` (about 10 gathers instead of hundreds of sweeps)."""
    acc, gp = rr.clone(), g.clone()
    tail_scale = rr.abs().amax(-1, keepdim=True) / (1 - g)
    while bool((gp * tail_scale > tol).any()):
        acc = acc + gp * acc.gather(1, idx)
        idx = idx.gather(1, idx)
        gp = gp * gp
    return acc


# ---------------------------------------------------------------------------
# problems (MDPs + features), in chunks of seeds

def _seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def _problem(env, algorithm, dist, tab, features, d, B, gen, device):
    """``(evaluator, acting MDP, F)`` for ``B`` MDPs of one chunk."""
    if env == "random":
        mdp, F = dist.sample(B, gen, device=device)
        return Evaluator(mdp), mdp, F
    table = tab.mdp.to(device)
    restart = tab.restart.to(device)
    F = env_features(tab, features, d, B, gen, feature_seed=dist.feature_seed, device=device)
    return Evaluator(broadcast_mdp(table, B), table), broadcast_mdp(restart, B), F


def _t_interval(x: np.ndarray):
    """Mean and 95% Student-t interval over the first axis (seeds)."""
    from scipy import stats
    S = x.shape[0]
    mean = x.mean(0)
    half = stats.t.ppf(0.975, S - 1) * x.std(0, ddof=1) / math.sqrt(S)
    return mean, mean - half, mean + half


def run_control(env: str = "random", algorithm: str = "sarsa", *, dist: MDPDistribution | None = None,
                gamma: float | None = None, features: str = "dense", feature_dim: int | None = None,
                seeds: int = 10, mdps: int = 100, rounds: int = 50, n: int = 20, epsilon: float = 0.1,
                alpha: float = 0.2, beta: float = 0.2, seed: int = 0, models: dict | None = None,
                constructed_weights: tuple[torch.Tensor, torch.Tensor] | None = None, device=None,
                threads: int | None = 1, progress=None) -> dict:
    """Run the closed loop of every method; writes no file.

    Args:
      env: ``"random"`` (fresh MDPs from ``dist``, default Section 4.1) or a
        Gymnasium id with a transition table.
      gamma: discount for a Gymnasium env (default
        :data:`GYM_DEFAULT_GAMMA`); for ``random`` it is ``dist``'s.
      features, feature_dim: features of a Gymnasium env (``dense``:
        Unif(-1,1) per MDP; default ``d``: the models' ``d``, else
        ``dist.d`` (36 at Section 4.1), or ``|S||A|`` for ``onehot``).
      models: ``{name: model}``, each with ``readout(X, wt) -> theta``
        (:func:`numerics.models.load_model`), e.g. ``trained``, ``mlp``,
        ``lstm``.
      constructed_weights: ``(P12, Vbar21)`` replacing the construction
        (tests feed wrong weights here to see the check fail).
      threads: torch CPU threads during the loop (restored after; None
        leaves the setting alone).  The loop is thousands of small batched
        operations; on a shared 2-core machine two intra-op threads made it
        ~6x slower than one (measured 28 s vs 4.9 s for 10 rounds).

    Returns a dict: ``methods`` (name -> ``final_normalized_return``,
    ``ci95``, ``curve``, ``curve_ci95``, ``nonfinite_final``),
    ``difference_vs_teacher`` (name -> paired ``mean``, ``ci95`` of the final
    return minus the teacher's), ``max_abs_weight_diff_constructed_vs_teacher``,
    ``actions_identical``, ``tolerance``, ``reproduces_teacher``, the
    configuration and ``seconds``.
    """
    t0 = time.perf_counter()
    check_algorithm(algorithm)
    if algorithm == "td":
        raise InputError("algorithm", "td evaluates the uniform policy and does not control; "
                         "use sarsa, expected-sarsa, q-learning or actor-critic")
    for field, v in (("seeds", seeds), ("mdps", mdps), ("rounds", rounds), ("context", n)):
        if not isinstance(v, int) or v < 1:
            raise InputError(field, f"must be a positive integer, got {v!r}")
    if seeds < 2:
        raise InputError("seeds", f"need at least 2 seeds for an interval over seeds, got {seeds}")
    if not isinstance(seed, int) or seed < 0:
        raise InputError("seed", f"must be a non-negative integer, got {seed!r}")
    if not (0 <= epsilon <= 1):
        raise InputError("epsilon", f"must be in [0, 1], got {epsilon}")
    models = dict(models or {})
    for name in models:
        if name in FIXED_METHODS:
            raise InputError("models", f"name {name!r} is reserved for a fixed method")
    device = torch.device(device or "cpu")
    dist = dist or MDPDistribution()
    if dist.state_features:
        raise InputError("algorithm", "state features (td) cannot control")
    model_d = {name: _model_d(mod) for name, mod in models.items()}
    for name, mod in models.items():
        _check_model(name, mod, algorithm, n)

    if env == "random":
        if gamma is not None:
            raise InputError("gamma", "for --env random the discount comes from the distribution")
        d = dist.d
        if feature_dim is not None and feature_dim != d:
            raise InputError("feature-dim", f"for --env random d = states x actions = {d}; got {feature_dim}")
        tab, S, A, env_gamma = None, dist.states, dist.actions, None
    else:
        gamma = GYM_DEFAULT_GAMMA if gamma is None else gamma
        if not (0 <= gamma < 1):
            raise InputError("gamma", f"must satisfy 0 <= gamma < 1, got {gamma}")
        if features not in FEATURE_KINDS:
            raise InputError("features", f"unknown {features!r}; expected one of {', '.join(FEATURE_KINDS)}")
        tab = load_gym_env(env, float(gamma))
        S, A, env_gamma = tab.states, tab.actions, float(gamma)
        if feature_dim is not None:
            d = feature_dim
        elif model_d:
            d = next(iter(model_d.values()))
        elif features == "onehot":
            d = tab.env_states * A
        else:
            d = dist.d
    for name, md in model_d.items():
        if md != d:
            raise InputError("models", f"model {name!r} was built for d = {md}, but the features here have d = {d}")

    if constructed_weights is None:
        constructed_weights = constructed_blocks(algorithm, d, alpha, beta, device=device)
    P12c, Vbar21c = (w.to(device=device, dtype=DTYPE) for w in constructed_weights)
    q = layout(algorithm).q(d)

    loop_methods = ["constructed", "teacher"] + list(models)
    dense_eval = S * S if S <= DENSE_SOLVE_MAX_STATES else S * 4
    per_seed_bytes = 8 * mdps * (S * A * d + 2 * dense_eval + S * A * 4 + (rounds + 1) * 2 * q)
    chunk = max(1, min(seeds, CHUNK_BYTES // max(per_seed_bytes, 1)))
    curves = {m: [] for m in loop_methods + ["oracle", "uniform"]}
    nonfinite = {m: 0 for m in loop_methods}
    max_diff, max_abs_w, actions_identical = 0.0, 0.0, True

    with torch.no_grad(), torch_threads(threads, device):
        for c0 in range(0, seeds, chunk):
            ns = min(chunk, seeds - c0)
            B = ns * mdps
            gen = torch.Generator(device=device).manual_seed(_seed_of(seed, c0, 0))
            ev, act_mdp, F = _problem(env, algorithm, dist, tab, features, d, B, gen, device)
            g = act_mdp.gamma

            def model_update(readout):
                return lambda th, win: readout(*build_context(algorithm, F, win, th, g, epsilon))

            updates = {"constructed": model_update(lambda X, wt: readout_fast(X, wt, P12c, Vbar21c)),
                       "teacher": lambda th, win: teacher_update(algorithm, F, win, th, g, epsilon, alpha, beta)}
            for name, mod in models.items():
                updates[name] = model_update(mod.readout)
            loop_seed = _seed_of(seed, c0, 1)
            streams = [frames(algorithm, act_mdp, F, n, epsilon, rounds + 1,
                              torch.Generator(device=device).manual_seed(loop_seed), updates[m])
                       for m in loop_methods]
            scores = {m: torch.empty(rounds + 1, B, dtype=DTYPE, device=device) for m in loop_methods}
            for k, steps in enumerate(zip(*streams)):
                thetas = {}
                for m, (theta, win) in zip(loop_methods, steps):
                    thetas[m] = (theta, win)
                    scores[m][k] = ev.normalized(greedy_actions(algorithm, F, theta))
                (tc, wc), (tt, wt_) = thetas["constructed"], thetas["teacher"]
                diff = (tc - tt).abs()
                diff = torch.where(torch.isfinite(diff), diff, torch.full_like(diff, math.inf))
                max_diff = max(max_diff, float(diff.max()))
                max_abs_w = max(max_abs_w, float(tt.abs().max()))
                if k < rounds:   # the window of the last round is drawn but not used
                    actions_identical &= bool(torch.equal(wc.a, wt_.a) and torch.equal(wc.s, wt_.s))
                if k == rounds:
                    for m in loop_methods:
                        nonfinite[m] += int((~torch.isfinite(thetas[m][0]).all(-1)).sum())
                if progress is not None:
                    progress(ns)
            for m in loop_methods:
                curves[m].append(scores[m].reshape(rounds + 1, ns, mdps).mean(-1).T.cpu().numpy())
            opt = ev.normalized(ev.opt_actions)
            unif = ev.normalize(ev.uniform_returns())
            for m, v in (("oracle", opt), ("uniform", unif)):
                per_seed = v.reshape(ns, mdps).mean(-1).cpu().numpy()
                curves[m].append(np.repeat(per_seed[:, None], rounds + 1, 1))

    methods, diffs = {}, {}
    per_seed = {m: np.concatenate(curves[m], 0) for m in curves}      # seeds x (rounds+1)
    order = ["constructed"] + list(models) + ["teacher", "oracle", "uniform"]
    for m in order:
        mean, lo, hi = _t_interval(per_seed[m])
        methods[m] = dict(final_normalized_return=float(mean[-1]), ci95=[float(lo[-1]), float(hi[-1])],
                          curve=mean.tolist(), curve_ci95=np.stack([lo, hi], 1).tolist())
        if m in nonfinite:
            methods[m]["nonfinite_final"] = nonfinite[m]
        if m != "teacher":
            dm, dlo, dhi = _t_interval(per_seed[m][:, -1:] - per_seed["teacher"][:, -1:])
            diffs[m] = dict(mean=float(dm[0]), ci95=[float(dlo[0]), float(dhi[0])])
    reproduces = bool(max_diff <= CLOSED_LOOP_ATOL and actions_identical)
    return dict(env=env, algorithm=algorithm, seeds=seeds, mdps=mdps, rounds=rounds, context=n, epsilon=epsilon,
                alpha=alpha, beta=beta, seed=seed, gamma=env_gamma if env != "random" else
                (list(dist.gamma_range) if dist.gamma_range else dist.gamma),
                features=features if env != "random" else dist.features, feature_dim=d, states=S, actions=A,
                distribution=dist.describe() if env == "random" else None,
                evaluation=(f"sparse evaluation of the deterministic greedy policy, error <= {VI_TOL:g}"
                            if (tab is not None and S > DENSE_SOLVE_MAX_STATES) else "linear solve"),
                seeds_per_batch=chunk, methods=methods, difference_vs_teacher=diffs,
                max_abs_weight_diff_constructed_vs_teacher=max_diff, max_abs_teacher_weight=max_abs_w,
                actions_identical=actions_identical, tolerance=CLOSED_LOOP_ATOL, reproduces_teacher=reproduces,
                seconds=time.perf_counter() - t0)


def _model_d(model) -> int:
    cfg = getattr(model, "_icrl_config", None)
    if cfg is not None:
        return int(cfg["d"])
    raise InputError("models", f"cannot tell the feature dimension of {type(model).__name__}; "
                     "build it with numerics.models.build_model or load it with load_model")


def _check_model(name, model, algorithm, n):
    cfg = model._icrl_config
    if cfg.get("algorithm") != algorithm:
        raise InputError("models", f"model {name!r} was trained for {cfg.get('algorithm')}, not {algorithm}")
    if cfg.get("kind") in ("mlp",) and int(cfg.get("n")) != n:
        raise InputError("context", f"model {name!r} reads windows of n = {cfg.get('n')}; got --context {n}")


# ---------------------------------------------------------------------------
# loading models, reports, CLI

def load_lsa(path: str, algorithm: str, device=None):
    """An LSA block from ``path``: a :func:`numerics.models.save_model` file
    (with its ``.json``), or a bare ``.npz`` of ``P`` and ``V`` (``check
    --weights`` format; ``d`` inferred from the shape)."""
    import os
    from numerics.models import build_model, load_model
    from numerics.weights import load_weights
    if os.path.exists(path + ".json"):
        model, meta = load_model(path, device=device)
        if meta["model"]["kind"] != "lsa":
            raise InputError("weights", f"{path} holds a {meta['model']['kind']} model, not an LSA block")
        return model
    try:
        with np.load(path, allow_pickle=False) as z:
            shape = z["P"].shape if "P" in z.files else None
    except FileNotFoundError:
        raise InputError("weights", f"no such file {path}") from None
    except (OSError, ValueError, EOFError) as e:
        raise InputError("weights", f"{path} is not a readable .npz file ({e})") from None
    except Exception as e:  # zipfile.BadZipFile and friends
        raise InputError("weights", f"{path} is not a readable .npz file ({type(e).__name__})") from None
    if shape is None or len(shape) != 2:
        raise InputError("weights", f"{path} lacks a 2-D array P")
    lay = layout(algorithm)
    ds = [d for d in range(1, shape[0] + 1) if lay.D(d) == shape[0]]
    if not ds:
        raise InputError("weights", f"{path}: P is {shape[0]} x {shape[1]}, not D x D for any d of the {algorithm} layout")
    P, V = load_weights(path, shape[0], device=device)
    model = build_model("lsa", algorithm, ds[0], 1, "full", device=device, init=False)
    return model.set_weights(P, V)


def load_models(args, device) -> dict:
    from numerics.models import load_model
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


def command_line(args) -> str:
    """The full ``icrl-verify control`` command that reproduces ``args``
    (every option explicit, so a config file is not needed)."""
    parts = ["icrl-verify", "control"]
    skip = {"func", "command", "json", "config"}
    for k, v in vars(args).items():
        if k in skip or v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            parts.append(flag)
        elif isinstance(v, (list, tuple)):
            parts += [flag] + [str(x) for x in v]
        else:
            parts += [flag, str(v)]
    return shlex.join(parts)


def default_name(env: str, algorithm: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", f"{env}-{algorithm}".lower()).strip("-")


def plot_curves(result: dict, path: str):
    """Normalised return against round, one line and 95% band per method (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from numerics.io import atomic_savefig
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"constructed": dict(ls="--", lw=2.2, zorder=5), "teacher": dict(ls="-", lw=3.5, alpha=0.6),
              "oracle": dict(ls=":", color="k"), "uniform": dict(ls=":", color="grey")}
    for m, v in result["methods"].items():
        y = np.asarray(v["curve"])
        ci = np.asarray(v["curve_ci95"])
        x = np.arange(len(y))
        line, = ax.plot(x, y, label=m, **styles.get(m, {}))
        ax.fill_between(x, ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("round k")
    ax.set_ylabel("normalised return of greedy(Q_{w_k})")
    ax.set_title(f"{result['env']}, {result['algorithm']}: {result['seeds']} seeds x {result['mdps']} MDPs (95% t-band)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def render_report(result: dict, command: str, args=None, png_name: str | None = None) -> str:
    from numerics.io import run_header
    r = result
    ok = r["reproduces_teacher"]
    lines = [f"# In-context control: {r['env']}, {r['algorithm']}", run_header(command, args)]
    if r["env"] == "random":
        lines.append(f"Environment: {r['seeds']} seeds x {r['mdps']} unseen MDPs from the training distribution "
                     f"({r['distribution']}).")
    else:
        lines.append(f"Environment: Gymnasium `{r['env']}` ({r['states']} states including the absorbing state of "
                     f"terminal transitions, {r['actions']} actions), gamma = {r['gamma']}, {r['features']} features "
                     f"of dimension d = {r['feature_dim']} drawn per MDP copy (zero on the absorbing state); "
                     f"{r['seeds']} seeds x {r['mdps']} copies (feature draws, w_0, trajectories). "
                     "The absorbing state restarts from rho0 while acting; returns are those of the absorbing MDP.")
    lines += ["",
              f"Closed loop: {r['rounds']} rounds of n = {r['context']} transitions, epsilon = {r['epsilon']}, "
              f"alpha = {r['alpha']}" + (f", beta = {r['beta']}" if r['algorithm'] == 'actor-critic' else "") +
              f"; w_{{k+1}} = TF(H_k). Score of round k: normalised discounted return of the greedy policy in "
              f"{'the actor' if r['algorithm'] == 'actor-critic' else 'Q_{w_k}'} ({r['evaluation']}), "
              "(J - J_unif) / (J* - J_unif), J* by value iteration.",
              "Intervals: 95% Student-t over seeds of the per-seed mean over MDPs.", "",
              "| method | normalised return after the last round | 95% interval | minus teacher (paired, 95%) |",
              "|---|---|---|---|"]
    for m, v in r["methods"].items():
        dv = r["difference_vs_teacher"].get(m)
        dtxt = f"{dv['mean']:+.4f} [{dv['ci95'][0]:+.4f}, {dv['ci95'][1]:+.4f}]" if dv else "-"
        lines.append(f"| {m} | {v['final_normalized_return']:.4f} | [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}] | {dtxt} |")
    lines += ["",
              "## Constructed block vs teacher (Theorem 3.1 / 3.3 in closed loop)", "",
              f"Max |w_constructed - w_teacher| over every round, MDP and coordinate: "
              f"{r['max_abs_weight_diff_constructed_vs_teacher']:.3e} (tolerance {r['tolerance']:.0e}, "
              f"CLOSED_LOOP_ATOL; largest |w_teacher| {r['max_abs_teacher_weight']:.3g}); "
              f"identical states and actions in every window: {r['actions_identical']}.", "",
              ("HOLDS: the constructed block reproduces the teacher's run exactly (same seed, same actions)." if ok else
               "FAILS: the constructed block's run leaves the teacher's."), ""]
    nf = {m: v.get("nonfinite_final", 0) for m, v in r["methods"].items() if v.get("nonfinite_final")}
    if nf:
        lines += [f"Non-finite weights after the last round (MDPs): {nf}.", ""]
    if png_name:
        lines += [f"![normalised return against round]({png_name})", ""]
    lines.append(f"Run time: {r['seconds']:.1f} s.")
    return "\n".join(lines) + "\n"


def write_report(result: dict, out_dir: str, name: str, command: str, args=None) -> dict:
    """Write ``out_dir/name.{md,json,png}`` atomically; returns their paths."""
    import os
    from numerics.io import atomic_write, atomic_write_json
    paths = {ext: os.path.join(out_dir, f"{name}.{ext}") for ext in ("md", "json", "png")}
    plot_curves(result, paths["png"])
    atomic_write_json(paths["json"], dict(result, command=command))
    atomic_write(paths["md"], render_report(result, command, args, png_name=os.path.basename(paths["png"])))
    return paths


def add_arguments(p):
    from numerics.config import add_common, positive_int
    from theory.constructions import ALGORITHMS
    add_common(p, mdps=100, algorithms=tuple(a for a in ALGORITHMS if a != "td"))
    for a in p._actions:
        if a.dest == "gamma":
            a.default = None
            a.help = (f"fixed discount (random: 0.5, Section 4.1; Gymnasium envs: {GYM_DEFAULT_GAMMA})")
        elif a.dest == "mdps":
            a.help = "MDPs per seed (100); for a Gymnasium env, copies with their own features"
        elif a.dest == "algorithm":
            a.help = "teacher (default sarsa; td evaluates and does not control)"
    g = p.add_argument_group("control")
    g.add_argument("--env", default="random",
                   help="'random' (unseen MDPs from the training distribution) or a Gymnasium id whose "
                        "environment exposes unwrapped.P, e.g. FrozenLake-v1, CliffWalking-v1, Taxi-v4")
    g.add_argument("--seeds", type=positive_int, default=10, help="independent seeds (10; at least 2)")
    g.add_argument("--rounds", type=positive_int, default=50, help="closed-loop rounds (50)")
    g.add_argument("--feature-dim", type=positive_int, default=None,
                   help="Gymnasium envs: feature dimension d (default: the trained models' d, else "
                        "states x actions of the distribution, 36 at Section 4.1; |S||A| of the env for onehot)")
    g.add_argument("--weights", metavar="FILE.npz", default=None,
                   help="trained LSA block (save_model file, or a bare .npz of P and V as for check)")
    g.add_argument("--mlp", metavar="FILE", default=None, help="trained MLP baseline (save_model file)")
    g.add_argument("--lstm", metavar="FILE", default=None, help="trained LSTM baseline (save_model file)")
    g.add_argument("--constructed", action="store_true",
                   help="run only the construction and the references (teacher, oracle, uniform)")
    g.add_argument("--out", default="reports/control", help="report folder (reports/control)")
    g.add_argument("--name", default=None, help="report name (default: <env>-<algorithm>)")
    g.add_argument("--no-report", action="store_true", help="print the result only; write no files")


def run(args) -> int:
    from numerics.cli import emit, progress_bar
    from numerics.config import device_from_args, distribution_from_args
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
    dist = distribution_from_args(args) if args.env == "random" else _gym_dist(args)
    models = {} if args.constructed else load_models(args, device)
    total = args.seeds * (args.rounds + 1)
    with progress_bar(total=total, desc=f"control {args.env} {args.algorithm}", disable=args.json,
                      unit="seed-round") as bar:
        res = run_control(args.env, args.algorithm, dist=dist, gamma=gamma, features=args.features,
                          feature_dim=args.feature_dim, seeds=args.seeds, mdps=args.mdps, rounds=args.rounds,
                          n=args.context, epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                          models=models, device=device, progress=bar.update)
    if args.env != "random":
        args.gamma = res["gamma"]
    command = command_line(args)
    res["report"] = None
    if not args.no_report:
        name = args.name or default_name(args.env, args.algorithm)
        res["report"] = write_report(res, args.out, name, command, args)["md"]
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


def _gym_dist(args) -> MDPDistribution:
    """The training distribution's sizes (for the default feature dimension);
    its gamma is not used for a Gymnasium env."""
    return MDPDistribution(states=args.states, actions=args.actions, features=args.features,
                           feature_seed=args.seed)
