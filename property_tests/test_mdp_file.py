"""`icrl-verify check --mdp FILE.npz`: a user's MDPs through the CLI, and
the bad-input rows of DEVELOPERS.md for them (exit 2, one line naming the
field, no traceback)."""
import json

import numpy as np
import pytest

from numerics.commands.cli import main
from numerics.core.constructions import constructed_weights
from theory.algorithms import get


def _mdp(seed=0, S=3, A=2):
    rng = np.random.default_rng(seed)
    return dict(T=rng.dirichlet(np.ones(S), size=(S, A)), R=rng.uniform(-1, 1, (S, A, S)), gamma=np.float64(0.9))


def _write(tmp_path, **arrays):
    path = tmp_path / "mdp.npz"
    np.savez(path, **arrays)
    return str(path)


def test_user_mdp_checks_and_holds(tmp_path, capsys):
    path = _write(tmp_path, **_mdp())
    rc = main(["check", "--mdp", path, "--features", "onehot", "--prompts", "40", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["holds"] and out["prompts"] == 40


def test_user_mdp_with_features_and_wrong_alpha_fails(tmp_path, capsys):
    rng = np.random.default_rng(1)
    arrays = _mdp(1) | {"features": rng.uniform(-1, 1, (3, 2, 4))}
    path = _write(tmp_path, **arrays)
    P, V = constructed_weights(get("sarsa"), 4, {"alpha": 0.25})
    wpath = tmp_path / "w.npz"
    np.savez(wpath, P=P.numpy(), V=V.numpy())
    rc = main(["check", "--mdp", path, "--weights", str(wpath), "--prompts", "20", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and not out["holds"] and out["counterexample"] is not None


def _bad_rows():
    base = _mdp()
    T_sum = base["T"].copy()
    T_sum[0, 0, 0] += 0.2
    T_neg = base["T"].copy()
    T_neg[1, 1, :2] = [-0.1, T_neg[1, 1, 0] + T_neg[1, 1, 1] + 0.1]
    R_nan = base["R"].copy()
    R_nan[2, 1, 0] = np.nan
    return [
        ("row-sum", base | {"T": T_sum}, "transitions"),
        ("negative", base | {"T": T_neg}, "transitions"),
        ("nan-reward", base | {"R": R_nan}, "rewards"),
        ("gamma-one", base | {"gamma": np.float64(1.0)}, "gamma"),
        ("zero-states", {"T": np.zeros((0, 2, 0)), "R": np.zeros((0, 2, 0)), "gamma": np.float64(0.5)}, "states"),
        ("unknown-array", base | {"Q": np.zeros(3)}, "mdp"),
        ("missing-R", {"T": base["T"], "gamma": base["gamma"]}, "mdp"),
        ("bad-features", base | {"features": np.zeros((2, 2, 4))}, "features"),
    ]


@pytest.mark.parametrize("name,arrays,field", _bad_rows(), ids=[r[0] for r in _bad_rows()])
def test_bad_user_mdp_exits_2_with_one_line(tmp_path, capsys, name, arrays, field):
    path = _write(tmp_path, **arrays)
    rc = main(["check", "--mdp", path, "--features", "onehot", "--prompts", "5"])
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert rc == 2 and len(err) == 1, (rc, err)
    assert field in err[0] and "Traceback" not in cap.err
    assert cap.out == ""


def test_missing_mdp_file_exits_2(tmp_path, capsys):
    rc = main(["check", "--mdp", str(tmp_path / "nope.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no such file" in err[0]
