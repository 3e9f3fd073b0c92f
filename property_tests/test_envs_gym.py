"""Gymnasium tabular environments read into the MDP type (numerics.envs)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from numerics.commands.cli import main
from numerics.core.tolerances import FEW_OPS_ATOL, REORDER_RTOL
from numerics.io.envs import broadcast_mdp, env_features, load_gym_env, table_to_mdp
from theory.errors import InputError

GYM_IDS = ("FrozenLake-v1", "CliffWalking-v1", "Taxi-v4")


def _reference_table(env_id):
    """Plain loop over the Gymnasium table: transition probabilities and
    expected rewards per (s, a, target), terminal targets marked -1."""
    u = gym.make(env_id).unwrapped
    T, ER = {}, {}
    for s, row in u.P.items():
        for a, trans in row.items():
            for p, s2, r, term in trans:
                key = (s, a, -1 if term else int(s2))
                T[key] = T.get(key, 0.0) + p
                ER[(s, a)] = ER.get((s, a), 0.0) + p * r
    return u, T, ER


@pytest.mark.parametrize("env_id", GYM_IDS)
def test_gym_table_matches_plain_loop(env_id):
    tab = load_gym_env(env_id, 0.9)
    u, T_ref, ER_ref = _reference_table(env_id)
    S0, A = u.observation_space.n, u.action_space.n
    assert tab.env_states == S0 and tab.actions == A
    assert tab.absorbing == S0 and tab.states == S0 + 1       # each has terminal transitions
    T = tab.mdp.T[0].numpy()
    want = np.zeros_like(T)
    for (s, a, t), p in T_ref.items():
        want[s, a, S0 if t == -1 else t] += p
    want[S0, :, S0] = 1.0
    np.testing.assert_allclose(T, want, rtol=0, atol=FEW_OPS_ATOL)
    er = tab.mdp.expected_reward()[0].numpy()
    for (s, a), v in ER_ref.items():
        assert abs(er[s, a] - v) <= REORDER_RTOL * max(1.0, abs(v))
    assert np.all(er[S0] == 0)                                   # absorbing: zero reward
    rho = tab.mdp.rho0[0].numpy()
    np.testing.assert_array_equal(rho[:S0], np.asarray(u.initial_state_distrib, dtype=np.float64))
    assert rho[S0] == 0
    # acting MDP: the absorbing state restarts from rho0, everything else equal
    Tr = tab.restart.T[0].numpy()
    np.testing.assert_array_equal(Tr[:S0], T[:S0])
    np.testing.assert_array_equal(Tr[S0], np.broadcast_to(rho, (A, S0 + 1)))
    assert float(tab.mdp.gamma[0]) == 0.9


def test_duplicate_next_states_merge_with_weighted_reward():
    P = {0: {0: [(0.25, 1, 1.0, False), (0.5, 1, 4.0, False), (0.25, 0, -2.0, False)]},
         1: {0: [(1.0, 1, 0.0, False)]}}
    tab = table_to_mdp(P, 2, 1, [1.0, 0.0], 0.5)
    assert tab.absorbing is None and tab.states == 2
    assert float(tab.mdp.T[0, 0, 0, 1]) == 0.75
    assert abs(float(tab.mdp.R[0, 0, 0, 1]) - 3.0) < FEW_OPS_ATOL           # (0.25*1 + 0.5*4) / 0.75
    assert float(tab.mdp.expected_reward()[0, 0, 0]) == pytest.approx(0.25 + 2.0 - 0.5, abs=FEW_OPS_ATOL)


def test_terminal_transition_keeps_reward_and_absorbs():
    P = {0: {0: [(0.5, 1, 10.0, True), (0.5, 0, 0.0, False)]}, 1: {0: [(1.0, 1, 0.0, True)]}}
    tab = table_to_mdp(P, 2, 1, [1.0, 0.0], 0.9)
    assert tab.absorbing == 2
    assert float(tab.mdp.T[0, 0, 0, 2]) == 0.5 and float(tab.mdp.R[0, 0, 0, 2]) == 10.0
    assert float(tab.mdp.T[0, 2, 0, 2]) == 1.0
    # J = 0.5 * 10 + 0.5 * 0.9 * J  =>  J = 5 / 0.55
    from numerics.core.mdp import discounted_return
    J = discounted_return(tab.mdp, torch.ones(1, 3, 1, dtype=torch.float64))
    assert abs(float(J) - 5 / 0.55) < REORDER_RTOL


@pytest.mark.parametrize("P, msg", [
    ({0: {0: [(1.0, 3, 0.0, False)]}}, "outside"),
    ({0: {0: [(1.0, 0)]}}, "is not (prob"),
    ({0: {0: []}}, "no entry"),
    ({0: {0: [(0.7, 0, 0.0, False)]}}, "sums to"),
    ({0: {0: [(1.0, 0, float("nan"), False)]}}, "NaN"),
])
def test_bad_tables_raise_input_error(P, msg):
    with pytest.raises(InputError, match=msg.replace("(", r"\(")):
        table_to_mdp(P, 1, 1, [1.0], 0.5)


def test_bad_env_ids_raise_input_error():
    with pytest.raises(InputError, match="cannot make"):
        load_gym_env("NoSuchEnv-v0", 0.9)
    with pytest.raises(InputError, match="no transition table"):
        load_gym_env("CartPole-v1", 0.9)


@pytest.mark.parametrize("env_id, needle", [("NoSuchEnv-v0", "cannot make"), ("CartPole-v1", "no transition table")])
def test_cli_bad_env_exits_2_with_one_line(env_id, needle, capsys, tmp_path):
    rc = main(["control", "--env", env_id, "--seeds", "2", "--mdps", "2", "--rounds", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert list(tmp_path.iterdir()) == []


def test_env_features_shapes_and_absorbing_zero():
    tab = load_gym_env("FrozenLake-v1", 0.9)
    gen = torch.Generator().manual_seed(0)
    F = env_features(tab, "dense", 7, 3, gen)
    assert F.shape == (3, 17, 4, 7)
    assert torch.all(F[:, 16] == 0) and torch.all(F[:, :16].abs() <= 1) and not torch.equal(F[0], F[1])
    Fs = env_features(tab, "dense-shared", 7, 3, gen)
    assert torch.equal(Fs[0], Fs[2])
    Fo = env_features(tab, "onehot", 64, 2, gen)
    assert torch.equal(Fo[0, :16].reshape(64, 64), torch.eye(64, dtype=torch.float64))
    with pytest.raises(InputError, match="feature-dim"):
        env_features(tab, "onehot", 36, 2, gen)


def test_broadcast_mdp_is_a_view():
    tab = load_gym_env("CliffWalking-v1", 0.9)
    big = broadcast_mdp(tab.mdp, 50)
    assert big.batch == 50 and big.T.data_ptr() == tab.mdp.T.data_ptr()
    assert torch.equal(big.T[49], tab.mdp.T[0])


# ---- property: any random table keeps its mass and expected reward ---------

from hypothesis import given, settings
from hypothesis import strategies as st


@st.composite
def tables(draw):
    """Random Gymnasium-style tables: sizes first, then entries (duplicates
    and terminal transitions allowed)."""
    S = draw(st.integers(1, 4))
    A = draw(st.integers(1, 3))
    P = {}
    for s in range(S):
        P[s] = {}
        for a in range(A):
            k = draw(st.integers(1, 4))
            w = draw(st.lists(st.integers(1, 5), min_size=k, max_size=k))
            nxt = draw(st.lists(st.integers(0, S - 1), min_size=k, max_size=k))
            rew = draw(st.lists(st.floats(-5, 5), min_size=k, max_size=k))
            term = draw(st.lists(st.booleans(), min_size=k, max_size=k))
            P[s][a] = [(wi / sum(w), ni, ri, ti) for wi, ni, ri, ti in zip(w, nxt, rew, term)]
    return S, A, P


@settings(max_examples=30, deadline=None)
@given(tables())
def test_conversion_keeps_mass_expected_reward_and_terminals(table):
    S, A, P = table
    tab = table_to_mdp(P, S, A, np.full(S, 1.0 / S), 0.7)
    T, er = tab.mdp.T[0].numpy(), tab.mdp.expected_reward()[0].numpy()
    np.testing.assert_allclose(T.sum(-1), 1.0, atol=REORDER_RTOL)
    for s in range(S):
        for a in range(A):
            assert abs(er[s, a] - sum(p * r for p, _, r, _ in P[s][a])) <= REORDER_RTOL
            p_term = sum(p for p, _, _, t in P[s][a] if t)
            if tab.absorbing is not None:
                assert abs(T[s, a, tab.absorbing] - p_term) <= REORDER_RTOL
            else:
                assert p_term == 0
