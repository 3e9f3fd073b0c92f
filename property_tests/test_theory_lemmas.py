"""The algorithm-specific parts (``theory/lemmas.py``, issue 11) are proven,
and each proof fails when fed something wrong.

The default tier proves and refutes at A <= 3 actions (about 15 s); the
slow tier proves at every A <= 6, as ``icrl-verify prove`` does."""
from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

from theory import lemmas
from theory.algorithms import get

SMALL_A = (1, 2, 3)


def test_softmax_score_is_grad_log_pi():
    assert lemmas.softmax_score(actions=SMALL_A)["proven"] is True


@pytest.mark.slow
def test_softmax_score_is_grad_log_pi_every_a_up_to_6():
    assert lemmas.softmax_score()["proven"] is True


@pytest.mark.parametrize("wrong", [
    lambda phis, pi, a: -lemmas.prompt_score(phis, pi, a),                         # sign flipped
    lambda phis, pi, a: phis[a] - phis[0] if len(phis) > 1 else phis[a] * 2,        # mean replaced by one action
])
def test_softmax_score_refutes_a_wrong_score(wrong):
    assert lemmas.softmax_score(wrong, actions=SMALL_A)["proven"] is False


def _undiscounted(t, theta, hp, ops):
    w = theta["w"]
    delta = t.r + ops.dot(w, t.phi_next) - ops.dot(w, t.phi)        # gamma dropped
    return {"w": (hp["alpha"], ops.scale(delta, t.phi))}


def _bootstraps_on_phi(t, theta, hp, ops):
    w = theta["w"]
    delta = t.r + t.gamma * ops.dot(w, t.phi) - ops.dot(w, t.phi)  # phi+ ignored
    return {"w": (hp["alpha"], ops.scale(delta, t.phi))}


@pytest.mark.parametrize("name, lemma", [("expected-sarsa", lemmas.expected_sarsa_next),
                                         ("q-learning", lemmas.q_learning_next),
                                         ("td", lemmas.td0_state_features)])
def test_phi_next_lemmas_proven_and_refute_a_wrong_rule(name, lemma):
    record = get(name)
    assert lemma(record, SMALL_A)["proven"] is True
    for bad in (_undiscounted, _bootstraps_on_phi):
        assert lemma(dataclasses.replace(record, name=f"{name}-bad", rule=bad), SMALL_A)["proven"] is False


@pytest.mark.slow
@pytest.mark.parametrize("name, lemma", [("expected-sarsa", lemmas.expected_sarsa_next),
                                         ("q-learning", lemmas.q_learning_next),
                                         ("td", lemmas.td0_state_features)])
def test_phi_next_lemmas_proven_every_a_up_to_6(name, lemma):
    assert lemma(get(name))["proven"] is True


def test_epsilon_greedy_probabilities_sum_to_one_and_favour_the_greedy_action():
    eps = sp.Symbol("e")
    pi = lemmas.epsilon_greedy_probs(4, 2, eps)
    assert sp.simplify(sum(pi) - 1) == 0
    assert [p.subs(eps, sp.Rational(1, 5)) for p in pi] == [sp.Rational(1, 20)] * 2 + [sp.Rational(17, 20),
                                                                                        sp.Rational(1, 20)]


def test_lemmas_for_selects_by_record_fields():
    assert set(lemmas.lemmas_for(get("actor-critic"), SMALL_A)) == {"softmax_score"}
    assert set(lemmas.lemmas_for(get("sarsa"), SMALL_A)) == set()
    assert set(lemmas.lemmas_for(get("td"), SMALL_A)) == {"td0_state_features"}
