"""Mutation tier: the prompt builder (``numerics.core.prompts``, paper eq. 4)
and the fast teacher (``numerics.core.teachers``, eq. 2 / 3) against plain
loops over one tiny window written from the definitions."""
from __future__ import annotations

import dataclasses

import pytest
import sympy as sp
import torch

from numerics.core import prompts, teachers
from numerics.core.stream import Window
from property_tests import core_cases as cc
from theory import rules
from theory.algorithms import get
from theory.symbols import alpha as ALPHA
from theory.symbols import gamma as GAMMA

pytestmark = pytest.mark.mutation
F64 = torch.float64
ALGORITHMS = ["sarsa", "expected-sarsa", "q-learning", "actor-critic", "td"]


def _case(A=3, d=2, n=4):
    F = cc.tiny_features(B=2, S=3, A=A, d=d)
    s = torch.tensor([[0, 2, 1, 2, 0], [1, 1, 0, 2, 2]])[:, :n + 1]
    a = torch.tensor([[1, 0, 2, 2, 1], [0, 2, 1, 0, 0]])[:, :n + 1] % A
    r = torch.tensor([[0.5, -1.0, 0.25, 2.0], [1.5, 0.0, -0.75, 0.1]], dtype=F64)[:, :n]
    theta = torch.tensor([[0.4, -0.9, 1.3, 0.2], [-1.1, 0.6, -0.3, 0.8]], dtype=F64)
    gamma = torch.tensor([0.5, 0.9], dtype=F64)
    return F, Window(s, a, r), theta, gamma


def _theta(record, theta, d=2):
    return theta[:, :record.layout.q(d)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_window_quantities_are_the_definitions_per_transition(algorithm):
    record = get(algorithm)
    F, win, theta, _ = _case()
    theta = _theta(record, theta)
    eps = 0.3
    q = prompts.window_quantities(record, F, win, theta, eps)
    Fl, s, a, th = F.tolist(), win.s.tolist(), win.a.tolist(), theta.tolist()
    phi = [[Fl[b][s[b][i]][a[b][i]] for i in range(4)] for b in range(2)]
    assert q["phi"].tolist() == phi
    assert q["r"].tolist() == win.r.tolist()
    assert set(q) == {"phi", "r", *record.quantities}
    nxt = [[cc.next_phi(record.next_rule, Fl[b][s[b][i + 1]], a[b][i + 1], th[b][:2], eps) for i in range(4)]
           for b in range(2)]
    torch.testing.assert_close(q["phi_next"], torch.tensor(nxt, dtype=F64), rtol=0, atol=1e-15)
    if "g" in record.quantities:
        g = [[cc.score(Fl[b][s[b][i]], a[b][i], th[b][2:]) for i in range(4)] for b in range(2)]
        torch.testing.assert_close(q["g"], torch.tensor(g, dtype=F64), rtol=0, atol=1e-15)


def test_the_three_next_rules_give_three_different_phi_next_here():
    F, win, theta, _ = _case()
    got = [prompts.window_quantities(get(a), F, win, theta[:, :2], 0.3)["phi_next"] for a in
           ("sarsa", "expected-sarsa", "q-learning")]
    assert not torch.equal(got[0], got[1]) and not torch.equal(got[1], got[2]) and not torch.equal(got[0], got[2])


def test_greedy_next_features_take_the_first_maximiser_on_a_tie():
    F = torch.tensor([[[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]]], dtype=F64)
    F = F + torch.tensor([0.0, 0.0, 0.0])[None, None, :, None]
    win = Window(torch.tensor([[1, 0]]), torch.tensor([[0, 2]]), torch.tensor([[1.0]], dtype=F64))
    theta = torch.tensor([[1.0, 0.0]], dtype=F64)      # Q(0, .) = (1, 1, 0): actions 0 and 1 tie
    F2 = F.clone()
    F2[0, 0, 1] = torch.tensor([1.0, 5.0])               # same Q, different features: the tie rule is visible
    q = prompts.window_quantities(get("q-learning"), F2, win, theta, 0.0)
    assert q["phi_next"].tolist() == [[[1.0, 0.0]]]


def test_one_is_a_row_of_ones_for_a_record_that_asks_for_it():
    record = dataclasses.replace(get("sarsa"), context=(("phi", sp.Integer(1), "phi"),
                                                        ("gphi_next", GAMMA, "phi_next"), ("r", sp.Integer(1), "one")))
    F, win, theta, gamma = _case()
    q = prompts.window_quantities(record, F, win, theta[:, :2], 0.3)
    assert q["one"].tolist() == [[1.0] * 4] * 2 and q["one"].dtype == F64
    X, _ = prompts.build_context(record, q, theta[:, :2], gamma)
    assert X[..., -1].tolist() == [[1.0] * 4] * 2


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_context_rows_are_phi_gamma_phi_next_r_and_g_and_w_tilde_is_one_then_theta(algorithm):
    record = get(algorithm)
    F, win, theta, gamma = _case()
    theta = _theta(record, theta)
    q = prompts.window_quantities(record, F, win, theta, 0.3)
    X, wt = prompts.build_context(record, q, theta, gamma)
    want = []
    for b in range(2):
        rows = []
        for i in range(4):
            x = list(q["phi"][b, i].tolist()) + [gamma[b].item() * v for v in q["phi_next"][b, i].tolist()]
            x.append(win.r[b, i].item())
            if "g" in q:
                x += q["g"][b, i].tolist()
            rows.append(x)
        want.append(rows)
    assert X.shape == (2, 4, record.layout.m(2))
    torch.testing.assert_close(X, torch.tensor(want, dtype=F64), rtol=0, atol=0)
    assert wt.tolist() == [[1.0] + t for t in theta.tolist()]
    X2, wt2 = prompts.prompt_from_window(record, F, win, theta, gamma, 0.3)
    assert torch.equal(X2, X) and torch.equal(wt2, wt)


def test_a_coefficient_that_is_a_function_of_gamma_is_evaluated_per_mdp():
    record = dataclasses.replace(get("sarsa"), context=(("phi", sp.Integer(1), "phi"),
                                                        ("gphi_next", GAMMA ** 2 / 2, "phi_next"),
                                                        ("r", sp.Integer(1), "r")))
    F, win, theta, gamma = _case()
    q = prompts.window_quantities(record, F, win, theta[:, :2], 0.3)
    X, _ = prompts.build_context(record, q, theta[:, :2], gamma)
    for b in range(2):
        torch.testing.assert_close(X[b, :, 2:4], q["phi_next"][b] * gamma[b].item() ** 2 / 2, rtol=1e-15, atol=0)


def test_per_mdp_coefficients_are_put_on_the_device_of_the_quantities():
    context = (("phi", sp.Integer(1), "phi"), ("gphi_next", GAMMA ** 2, "phi_next"), ("r", sp.Integer(1), "r"))
    record = dataclasses.replace(get("sarsa"), context=context)
    F, win, theta, gamma = _case()
    q = {k: v.to("meta") for k, v in prompts.window_quantities(record, F, win, theta[:, :2], 0.3).items()}
    X, wt = prompts.build_context(record, q, theta[:, :2].to("meta"), gamma)     # the discounts stay numbers
    assert X.device.type == "meta" and X.shape == (2, 4, 5) and wt.device.type == "meta"


def test_a_coefficient_with_another_symbol_is_refused():
    bad = (("phi", sp.Integer(1), "phi"), ("gphi_next", ALPHA, "phi_next"), ("r", sp.Integer(1), "r"))
    with pytest.raises(ValueError, match="coefficient alpha may depend on gamma only$"):
        dataclasses.replace(get("sarsa"), context=bad)           # the record refuses it
    record = get("sarsa")
    object.__setattr__(record, "context", bad)                   # and so does the prompt builder
    F, win, theta, gamma = _case()
    q = prompts.window_quantities(record, F, win, theta[:, :2], 0.3)
    with pytest.raises(ValueError, match="^context coefficient alpha may depend on gamma only$"):
        prompts.build_context(record, q, theta[:, :2], gamma)


def test_assemble_prompt_puts_x_i_in_the_context_columns_and_w_tilde_in_the_last():
    X = torch.arange(2 * 3 * 4, dtype=F64).reshape(2, 3, 4) + 1
    wt = -torch.arange(2 * 3, dtype=F64).reshape(2, 3) - 1
    H = prompts.assemble_prompt(X, wt)
    assert H.shape == (2, 7, 4)
    for b in range(2):
        for row in range(7):
            for col in range(4):
                if row < 4 and col < 3:
                    want = X[b, col, row].item()
                elif row >= 4 and col == 3:
                    want = wt[b, row - 4].item()
                else:
                    want = 0.0
                assert H[b, row, col].item() == want, (b, row, col)


# ---- the fast teacher -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_teacher_step_equals_the_textbook_loop(algorithm):
    record = get(algorithm)
    F, win, theta, gamma = _case()
    theta = _theta(record, theta)
    steps = {"alpha": 0.2, "beta": 0.05}
    got = teachers.teacher_from_window(record, F, win, theta, gamma, 0.3, steps)
    want = cc.textbook_step(record.next_rule, "lam" in record.layout.readout_blocks, F, win.s, win.a, win.r, theta,
                            gamma, 0.3, 0.2, 0.05)
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=0, atol=1e-14)
    q = prompts.window_quantities(record, F, win, theta, 0.3)
    assert torch.equal(teachers.teacher_update(record, q, theta, gamma, steps), got)


def test_a_block_the_rule_does_not_update_is_kept_and_constants_reach_the_rule():
    def critic_only(t, theta, hp, ops):
        out = rules.semi_gradient(t, theta, hp, ops)
        return {"w": (hp["alpha"] * hp["k"], out["w"][1])}

    record = dataclasses.replace(get("actor-critic"), rule=critic_only, constants=(("k", sp.Rational(1, 2)),))
    F, win, theta, gamma = _case()
    got = teachers.teacher_from_window(record, F, win, theta, gamma, 0.3, {"alpha": 0.2, "beta": 0.05})
    want = cc.textbook_step("taken", False, F, win.s, win.a, win.r, theta[:, :2], gamma, 0.3, 0.1)
    torch.testing.assert_close(got[:, :2], torch.tensor(want, dtype=F64), rtol=0, atol=1e-14)
    assert torch.equal(got[:, 2:], theta[:, 2:])


def test_the_teacher_passes_the_row_of_ones_to_a_rule_that_reads_it():
    def with_ones(t, theta, hp, ops):
        delta = t.r + t.gamma * ops.dot(theta["w"], t.phi_next) - ops.dot(theta["w"], t.phi)
        return {"w": (hp["alpha"], ops.scale(2 * t.one * delta, t.phi))}

    record = dataclasses.replace(get("sarsa"), rule=with_ones)
    F, win, theta, gamma = _case()
    q = prompts.window_quantities(record, F, win, theta[:, :2], 0.3)
    q["one"] = torch.ones_like(q["r"])                    # as window_quantities gives a record whose prompt holds it
    got = teachers.teacher_update(record, q, theta[:, :2], gamma, {"alpha": 0.2})
    want = cc.textbook_step("taken", False, F, win.s, win.a, win.r, theta[:, :2], gamma, 0.3, 0.4)
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=0, atol=1e-14)


def test_torch_ops_are_the_batched_inner_product_and_scaling():
    u = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=F64)
    V = torch.tensor([[[1.0, 1.0], [0.5, -2.0], [0.0, 3.0]], [[2.0, 0.0], [1.0, 1.0], [-1.0, 4.0]]], dtype=F64)
    assert teachers.TorchOps.dot(u, V).tolist() == [[3.0, -3.5, 6.0], [6.0, 2.0, -7.0]]
    s = torch.tensor([[2.0, -1.0, 0.5], [1.0, 0.0, 3.0]], dtype=F64)
    assert teachers.TorchOps.scale(s, V).tolist() == [[[2.0, 2.0], [-0.5, 2.0], [0.0, 1.5]],
                                                      [[2.0, 0.0], [0.0, 0.0], [-3.0, 12.0]]]
