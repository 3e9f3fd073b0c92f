"""The independent reference teacher (``numerics.reference``, issue 11) and
the verdicts it makes possible.

* the fast batched teacher (``numerics.core.teachers``, fed by the prompt
  path's quantities) equals the reference on every algorithm (Hypothesis);
* the compiled SARSA teacher equals the reference;
* the reference's softmax score is autograd's ``grad log pi``; its phi+ rules
  separate: expected SARSA, Q-learning and SARSA differ on a pinned example;
* near ties of the argmax are counted and left out, exact ones included;
* faults planted in the shared prompt path (the score's sign, expected SARSA
  under the greedy policy, Q-learning's argmax at ``s``) make
  ``icrl-verify check --json`` exit 1 with a counterexample that holds the
  window, and the reference itself faulted is refused too.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given

from numerics import reference
from numerics.analysis.check import run_check
from numerics.commands.cli import main
from numerics.core import compiled, prompts, stream
from numerics.core.block import embed_reduced
from numerics.core.constructions import constructed_blocks
from numerics.core.distributions import MDPDistribution
from numerics.core.policies import gather, split_theta
from numerics.core.teachers import teacher_from_window
from numerics.core.tolerances import ARGMAX_TIE_RTOL, readout_tolerance
from numerics.io.models import save_weights
from numerics.testing.strategies import cases, section_4_1_case
from theory.algorithms import get, paper

SMALL = ["--prompts", "100", "--mdps", "10"]


def ref(case, tie_tol=ARGMAX_TIE_RTOL):
    win = case.win
    return reference.reference_update(case.record, case.F.numpy(), win.s.numpy(), win.a.numpy(), win.r.numpy(),
                                      case.theta.numpy(), case.mdp.gamma.numpy(), case.epsilon, case.steps, tie_tol)


@given(cases())
def test_fast_teacher_equals_reference_teacher(case):
    want, tie = ref(case)
    got = teacher_from_window(case.record, case.F, case.win, case.theta, case.mdp.gamma, case.epsilon, case.steps)
    keep = ~torch.from_numpy(tie)
    scale = max(1.0, float(np.abs(want).max()), float(case.theta.abs().max()))
    tol = float(readout_tolerance(scale, case.theta.shape[-1], case.win.n))
    err = np.abs(got.numpy() - want)[keep.numpy()]
    assert float(err.max(initial=0.0)) <= tol


@pytest.mark.parametrize("algorithm", [a.name for a in paper()])
def test_fast_teacher_equals_reference_section_4_1(algorithm):
    case = section_4_1_case(algorithm)
    want, tie = ref(case)
    assert not tie.any()
    got = teacher_from_window(case.record, case.F, case.win, case.theta, case.mdp.gamma, case.epsilon, case.steps)
    assert float((got - torch.from_numpy(want)).abs().max()) <= 1e-13


def test_compiled_sarsa_teacher_equals_reference():
    case = section_4_1_case("sarsa")
    want, _ = ref(case)
    out = np.empty(case.d)
    for b in range(case.mdp.batch):
        compiled.sarsa_teacher(case.F[b].numpy(), case.win.s[b].numpy(), case.win.a[b].numpy(),
                               case.win.r[b].numpy(), float(case.mdp.gamma[b]), case.theta[b].numpy().copy(),
                               0.2, out)
        np.testing.assert_allclose(out, want[b], rtol=0, atol=1e-13)


def test_reference_score_is_autograd_grad_log_softmax():
    gen = torch.Generator().manual_seed(3)
    F_s = torch.rand(2, 5, 4, generator=gen, dtype=torch.float64) * 2 - 1     # B x A x d
    lam = (torch.rand(2, 4, generator=gen, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    a = torch.tensor([1, 4])
    logp = torch.log_softmax(torch.einsum("bak,bk->ba", F_s, lam), -1)[torch.arange(2), a]
    (grad,) = torch.autograd.grad(logp.sum(), lam)
    got = reference.softmax_score(F_s.numpy(), a.numpy(), lam.detach().numpy())
    np.testing.assert_allclose(got, grad.numpy(), rtol=0, atol=1e-14)
    # the sign matters: the score flipped is not the gradient
    assert np.abs(-got - grad.numpy()).max() > 1e-3


def _one_step_case():
    """One MDP, one transition s0 -> s1 with three actions at s1 whose Q_w are
    (1, 3, 2): greedy action 1, taken action 2, epsilon 0.3."""
    F = np.zeros((1, 2, 3, 3))
    F[0, 1] = np.eye(3)
    F[0, 0, 0] = [1.0, 0.0, 0.0]
    w = np.array([[1.0, 3.0, 2.0]])
    s, a, r = np.array([[0, 1]]), np.array([[0, 2]]), np.array([[0.5]])
    return F, s, a, r, w


@pytest.mark.parametrize("name, phi_next", [
    ("sarsa", [0.0, 0.0, 1.0]),                         # the action taken
    ("q-learning", [0.0, 1.0, 0.0]),                    # the greedy action at s'
    ("expected-sarsa", [0.1, 0.8, 0.1]),                # epsilon/A everywhere + (1 - epsilon) on greedy
])
def test_phi_next_rules_separate_sarsa_expected_sarsa_q_learning(name, phi_next):
    F, s, a, r, w = _one_step_case()
    got = reference.next_features(get(name).next_rule, F[:, 1], a[:, 1], w, 0.3)
    np.testing.assert_allclose(got[0], phi_next, atol=1e-15)
    out, tie = reference.reference_update(get(name), F, s, a, r, w, np.array([0.5]), 0.3, {"alpha": 1.0},
                                          ARGMAX_TIE_RTOL)
    delta = 0.5 + 0.5 * float(np.dot(w[0], phi_next)) - 1.0
    np.testing.assert_allclose(out[0], w[0] + delta * F[0, 0, 0], atol=1e-15)
    assert not tie.any()


def test_exact_tie_goes_to_the_first_maximiser_and_counts_as_near_tie():
    F, s, a, r, _ = _one_step_case()
    w = np.array([[2.0, 2.0, 1.0]])
    phi = reference.next_features("greedy", F[:, 1], a[:, 1], w, 0.0)
    np.testing.assert_array_equal(phi[0], [1.0, 0.0, 0.0])
    _, tie = reference.reference_update(get("q-learning"), F, s, a, r, w, np.array([0.5]), 0.1, {"alpha": 0.2},
                                        ARGMAX_TIE_RTOL)
    assert tie.all()
    _, tie = reference.reference_update(get("sarsa"), F, s, a, r, w, np.array([0.5]), 0.1, {"alpha": 0.2},
                                        ARGMAX_TIE_RTOL)
    assert not tie.any()                                  # SARSA takes a' as given: no argmax, no tie


def test_check_counts_near_ties_and_leaves_them_out():
    """Two actions with the same features: Q_w ties at every state, so every
    Q-learning prompt is a near tie (left out, counted); SARSA has none."""
    gen = torch.Generator().manual_seed(0)
    dist = MDPDistribution(states=3, actions=2)
    mdp, F = dist.sample(4, gen)
    F = F[:, :, :1].expand(-1, -1, 2, -1).contiguous()
    for name, ties in (("q-learning", 40), ("expected-sarsa", 40), ("sarsa", 0)):
        res = run_check(name, dist, prompts=40, mdps=4, n=5, mdp=mdp, features=F)
        assert res.holds and res.near_ties == ties, (name, res)


# ---- faults planted in the shared prompt path: the CLI refuses ------------------

def _score_sign_flipped(orig):
    def wq(record, F, win, theta, epsilon):
        q = orig(record, F, win, theta, epsilon)
        if "g" in q:
            q["g"] = -q["g"]                      # sum_b pi phi(s, b) - phi(s, a)
        return q
    return wq


def _expected_under_greedy(orig):
    def wq(record, F, win, theta, epsilon):
        q = orig(record, F, win, theta, epsilon)
        if record.next_rule == "expected":
            q["phi_next"] = orig(record, F, win, theta, 0.0)["phi_next"]     # the greedy policy, epsilon = 0
        return q
    return wq


def _argmax_at_s(orig):
    def wq(record, F, win, theta, epsilon):
        q = orig(record, F, win, theta, epsilon)
        if record.next_rule == "greedy":
            w = split_theta(record, theta)["w"]
            best = (gather(F, win.s[:, :-1]) @ w[:, None, :, None]).squeeze(-1).argmax(-1)     # at s, not s'
            q["phi_next"] = gather(F, win.s[:, 1:], best)
        return q
    return wq


@pytest.mark.parametrize("algorithm, fault", [
    ("actor-critic", _score_sign_flipped),
    ("expected-sarsa", _expected_under_greedy),
    ("q-learning", _argmax_at_s),
])
def test_fault_in_the_prompt_path_makes_check_exit_1(algorithm, fault, monkeypatch, capsys):
    monkeypatch.setattr(stream, "window_quantities", fault(prompts.window_quantities))
    rc = main(["check", "--algorithm", algorithm, *SMALL, "--json"])
    out = capsys.readouterr().out
    res = json.loads(out.strip().splitlines()[-1])
    assert rc == 1 and res["holds"] is False, res
    cex = res["counterexample"]
    assert {"mdp_index", "frame", "theta", "window", "expected", "got"} <= set(cex)
    assert len(cex["window"]["s"]) == len(cex["window"]["a"]) == cex["n"] + 1 and len(cex["window"]["r"]) == cex["n"]
    assert max(abs(x - y) for x, y in zip(cex["expected"], cex["got"])) > cex["tolerance"]
    assert "counterexample: mdp" in out and "window s =" in out


def test_counterexample_replays_on_the_reference(monkeypatch, capsys):
    """The reported window, theta and gamma give the reported teacher value."""
    monkeypatch.setattr(stream, "window_quantities", _score_sign_flipped(prompts.window_quantities))
    main(["check", "--algorithm", "actor-critic", *SMALL, "--json"])
    cex = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["counterexample"]
    gen = torch.Generator().manual_seed(cex["seed"])
    _, F = MDPDistribution().sample(10, gen)
    b, w = cex["mdp_index"], cex["window"]
    want, _ = reference.reference_update(get("actor-critic"), F[b:b + 1].numpy(), np.array([w["s"]]),
                                         np.array([w["a"]]), np.array([w["r"]]), np.array([cex["theta"]]),
                                         np.array([cex["gamma"]]), 0.1, {"alpha": 0.2, "beta": 0.2}, ARGMAX_TIE_RTOL)
    np.testing.assert_allclose(want[0], cex["expected"], rtol=0, atol=1e-12)


def test_fault_in_the_reference_makes_check_exit_1(monkeypatch, capsys):
    good = reference.softmax_score
    monkeypatch.setattr(reference, "softmax_score", lambda F_s, a, lam: -good(F_s, a, lam))
    rc = main(["check", "--algorithm", "actor-critic", *SMALL, "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and res["counterexample"] is not None



def test_compiled_check_counterexample_holds_a_window_that_replays(tmp_path, capsys):
    """SARSA runs the compiled check; its counterexample's window, theta and
    gamma give its teacher value on the independent reference too."""
    record = get("sarsa")
    P12, Vbar21 = (x.clone() for x in constructed_blocks(record, 36, {"alpha": 0.2, "beta": 0.2}))
    P12 = -P12                                                # every sign of P12 flipped
    path = str(tmp_path / "bad.npz")
    save_weights(path, *embed_reduced(record.spec.index(36), P12, Vbar21))
    rc = main(["check", "--algorithm", "sarsa", *SMALL, "--weights", path, "--json"])
    cex = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["counterexample"]
    assert rc == 1 and cex["frame"] >= 0
    gen = torch.Generator().manual_seed(cex["seed"])
    _, F = MDPDistribution().sample(10, gen)
    b, w = cex["mdp_index"], cex["window"]
    want, _ = reference.reference_update(record, F[b:b + 1].numpy(), np.array([w["s"]]), np.array([w["a"]]),
                                         np.array([w["r"]]), np.array([cex["theta"]]), np.array([cex["gamma"]]),
                                         0.1, {"alpha": 0.2}, ARGMAX_TIE_RTOL)
    np.testing.assert_allclose(want[0], cex["expected"], rtol=0, atol=1e-12)
