"""Behaviour of Algorithm 1's data (issue 11): what the block and the
teachers agree on cannot show a wrong policy or a wrong start, so these are
tested against their definitions (mutmut's survivors of the 10% sample).

* actions sampled by each behaviour policy have its distribution
  (epsilon-greedy in ``Q_w``, softmax in ``lam``, TD(0)'s uniform ``1/A``,
  not ``1/d``);
* ``theta_0 ~ Unif(-1, 1)^q`` and ``s_0 ~ rho0`` from the generator given,
  never the global one; the same seed gives the same window;
* expected SARSA's prompt differs from Q-learning's (and from SARSA's) on a
  separating example, so one cannot silently run as the other.
"""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from numerics.core.distributions import MDPDistribution
from numerics.core.mdp import MDP
from numerics.core.policies import behaviour_probs, epsilon_greedy_probs, sample_categorical, softmax_probs
from numerics.core.prompts import window_quantities
from numerics.core.stream import Stream, Window, initial_state, sample_window
from theory.algorithms import get

DRAWS = 20_000


def _z(count: torch.Tensor, p: torch.Tensor, N: int) -> float:
    """Largest |z| of the counts against the binomial mean (probabilities 0 or 1 must be exact)."""
    var = N * p * (1 - p)
    exact = var == 0
    assert bool((count[exact] == (N * p[exact]).round()).all()), (count, p)
    return float(((count - N * p).abs()[~exact] / var[~exact].sqrt()).max()) if bool((~exact).any()) else 0.0


def _mdp(states=3, actions=4, seed=1, state_features=False):
    gen = torch.Generator().manual_seed(seed)
    return MDPDistribution(states=states, actions=actions, state_features=state_features).sample(1, gen)


@pytest.mark.parametrize("algorithm", ["sarsa", "actor-critic", "td"])
def test_sampled_actions_follow_the_behaviour_policy(algorithm):
    record = get(algorithm)
    mdp, F = _mdp(state_features=record.features == "state")
    A, d = F.shape[-2], F.shape[-1]
    theta = torch.linspace(-1, 1, record.layout.q(d), dtype=torch.float64)[None]
    epsilon = 0.3
    if record.behaviour == "softmax":
        want = softmax_probs(F[0] @ theta[0, d:])
    elif record.behaviour == "uniform":
        want = torch.full((mdp.states, A), 1.0 / A, dtype=torch.float64)
        assert d != A                              # so 1/d would be caught
    else:
        want = epsilon_greedy_probs(F[0] @ theta[0, :d], epsilon)
    got = behaviour_probs(record, F, theta, epsilon)[0]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)
    # the sampler's first action at a fixed start state: counts against the policy
    gen = torch.Generator().manual_seed(7)
    T_cdf = mdp.T.cumsum(-1).expand(DRAWS, -1, -1, -1)
    from_s = torch.zeros(DRAWS, dtype=torch.long) + 1
    big = type(mdp)(mdp.T.expand(DRAWS, -1, -1, -1), mdp.R.expand(DRAWS, -1, -1, -1), mdp.gamma.expand(DRAWS),
                    mdp.rho0.expand(DRAWS, -1))
    win = sample_window(record, big, F.expand(DRAWS, -1, -1, -1), T_cdf, from_s, theta.expand(DRAWS, -1), 1,
                        epsilon, gen)
    count = torch.bincount(win.a[:, 0], minlength=A).to(torch.float64)
    assert _z(count, want[1], DRAWS) < 5.0


def test_td_behaviour_is_uniform_over_actions_whatever_theta():
    record = get("td")
    _, F = _mdp(states=5, actions=2, state_features=True)
    for theta in (torch.zeros(1, 5, dtype=torch.float64), torch.full((1, 5), 9.0, dtype=torch.float64)):
        probs = behaviour_probs(record, F, theta, 0.0)
        assert bool((probs == 0.5).all())


def test_epsilon_greedy_puts_one_minus_epsilon_on_the_first_maximiser():
    Q = torch.tensor([[0.0, 2.0, 2.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(epsilon_greedy_probs(Q, 0.2), torch.tensor([[0.05, 0.85, 0.05, 0.05]],
                                                                             dtype=torch.float64))


def test_sample_categorical_draws_by_inverse_cdf():
    p = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64).expand(DRAWS, 3)
    x = sample_categorical(p, torch.Generator().manual_seed(0))
    assert _z(torch.bincount(x, minlength=3).to(torch.float64), p[0], DRAWS) < 5.0
    assert int(sample_categorical(torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64),
                                  torch.Generator().manual_seed(0))) == 2


@pytest.mark.parametrize("algorithm", ["sarsa", "actor-critic"])
def test_initial_parameters_are_uniform_minus_one_one_from_the_given_generator(algorithm):
    record = get(algorithm)
    gen = torch.Generator().manual_seed(0)
    mdp, F = MDPDistribution(states=2, actions=2).sample(2000, gen)
    torch.manual_seed(123)
    theta, s0 = initial_state(record, mdp, F, torch.Generator().manual_seed(5))
    torch.manual_seed(456)                        # the global generator must not matter
    theta2, s02 = initial_state(record, mdp, F, torch.Generator().manual_seed(5))
    assert torch.equal(theta, theta2) and torch.equal(s0, s02)
    assert theta.shape == (2000, record.layout.q(4))
    assert float(theta.min()) >= -1 and float(theta.max()) <= 1
    assert float(theta.min()) < -0.99 and float(theta.max()) > 0.99           # the whole interval, not U(1, 3)
    assert abs(float(theta.mean())) < 0.02 and abs(float(theta.var()) - 1 / 3) < 0.02
    # s_0 ~ rho0 per MDP
    want = mdp.rho0.sum(0)
    assert _z(torch.bincount(s0, minlength=2).to(torch.float64), want / 2000, 2000) < 5.0


def test_initial_state_differs_between_seeds():
    record = get("sarsa")
    mdp, F = _mdp()
    a = initial_state(record, mdp, F, torch.Generator().manual_seed(1))[0]
    b = initial_state(record, mdp, F, torch.Generator().manual_seed(2))[0]
    assert not torch.equal(a, b)


@pytest.mark.parametrize("algorithm", ["sarsa", "expected-sarsa", "q-learning", "actor-critic", "td"])
def test_same_seed_same_window_and_prompt(algorithm):
    record = get(algorithm)

    def frames(seed):
        gen = torch.Generator().manual_seed(seed)
        mdp, F = MDPDistribution(states=4, actions=3, state_features=record.features == "state").sample(3, gen)
        st = Stream(record, mdp, F, n=6, epsilon=0.2, steps={"alpha": 0.2, "beta": 0.2}, gen=gen)
        return [(f.window.s, f.window.a, f.window.r, f.X, f.theta) for f in st.frames(3)]

    one, two, other = frames(11), frames(11), frames(12)
    for x, y in zip(one, two):
        assert all(torch.equal(u, v) for u, v in zip(x, y))
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(one, other))
    # the stream moves: s_0 of a frame is s_n of the one before, theta changes
    assert all(torch.equal(one[k + 1][0][:, 0], one[k][0][:, -1]) for k in range(2))
    assert not torch.equal(one[0][4], one[1][4])


def test_expected_sarsa_prompt_differs_from_q_learning_and_sarsa():
    """One transition into a state whose Q_w is (1, 3, 2); the action taken
    next is 2: SARSA's phi+ is e_2, Q-learning's e_1, expected SARSA's
    (0.1, 0.8, 0.1) at epsilon 0.3."""
    F = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    F[0, 1] = torch.eye(3, dtype=torch.float64)
    F[0, 0, 0, 0] = 1.0
    win = Window(torch.tensor([[0, 1]]), torch.tensor([[0, 2]]), torch.tensor([[0.5]], dtype=torch.float64))
    theta = torch.tensor([[1.0, 3.0, 2.0]], dtype=torch.float64)
    got = {name: window_quantities(get(name), F, win, theta, 0.3)["phi_next"][0, 0]
           for name in ("sarsa", "q-learning", "expected-sarsa")}
    torch.testing.assert_close(got["sarsa"], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(got["q-learning"], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(got["expected-sarsa"], torch.tensor([0.1, 0.8, 0.1], dtype=torch.float64))


def test_actor_critic_score_in_the_prompt_is_phi_minus_policy_mean():
    F = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    F[0, 0] = torch.eye(2, dtype=torch.float64)
    win = Window(torch.tensor([[0, 0]]), torch.tensor([[0, 1]]), torch.tensor([[0.0]], dtype=torch.float64))
    theta = torch.tensor([[0.0, 0.0, 0.0, math.log(3.0)]], dtype=torch.float64)     # w = 0, lam = (0, log 3)
    g = window_quantities(get("actor-critic"), F, win, theta, 0.1)["g"][0, 0]
    torch.testing.assert_close(g, torch.tensor([0.75, -0.75], dtype=torch.float64))  # e_0 - (1/4, 3/4)


@pytest.mark.parametrize("field, value", [("next_rule", "argmax-at-s"), ("behaviour", "greedy"), ("features", "pairs")])
def test_a_record_with_an_unknown_field_value_is_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field} '{value}' not in"):
        dataclasses.replace(get("sarsa"), name="bad", **{field: value})


def test_stream_starts_at_the_theta_and_s0_given():
    """``Stream(theta=..., s0=...)`` (closed-loop control, resumed training)
    starts there and draws only what is not given (mutmut survivors of
    ``Stream.__init__``)."""
    record = get("sarsa")
    mdp, F = _mdp()
    steps = {"alpha": 0.2, "beta": 0.2}
    theta0, s00 = initial_state(record, mdp, F, torch.Generator().manual_seed(3))
    theta = torch.full_like(theta0, 0.5)
    s0 = (s00 + 1) % mdp.states
    # both given: nothing drawn before the window, which is sample_window's from the same generator state
    frame = Stream(record, mdp, F, n=4, epsilon=0.2, steps=steps, gen=torch.Generator().manual_seed(3),
                   theta=theta, s0=s0).next()
    win = sample_window(record, mdp, F, mdp.T.cumsum(-1), s0, theta, 4, 0.2, torch.Generator().manual_seed(3))
    assert torch.equal(frame.theta, theta) and torch.equal(frame.window.s, win.s) and torch.equal(frame.window.a, win.a)
    # theta alone: kept, s0 drawn
    frame = Stream(record, mdp, F, n=4, epsilon=0.2, steps=steps, gen=torch.Generator().manual_seed(3),
                   theta=theta).next()
    assert torch.equal(frame.theta, theta) and torch.equal(frame.window.s[:, 0], s00)
    # s0 alone: kept, theta drawn
    frame = Stream(record, mdp, F, n=4, epsilon=0.2, steps=steps, gen=torch.Generator().manual_seed(3),
                   s0=s0).next()
    assert torch.equal(frame.theta, theta0) and torch.equal(frame.window.s[:, 0], s0)


def test_stream_transitions_follow_the_mdp():
    """Deterministic transitions ``s' = (s + a + 1) mod S``: every transition
    the stream draws is the one the MDP allows (mutmut survivors: the
    transition CDFs cumulated over the wrong axis)."""
    S, A = 5, 3
    T = torch.zeros(1, S, A, S, dtype=torch.float64)
    for s in range(S):
        for a in range(A):
            T[0, s, a, (s + a + 1) % S] = 1.0
    mdp = MDP(T, torch.zeros(1, S, A, S, dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64),
              torch.full((1, S), 1.0 / S, dtype=torch.float64))
    F = torch.rand(1, S, A, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    st = Stream(get("sarsa"), mdp, F, n=8, epsilon=0.5, steps={"alpha": 0.2}, gen=torch.Generator().manual_seed(1))
    for frame in st.frames(4):
        s, a = frame.window.s[0], frame.window.a[0]
        assert all(int(s[i + 1]) == (int(s[i]) + int(a[i]) + 1) % S for i in range(8)), (s, a)


def test_value_records_name_theorem_3_1_and_state_their_update():
    for name in ("sarsa", "expected-sarsa", "q-learning", "td"):
        assert get(name).theorem == "Theorem 3.1" and "w" in get(name).statement
