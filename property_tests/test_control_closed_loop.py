"""In-context control (THEORY.md section 7): the constructed block in closed
loop reproduces the teacher's run exactly, scoring is exact, and the check
fails when it should."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import numerics.analysis.control as control
from numerics.commands.cli import main
from numerics.core.block import embed_reduced
from numerics.core.constructions import constructed_blocks
from numerics.core.distributions import MDPDistribution
from numerics.core.mdp import discounted_return, normalized_return, value_iteration
from numerics.core.models import build_model
from numerics.core.policies import greedy_actions
from numerics.core.tolerances import CLOSED_LOOP_ATOL, ITERATIVE_RTOL, REORDER_RTOL, VI_TOL, VISIBLE_ABS
from numerics.io.envs import broadcast_mdp, load_gym_env
from numerics.io.models import load_lsa, save_model, save_weights
from theory.algorithms import get
from theory.errors import InputError


def sarsa_blocks(d: int, alpha: float = 0.2):
    return constructed_blocks(get("sarsa"), d, {"alpha": alpha})


def sarsa_weights(d: int, alpha: float = 0.2):
    return embed_reduced(get("sarsa").spec.index(d), *sarsa_blocks(d, alpha))

SMALL = dict(seeds=2, mdps=4, rounds=4)


@pytest.mark.parametrize("algorithm", ["sarsa", "expected-sarsa", "q-learning", "actor-critic"])
def test_theorem_3_1_3_3_constructed_block_reproduces_teacher_closed_loop(algorithm):
    r = control.run_control("random", algorithm, **SMALL)
    assert r["reproduces_teacher"] and r["actions_identical"]
    assert r["max_abs_weight_diff_constructed_vs_teacher"] <= CLOSED_LOOP_ATOL
    assert r["methods"]["constructed"]["curve"] == pytest.approx(r["methods"]["teacher"]["curve"], abs=0)
    assert set(r["methods"]) == {"constructed", "teacher", "oracle", "uniform"}


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "CliffWalking-v1", "Taxi-v4"])
def test_constructed_block_reproduces_teacher_on_gym_envs(env_id):
    r = control.run_control(env_id, "sarsa", seeds=2, mdps=3, rounds=3)
    assert r["reproduces_teacher"], r["max_abs_weight_diff_constructed_vs_teacher"]
    assert r["feature_dim"] == 36 and r["gamma"] == control.GYM_DEFAULT_GAMMA
    assert r["methods"]["oracle"]["final_normalized_return"] == pytest.approx(1.0, abs=ITERATIVE_RTOL)
    assert r["methods"]["uniform"]["final_normalized_return"] == 0.0


@pytest.mark.parametrize("wrong", ["alpha", "sign", "gamma-row"])
def test_wrong_construction_fails_the_closed_loop_check(wrong):
    P12, Vbar21 = sarsa_blocks(36)
    if wrong == "alpha":
        Vbar21 = Vbar21 * 1.001
    elif wrong == "sign":
        P12 = P12.clone()
        P12[:36] = -P12[:36]          # +w.phi instead of -w.phi in delta
    else:
        P12 = P12.clone()
        P12[36:72] = 0                # drop the gamma phi+ term
    r = control.run_control("random", "sarsa", constructed_weights=(P12, Vbar21), **SMALL)
    assert not r["reproduces_teacher"]
    assert r["max_abs_weight_diff_constructed_vs_teacher"] > CLOSED_LOOP_ATOL


@pytest.mark.parametrize("c", [-3.0, 0.5])
def test_symmetry_member_reproduces_teacher(c):
    P12, Vbar21 = sarsa_blocks(36)
    r = control.run_control("random", "sarsa", constructed_weights=(c * P12, Vbar21 / c), **SMALL)
    assert r["reproduces_teacher"]


def test_cli_exit_1_when_construction_is_wrong(monkeypatch, capsys, tmp_path):
    real = control.constructed_blocks
    monkeypatch.setattr(control, "constructed_blocks", lambda *a, **k: tuple(x * 1.01 for x in real(*a, **k)))
    rc = main(["control", "--seeds", "2", "--mdps", "3", "--rounds", "3", "--json", "--no-report"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and out["reproduces_teacher"] is False


def test_cli_json_keys_and_report_files(capsys, tmp_path):
    rc = main(["control", "--seeds", "3", "--mdps", "4", "--rounds", "3", "--json", "--out", str(tmp_path),
               "--name", "t"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    assert set(out["methods"]) == {"constructed", "teacher", "oracle", "uniform"}
    for v in out["methods"].values():
        lo, hi = v["ci95"]
        assert lo <= v["final_normalized_return"] <= hi and len(v["curve"]) == 4
    assert out["max_abs_weight_diff_constructed_vs_teacher"] <= CLOSED_LOOP_ATOL
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["t.json", "t.md", "t.png"]
    md = (tmp_path / "t.md").read_text()
    assert "Reproduce: `icrl-verify control" in md and "HOLDS" in md
    saved = json.loads((tmp_path / "t.json").read_text())
    assert saved["command"].startswith("icrl-verify control") and "--seeds 3" in saved["command"]


def test_same_seed_same_numbers_other_seed_other_numbers():
    a = control.run_control("random", "sarsa", **SMALL)
    b = control.run_control("random", "sarsa", **SMALL)
    c = control.run_control("random", "sarsa", seed=1, **SMALL)
    assert a["methods"]["teacher"]["curve"] == b["methods"]["teacher"]["curve"]
    assert a["methods"]["teacher"]["curve"] != c["methods"]["teacher"]["curve"]


def test_chunked_seeds_still_reproduce(monkeypatch):
    monkeypatch.setattr(control, "CHUNK_BYTES", 1)
    r = control.run_control("random", "sarsa", seeds=3, mdps=2, rounds=2)
    assert r["seeds_per_batch"] == 1 and r["reproduces_teacher"]
    assert len(r["methods"]["teacher"]["curve"]) == 3


# ---- scoring against plain per-MDP references ------------------------------

def test_greedy_actions_equal_plain_loop():
    gen = torch.Generator().manual_seed(3)
    F = torch.rand(5, 4, 3, 6, generator=gen, dtype=torch.float64)
    theta = torch.rand(5, 12, generator=gen, dtype=torch.float64)
    got = greedy_actions(get("actor-critic"), F, theta)
    got_w = greedy_actions(get("sarsa"), F, theta[:, :6])
    for b in range(5):
        for s in range(4):
            assert got_w[b, s] == int(np.argmax([float(F[b, s, a] @ theta[b, :6]) for a in range(3)]))
            assert got[b, s] == int(np.argmax([float(F[b, s, a] @ theta[b, 6:]) for a in range(3)]))


def test_evaluator_random_equals_normalized_return_per_mdp():
    mdp, F = MDPDistribution().sample(6, torch.Generator().manual_seed(0))
    ev = control.Evaluator(mdp)
    acts = torch.randint(0, 4, (6, 9), generator=torch.Generator().manual_seed(1))
    got = ev.normalized(acts)
    for b in range(6):
        pi = torch.nn.functional.one_hot(acts[b:b + 1], 4).double()
        assert abs(float(got[b]) - float(normalized_return(mdp[b], pi))) < REORDER_RTOL
    assert torch.allclose(ev.normalized(ev.opt_actions), torch.ones(6, dtype=torch.float64), atol=ITERATIVE_RTOL, rtol=0)
    # a deliberately bad policy (argmin of Q*) scores below the optimum on every MDP
    _, Qs = value_iteration(mdp)
    assert torch.all(ev.normalized(Qs.argmin(-1)) < 1 - VISIBLE_ABS)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Taxi-v4"])
def test_table_evaluation_equals_linear_solve_per_copy(env_id):
    tab = load_gym_env(env_id, 0.9)
    B = 3
    ev = control.Evaluator(broadcast_mdp(tab.mdp, B), tab.mdp)
    acts = torch.randint(0, tab.actions, (B, tab.states), generator=torch.Generator().manual_seed(2))
    got = ev.returns(acts)
    assert ev.sparse == (tab.states > control.DENSE_SOLVE_MAX_STATES)
    scale = float(tab.mdp.R.abs().max()) / (1 - 0.9)
    for b in range(B):
        J = discounted_return(tab.mdp, torch.nn.functional.one_hot(acts[b:b + 1], tab.actions).double())
        assert abs(float(got[b]) - float(J)) <= 10 * VI_TOL * 0.9 / (1 - 0.9) + REORDER_RTOL * scale
    # a wrong evaluation (gamma 0.5 instead of 0.9) is caught by the same comparison
    opt = ev.opt_actions
    wrong = control.sparse_policy_return(*control._sparse_table(tab.mdp), tab.mdp.expected_reward()[0],
                                         torch.full((B,), 0.5, dtype=torch.float64), ev.mdp.rho0, opt)
    J0 = discounted_return(tab.mdp, torch.nn.functional.one_hot(opt[:1], tab.actions).double())
    assert abs(float(ev.returns(opt)[0]) - float(J0)) <= ITERATIVE_RTOL * scale
    assert abs(float(wrong[0]) - float(J0)) > VISIBLE_ABS


def test_t_interval_matches_scipy():
    from scipy import stats
    x = np.random.default_rng(0).normal(size=(10, 3))
    mean, lo, hi = control._t_interval(x)
    for j in range(3):
        want = stats.t.interval(0.95, 9, loc=x[:, j].mean(), scale=stats.sem(x[:, j]))
        assert lo[j] == pytest.approx(want[0], abs=REORDER_RTOL) and hi[j] == pytest.approx(want[1], abs=REORDER_RTOL)


# ---- trained models ---------------------------------------------------------

def test_trained_models_run_in_closed_loop(tmp_path, capsys):
    gen = torch.Generator().manual_seed(0)
    lsa = build_model("lsa", "sarsa", 36, 20, "full", gen=gen)
    lsa.set_weights(*sarsa_weights(36))
    save_model(str(tmp_path / "lsa.npz"), lsa)
    save_model(str(tmp_path / "mlp.npz"), build_model("mlp", "sarsa", 36, 20, gen=gen, hidden=4))
    save_model(str(tmp_path / "lstm.npz"), build_model("lstm", "sarsa", 36, 20, gen=gen, hidden=4))
    rc = main(["control", "--seeds", "2", "--mdps", "3", "--rounds", "3", "--json", "--no-report",
               "--weights", str(tmp_path / "lsa.npz"), "--mlp", str(tmp_path / "mlp.npz"),
               "--lstm", str(tmp_path / "lstm.npz")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    assert set(out["methods"]) == {"constructed", "trained", "mlp", "lstm", "teacher", "oracle", "uniform"}
    # an LSA block holding the construction is the teacher in closed loop
    assert out["methods"]["trained"]["curve"] == out["methods"]["teacher"]["curve"]
    assert out["difference_vs_teacher"]["trained"]["mean"] == 0.0
    # Gymnasium env: d inferred from the trained block (36), bare .npz accepted
    P, V = sarsa_weights(5)
    save_weights(str(tmp_path / "bare5.npz"), P, V)
    rc = main(["control", "--env", "FrozenLake-v1", "--seeds", "2", "--mdps", "2", "--rounds", "2", "--json",
               "--no-report", "--weights", str(tmp_path / "bare5.npz")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["feature_dim"] == 5
    assert out["methods"]["trained"]["curve"] == out["methods"]["teacher"]["curve"]


@pytest.mark.parametrize("argv, field", [
    (["--algorithm", "td"], "algorithm"),
    (["--seeds", "1"], "seeds"),
    (["--seed", "-1"], "seed"),
    (["--feature-dim", "10"], "feature-dim"),
    (["--env", "FrozenLake-v1", "--gamma", "1.0"], "gamma"),
    (["--env", "FrozenLake-v1", "--gamma-range", "0.1", "0.2"], "gamma-range"),
    (["--env", "FrozenLake-v1", "--features", "onehot", "--feature-dim", "36"], "feature-dim"),
    (["--constructed", "--weights", "x.npz"], "constructed"),
    (["--weights", "/nonexistent/w.npz"], "weights"),
])
def test_cli_bad_input_exits_2(argv, field, capsys):
    rc = main(["control", "--seeds", "2", "--mdps", "2", "--rounds", "1", "--no-report"] + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and field in err[0]


def test_models_of_wrong_size_or_algorithm_are_rejected(tmp_path):
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(InputError, match="d = 20"):
        control.run_control("random", "sarsa", models={"trained": build_model("lsa", "sarsa", 20, 20, gen=gen)}, **SMALL)
    with pytest.raises(InputError, match="trained for"):
        control.run_control("random", "sarsa", models={"mlp": build_model("mlp", "q-learning", 36, 20, gen=gen, hidden=4)}, **SMALL)
    with pytest.raises(InputError, match="n = 10"):
        control.run_control("random", "sarsa", models={"mlp": build_model("mlp", "sarsa", 36, 10, gen=gen, hidden=4)}, **SMALL)
    P, V = torch.zeros(7, 7), torch.zeros(7, 7)
    np.savez(tmp_path / "bad.npz", P=P.numpy(), V=V.numpy())
    with pytest.raises(InputError, match="not D x D"):
        load_lsa(str(tmp_path / "bad.npz"), "sarsa")


def test_config_file_sets_control_options(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('env = "FrozenLake-v1"\nseeds = 2\nmdps = 2\nrounds = 2\ngamma = 0.8\n')
    rc = main(["control", "--config", str(cfg), "--json", "--no-report"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["env"] == "FrozenLake-v1" and out["gamma"] == 0.8 and out["rounds"] == 2
    assert out["report"] is None
