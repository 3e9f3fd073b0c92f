"""Mutation tier: Algorithm 1's stream (``numerics.core.stream``, the
sampler) against windows drawn by hand, one uniform at a time, in the
documented order, every probability from its definition."""
from __future__ import annotations

import pytest
import torch

from numerics.core import stream as st
from property_tests import core_cases as cc
from theory.algorithms import get

pytestmark = pytest.mark.mutation
F64 = torch.float64


def _setup(algorithm, seed=3, A=2):
    record = get(algorithm)
    mdp, F = cc.tiny_mdp(seed, A=A), cc.tiny_features(seed + 1, A=A)
    theta = (torch.rand(2, record.layout.q(2), generator=torch.Generator().manual_seed(seed), dtype=F64) * 4 - 2)
    return record, mdp, F, theta


@pytest.mark.parametrize("algorithm", ["sarsa", "actor-critic", "td"])
@pytest.mark.parametrize("torch_path", [False, True])
def test_sample_window_equals_the_window_drawn_by_hand(algorithm, torch_path):
    record, mdp, F, theta = _setup(algorithm, A=3)
    s0 = torch.tensor([2, 0])
    sample = st.sample_window_torch if torch_path else st.sample_window
    win = sample(record, mdp, F, mdp.T.cumsum(-1), s0, theta, 6, 0.3, torch.Generator().manual_seed(9))
    s, a, r = cc.window_by_hand(record.behaviour, mdp, F, s0, theta, 6, 0.3, torch.Generator().manual_seed(9))
    assert win.s.tolist() == s and win.a.tolist() == a
    assert win.r.tolist() == r and win.r.dtype == F64 and win.n == 6
    assert len(set(sum(s, []))) == 3 and len(set(sum(a, []))) > 1          # the draws visit several outcomes


def test_the_compiled_sampler_is_used_only_on_the_cpu_in_float64():
    record, mdp, F, theta = _setup("sarsa")
    T_cdf, s0, gen = mdp.T.cumsum(-1), torch.tensor([0, 1]), torch.Generator()
    pi = torch.rand(2, 3, 2, dtype=F64)
    assert st._compiled_sampler_applies(pi, T_cdf, mdp.R, s0, gen)
    assert not st._compiled_sampler_applies(pi.float(), T_cdf, mdp.R, s0, gen)
    assert not st._compiled_sampler_applies(pi, T_cdf.float(), mdp.R, s0, gen)
    assert not st._compiled_sampler_applies(pi, T_cdf, mdp.R.float(), s0, gen)
    assert not st._compiled_sampler_applies(pi, T_cdf.clone().requires_grad_(), mdp.R, s0, gen)
    assert not st._compiled_sampler_applies(pi, T_cdf, mdp.R.clone().requires_grad_(), s0, gen)
    meta = torch.empty(2, 3, 2, dtype=F64, device="meta")
    for args in ((meta, T_cdf, mdp.R, s0), (pi, meta.new_empty(T_cdf.shape), mdp.R, s0),
                 (pi, T_cdf, meta.new_empty(mdp.R.shape), s0), (pi, T_cdf, mdp.R, s0.to("meta"))):
        assert not st._compiled_sampler_applies(*args, gen)


def test_a_window_the_compiled_sampler_cannot_draw_takes_the_torch_path_with_the_same_draws():
    record, mdp, F, theta = _setup("sarsa")
    s0 = torch.tensor([1, 2])
    T_cdf = mdp.T.cumsum(-1).requires_grad_()             # the compiled sampler does not apply
    win = st.sample_window(record, mdp, F, T_cdf, s0, theta, 4, 0.3, torch.Generator().manual_seed(4))
    s, a, r = cc.window_by_hand(record.behaviour, mdp, F, s0, theta, 4, 0.3, torch.Generator().manual_seed(4))
    assert win.s.tolist() == s and win.a.tolist() == a and win.r.tolist() == r


def test_draw_is_the_inverse_cdf_clamped_to_the_last_index():
    cdf = torch.tensor([[0.2, 0.5, 1.0], [0.1, 0.2, 0.3]] * 20, dtype=F64)
    got = st._draw(cdf, torch.Generator().manual_seed(7))
    u = torch.rand(40, generator=torch.Generator().manual_seed(7), dtype=F64).tolist()
    probs = [[0.2, 0.3, 0.5], [0.1, 0.1, 0.1]] * 20
    assert got.tolist() == [cc.inverse_cdf(p, x) for p, x in zip(probs, u)]
    assert 2 in got[1::2].tolist()


def test_draw_handles_any_leading_axes():
    cdf = torch.tensor([[[0.2, 0.5, 1.0], [0.1, 0.2, 0.3]]] * 30, dtype=F64)           # 30 x 2 x 3
    got = st._draw(cdf, torch.Generator().manual_seed(2))
    u = torch.rand(30, 2, generator=torch.Generator().manual_seed(2), dtype=F64).tolist()
    probs = [[0.2, 0.3, 0.5], [0.1, 0.1, 0.1]]
    assert got.shape == (30, 2)
    assert got.tolist() == [[cc.inverse_cdf(probs[j], u[i][j]) for j in range(2)] for i in range(30)]
    assert st._draw(cdf.to("meta"), torch.Generator()).device.type == "meta"
    u = torch.rand(2, generator=torch.Generator().manual_seed(13), dtype=F64)
    exact = torch.stack([u, torch.ones_like(u)], -1)                       # cdf_0 == u exactly: index 0
    assert st._draw(exact, torch.Generator().manual_seed(13)).tolist() == [0, 0]


def test_initial_state_draws_theta_uniform_on_minus_one_one_then_s0_from_rho0():
    record, mdp, F, _ = _setup("actor-critic", A=3)          # A != d: q = 2 d = 4, not 2 A
    theta, s0 = st.initial_state(record, mdp, F, torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    want_theta = (torch.rand(2, 4, generator=g, dtype=F64) * 2 - 1)
    u = torch.rand(2, generator=g, dtype=F64).tolist()
    assert theta.shape == (2, 4) and theta.dtype == F64 and torch.equal(theta, want_theta)
    assert s0.tolist() == [cc.inverse_cdf(mdp.rho0[b].tolist(), u[b]) for b in range(2)]
    theta_meta, _ = st.initial_state(record, mdp, F.to("meta"), torch.Generator().manual_seed(11))
    assert theta_meta.device.type == "meta" and theta_meta.shape == (2, 4)    # on the features' device


def test_stream_starts_where_told_or_draws_the_start_and_steps_the_teacher():
    record, mdp, F, theta = _setup("sarsa")
    steps = {"alpha": 0.2}
    s0 = torch.tensor([1, 2])
    stream = st.Stream(record, mdp, F, n=5, epsilon=0.3, steps=steps, gen=torch.Generator().manual_seed(5),
                       theta=theta, s0=s0)
    assert torch.equal(stream.theta, theta) and torch.equal(stream.s0, s0)
    assert torch.equal(stream.T_cdf, mdp.T.cumsum(-1))
    gen = torch.Generator().manual_seed(5)
    frame = stream.next()
    s, a, r = cc.window_by_hand("epsilon-greedy", mdp, F, s0, theta, 5, 0.3, gen)
    assert [s[b][1] for b in range(2)] != [s[b][-1] for b in range(2)]     # s_1 and s_n differ: the next start is s_n
    assert frame.window.s.tolist() == s and frame.window.a.tolist() == a and frame.window.r.tolist() == r
    assert torch.equal(frame.theta, theta)
    want = cc.textbook_step("taken", False, F, frame.window.s, frame.window.a, frame.window.r, theta, mdp.gamma,
                            0.3, 0.2)
    torch.testing.assert_close(stream.theta, torch.tensor(want, dtype=F64), rtol=0, atol=1e-14)
    assert stream.s0.tolist() == [s[0][-1], s[1][-1]]
    # a custom update, and frames(num)
    frames = list(stream.frames(2, update=lambda fr: fr.theta * 0 + 7))
    assert len(frames) == 2 and bool((frames[1].theta == 7).all()) and bool((stream.theta == 7).all())
    assert frames[0].window.s[:, 0].tolist() == [s[0][-1], s[1][-1]]


@pytest.mark.parametrize("given", ["theta", "s0", "neither"])
def test_stream_draws_only_what_is_not_given(given):
    record, mdp, F, theta = _setup("sarsa")
    s0 = torch.tensor([2, 2])
    kw = {"theta": theta} if given == "theta" else {"s0": s0} if given == "s0" else {}
    stream = st.Stream(record, mdp, F, n=2, epsilon=0.1, steps={"alpha": 0.1}, gen=torch.Generator().manual_seed(8),
                       **kw)
    drawn_theta, drawn_s0 = st.initial_state(record, mdp, F, torch.Generator().manual_seed(8))
    assert torch.equal(stream.theta, theta if given == "theta" else drawn_theta)
    assert torch.equal(stream.s0, s0 if given == "s0" else drawn_s0)
    assert not torch.equal(drawn_theta, theta)


def test_frame_prompt_and_target_are_the_window_s():
    record, mdp, F, theta = _setup("expected-sarsa")
    stream = st.Stream(record, mdp, F, n=3, epsilon=0.3, steps={"alpha": 0.2}, gen=torch.Generator().manual_seed(1),
                       theta=theta, s0=torch.tensor([0, 1]))
    fr = stream.next()
    w = fr.window
    want = cc.textbook_step("expected", False, F, w.s, w.a, w.r, theta, mdp.gamma, 0.3, 0.2)
    torch.testing.assert_close(fr.target, torch.tensor(want, dtype=F64), rtol=0, atol=1e-14)
    assert fr.X.shape == (2, 3, 5) and fr.wt.tolist() == [[1.0] + t for t in theta.tolist()]
    assert torch.equal(fr.X[..., :2], F[torch.arange(2)[:, None], w.s[:, :-1], w.a[:, :-1]])
