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
import time

import numpy as np
import torch
from scipy import stats

from numerics.core.block import lemma_c1
from numerics.core.constructions import constructed_blocks
from numerics.core.distributions import FEATURE_KINDS, MDPDistribution
from numerics.core.mdp import MDP, discounted_return, greedy_policy, normalize_return, uniform_policy, value_iteration
from numerics.core.policies import greedy_actions
from numerics.core.runtime import torch_threads
from numerics.core.stream import Stream
from numerics.core.tolerances import CLOSED_LOOP_ATOL, DTYPE, VI_TOL
from numerics.io.envs import broadcast_mdp, env_features, load_gym_env
from theory import algorithms
from theory.errors import InputError

#: Fixed reference methods, always run (in this order in tables and plots).
FIXED_METHODS = ("constructed", "teacher", "oracle", "uniform")

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
        """``(J - J_unif) / (J* - J_unif)`` (:func:`numerics.core.mdp.normalize_return`)."""
        return normalize_return(J, self.J_opt, self.J_unif)

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


def _problem(env, dist, tab, features, d, B, gen, device):
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
    S = x.shape[0]
    mean = x.mean(0)
    half = stats.t.ppf(0.975, S - 1) * x.std(0, ddof=1) / math.sqrt(S)
    return mean, mean - half, mean + half


def run_control(env: str = "random", algorithm="sarsa", *, dist: MDPDistribution | None = None,
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
    ``ci95``, ``curve``, ``curve_ci95``, ``nonfinite_final``), ``per_seed``
    (name -> seeds x (rounds + 1) per-seed mean curves),
    ``difference_vs_teacher`` (name -> paired ``mean``, ``ci95`` of the final
    return minus the teacher's), ``max_abs_weight_diff_constructed_vs_teacher``,
    ``actions_identical``, ``tolerance``, ``reproduces_teacher``, the
    configuration and ``seconds``.
    """
    t0 = time.perf_counter()
    record = algorithms.get(algorithm)
    if not record.controls:
        raise InputError("algorithm", f"{record.name} evaluates a fixed policy and does not control; "
                         f"use one of {', '.join(a for a in algorithms.names() if algorithms.get(a).controls)}")
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
        _check_model(name, mod, record, n)

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

    steps = {"alpha": alpha, "beta": beta}
    if constructed_weights is None:
        constructed_weights = constructed_blocks(record, d, steps, device=device)
    P12c, Vbar21c = (w.to(device=device, dtype=DTYPE) for w in constructed_weights)
    q = record.layout.q(d)

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
            ev, act_mdp, F = _problem(env, dist, tab, features, d, B, gen, device)
            updates = {"constructed": lambda fr: lemma_c1(fr.X, fr.wt, P12c, Vbar21c), "teacher": None}
            for name, mod in models.items():
                updates[name] = lambda fr, mod=mod: mod.readout(fr.X, fr.wt)
            loop_seed = _seed_of(seed, c0, 1)
            streams = [Stream(record, act_mdp, F, n=n, epsilon=epsilon, steps=steps,
                              gen=torch.Generator(device=device).manual_seed(loop_seed)).frames(rounds + 1, updates[m])
                       for m in loop_methods]
            scores = {m: torch.empty(rounds + 1, B, dtype=DTYPE, device=device) for m in loop_methods}
            for k, frames in enumerate(zip(*streams)):
                thetas = {}
                for m, fr in zip(loop_methods, frames):
                    thetas[m] = (fr.theta, fr.window)
                    scores[m][k] = ev.normalized(greedy_actions(record, F, fr.theta))
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
    return dict(env=env, algorithm=record.name, seeds=seeds, mdps=mdps, rounds=rounds, context=n, epsilon=epsilon,
                alpha=alpha, beta=beta, seed=seed, gamma=env_gamma if env != "random" else
                (list(dist.gamma_range) if dist.gamma_range else dist.gamma),
                features=features if env != "random" else dist.features, feature_dim=d, states=S, actions=A,
                distribution=dist.describe() if env == "random" else None,
                evaluation=(f"sparse evaluation of the deterministic greedy policy, error <= {VI_TOL:g}"
                            if (tab is not None and S > DENSE_SOLVE_MAX_STATES) else "linear solve"),
                seeds_per_batch=chunk, methods=methods, difference_vs_teacher=diffs,
                max_abs_weight_diff_constructed_vs_teacher=max_diff, max_abs_teacher_weight=max_abs_w,
                actions_identical=actions_identical, tolerance=CLOSED_LOOP_ATOL, reproduces_teacher=reproduces,
                per_seed={m: per_seed[m].tolist() for m in order}, seconds=time.perf_counter() - t0)


def rounds_to_level(result: dict, level: float = 0.9) -> dict:
    """Per method of a :func:`run_control` result, the first round whose
    normalised return reaches ``level`` (the oracle scores 1, so 0.9 is 0.9
    of the oracle's): ``mean_curve`` (on the curve of the mean over seeds,
    None if never within the rollout), ``per_seed`` (each seed's first
    round, None if never), ``seeds_reached``, and over the seeds that reached
    it ``mean`` with a 95% Student-t ``ci95`` (None with fewer than 2);
    ``final`` is the mean curve's last value and ``late_change`` its change
    over the last fifth of the rounds (how flat the curve has become)."""
    out = {}
    for m, curves in result["per_seed"].items():
        c = np.asarray(curves)
        mean = c.mean(0)
        first = lambda y: next((int(k) for k in np.flatnonzero(y >= level)[:1]), None)
        per = [first(row) for row in c]
        hit = np.asarray([k for k in per if k is not None], dtype=float)
        tail = max(1, len(mean) // 5)
        entry = dict(level=level, mean_curve=first(mean), per_seed=per, seeds_reached=int(len(hit)), mean=None,
                     ci95=None, final=float(mean[-1]), late_change=float(mean[-1] - mean[-1 - tail]),
                     late_rounds=int(tail))
        if len(hit) >= 2:
            mu, lo, hi = _t_interval(hit[:, None])
            entry.update(mean=float(mu[0]), ci95=[float(lo[0]), float(hi[0])])
        elif len(hit) == 1:
            entry["mean"] = float(hit[0])
        out[m] = entry
    return out


def paired_difference(result: dict, a: str, b: str, rounds=None) -> dict:
    """Paired 95% Student-t intervals over seeds of method ``a``'s
    normalised return minus ``b``'s at each round of ``rounds`` (default:
    the last): ``{round: {"mean", "ci95"}}``."""
    A, B = np.asarray(result["per_seed"][a]), np.asarray(result["per_seed"][b])
    ks = [A.shape[1] - 1] if rounds is None else [k for k in rounds if 0 <= k < A.shape[1]]
    out = {}
    for k in ks:
        mu, lo, hi = _t_interval((A[:, k] - B[:, k])[:, None])
        out[int(k)] = dict(mean=float(mu[0]), ci95=[float(lo[0]), float(hi[0])])
    return out


def _model_d(model) -> int:
    cfg = getattr(model, "_icrl_config", None)
    if cfg is not None:
        return int(cfg["d"])
    raise InputError("models", f"cannot tell the feature dimension of {type(model).__name__}; "
                     "build it with numerics.models.build_model or load it with load_model")


def _check_model(name, model, record, n):
    cfg = model._icrl_config
    if cfg.get("algorithm") != record.name:
        raise InputError("models", f"model {name!r} was trained for {cfg.get('algorithm')}, not {record.name}")
    if cfg.get("kind") in ("mlp",) and int(cfg.get("n")) != n:
        raise InputError("context", f"model {name!r} reads windows of n = {cfg.get('n')}; got --context {n}")
