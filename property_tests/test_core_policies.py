"""Mutation tier: ``numerics.core.policies`` against hand-computed values and
the definitions (epsilon-greedy, softmax, inverse-CDF draws)."""
from __future__ import annotations

import math

import pytest
import torch

from numerics.core import policies as P
from property_tests import core_cases as cc
from theory.algorithms import get

pytestmark = pytest.mark.mutation
F64 = torch.float64


def test_epsilon_greedy_puts_eps_over_A_everywhere_and_the_rest_on_the_first_maximiser():
    Q = torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 0.0], [-1.0, -2.0, -0.5]], dtype=F64)
    got = P.epsilon_greedy_probs(Q, 0.3)
    want = torch.tensor([[0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]], dtype=F64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)
    assert got.dtype == F64
    torch.testing.assert_close(P.epsilon_greedy_probs(Q, 0.0)[1], torch.tensor([1.0, 0, 0], dtype=F64))
    # every row's greedy action is the first: still A columns
    torch.testing.assert_close(P.epsilon_greedy_probs(Q[1:2], 0.3), want[1:2], rtol=0, atol=1e-15)


def test_softmax_of_log_weights_is_the_normalised_weights():
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0], [4.0, 4.0, 2.0]], dtype=F64))
    want = torch.tensor([[1 / 6, 2 / 6, 3 / 6], [0.4, 0.4, 0.2]], dtype=F64)
    torch.testing.assert_close(P.softmax_probs(logits), want, rtol=0, atol=1e-15)


def test_sample_categorical_is_the_inverse_cdf_of_one_float64_uniform_per_row():
    probs = torch.tensor([[0.2, 0.3, 0.5]] * 40 + [[0.0, 1.0, 0.0]] * 3, dtype=F64)
    got = P.sample_categorical(probs, torch.Generator().manual_seed(5))
    u = torch.rand(43, generator=torch.Generator().manual_seed(5), dtype=F64).tolist()
    want = [cc.inverse_cdf(row, ui) for row, ui in zip(probs.tolist(), u)]
    assert got.tolist() == want
    assert set(want[:40]) == {0, 1, 2} and want[40:] == [1, 1, 1]


def test_sample_categorical_draws_one_per_row_whatever_the_leading_axes():
    probs = torch.tensor([[[0.2, 0.3, 0.5], [0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0], [0.25, 0.25, 0.25]]] * 10,
                         dtype=F64)                                        # 20 x 2 x 3; the last rows sum to 0.75
    got = P.sample_categorical(probs, torch.Generator().manual_seed(3))
    u = torch.rand(20, 2, generator=torch.Generator().manual_seed(3), dtype=F64).tolist()
    want = [[cc.inverse_cdf(probs[i, j].tolist(), u[i][j]) for j in range(2)] for i in range(20)]
    assert got.shape == (20, 2) and got.tolist() == want
    assert P.sample_categorical(probs.to("meta"), torch.Generator()).device.type == "meta"


def test_sample_categorical_takes_the_first_index_whose_cdf_reaches_u():
    u = torch.rand(3, generator=torch.Generator().manual_seed(12), dtype=F64)
    probs = torch.stack([u, 1 - u], -1)                                   # cdf_0 == u exactly: index 0
    assert P.sample_categorical(probs, torch.Generator().manual_seed(12)).tolist() == [0, 0, 0]


def test_sample_categorical_clamps_to_the_last_index_when_the_cdf_stays_below_u():
    probs = torch.full((60, 2), 0.25, dtype=F64)            # cdf ends at 0.5: u > 0.5 falls past the end
    got = P.sample_categorical(probs, torch.Generator().manual_seed(2))
    u = torch.rand(60, generator=torch.Generator().manual_seed(2), dtype=F64)
    assert (u > 0.5).any() and (u < 0.25).any()
    assert got.tolist() == [0 if x <= 0.25 else 1 for x in u.tolist()]


def test_split_theta_names_consecutive_blocks_of_width_d():
    theta = torch.arange(12, dtype=F64).reshape(2, 6)
    ac = P.split_theta(get("actor-critic"), theta)
    assert list(ac) == ["w", "lam"]
    assert ac["w"].tolist() == [[0, 1, 2], [6, 7, 8]] and ac["lam"].tolist() == [[3, 4, 5], [9, 10, 11]]
    v = P.split_theta(get("sarsa"), theta)
    assert list(v) == ["w"] and v["w"].tolist() == theta.tolist()


def test_gather_reads_features_by_state_and_action_per_mdp():
    B, S, A, d = 2, 3, 2, 2
    F = torch.tensor([[[[1000 * b + 100 * s + 10 * a + k for k in range(d)] for a in range(A)] for s in range(S)]
                      for b in range(B)], dtype=F64)
    s = torch.tensor([[2, 0, 1], [1, 1, 0]])
    a = torch.tensor([[1, 0, 1], [0, 1, 1]])
    got = P.gather(F, s, a)
    assert got.tolist() == [[[F[b, s[b, i], a[b, i], k].item() for k in range(d)] for i in range(3)] for b in range(B)]
    assert got[1, 0].tolist() == [1100.0, 1101.0]
    all_a = P.gather(F, s)
    assert all_a.shape == (B, 3, A, d) and all_a[1, 2].tolist() == [[1000.0, 1001.0], [1010.0, 1011.0]]


@pytest.mark.parametrize("algorithm", ["sarsa", "actor-critic", "td"])
def test_behaviour_probs_follow_the_record_s_policy_at_every_state(algorithm):
    record = get(algorithm)
    F = cc.tiny_features(B=2, S=3, A=3, d=2)
    theta = torch.tensor([[0.5, -1.0, 2.0, 0.3], [-0.7, 0.2, -1.5, 1.1]], dtype=F64)[:, :record.layout.q(2)]
    eps = 0.3
    got = P.behaviour_probs(record, F, theta, eps)
    Fl, th = F.tolist(), theta.tolist()
    want = [[cc.policy(record.behaviour, Fl[b][s], th[b][:2], th[b][2:], eps) for s in range(3)] for b in range(2)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=0, atol=1e-14)
    # features with an extra axis (a window's next states: B x n x A x d) give the same rows
    Fw = F[:, [2, 0, 1, 2]]
    torch.testing.assert_close(P.behaviour_probs(record, Fw, theta, eps), got[:, [2, 0, 1, 2]], rtol=0, atol=1e-15)


def test_uniform_behaviour_is_one_over_the_number_of_actions_not_of_features():
    F = cc.tiny_features(B=1, S=2, A=4, d=3)
    got = P.behaviour_probs(get("td"), F, torch.zeros(1, 3, dtype=F64), 0.1)
    assert got.shape == (1, 2, 4) and got.dtype == F64
    assert bool((got == 0.25).all())
    one_state = P.behaviour_probs(get("td"), F[:, 0], torch.zeros(1, 3, dtype=F64), 0.1)     # B x A x d
    assert one_state.shape == (1, 4) and bool((one_state == 0.25).all())
    assert P.behaviour_probs(get("td"), F.to("meta"), torch.zeros(1, 3, dtype=F64), 0.1).device.type == "meta"


@pytest.mark.parametrize("algorithm", ["sarsa", "actor-critic"])
def test_greedy_actions_take_the_first_maximiser_of_the_acting_block(algorithm):
    record = get(algorithm)
    F = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]]], dtype=F64)
    w, lam = [1.0, -1.0], [-1.0, 2.0]
    theta = torch.tensor([w + lam if record.layout.q(2) == 4 else w], dtype=F64)
    v = w if record.acts_with == "w" else lam
    want = [[cc.first_argmax([cc.dot(v, f) for f in F[0, s].tolist()]) for s in range(2)]]
    assert P.greedy_actions(record, F, theta).tolist() == want
    assert want == ([[0, 0]] if algorithm == "sarsa" else [[1, 1]])
    tie = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]], dtype=F64)
    assert P.greedy_actions(record, tie, theta).tolist() == [[0]]


def test_softmax_matches_exp_over_sum_on_a_window_of_logits():
    logits = torch.tensor([[0.3, -1.2, 2.0, 0.0]], dtype=F64)
    z = [math.exp(x) for x in logits[0].tolist()]
    torch.testing.assert_close(P.softmax_probs(logits)[0], torch.tensor([x / sum(z) for x in z], dtype=F64))
