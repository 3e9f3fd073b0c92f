"""Mutation tier: the independent reference teacher (``numerics.reference``)
against hand-computed values and the plain-float textbook loop of
``core_cases``; and the algorithm records (``theory.algorithms``): their
fields, checks and registry."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import sympy as sp

from numerics import reference as ref
from property_tests import core_cases as cc
from theory import algorithms as A
from theory import constructions as C
from theory import rules
from theory.errors import InputError
from theory.layout import WANG_AVG_LAYOUT, WANG_LAYOUT, Layout
from theory.spec import ACTOR_CRITIC_SPEC, VALUE_SPEC, BlockSpec
from theory.symbols import STEP_SIZES, gamma, lam

pytestmark = pytest.mark.mutation


def test_numpy_ops_dot_and_scale():
    u, v = np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([[0.5, 1.0], [2.0, 4.0]])
    assert ref.NumpyOps.dot(u, v).tolist() == [2.5, 2.0]
    assert ref.NumpyOps.scale(np.array([2.0, -1.0]), v).tolist() == [[1.0, 2.0], [-2.0, -4.0]]


def test_split_parameters_q_values_and_the_greedy_action():
    theta = np.arange(8.0).reshape(2, 4)
    parts = ref.split_parameters(A.get("actor-critic"), theta)
    assert list(parts) == ["w", "lam"] and parts["w"].tolist() == [[0, 1], [4, 5]]
    assert parts["lam"].tolist() == [[2, 3], [6, 7]]
    assert list(ref.split_parameters(A.get("sarsa"), theta[:, :2])) == ["w"]
    F_s = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    assert ref.q_values(F_s, np.array([[2.0, -1.0]])).tolist() == [[2.0, -1.0, 1.0]]
    assert ref.greedy_action(np.array([[1.0, 3.0, 3.0], [0.0, -1.0, -2.0]])).tolist() == [1, 0]


def test_near_tie_is_relative_to_max_one_and_the_largest_value():
    q = np.array([[1.0, 1.0 + 1e-10, 0.0], [100.0, 100.0 + 5e-9, 0.0], [3.0, 1.0, 2.0], [0.5, 0.5 + 2e-9, 0.0]])
    assert ref.near_tie(q, 1e-8).tolist() == [True, True, False, True]
    assert ref.near_tie(np.array([[100.0, 100.0 + 2e-6]]), 1e-8).tolist() == [False]
    assert ref.near_tie(np.array([[0.0, 1e-8]]), 1e-8).tolist() == [True]            # gap equal to the bound counts
    one = ref.near_tie(np.array([[5.0], [1.0]]), 1e-8)
    assert one.dtype == bool and one.tolist() == [False, False]                     # one action: never a tie
    assert ref.near_tie(np.array([[0.0, 1.5e-8]]), 1e-8).tolist() == [False]        # below 1: the bound is tol itself
    # the scale is the largest value's magnitude, not the runner-up's or another entry's
    assert ref.near_tie(np.array([[-4.0, -3.0, -9.0]]), 0.3).tolist() == [False]     # 1 > 0.3 * 3
    assert ref.near_tie(np.array([[0.0, 0.0, 100.0, 100.5]]), 0.01).tolist() == [True]   # 0.5 <= 0.01 * 100.5


def test_epsilon_greedy_softmax_and_the_score_from_their_definitions():
    np.testing.assert_allclose(ref.epsilon_greedy(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), 0.3),
                               [[0.1, 0.8, 0.1], [0.8, 0.1, 0.1]], rtol=1e-15, atol=1e-16)
    p = ref.softmax_policy(np.array([[0.0, math.log(2.0), math.log(3.0)], [1000.0, 1000.0 + math.log(3.0), 900.0]]))
    np.testing.assert_allclose(p, [[1 / 6, 2 / 6, 3 / 6], [0.25, 0.75, 0.0]], rtol=1e-12, atol=1e-40)
    F_s = np.array([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [-1.0, 0.5]]])
    lam = np.array([[0.3, -0.2], [1.0, 0.4]])
    got = ref.softmax_score(F_s, np.array([1, 0]), lam)
    want = [cc.score(F_s[b].tolist(), [1, 0][b], lam[b].tolist()) for b in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("rule", ["taken", "expected", "greedy"])
def test_next_features_per_rule(rule):
    F_next = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], [[1.0, 1.0], [0.0, 3.0], [1.0, -1.0]]])
    w = np.array([[1.0, -1.0], [0.0, 1.0]])
    got = ref.next_features(rule, F_next, np.array([2, 0]), w, 0.3)
    want = [cc.next_phi(rule, F_next[b].tolist(), [2, 0][b], w[b].tolist(), 0.3) for b in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match="^reference: unknown next_rule 'best'$"):
        ref.next_features("best", F_next, np.array([0, 0]), w, 0.3)


def _window():
    F = cc.tiny_features(B=2, S=3, A=3, d=2).numpy()
    s = np.array([[0, 2, 1, 2], [1, 1, 0, 2]])
    a = np.array([[1, 0, 2, 2], [0, 2, 1, 0]])
    r = np.array([[0.5, -1.0, 0.25], [1.5, 0.0, -0.75]])
    theta = np.array([[0.4, -0.9, 1.3, 0.2], [-1.1, 0.6, -0.3, 0.8]])
    return F, s, a, r, theta, np.array([0.5, 0.9])


@pytest.mark.parametrize("algorithm", ["sarsa", "expected-sarsa", "q-learning", "actor-critic", "td"])
def test_reference_update_equals_the_textbook_loop(algorithm):
    record = A.get(algorithm)
    F, s, a, r, theta, g = _window()
    theta = theta[:, :record.layout.q(2)]
    got, tie = ref.reference_update(record, F, s, a, r, theta, g, 0.3, {"alpha": 0.2, "beta": 0.05}, 1e-9)
    want = cc.textbook_step(record.next_rule, "lam" in record.layout.readout_blocks, F, s, a, r, theta, g, 0.3, 0.2,
                            0.05)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)
    assert got.dtype == np.float64 and tie.tolist() == [False, False]


@pytest.mark.parametrize("algorithm", ["expected-sarsa", "q-learning"])
def test_reference_update_flags_windows_with_a_near_tie_of_the_next_argmax(algorithm):
    F, s, a, r, theta, g = _window()
    F[1, 1] = [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]         # MDP 1's first next state is 1 (only the first): a tie
    theta[1, :2] = [1.0, 0.0]
    _, tie = ref.reference_update(A.get(algorithm), F, s, a, r, theta[:, :2], g, 0.3, {"alpha": 0.2}, 1e-9)
    assert tie.tolist() == [False, True]
    _, tie = ref.reference_update(A.get("sarsa"), F, s, a, r, theta[:, :2], g, 0.3, {"alpha": 0.2}, 1e-9)
    assert tie.tolist() == [False, False]                               # taken: no argmax, no tie


def test_reference_update_runs_a_registered_rule_with_its_constants():
    def halved(t, theta, hp, ops):
        delta = t.r + t.gamma * ops.dot(theta["w"], t.phi_next) - ops.dot(theta["w"], t.phi)
        return {"w": (hp["alpha"] * hp["k"], ops.scale(delta, t.phi + 0 * t.one[:, None]))}

    record = dataclasses.replace(A.get("sarsa"), rule=halved, constants=(("k", sp.Rational(1, 2)),))
    F, s, a, r, theta, g = _window()
    got, _ = ref.reference_update(record, F, s, a, r, theta[:, :2], g, 0.3, {"alpha": 0.2}, 1e-9)
    want = cc.textbook_step("taken", False, F, s, a, r, theta[:, :2], g, 0.3, 0.1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)
    ac = dataclasses.replace(A.get("actor-critic"), rule=lambda t, th, hp, ops: rules.actor_critic(t, th, hp, ops))
    got, _ = ref.reference_update(ac, F, s, a, r, theta, g, 0.3, {"alpha": 0.2, "beta": 0.05}, 1e-9)
    want = cc.textbook_step("taken", True, F, s, a, r, theta, g, 0.3, 0.2, 0.05)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)


def test_reference_update_keeps_a_block_the_rule_leaves_alone():
    record = dataclasses.replace(A.get("actor-critic"), rule=lambda t, th, hp, ops: rules.semi_gradient(t, th, hp, ops))
    F, s, a, r, theta, g = _window()
    got, _ = ref.reference_update(record, F, s, a, r, theta, g, 0.3, {"alpha": 0.2, "beta": 0.05}, 1e-9)
    assert got[:, 2:].tolist() == theta[:, 2:].tolist()


@pytest.mark.parametrize("bad", ["F", "F-batch", "s", "a", "theta", "gamma"])
def test_reference_update_refuses_inconsistent_shapes(bad):
    F, s, a, r, theta, g = _window()
    args = dict(F=F, s=s, a=a, theta=theta[:, :2], gamma=g)
    wrong = {"F": F[:, :, 0], "F-batch": F[:1], "s": s[:, :-1], "a": a[:1], "theta": theta[:1, :2], "gamma": g[:1]}
    args[bad.split("-")[0]] = wrong[bad]
    with pytest.raises(ValueError, match="^reference: expected F B x S x A x d"):
        ref.reference_update(A.get("sarsa"), args["F"], args["s"], args["a"], r, args["theta"], args["gamma"], 0.3,
                             {"alpha": 0.2}, 1e-9)


def test_reference_update_computes_in_float64_whatever_arrays_it_is_given():
    F, s, a, r, theta, g = _window()
    record = A.get("actor-critic")
    want, _ = ref.reference_update(record, F, s, a, r, theta, g, 0.3, {"alpha": 0.2, "beta": 0.05}, 1e-9)
    F32, r32, th32, g32 = (x.astype(np.float32) for x in (F, r, theta, g))
    got, _ = ref.reference_update(record, F32, s.astype(np.float64), a.astype(np.float64), r32, th32, g32, 0.3,
                                  {"alpha": 0.2, "beta": 0.05}, 1e-9)
    exact = cc.textbook_step("taken", True, F32.astype(np.float64), s, a, r32.astype(np.float64),
                             th32.astype(np.float64), g32.astype(np.float64), 0.3, 0.2, 0.05)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-14)               # float32 arithmetic misses by ~1e-8
    assert np.abs(got - want).max() > 1e-9                                    # (the inputs were rounded to float32)


# ---- the algorithm records ----------------------------------------------------------------------------------------


def test_the_paper_s_records_and_what_distinguishes_them():
    recs = {a.name: a for a in A.paper()}
    assert list(recs) == ["sarsa", "expected-sarsa", "q-learning", "actor-critic", "td"] == list(A.names("mdp"))
    assert list(A.names()) == list(recs) + ["td-preconditioned", "td-lambda", "rg", "avg-reward", "softmax-td",
                                            "softmax-td-shift"]
    assert {k: r.next_rule for k, r in recs.items()} == {"sarsa": "taken", "expected-sarsa": "expected",
                                                         "q-learning": "greedy", "actor-critic": "taken",
                                                         "td": "taken"}
    assert {k: r.behaviour for k, r in recs.items()} == {"sarsa": "epsilon-greedy", "expected-sarsa": "epsilon-greedy",
                                                         "q-learning": "epsilon-greedy", "actor-critic": "softmax",
                                                         "td": "uniform"}
    assert {k: (r.features, r.acts_with) for k, r in recs.items() if k != "actor-critic"} == {
        "sarsa": ("state-action", "w"), "expected-sarsa": ("state-action", "w"), "q-learning": ("state-action", "w"),
        "td": ("state", None)}
    ac = recs["actor-critic"]
    assert ac.acts_with == "lam" and ac.steps == ("alpha", "beta") and ac.features == "state-action"
    assert ac.spec is ACTOR_CRITIC_SPEC and ac.construction is C.ACTOR_CRITIC and ac.rule is rules.actor_critic
    assert ac.theorem == "Theorem 3.3" and "lam + (beta/n)" in ac.statement and "reconstructed" in ac.notes[0]
    assert [c for _, c, _ in ac.context] == [1, gamma, 1, 1] and [q for _, _, q in ac.context] == [
        "phi", "phi_next", "r", "g"]
    for k in ("sarsa", "expected-sarsa", "q-learning", "td"):
        r = recs[k]
        assert r.spec is VALUE_SPEC and r.construction is C.SARSA and r.rule is rules.semi_gradient
        assert r.theorem == "Theorem 3.1" and r.steps == ("alpha",) and r.constants == () and r.notes == ()
        assert r.context == (("phi", 1, "phi"), ("gphi_next", gamma, "phi_next"), ("r", 1, "r"))
    # what the reports state for each claim: the update the block must compute (THEORY.md section 2)
    assert recs["sarsa"].statement == "w + (alpha/n) sum_i (r_{i+1} + gamma w.phi+_i - w.phi_i) phi_i"
    assert recs["expected-sarsa"].statement == ("SARSA with phi+_i = sum_b pi(b|s_{i+1}) phi(s_{i+1}, b) "
                                                "(epsilon-greedy pi in Q_w)")
    assert recs["q-learning"].statement == ("SARSA with phi+_i = phi(s_{i+1}, argmax_b Q_w(s_{i+1}, b)) "
                                            "(argmax taken when the prompt is built)")
    assert recs["td"].statement == ("TD(0) policy evaluation with state features: "
                                    "w + (alpha/n) sum_i (r + gamma w.psi(s_{i+1}) - w.psi(s_i)) psi(s_i)")
    assert ac.statement == ("(w + (alpha/n) sum_i delta_i phi_i, lam + (beta/n) sum_i delta_i g_i), "
                            "g_i = phi(s_i,a_i) - sum_b pi_lam(b|s_i) phi(s_i,b)")
    assert ac.notes == ("Theorem 3.3's layout and update are reconstructed (THEORY.md section 4); the proof is of "
                        "that reconstruction.",)
    assert A.paper() == A.paper() and A.get("sarsa") == recs["sarsa"]


def test_record_helpers():
    sarsa, ac, td = A.get("sarsa"), A.get("actor-critic"), A.get("td")
    assert sarsa.layout is VALUE_SPEC.layout and sarsa.controls and not td.controls
    assert sarsa.quantities == ("phi", "phi_next", "r") and ac.quantities == ("phi", "phi_next", "r", "g")
    assert sarsa.d_of(9, 4) == 36 and td.d_of(9, 4) == 9
    assert sarsa.exact_hp() == dict(STEP_SIZES)
    k = dataclasses.replace(sarsa, constants=(("k", sp.Rational(1, 2)),))
    assert k.exact_hp({"alpha": sp.Rational(1, 5)}) == {**dict(STEP_SIZES), "alpha": sp.Rational(1, 5),
                                                        "k": sp.Rational(1, 2)}
    assert k.numeric_hp({"alpha": 0.2}) == {"alpha": 0.2, "k": 0.5} and type(k.numeric_hp({})["k"]) is float


@pytest.mark.parametrize("field, value, message", [
    ("context", (("phi", 1, "phi"), ("r", 1, "r")), "context recipe fills"),
    ("context", (("phi", 1, "phi"), ("gphi_next", gamma, "psi"), ("r", 1, "r")),
     "block 'gphi_next' holds unknown quantity 'psi'; expected one of phi, phi_next, r, g, one, zero$"),
    ("next_rule", "best", "next_rule 'best' not in"),
    ("behaviour", "greedy", "behaviour 'greedy' not in"),
    ("features", "pixels", "features 'pixels' not in"),
    ("acts_with", "lam", "acts_with 'lam' is not a read-out block"),
    ("data", "pomdp", r"data 'pomdp' not in \('mdp', 'mrp'\)$"),
    ("construction", C.Construction(p=C.SARSA.p, v=(C.SARSA.v[0], C.SARSA.v[0])), "2 V tables for 1 heads$"),
    ("construction", C.Construction(p=C.SARSA.p, v=C.SARSA.v, preconditioned=True),
     "an mdp record is one unmasked layer with a parameter column and step-size tables"),
    ("spec", dataclasses.replace(VALUE_SPEC, depth=2), "an mdp record is one unmasked layer"),
    ("construction", C.Construction(p=C.SARSA.p, v=((("one", "r"), C.alpha),)),
     r"V entry \(one, r\) must join a read-out row block to a context column block"),
    ("construction", C.Construction(p=C.SARSA.p + ((("phi", "phi"), 1),), v=C.SARSA.v),
     r"P entry \(phi, phi\) must join a context row block to a parameter column block"),
    ("construction", C.Construction(p=C.SARSA.p + ((("w", "w"), 1),), v=C.SARSA.v),
     r"P entry \(w, w\) must join a context row block"),
    ("construction", C.Construction(p=C.SARSA.p, v=((("w", "w"), C.alpha),)),
     r"V entry \(w, w\) must join a read-out row block to a context column block"),
])
def test_a_record_with_a_bad_field_is_refused_naming_it(field, value, message):
    with pytest.raises(ValueError, match=f"^algorithm 'sarsa': {message}"):
        dataclasses.replace(A.get("sarsa"), **{field: value})


def test_registry_register_replace_unregister_and_get():
    mine = dataclasses.replace(A.get("sarsa"), name="mine")
    try:
        assert A.register(mine) is mine and A.get("mine") is mine and A.names()[-1] == "mine"
        with pytest.raises(ValueError, match="^register: algorithm 'mine' exists; pass replace=True"):
            A.register(mine)
        with pytest.raises(ValueError, match="^register: algorithm 'sarsa' exists"):
            A.register(A.get("sarsa"))
        other = dataclasses.replace(mine, statement="other")
        assert A.register(other, replace=True) is other and A.get("mine").statement == "other"
    finally:
        A.unregister("mine")
    assert "mine" not in A.names()
    A.unregister("mine")                                   # a name not registered: nothing to do, no error
    with pytest.raises(TypeError, match="^register: expected an Algorithm record, got str"):
        A.register("sarsa")
    with pytest.raises(ValueError, match="^unregister: 'td' is one of the paper's algorithms"):
        A.unregister("td")
    rec = A.get("td")
    assert A.get(rec) is rec
    with pytest.raises(InputError, match="^algorithm: unknown 'nope'; expected one of sarsa, expected-sarsa"):
        A.get("nope")
    with pytest.raises(InputError, match="^algorithm: unknown"):
        A.get(["sarsa"])


def test_a_replaced_paper_record_is_the_one_get_returns():
    alt = dataclasses.replace(A.get("sarsa"), statement="alt")
    try:
        A.register(alt, replace=True)
        assert A.get("sarsa") is alt and A.names().count("sarsa") == 1
    finally:
        A._REGISTRY.pop("sarsa")
    assert A.get("sarsa").statement != "alt"


def test_wang_s_records_and_what_distinguishes_them():
    recs = {a.name: a for a in A.evaluation()}
    assert list(recs) == ["td-preconditioned", "td-lambda", "rg", "avg-reward"] == list(A.names("mrp"))[:4]
    assert len(A.builtin()) == 11 and A.builtin() == A.paper() + A.evaluation() + A.softmax()
    assert A.builtin("mrp") == A.evaluation() + A.softmax()
    assert [r.name for r in A.builtin()] == list(A.names())
    assert {k: r.title for k, r in recs.items()} == {"td-preconditioned": "TD(0) with a preconditioner",
                                                     "td-lambda": "TD(lambda)", "rg": "residual gradient",
                                                     "avg-reward": "average-reward TD"}
    assert {k: (r.rule, r.construction) for k, r in recs.items()} == {
        "td-preconditioned": (rules.semi_gradient, C.TD_PRECONDITIONED), "td-lambda": (rules.td_lambda, C.TD_PRECONDITIONED),
        "rg": (rules.residual_gradient, C.RESIDUAL_GRADIENT), "avg-reward": (rules.average_reward, C.AVERAGE_REWARD)}
    assert recs["td-preconditioned"].statement == "w_{l+1} = w_l + (1/n) C_l sum_j (r_j + gamma w_l.phi'_j - w_l.phi_j) phi_j"
    assert recs["td-lambda"].statement == ("w_{l+1} = w_l + (1/n) C_l sum_i delta_i(w_l) e_i, e_i = lambda e_{i-1} + "
                                           "phi_i, e_{-1} = 0")
    assert recs["rg"].statement == "w_{l+1} = w_l + (1/n) C_l sum_j delta_j(w_l) (phi_j - gamma phi'_j)"
    assert recs["avg-reward"].statement == ("w_{l+1} = w_l + (1/n) C_l sum_j (r_j - rbar_j + w_l.phi'_j - w_l.phi_j) "
                                            "phi_j, rbar_j = mean(r_0..r_j)")
    for r in recs.values():
        assert (r.data, r.features, r.behaviour, r.acts_with, r.steps, r.theorem, r.next_rule, r.constants) == (
            "mrp", "state", "uniform", None, ("C",), "Wang et al. (ICLR 2025)", "taken", ())
        assert (r.spec.depth, r.spec.mask, r.spec.tied, r.spec.writes, r.spec.kind) == (3, "context", True, None,
                                                                                        "linear")
    for k in ("td-preconditioned", "td-lambda", "rg"):
        r = recs[k]
        assert r.layout is WANG_LAYOUT and r.spec.heads == (None,) and r.notes == ()
        assert r.context == (("phi", 1, "phi"), ("gphi_next", gamma, "phi_next"), ("r", 1, "r"))
        assert r.spec.decay == (lam if k == "td-lambda" else 0) and r.uses_lambda == (k == "td-lambda")
        assert r.discounted and not r.centered and r.carried == "r" and r.readout_sign == -1
    assert recs["td-lambda"].spec.decay is lam
    avg = recs["avg-reward"]
    assert avg.layout is WANG_AVG_LAYOUT and avg.spec.heads == ("running-mean", None) and avg.spec.decay == 0
    assert avg.context == (("phi", 1, "phi"), ("phi_next", 1, "phi_next"), ("r", 1, "r"), ("y", 1, "zero"))
    assert avg.centered and not avg.discounted and not avg.uses_lambda and avg.carried == "y" and avg.readout_sign == 1
    assert avg.notes == (
        "Two heads share P: head 1 reads the reward row through the running-mean operator R on the value side ((Z R)[:, j] "
        "= mean of columns 0..j minus column j), head 2 reads row y; both write row y. This is their AVGREWTDLayer; it "
        "equals the one-head TD(0) construction with gamma = 1 on a prompt whose reward row already holds r_j - rbar_j "
        "(checked numerically).",)
    assert [r.direction for r in recs.values()] == ["phi", "trace", "residual", "phi"]
    assert A.evaluation() == A.evaluation() and A.get("rg") == recs["rg"]


def test_spec_at_chooses_the_depth_the_tying_the_decay_and_the_mask():
    lam_rec, td = A.get("td-lambda"), A.get("td-preconditioned")
    assert lam_rec.spec_at() == lam_rec.spec and lam_rec.spec_at().decay is lam
    s = lam_rec.spec_at(5, tied=False, lam_value=0.25)
    assert (s.depth, s.tied, s.decay, s.mask, s.layout, s.heads) == (5, False, 0.25, "context", WANG_LAYOUT, (None,))
    untied = dataclasses.replace(td, spec=dataclasses.replace(td.spec, depth=2, tied=False))
    assert (untied.spec_at().depth, untied.spec_at().tied) == (2, False)
    assert (untied.spec_at(4).depth, untied.spec_at(4).tied) == (4, False)
    assert (untied.spec_at(tied=True).depth, untied.spec_at(tied=True).tied) == (2, True)
    assert td.spec_at(lam_value=0.25).decay == 0                     # no decay to replace
    none = lam_rec.spec_at(mask="none")
    assert (none.mask, none.decay, none.depth) == ("none", 0, 3)
    assert lam_rec.spec_at(mask="context").decay is lam and lam_rec.spec_at(mask="context", lam_value=0.5).decay == 0.5


def _layout_with_params(readout, name="with-params"):
    return Layout(name=name, context=WANG_LAYOUT.context, params=(("one", 1), ("w", "d")), readout=readout,
                  query=("phi",))


@pytest.mark.parametrize("change, message", [
    (dict(acts_with="r"), "an mrp record evaluates; acts_with must be None"),
    (dict(rule=rules.actor_critic), "an mrp record's teacher must be one of semi-gradient, td-lambda, "
                                    "residual-gradient, average-reward$"),
    (dict(construction=C.Construction(p=C.TD_PRECONDITIONED.p, v=C.TD_PRECONDITIONED.v)),
     r"an mrp record's P is preconditioned \(coef \* C\^T blocks\)$"),
    (dict(spec="writes-phi"), "carried row 'r' must be a written block$"),
    (dict(spec="carried-one"), "carried row 'one' must be a written block$"),
    (dict(construction=C.Construction(p=((("phi", "w"), 1),), v=((("r", "r"), 1),), preconditioned=True),
          spec="params"), r"P entry \(phi, w\) must join two d-blocks$"),
    (dict(construction=C.Construction(p=((("r", "r"), 1),), v=((("r", "r"), 1),), preconditioned=True)),
     r"P entry \(r, r\) must join two d-blocks$"),
    (dict(construction=C.Construction(p=C.TD_PRECONDITIONED.p, v=((("r", "one"), 1),), preconditioned=True),
          spec="params"), r"V entry \(r, one\) must join two 1-blocks$"),
    (dict(construction=C.Construction(p=C.TD_PRECONDITIONED.p, v=((("phi", "phi"), 1),), preconditioned=True)),
     r"V entry \(phi, phi\) must join two 1-blocks$"),
])
def test_an_mrp_record_is_refused_naming_what_it_lacks(change, message):
    rec = A.get("td-preconditioned")
    specs = {"writes-phi": dataclasses.replace(rec.spec, writes=("phi",)),
             "carried-one": BlockSpec(_layout_with_params((("one", -1),)), depth=3, mask="context"),
             "params": BlockSpec(_layout_with_params((("r", -1),)), depth=3, mask="context")}
    if "spec" in change:
        change = {**change, "spec": specs[change["spec"]]}
    with pytest.raises(ValueError, match=f"^algorithm 'td-preconditioned': {message}"):
        dataclasses.replace(rec, **change)


def test_an_mrp_record_may_name_what_its_layers_write_and_carry_parameter_rows():
    rec = A.get("td-preconditioned")
    assert dataclasses.replace(rec, spec=dataclasses.replace(rec.spec, writes=("r",))).spec.writes == ("r",)
    spec = BlockSpec(_layout_with_params((("r", -1),)), depth=3, mask="context")
    assert not spec.layout.has_parameter_column and dataclasses.replace(rec, spec=spec).carried == "r"
    # the Liang & Lai form (a parameter column read after `one`) is not an mrp layout
    with pytest.raises(ValueError, match="^algorithm 'td': an mrp record reads one signed entry of the last column$"):
        dataclasses.replace(A.get("td"), data="mrp")
    two = BlockSpec(Layout(name="two", context=WANG_LAYOUT.context, readout=(("r", -1), ("phi", 1)), query=("phi",)),
                    depth=3, mask="context")
    with pytest.raises(ValueError, match="^algorithm 'td-preconditioned': an mrp record reads one signed entry"):
        dataclasses.replace(rec, spec=two)


# ---- magnitudes of the teacher's terms (the rounding bound of check) ----

def test_magnitude_algebra_adds_sizes():
    M = ref.Magnitude
    a, b = M([-1.0, 2.0]), M(np.array([3.0, -4.0]))
    assert a.v.dtype == np.float64 and a.v.tolist() == [1.0, 2.0]
    for got in (a + b, a - b, b - a, a + np.array([-3.0, 4.0]), np.array([-3.0, 4.0]) - a,
                np.array([3.0, -4.0]) + a, a - np.array([3.0, -4.0])):
        assert isinstance(got, M) and got.v.tolist() == [4.0, 6.0]
    assert (2.0 + a).v.tolist() == [3.0, 4.0] and (a - 2.0).v.tolist() == [3.0, 4.0]
    assert (-2.0 - a).v.tolist() == [3.0, 4.0]
    assert (a * b).v.tolist() == [3.0, 8.0] and (a * -2.0).v.tolist() == [2.0, 4.0]
    assert (-2.0 * a).v.tolist() == [2.0, 4.0] and (np.array([3.0, -4.0]) * a).v.tolist() == [3.0, 8.0]
    assert (a / -2.0).v.tolist() == [0.5, 1.0] and (b / a).v.tolist() == [3.0, 2.0]
    assert (-a) is a and (-a).v.tolist() == [1.0, 2.0]
    # a per-transition scalar (B) times a per-transition vector (B x d) scales each row, either way round
    m2 = M([[1.0, -2.0], [-3.0, 4.0]])
    for got in (m2 * np.array([-2.0, 0.5]), m2 * M([2.0, -0.5]), np.array([-2.0, 0.5]) * m2,
                a * np.array([[1.0, -1.0], [2.0, 0.5]])):
        assert isinstance(got, M)
    assert (m2 * np.array([-2.0, 0.5])).v.tolist() == [[2.0, 4.0], [1.5, 2.0]]
    assert (m2 * M([2.0, -0.5])).v.tolist() == [[2.0, 4.0], [1.5, 2.0]]
    assert (np.array([[1.0, -1.0], [2.0, 0.5]]) * a).v.tolist() == [[1.0, 1.0], [4.0, 1.0]]
    assert (m2 * np.array([[1.0, -1.0], [0.5, 2.0]])).v.tolist() == [[1.0, 2.0], [1.5, 8.0]]       # same shapes
    assert (np.array([[1.0, -1.0], [0.5, 2.0]]) * m2).v.tolist() == [[1.0, 2.0], [1.5, 8.0]]
    assert (np.array([-1.0, 3.0]) * a).v.tolist() == [1.0, 6.0]                                  # 1-D both


def test_magnitude_ops_dot_and_scale_on_absolute_values():
    u, v = np.array([[1.0, -2.0], [-3.0, -1.0]]), np.array([[0.5, 1.0], [2.0, -4.0]])
    got = ref.MagnitudeOps.dot(ref.Magnitude(u), v)
    assert isinstance(got, ref.Magnitude) and got.v.tolist() == [2.5, 10.0]
    assert ref.MagnitudeOps.dot(u, ref.Magnitude(v)).v.tolist() == [2.5, 10.0]
    got = ref.MagnitudeOps.scale(ref.Magnitude(np.array([2.0, -1.0])), v)
    assert isinstance(got, ref.Magnitude) and got.v.tolist() == [[1.0, 2.0], [2.0, 4.0]]
    assert ref.MagnitudeOps.scale(np.array([-2.0, 1.0]), ref.Magnitude(v)).v.tolist() == [[1.0, 2.0], [2.0, 4.0]]


def _magnitudes_by_loops(record, F, s, a, r, theta, gamma, eps, alpha, beta):
    """``(|theta|, increment)`` term by term: ``|delta_i| = |r_i| + |gamma| sum_k |w_k| |phi+_ik| + sum_k |w_k|
    |phi_ik|``; ``(|alpha|/n) sum_i |delta_i| |phi_i|`` and ``(|beta|/n) sum_i |delta_i| |g_i|`` with
    ``|g_i| = (|phi(s_i, a_i)| + sum_b pi_lam(b) |phi(s_i, b)|) (1 + max_b sum_k |lam_k| |phi(s_i, b)_k|)``."""
    F, s, a, r, theta, gamma = (x.tolist() for x in (F, s, a, r, theta, gamma))
    actor = "lam" in record.layout.readout_blocks
    absolute, increment = [], []
    for b in range(len(theta)):
        d = len(F[b][0][0])
        w, lam = theta[b][:d], theta[b][d:]
        n = len(r[b])
        acc_w, acc_l = [0.0] * d, [0.0] * d
        for i in range(n):
            phi = [abs(x) for x in F[b][s[b][i]][a[b][i]]]
            F_next = F[b][s[b][i + 1]]
            q = [cc.dot(w, f) for f in F_next]
            if record.next_rule == "taken":
                nxt = [abs(x) for x in F_next[a[b][i + 1]]]
            elif record.next_rule == "greedy":
                nxt = [abs(x) for x in F_next[cc.first_argmax(q)]]
            else:
                pi = cc.eps_greedy(q, eps)
                nxt = [sum(pi[c] * abs(F_next[c][k]) for c in range(len(F_next))) for k in range(d)]
            delta = (abs(r[b][i]) + abs(gamma[b]) * sum(abs(w[k]) * nxt[k] for k in range(d))
                     + sum(abs(w[k]) * phi[k] for k in range(d)))
            acc_w = [acc_w[k] + abs(alpha) * delta * phi[k] for k in range(d)]
            if actor:
                F_s = F[b][s[b][i]]
                pl = cc.softmax([cc.dot(lam, f) for f in F_s])
                expo = 1.0 + max(sum(abs(lam[k]) * abs(f[k]) for k in range(d)) for f in F_s)
                g = [(phi[k] + sum(pl[c] * abs(F_s[c][k]) for c in range(len(F_s)))) * expo for k in range(d)]
                acc_l = [acc_l[k] + abs(beta) * delta * g[k] for k in range(d)]
        absolute.append([abs(x) for x in theta[b]])
        increment.append([x / n for x in acc_w] + ([x / n for x in acc_l] if actor else []))
    return np.array(absolute), np.array(increment)


def _signed_window():
    F, s, a, r, theta, g = _window()
    F = F * np.where(np.arange(F.size).reshape(F.shape) % 3 == 0, -1.0, 1.0)      # features of both signs
    return F, s, a, r, theta, g


@pytest.mark.parametrize("algorithm", ["sarsa", "expected-sarsa", "q-learning", "actor-critic", "td"])
@pytest.mark.parametrize("steps", [{"alpha": 0.2, "beta": 0.05}, {"alpha": -0.7, "beta": -3.0}])
def test_reference_magnitudes_are_the_sums_of_the_absolute_terms(algorithm, steps):
    record = A.get(algorithm)
    F, s, a, r, theta, g = _signed_window()
    theta = theta[:, :record.layout.q(2)]
    g = np.array([0.5, -0.9])
    absolute, increment = ref.reference_magnitudes(record, F, s, a, r, theta, g, 0.3, steps)
    want_abs, want_inc = _magnitudes_by_loops(record, F, s, a, r, theta, g, 0.3, steps["alpha"], steps.get("beta", 0))
    assert absolute.dtype == np.float64 and increment.dtype == np.float64
    assert absolute.shape == increment.shape == theta.shape
    np.testing.assert_array_equal(absolute, want_abs)
    np.testing.assert_allclose(increment, want_inc, rtol=1e-13, atol=0)
    assert (increment > 0).all()
    # the magnitudes bound the update's own size, term by term
    got, _ = ref.reference_update(record, F, s, a, r, theta, g, 0.3, steps, 1e-9)
    assert (np.abs(got - theta) <= increment * (1 + 1e-12)).all()


def test_reference_magnitudes_take_a_registered_rule_s_constants_and_a_block_left_alone():
    def halved(t, theta, hp, ops):
        delta = t.r + t.gamma * ops.dot(theta["w"], t.phi_next) - ops.dot(theta["w"], t.phi)
        return {"w": (hp["alpha"] * hp["k"], ops.scale(delta, t.phi))}

    F, s, a, r, theta, g = _signed_window()
    sarsa = A.get("sarsa")
    record = dataclasses.replace(sarsa, rule=halved, constants=(("k", sp.Rational(1, 2)),))
    got_abs, got_inc = ref.reference_magnitudes(record, F, s, a, r, theta[:, :2], g, 0.3, {"alpha": 0.2})
    want_abs, want_inc = _magnitudes_by_loops(sarsa, F, s, a, r, theta[:, :2], g, 0.3, 0.1, 0.0)
    np.testing.assert_array_equal(got_abs, want_abs)
    np.testing.assert_allclose(got_inc, want_inc, rtol=1e-13, atol=0)
    critic_only = dataclasses.replace(A.get("actor-critic"),
                                      rule=lambda t, th, hp, ops: rules.semi_gradient(t, th, hp, ops))
    got_abs, got_inc = ref.reference_magnitudes(critic_only, F, s, a, r, theta, g, 0.3, {"alpha": 0.2, "beta": 0.05})
    want_abs, want_inc = _magnitudes_by_loops(sarsa, F, s, a, r, theta[:, :2], g, 0.3, 0.2, 0.0)
    np.testing.assert_array_equal(got_abs, np.abs(theta))
    np.testing.assert_allclose(got_inc[:, :2], want_inc, rtol=1e-13, atol=0)
    assert got_inc[:, 2:].tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_magnitudes_are_float64_sizes_of_any_numeric_input():
    # an int8 -128 has no int8 magnitude, and float32 terms are summed in float64
    assert ref.Magnitude(np.array([-128, 3], dtype=np.int8)).v.tolist() == [128.0, 3.0]
    assert ref.Magnitude(np.array([-0.5], dtype=np.float32)).v.dtype == np.float64
    assert (ref.Magnitude([1.0]) + np.array([-128], dtype=np.int8)).v.tolist() == [129.0]
    u = np.array([[1.0, 2.0 ** -24]], dtype=np.float32)
    assert ref.MagnitudeOps.dot(u, np.ones((1, 2), dtype=np.float32)).v.tolist() == [1.0 + 2.0 ** -24]


def test_reference_magnitudes_of_float32_inputs_and_float_valued_indices_are_the_float64_ones():
    record = A.get("actor-critic")
    F, s, a, r, theta, g = _signed_window()
    F32, r32, th32, g32 = (x.astype(np.float32) for x in (F, r, theta, g))
    got_abs, got_inc = ref.reference_magnitudes(record, F32, s.astype(np.float64), a.astype(np.float64), r32, th32,
                                                g32, 0.3, {"alpha": 0.2, "beta": 0.05})
    want_abs, want_inc = _magnitudes_by_loops(record, F32.astype(np.float64), s, a, r32.astype(np.float64),
                                              th32.astype(np.float64), g32.astype(np.float64), 0.3, 0.2, 0.05)
    assert got_abs.dtype == got_inc.dtype == np.float64
    np.testing.assert_array_equal(got_abs, want_abs)
    np.testing.assert_allclose(got_inc, want_inc, rtol=1e-13, atol=0)


def test_reference_magnitudes_give_a_rule_the_quantity_one():
    def with_one(t, theta, hp, ops):        # a rule that scales by the constant quantity ``one`` (size 1 each)
        delta = t.r + t.gamma * ops.dot(theta["w"], t.phi_next) - ops.dot(theta["w"], t.phi)
        return {"w": (hp["alpha"], ops.scale(delta * t.one, t.phi))}

    F, s, a, r, theta, g = _signed_window()
    sarsa = A.get("sarsa")
    record = dataclasses.replace(sarsa, rule=with_one)
    got_abs, got_inc = ref.reference_magnitudes(record, F, s, a, r, theta[:, :2], g, 0.3, {"alpha": 0.2})
    want_abs, want_inc = _magnitudes_by_loops(sarsa, F, s, a, r, theta[:, :2], g, 0.3, 0.2, 0.0)
    np.testing.assert_array_equal(got_abs, want_abs)
    np.testing.assert_allclose(got_inc, want_inc, rtol=1e-13, atol=0)
