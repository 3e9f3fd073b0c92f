"""Gradient flow (issue 5, ``flow``) and the distance to M*: closed-form
gradient vs autograd, the rate fit on known curves, the measured rate
against 2 mu, and the manifold distance against brute force."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import numerics.analysis.richness as rich
from numerics.analysis.flow import batched_grad, batched_loss, fit_rate, flow_experiment
from numerics.analysis.hessian import sample_prompts
from numerics.analysis.manifold import distance_to_manifold
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


def test_fit_rate_recovers_backward_euler_decay_and_flags_polynomial_decay():
    h, lam = 3.0, 0.01
    t = h * np.arange(200)
    L = 2.0 * (1 + h * lam) ** (-2.0 * np.arange(200))
    f = fit_rate(t, L)
    assert abs(f["rate"] - 2 * lam) <= ITERATIVE_RTOL * 2 * lam
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
