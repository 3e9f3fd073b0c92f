"""The bad-input table (issue 2): every bad call, each expected to raise the
project's own error (``theory.errors.InputError``) naming the field, and,
through the CLI, to exit 2 with exactly one line on stderr, nothing on
stdout (no partly written report) and no traceback.

MDP-level input (transition rows, probabilities, rewards, discounts) is
checked at the boundary type :class:`numerics.mdp.MDP`; ``icrl-verify
check`` draws its MDPs from a distribution and has no option that reads a
user MDP, so the CLI rows cover what a user can pass: discounts, sizes,
weight files and configuration files.
"""
from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
import torch

from numerics.commands.cli import main
from numerics.core.mdp import MDP
from numerics.core.tolerances import DTYPE
from property_tests.test_check_cli import console_script
from theory.errors import InputError

# ---- MDP-level input: numerics.core.mdp.MDP raises InputError naming the field ----

def _valid(S=3, A=2):
    T = torch.full((1, S, A, S), 1.0 / S, dtype=DTYPE)
    R = torch.zeros(1, S, A, S, dtype=DTYPE)
    return dict(T=T, R=R, gamma=torch.tensor([0.5], dtype=DTYPE), rho0=torch.full((1, S), 1.0 / S, dtype=DTYPE))


def _with(**changes):
    kw = _valid()
    for key, fn in changes.items():
        kw[key] = fn(kw[key].clone())
    return kw


def _set(index, value):
    def fn(t):
        t[index] = value
        return t
    return fn


MDP_TABLE = [
    # id, constructor kwargs, field named, words the message must contain
    ("row-not-summing-to-1", _with(T=_set((0, 1, 0, 2), 0.5)), "transitions", "sums to"),
    ("negative-probability", _with(T=lambda t: t * torch.tensor([1.5, -0.5, 1.0], dtype=DTYPE)), "transitions", "negative probability"),
    ("nan-probability", _with(T=_set((0, 0, 0, 0), math.nan)), "transitions", "NaN"),
    ("nan-reward", _with(R=_set((0, 2, 1, 0), math.nan)), "rewards", "NaN"),
    ("infinite-reward", _with(R=_set((0, 0, 0, 0), math.inf)), "rewards", "infinity"),
    ("gamma-equal-1", _with(gamma=lambda g: g * 0 + 1.0), "gamma", "0 <= gamma < 1"),
    ("gamma-above-1", _with(gamma=lambda g: g * 0 + 1.5), "gamma", "0 <= gamma < 1"),
    ("gamma-negative", _with(gamma=lambda g: g * 0 - 0.1), "gamma", "0 <= gamma < 1"),
    ("gamma-nan", _with(gamma=lambda g: g * math.nan), "gamma", "0 <= gamma < 1"),
    ("zero-states", dict(T=torch.zeros(1, 0, 2, 0, dtype=DTYPE), R=torch.zeros(1, 0, 2, 0, dtype=DTYPE),
                         gamma=0.5, rho0=torch.zeros(1, 0, dtype=DTYPE)), "states", "at least 1"),
    ("zero-actions", dict(T=torch.zeros(1, 3, 0, 3, dtype=DTYPE), R=torch.zeros(1, 3, 0, 3, dtype=DTYPE),
                          gamma=0.5, rho0=torch.full((1, 3), 1 / 3, dtype=DTYPE)), "actions", "at least 1"),
    ("transitions-wrong-shape", _with(T=lambda t: t[..., :2]), "transitions", "expected shape"),
    ("rewards-wrong-shape", _with(R=lambda r: r[:, :2]), "rewards", "expected shape"),
    ("start-not-a-distribution", _with(rho0=lambda p: p * 2), "rho0", "probability distribution"),
    ("transitions-not-numeric", dict(_valid(), T="not an array"), "transitions", "cannot be read"),
]


@pytest.mark.parametrize("kwargs,field,words", [row[1:] for row in MDP_TABLE], ids=[row[0] for row in MDP_TABLE])
def test_mdp_bad_input_raises_input_error(kwargs, field, words):
    with pytest.raises(InputError) as info:
        MDP(**kwargs)
    assert info.value.field == field
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{field}: ") and words in msg, msg


def test_mdp_table_rows_are_valid_without_the_fault():
    """Control: the base MDP of the table is accepted, so each row fails for its planted fault."""
    MDP(**_valid())


# ---- CLI: exit 2, one line on stderr naming the problem ----------------------

D_SARSA = 110   # Section 4.1: d = 36, D = 3d + 2


def _npz(tmp_path, name, **arrays):
    path = tmp_path / f"{name}.npz"
    np.savez(path, **arrays)
    return str(path)


def _toml(tmp_path, name, text):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def _ok_weights():
    return dict(P=np.zeros((D_SARSA, D_SARSA)), V=np.zeros((D_SARSA, D_SARSA)))


CLI_TABLE = [
    # id, argv builder (tmp_path -> argv after "check"), words the stderr line must contain
    ("gamma-equal-1", lambda tp: ["--gamma", "1.0"], "gamma"),
    ("gamma-above-1", lambda tp: ["--gamma", "1.5"], "gamma"),
    ("gamma-nan", lambda tp: ["--gamma", "nan"], "--gamma"),
    ("gamma-range-reaching-1", lambda tp: ["--gamma-range", "0.5", "1.0"], "gamma-range"),
    ("zero-states", lambda tp: ["--states", "0"], "--states"),
    ("zero-actions", lambda tp: ["--actions", "0"], "--actions"),
    ("zero-mdps", lambda tp: ["--mdps", "0"], "--mdps"),
    ("zero-prompts", lambda tp: ["--prompts", "0"], "--prompts"),
    ("epsilon-above-1", lambda tp: ["--epsilon", "2"], "epsilon"),
    ("unknown-algorithm", lambda tp: ["--algorithm", "dqn"], "--algorithm"),
    ("unknown-option", lambda tp: ["--gama", "0.5"], "--gama"),
    ("weights-wrong-shape", lambda tp: ["--weights", _npz(tp, "w", P=np.zeros((5, 5)), V=np.zeros((5, 5)))], "weights.P"),
    ("weights-nan", lambda tp: ["--weights", _npz(tp, "w", P=np.zeros((D_SARSA, D_SARSA)),
                                                  V=np.full((D_SARSA, D_SARSA), np.nan))], "weights.V"),
    ("weights-missing-array", lambda tp: ["--weights", _npz(tp, "w", P=np.zeros((D_SARSA, D_SARSA)))], "weights"),
    ("weights-not-numeric", lambda tp: ["--weights", _npz(tp, "w", P=np.array([["a"] * D_SARSA] * D_SARSA),
                                                          V=np.zeros((D_SARSA, D_SARSA)))], "weights.P"),
    ("weights-not-npz", lambda tp: ["--weights", _toml(tp, "w", "P = 1\n")], "weights"),
    ("weights-missing-file", lambda tp: ["--weights", str(tp / "nope.npz")], "weights"),
    ("weights-wrong-layout", lambda tp: ["--algorithm", "actor-critic", "--weights", _npz(tp, "w", **_ok_weights())], "weights.P"),
    ("config-unknown-key", lambda tp: ["--config", _toml(tp, "c", "gama = 0.5\n")], "gama"),
    ("config-bad-value", lambda tp: ["--config", _toml(tp, "c", 'states = "many"\n')], "states"),
    ("config-bad-gamma", lambda tp: ["--config", _toml(tp, "c", "gamma = 1.0\n")], "gamma"),
    ("config-not-toml", lambda tp: ["--config", _toml(tp, "c", "states = = 3\n")], "config"),
    ("config-missing-file", lambda tp: ["--config", str(tp / "nope.toml")], "config"),
]


@pytest.mark.parametrize("argv,words", [row[1:] for row in CLI_TABLE], ids=[row[0] for row in CLI_TABLE])
def test_cli_bad_input_exits_2_with_one_line(argv, words, tmp_path, capsys):
    rc = main(["check", "--prompts", "20", "--mdps", "2", *argv(tmp_path)])     # the row's flags come last and win
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == "", f"stdout must stay empty on bad input, got {out!r}"
    lines = err.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {err!r}"
    assert lines[0].startswith("icrl-verify: error: ") and words in lines[0], lines[0]
    assert "Traceback" not in err


def test_cli_good_input_control(tmp_path, capsys):
    """Control: the table's valid neighbours are accepted (a well-formed
    weights file of the right shape exits 0 or 1, never 2)."""
    rc = main(["check", "--prompts", "20", "--mdps", "2", "--weights", _npz(tmp_path, "w", **_ok_weights())])
    capsys.readouterr()
    assert rc == 1      # zero weights do not implement SARSA: a failed claim, not bad input


def test_console_script_bad_input_no_traceback(tmp_path):
    """The installed console script, not only ``main``: exit 2, one line, no traceback."""
    nan = _npz(tmp_path, "w", P=np.zeros((D_SARSA, D_SARSA)), V=np.full((D_SARSA, D_SARSA), np.nan))
    for argv, words in ((["--gamma", "1.0"], "gamma"), (["--weights", nan], "weights.V")):
        proc = subprocess.run([console_script(), "check", *argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr


# ---- configuration files (issue 12): one table over every command ------------------------
#
# Each row's document goes through the command's option kinds
# (numerics.io.options); the command line before it is valid and tiny, so
# the only fault is the row's.  Run in an empty folder: exit 2 leaves no file.

CONFIG_FILE_TABLE = [
    # id, command argv (valid), TOML text, words the stderr line must contain
    ("table-for-the-mdp-path", ["check"], "[mdp]\nstates = 5\n", "config key 'mdp': expected a path"),
    ("seed-true", ["check"], "seed = true\n", "config key 'seed': expected an integer"),
    ("weights-a-number", ["check"], "weights = 3\n", "config key 'weights': expected a path"),
    ("states-a-float", ["check"], "states = 2.5\n", "config key 'states': expected an integer"),
    ("states-a-numeric-string", ["check"], 'states = "2.5"\n', "config key 'states': expected an integer"),
    ("seed-negative", ["check"], "seed = -1\n", "config key 'seed'"),
    ("unknown-table", ["check"], "[run]\nprompts = 5\n", "unknown table 'run'"),
    ("option-of-another-command", ["check"], "frames = 3\n", "unknown key 'frames'"),
    ("datetime-value", ["check"], "alpha = 1979-05-27T07:32:00Z\n", "config key 'alpha': expected a finite number"),
    ("nan-gamma", ["check"], "gamma = nan\n", "config key 'gamma': expected a finite number"),
    ("train-seed-true", ["train", "--mdps", "1"], "seed = true\n", "config key 'seed'"),
    ("train-frames-float", ["train", "--mdps", "1"], "frames = 1e3\n", "config key 'frames': expected an integer"),
    ("train-name-with-folder", ["train", "--mdps", "1"], 'name = "a/b"\n', "config key 'name': expected a plain file name"),
    ("richness-bootstrap-negative", ["richness"], "bootstrap = -1\n", "config key 'bootstrap'"),
    ("flow-radii-scalar", ["flow"], "radii = 0.1\n", "config key 'radii': expected a list"),
    ("control-env-a-number", ["control"], "env = 3\n", "config key 'env': expected a string"),
    ("control-switch-a-string", ["control"], 'constructed = "yes"\n', "config key 'constructed': expected true or false"),
    ("claims-only-a-string", ["claims"], 'only = "lemma-c1"\n', "config key 'only': expected a list"),
    ("claims-quick-a-number", ["claims"], "quick = 1\n", "config key 'quick': expected true or false"),
    ("protocols-exact-table", ["protocols"], "[exact]\npath = 'x.npz'\n", "config key 'exact': expected a path"),
    ("prove-alpha-a-float", ["prove"], "alpha = 0.2\n", "config key 'alpha': expected an exact number"),
    ("ablation-distributions-mixed", ["ablation"], 'distributions = ["section-4.1", 1]\n',
     "config key 'distributions': expected a string"),
    ("algorithm-unknown", ["richness"], 'algorithm = "dqn"\n', "config key 'algorithm': expected one of"),
]


def _run_in(folder, argv, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv,text,words", [r[1:] for r in CONFIG_FILE_TABLE], ids=[r[0] for r in CONFIG_FILE_TABLE])
def test_config_file_bad_input_exits_2_with_one_line(argv, text, words, tmp_path, capsys, monkeypatch):
    cfg = _toml(tmp_path, "c", text)
    run = tmp_path / "run"
    run.mkdir()
    rc, out, err = _run_in(run, [*argv, "--config", cfg], capsys, monkeypatch)
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("icrl-verify: error: ") and words in lines[0], err
    assert list(run.iterdir()) == [], "exit 2 must leave no file behind"


def test_config_file_good_input_control(tmp_path, capsys, monkeypatch):
    """Control: the table's valid neighbours (same keys, right types) are accepted."""
    cfg = _toml(tmp_path, "c", 'seed = 3\nstates = 2\nactions = 2\nmdp = "no-such.npz"\n')
    rc, out, err = _run_in(tmp_path, ["check", "--config", cfg, "--prompts", "4", "--mdps", "1"], capsys,
                           monkeypatch)
    assert rc == 2 and "mdp" in err and "no-such.npz" in err    # the key went through: the file is looked for
    cfg = _toml(tmp_path, "c", "seed = 3\nstates = 2\nactions = 2\n")
    rc, out, err = _run_in(tmp_path, ["check", "--config", cfg, "--prompts", "4", "--mdps", "1", "--json"], capsys,
                           monkeypatch)
    assert rc == 0 and '"prompts": 4' in out, err


# The size guards are the other half of issue 12 (branch phase3-p12b: --max-memory);
# until it is merged these rows are skipped: without a guard they would try to
# allocate 8e17 bytes, or run a dense Hessian of about 1 TB.
GUARD_TABLE = [
    ("check-huge", ["check", "--states", "1000000", "--actions", "1000"], "--max-memory"),
    ("richness-dense-hessian", ["richness", "--states", "30", "--actions", "10"], "--max-memory"),
    ("train-huge-context", ["train", "--context", "100000", "--mdps", "1"], "--max-memory"),
]


@pytest.mark.parametrize("argv,words", [r[1:] for r in GUARD_TABLE], ids=[r[0] for r in GUARD_TABLE])
def test_size_guard_exits_2_with_one_line(argv, words, tmp_path, capsys, monkeypatch):
    rc, out, err = _run_in(tmp_path, argv, capsys, monkeypatch)
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and words in lines[0], err


# ---- command-line flags (issue 12): the option kinds, one row per kind of slip, over every command ----

FLAGS_TABLE = [
    # id, argv, words the stderr line must contain
    ("integer-given-a-float", ["check", "--states", "2.5"], "argument --states: expected an integer >= 1"),
    ("integer-given-a-word", ["train", "--frames", "many"], "argument --frames: expected an integer"),
    ("seed-negative", ["check", "--seed", "-1"], "argument --seed: must be at least 0"),
    ("seed-above-32-bits", ["protocols", "--seed", "4294967296"], "argument --seed: must be at most"),
    ("seed-a-boolean", ["claims", "--seed", "true"], "argument --seed: expected an integer"),
    ("count-negative", ["richness", "--bootstrap", "-1"], "argument --bootstrap: must be at least 0"),
    ("step-size-zero", ["ablation", "--alpha", "0"], "argument --alpha: must be positive"),
    ("number-nan-in-a-list", ["flow", "--radii", "0.1", "nan"], "argument --radii: expected a finite number"),
    ("name-with-a-folder", ["control", "--name", "a/b"], "argument --name: expected a plain file name"),
    ("exact-blank", ["prove", "--alpha", " "], "argument --alpha: expected an exact number"),
    ("unknown-choice", ["richness", "--parameterization", "half"], "argument --parameterization: expected one of"),
    ("option-of-another-command", ["check", "--frames", "3"], "unrecognized arguments: --frames"),
    ("control-character-escaped", ["check", "--device\x0c"], "\\x0c"),
]


@pytest.mark.parametrize("argv,words", [r[1:] for r in FLAGS_TABLE], ids=[r[0] for r in FLAGS_TABLE])
def test_flag_bad_input_exits_2_with_one_line(argv, words, tmp_path, capsys, monkeypatch):
    rc, out, err = _run_in(tmp_path, argv, capsys, monkeypatch)
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("icrl-verify: error: ") and words in lines[0], err
    assert list(tmp_path.iterdir()) == []


def test_out_naming_an_existing_file_exits_2(tmp_path, capsys, monkeypatch):
    (tmp_path / "results.md").write_text("keep")
    for argv in (["claims", "--out", "results.md"], ["train", "--report-dir", "results.md/sub"]):
        rc, out, err = _run_in(tmp_path, argv, capsys, monkeypatch)
        assert rc == 2 and "is an existing file" in err and len(err.splitlines()) == 1, err
    assert (tmp_path / "results.md").read_text() == "keep"
