"""Gradient flow (issue 5, ``flow``) and the distance to M*: closed-form
gradient vs autograd, the rate fit on known curves, the measured rate
against 2 mu, and the manifold distance against brute force."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import numerics.analysis.richness as rich
from numerics.analysis.flow import batched_grad, batched_loss, deviation_grad, fit_rate, flow_experiment, step_schedule
from numerics.analysis.hessian import sample_prompts
from numerics.analysis.manifold import distance_of_deviation, distance_to_manifold
from numerics.core.constructions import constructed_blocks
from numerics.core.distributions import MDPDistribution
from numerics.core.tolerances import FEW_OPS_ATOL, FLOW_RATE_RTOL, ITERATIVE_RTOL, REORDER_RTOL, VISIBLE_RTOL
from theory.algorithms import get
from theory.errors import InputError


def test_flow_gradient_equals_autograd():
    S = sample_prompts("sarsa", MDPDistribution(states=2, actions=2, features="dense"), mdps=4, frames_per_mdp=4, n=5)
    g = torch.Generator().manual_seed(0)
    m, p, q = S.m, S.p, S.q
    blocks = [torch.randn(2, *sh, generator=g, dtype=torch.float64) for sh in ((m, p), (q, m), (p, p), (q, p))]
    _, grads = batched_grad(S, *blocks)
    req = [b.clone().requires_grad_(True) for b in blocks]
    ref = torch.autograd.grad(batched_loss(S, *req).sum(), req)
    for a, b in zip(grads, ref):
        assert float((a - b).abs().max()) <= REORDER_RTOL * float(b.abs().max())


def test_deviation_gradient_equals_the_plain_one_away_from_theta_star():
    """The flow's gradient from the deviation (no rounding floor) against
    :func:`batched_grad` at ``theta* + dev``, reduced and full."""
    S = sample_prompts("sarsa", MDPDistribution(states=2, actions=2, features="dense"), mdps=4, frames_per_mdp=4, n=5)
    g = torch.Generator().manual_seed(1)
    m, p, q = S.m, S.p, S.q
    dev = [0.3 * torch.randn(2, *sh, generator=g, dtype=torch.float64) for sh in ((m, p), (q, m), (p, p), (q, p))]
    Ps, Vs = S.construction()
    for k in (2, 4):
        L, grads = deviation_grad(S, (Ps, Vs), dev[:k])
        L0, ref = batched_grad(S, Ps + dev[0], Vs + dev[1], *dev[2:k])
        assert float(((L - L0) / L0).abs().max()) <= REORDER_RTOL
        for a, b in zip(grads, ref):
            assert float((a - b).abs().max()) <= REORDER_RTOL * float(b.abs().max())


def test_deviation_loss_has_no_rounding_floor_near_theta_star():
    """At a deviation of 1e-14 the loss from the deviation scales as its
    square (1e-28); the plain loss of the formed weights sits on float64's
    floor instead (what the flow near theta* was judged on before)."""
    S = sample_prompts("sarsa", MDPDistribution(states=2, actions=2, features="dense"), mdps=4, frames_per_mdp=4, n=5)
    Ps, Vs = S.construction()
    g = torch.Generator().manual_seed(2)
    dev = [torch.randn(1, *Ps.shape, generator=g, dtype=torch.float64), torch.zeros(1, *Vs.shape, dtype=torch.float64)]
    big, _ = deviation_grad(S, (Ps, Vs), dev)
    small, _ = deviation_grad(S, (Ps, Vs), [1e-14 * d for d in dev])
    assert abs(float(small / big) / 1e-28 - 1) <= REORDER_RTOL
    plain = batched_loss(S, Ps + 1e-14 * dev[0], Vs + dev[1])
    assert abs(float(plain / big) / 1e-28 - 1) > VISIBLE_RTOL


def test_step_schedule_is_fixed_and_lands_on_the_final_time():
    h = step_schedule(1.0, 10.0, 100.0, 1000)
    assert list(h[:4]) == [1.0, 2.0, 4.0, 8.0] and h[4] == 10.0
    assert abs(h.sum() - 100.0) <= FEW_OPS_ATOL * 100 and (h > 0).all()
    assert len(step_schedule(1.0, 10.0, 100.0, 5)) == 5
    with pytest.raises(InputError):
        step_schedule(0.0, 10.0, 100.0, 5)


def test_distance_of_a_small_deviation_keeps_its_digits():
    """A deviation of 1e-9, formed as weights, would lose ~1e-7 of its
    digits to the rounding of theta*; from the deviation the distance stays
    linear in it down there (1e-9 against 1e-6, to the O(1e-6) curvature),
    and agrees with the formed route where that one is exact enough."""
    P, V = constructed_blocks(get("sarsa"), 3, {"alpha": 0.2})
    rng = np.random.default_rng(3)
    dP, dV = rng.standard_normal(P.shape), rng.standard_normal(V.shape)
    ref, _ = distance_of_deviation(1e-3 * dP, 1e-3 * dV, P, V)      # large enough for either route
    assert abs(ref / distance_to_manifold(P.numpy() + 1e-3 * dP, V.numpy() + 1e-3 * dV, P, V)[0] - 1) <= 1e-9
    r6, c6 = distance_of_deviation(1e-6 * dP, 1e-6 * dV, P, V)
    r9, c9 = distance_of_deviation(1e-9 * dP, 1e-9 * dV, P, V)
    assert abs(r9 * 1e3 / r6 - 1) <= 1e-5 and c6 > 0 and c9 > 0     # linear in the deviation (to O(1e-6))
    for c0 in (2.0, -0.5):
        rel, c = distance_of_deviation(c0 * P.numpy() - P.numpy(), V.numpy() / c0 - V.numpy(), P, V)
        assert rel <= FEW_OPS_ATOL * 100 and abs(c - c0) <= REORDER_RTOL * abs(c0)


def _walk_numbers(a, b, path=""):
    """Every number of two results side by side: ``(path, x, y)``; any other
    difference (a key, a length, a verdict) fails at once."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k != "seconds":
                yield from _walk_numbers(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _walk_numbers(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        yield path, a, b
    else:
        assert a == b, (path, a, b)


SAME_NUMBERS_RTOL = 1e-9    # issue 19: the flow's numbers under any thread count


def _assert_same_numbers(a: dict, b: dict, least: int = 20):
    rows = list(_walk_numbers(a, b))
    assert len(rows) > least
    worst = max(rows, key=lambda r: abs(r[1] - r[2]) / max(abs(r[1]), abs(r[2]), 1e-300))
    assert abs(worst[1] - worst[2]) <= SAME_NUMBERS_RTOL * max(abs(worst[1]), abs(worst[2])), worst


def run_with_threads(threads: int, code: str, args=(), timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``code`` (Python, after ``torch.set_num_threads(threads)``) in a
    fresh process with ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
    ``OPENBLAS_NUM_THREADS`` at ``threads`` and this checkout first on the
    import path; ``sys.argv[1:]`` is ``args``.  Asserts it exited 0."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", f"import torch; torch.set_num_threads({threads})\n{code}", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_flow_numbers_do_not_move_with_a_rounding_change_of_the_spectrum(monkeypatch):
    """Well-posedness: mu and lambda_max moved by 1e-13 (what another thread
    count's summation order does to them) move every number of the flow by
    less than 1e-9 relative.  Before issue 19 the step acceptance and the
    data-dependent fit window turned such a change into ~1% of the rate."""
    dist = MDPDistribution(states=2, actions=2, features="dense")
    kw = dict(mdps=10, frames=10, n=6, radii=[0.05], trials=2, rate_runs=2, max_steps=250)
    a = flow_experiment(dist, "sarsa", "reduced", **kw)
    real = rich.Spectrum

    class Nudged(real):
        def __init__(self, H, *args, **kwargs):
            super().__init__(H * (1 + 1e-13), *args, **kwargs)
    monkeypatch.setattr(rich, "Spectrum", Nudged)
    b = flow_experiment(dist, "sarsa", "reduced", **kw)
    assert a["mu"] != b["mu"]                                  # the nudge reached the flow
    _assert_same_numbers(a, b)


_FLOW_ARGS = ["flow", "--states", "2", "--actions", "2", "--mdps", "10", "--frames", "10", "--context", "6",
              "--radii", "0.05", "--trials", "2", "--json"]


def test_flow_gives_the_same_numbers_under_one_and_two_threads(tmp_path):
    """Issue 19 acceptance: ``icrl-verify flow`` on one seed in two processes,
    ``OMP_NUM_THREADS`` and torch's thread count 1 and 2: every number of the
    report (timings aside) equal to 1e-9 relative."""
    out = {}
    for threads in (1, 2):
        proc = run_with_threads(threads, "import sys; from numerics.commands.cli import main; sys.exit(main(sys.argv[1:]))",
                                [*_FLOW_ARGS, "--out", str(tmp_path / f"t{threads}")])
        report = json.loads(proc.stdout.strip().splitlines()[-1])["report"]
        with open(report[:-3] + ".json") as fh:
            out[threads] = json.load(fh)
    for doc in out.values():
        doc.pop("report"), doc.pop("command")
        doc["details"].pop("seconds")
    _assert_same_numbers(out[1], out[2])


def test_fit_rate_recovers_backward_euler_decay_and_flags_polynomial_decay():
    h, lam = 3.0, 0.01
    t = h * np.arange(200)
    L = 2.0 * (1 + h * lam) ** (-2.0 * np.arange(200))
    f = fit_rate(t, L)
    assert abs(f["rate"] - 2 * lam) <= ITERATIVE_RTOL * 2 * lam
    assert f["t_start"] >= 0.6 * t[-1] and f["t_end"] == t[-1]    # the window: last 40% of the flow time
    # a geometric ramp of steps, then constant ones (the flow's schedule): still exact
    hs = step_schedule(0.1, h, 600.0, 1000)
    tt = np.concatenate([[0.0], np.cumsum(hs)])
    LL = 2.0 * np.concatenate([[1.0], np.cumprod((1 + hs * lam) ** -2.0)])
    assert abs(fit_rate(tt, LL)["rate"] - 2 * lam) <= ITERATIVE_RTOL * 2 * lam
    # polynomial decay L ~ 1 / t: the two halves of the window disagree
    tp = 1.0 + h * np.arange(200)
    fp = fit_rate(tp, 1.0 / tp)
    assert fp["rate_first"] > 1.2 * fp["rate_second"]


def test_theorem_3_2_reduced_flow_rate_matches_two_mu():
    res = flow_experiment(MDPDistribution(states=2, actions=2, features="dense"), "sarsa", "reduced", mdps=10,
                          frames=10, n=6, radii=[0.05], trials=1, rate_runs=1, max_steps=250)
    assert res["converged"]
    assert abs(res["rate_ratio"] - 1) <= FLOW_RATE_RTOL
    assert res["basin"] == [{"radius": 0.05, "fraction": 1.0}]
    fit = res["details"]["rate_fits"][0]
    assert abs(fit["rate_first"] / fit["rate_second"] - 1) < 0.05     # exponential: both halves agree


def test_flow_rate_check_can_fail_with_a_wrong_mu(monkeypatch):
    """Feed the flow a Hessian scaled by 3 (a wrong mu): the measured rate,
    taken from the true flow, no longer matches the (wrong) prediction."""
    real = rich.gauss_newton_reduced
    monkeypatch.setattr(rich, "gauss_newton_reduced", lambda st, weights=None: 3.0 * real(st, weights))
    res = flow_experiment(MDPDistribution(states=2, actions=2, features="dense"), "sarsa", "reduced", mdps=10,
                          frames=10, n=6, radii=[], trials=1, rate_runs=1, max_steps=250)
    assert not res["converged"]


def test_flow_bad_input():
    d = MDPDistribution(states=2, actions=2)
    with pytest.raises(InputError):
        flow_experiment(d, "sarsa", "sideways", mdps=4, frames=4)
    with pytest.raises(InputError):
        flow_experiment(d, "sarsa", "reduced", mdps=4, frames=4, radii=[-1.0])


@pytest.mark.parametrize("c", [2.5, -0.4, 1.0])
def test_distance_to_manifold_is_zero_on_both_components(c):
    P, V = constructed_blocks(get("sarsa"), 4, {"alpha": 0.2})
    rel, cfit = distance_to_manifold(c * P, V / c, P, V)
    assert rel <= FEW_OPS_ATOL and abs(cfit - c) <= REORDER_RTOL * abs(c)


def test_distance_to_manifold_matches_brute_force_and_detects_off_manifold_points():
    P, V = constructed_blocks(get("sarsa"), 3, {"alpha": 0.2})
    rng = np.random.default_rng(0)
    for _ in range(3):
        P2 = -1.7 * P.numpy() + 0.05 * rng.standard_normal(P.shape)
        V2 = V.numpy() / -1.7 + 0.05 * rng.standard_normal(V.shape)
        rel, c = distance_to_manifold(P2, V2, P, V)
        cs = np.concatenate([np.linspace(-5, -0.05, 100001), np.linspace(0.05, 5, 100001)])
        f = ((P2[None] - cs[:, None, None] * P.numpy()) ** 2).sum((1, 2)) + \
            ((V2[None] - V.numpy() / cs[:, None, None]) ** 2).sum((1, 2))
        cb = cs[np.argmin(f)]
        assert abs(c - cb) <= VISIBLE_RTOL * abs(cb)
        assert f.min() >= ((P2 - c * P.numpy()) ** 2).sum() + ((V2 - V.numpy() / c) ** 2).sum() - REORDER_RTOL
        assert rel > VISIBLE_RTOL


def _far_runs(radius, trials, seed=3):
    """A small sample, its spectrum and ``trials`` deviations of relative
    size ``radius`` (unprojected, as the basin draws them)."""
    dist = MDPDistribution(states=2, actions=2, features="dense")
    sample = sample_prompts("sarsa", dist, mdps=10, frames_per_mdp=10, n=6, epsilon=0.1, alpha=0.2, beta=0.2, seed=0)
    spec = rich.richness(dist, "sarsa", "reduced", sample=sample, seed=0, bootstrap=0, keep=True)["_spectrum"]
    Ps, Vs = sample.construction()
    gen = torch.Generator().manual_seed(seed)
    norm = float(torch.cat([Ps.reshape(-1), Vs.reshape(-1)]).norm())
    blocks = [torch.randn(trials, *Ps.shape, generator=gen, dtype=torch.float64),
              torch.randn(trials, *Vs.shape, generator=gen, dtype=torch.float64)]
    scale = radius * norm / torch.cat([b.reshape(trials, -1) for b in blocks], 1).norm(dim=1)
    return sample, spec, [b * scale.reshape(-1, 1, 1) for b in blocks], Ps, Vs


def test_far_runs_are_integrated_by_bisection_and_each_step_solves_the_implicit_equation():
    """Runs started far from theta* (radius 1), where the chord iteration
    with H* does not converge at the schedule's full step: the step is
    bisected, and a run that no bisection depth can carry stops where it is
    (the basin counts it as stopped, not as off M*).  With bisection
    forbidden every run stops at least as early, and one that reaches the
    final time with bisection does not reach it without: the refinement is
    what carries it (before, such runs stopped at flow time 0 and were
    counted off M*).  A run that reaches the final time ends on M*, and the
    loss never rises along any run."""
    import numerics.analysis.flow as flow
    sample, spec, blocks, Ps, Vs = _far_runs(1.0, 2)
    t_end, h_max = 20 / (2 * spec.mu), 0.1 / spec.mu
    end, times, losses = flow.run_flow(sample, [b.clone() for b in blocks], spec, t_end, h_max, max_steps=250)
    reached = times[:, -1] >= t_end * (1 - 1e-9)
    assert bool(reached.any())
    assert torch.all(torch.diff(losses, dim=1) <= 1e-12 * losses[:, :1])   # gradient flow never raises the loss
    for i in torch.nonzero(reached).flatten().tolist():
        assert losses[i, -1] < 1e-6 * losses[i, 0]
        rel, _ = distance_of_deviation(end[0][i], end[1][i], Ps, Vs)
        assert rel < 1e-3
    orig = flow.CHORD_SPLITS
    try:
        flow.CHORD_SPLITS = 0
        _, t0, _ = flow.run_flow(sample, [b.clone() for b in blocks], spec, t_end, h_max, max_steps=250)
    finally:
        flow.CHORD_SPLITS = orig
    assert torch.all(t0[:, -1] <= times[:, -1])
    assert bool((reached & (t0[:, -1] < t_end * (1 - 1e-9))).any())


def test_a_runs_numbers_do_not_depend_on_its_batch_mates():
    """Each run iterates until its own residual stops it: a far run (radius
    1) beside a near one gives that run the same numbers as alone."""
    import numerics.analysis.flow as flow
    sample, spec, far, *_ = _far_runs(1.0, 1)
    _, _, near, *_ = _far_runs(0.01, 1, seed=4)
    both = [torch.cat([a, b]) for a, b in zip(far, near)]
    t_end, h_max = 20 / (2 * spec.mu), 0.1 / spec.mu
    _, tb, lb = flow.run_flow(sample, both, spec, t_end, h_max, max_steps=250)
    _, t1, l1 = flow.run_flow(sample, [b.clone() for b in far], spec, t_end, h_max, max_steps=250)
    k = t1.shape[1]                         # alone, the loop ends when this run stops; beside a live run it repeats
    assert torch.equal(tb[0, :k], t1[0]) and torch.all(tb[0, k:] == t1[0, -1])
    assert torch.allclose(lb[0, :k], l1[0], rtol=1e-9, atol=0)
