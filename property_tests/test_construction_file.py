"""Constructions as data (issue 20): a two-layer masked linear construction
written into a file runs through ``check``, ``prove`` and ``train``; a wrong
entry in the file is refused by ``check`` and ``prove`` with a
counterexample (exit 1); a bad file is one line naming the field (exit 2);
the worked example of docs/architecture.md (a record in Python and the same
as a file) is the same record and runs."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import pytest

from property_tests.test_theory_prove import _json, _run
from theory import algorithms, construction_file
from theory.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "construction-td-two-layer.toml")
EXAMPLE_PY = os.path.join(ROOT, "examples", "construction_td_two_layer.py")
SMALL_CHECK = ["--mdps", "4", "--context", "12", "--features-dim", "2", "--preconditioner", "random"]


def _text(**changes) -> str:
    with open(EXAMPLE, encoding="utf-8") as fh:
        text = fh.read()
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    return text


def _write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_two_layer_masked_file_runs_through_check_prove_and_train(tmp_path, capsys):
    path = _write(tmp_path, _text())
    rc, out, _ = _run(["check", "--construction", path, *SMALL_CHECK, "--json"], capsys)
    res = _json(out)
    assert rc == 0 and res["verdict"] == "holds" and res["layers"] == 2 and res["algorithm"] == "td-two-layer"
    assert res["command"].startswith(f"icrl-verify check --construction {path} --layers 2")
    rc, out, _ = _run(["prove", "--construction", path, "--out", str(tmp_path / "proofs"), "--json"], capsys)
    res = _json(out)
    assert rc == 0 and res["general"] and res["faults_refused"] and res["counterexample"] is None
    assert os.path.exists(tmp_path / "proofs" / "td-two-layer.md")
    rc, out, _ = _run(["train", "--construction", path, "--seeds", "2", "--mdps", "2", "--minibatches", "1",
                       "--window-steps", "3", "--context", "6", "--eval-mdps", "2", "--log-every", "1",
                       "--out", str(tmp_path / "w"), "--report-dir", str(tmp_path / "rep"), "--json"], capsys)
    res = _json(out)
    assert rc == (0 if res["recovered"] else 1) and res["algorithm"] == "td-two-layer"
    assert res["config"]["layers"] == 2 and res["config"]["seeds"] == 2
    assert res["command"].startswith(f"icrl-verify train --construction {path}")
    assert sorted(os.listdir(tmp_path / "w")) == ["seed-0.npz", "seed-1.npz"]


@pytest.mark.parametrize("entry, wrong", [('["phi", "phi", "-1"]', '["phi", "phi", "1"]'),
                                         ('[["r", "r", "1"]]', '[["r", "r", "2"]]')])
def test_a_wrong_entry_is_refused_by_check_and_prove_with_a_counterexample(tmp_path, capsys, entry, wrong):
    path = _write(tmp_path, _text(**{entry: wrong}))
    rc, out, _ = _run(["check", "--construction", path, *SMALL_CHECK, "--json"], capsys)
    res = _json(out)
    c = res["counterexample"]
    assert rc == 1 and res["verdict"] == "fails" and c is not None and c["block"] != c["loop"]
    rc, out, _ = _run(["prove", "--construction", path, "--out", str(tmp_path / "p"), "--json"], capsys)
    res = _json(out)
    c = res["counterexample"]
    assert rc == 1 and res["general"] is False and res["residual"]
    assert c is not None and c["block"] != c["teacher"] and set(c["values"]) >= {"w_0", "C_00", "gamma"}


@pytest.mark.parametrize("changes, field", [
    ({'name = "td-two-layer"\n': ""}, "construction.name"),
    ({'teacher = "semi-gradient"': 'teacher = "monte-carlo"'}, "construction.teacher"),
    ({'["phi", "phi", "-1"]': '["phi", "phi", "__import__(\'os\')"]'}, "construction.weights.P[0]"),
    ({'["phi", "phi", "-1"]': '["phi", "phi", "1/"]'}, "construction.weights.P[0]"),
    ({'["phi", "phi", "-1"]': '["phi", "nowhere", "-1"]'}, "construction.record"),
    ({'["phi", "phi", "-1"]': '["phi", "r", "-1"]'}, "construction.record"),
    ({"depth = 2": 'depth = "two"'}, "construction.block.depth"),
    ({'mask = "context"': 'mask = "causal"'}, "construction.block"),
    ({'kind = "linear"': 'kind = "softmax"'}, "construction.record"),   # a softmax block with a batch-TD teacher
    ({'heads = ["identity"]': 'heads = ["identity", "identity"]'}, "construction.record"),
    ({"[weights]": "colour = 3\n[weights]"}, "construction.block.colour"),
    ({"preconditioned = true": "preconditioned = true\nQ = []"}, "construction.weights.Q"),
    ({'recipe = [["phi", "1", "phi"]': 'recipe = [["phi", "alpha", "phi"]'}, "construction.record"),
    ({'query = ["phi"]': 'query = ["w"]'}, "construction.layout"),
    ({'data = "mrp"': 'data = "mdp"'}, "construction.record"),
])
def test_a_bad_file_is_one_line_naming_the_field(tmp_path, capsys, changes, field):
    path = _write(tmp_path, _text(**changes))
    for command in (["check", *SMALL_CHECK], ["prove", "--out", str(tmp_path / "p")]):
        rc, out, err = _run([command[0], "--construction", path, *command[1:]], capsys)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert f"error: {field}" in err, err
    assert not (tmp_path / "p").exists()


SARSA_FILE = """name = "sarsa-file"
data = "mdp"
teacher = "semi-gradient"
recipe = [["phi", "1", "phi"], ["gphi_next", "gamma", "phi_next"], ["r", "1", "r"]]

[layout]
context = [["phi", "d"], ["gphi_next", "d"], ["r", 1]]
params = [["one", 1], ["w", "d"]]

[weights]
P = [["phi", "w", "-1"], ["gphi_next", "w", "1"], ["r", "one", "1"]]
V = [[["w", "phi", "alpha"]]]
"""


def test_an_mdp_file_runs_through_check_prove_and_train_on_two_workers(tmp_path, capsys):
    """Theorem 3.1's construction written as a file: the same verdicts as the registered sarsa, and
    ``train --seeds 2 --workers 2`` hands the file's record to the workers by value."""
    path = _write(tmp_path, SARSA_FILE)
    rc, out, _ = _run(["check", "--construction", path, "--prompts", "100", "--mdps", "10", "--json"], capsys)
    assert rc == 0 and _json(out)["verdict"] == "holds"
    rc, out, _ = _run(["prove", "--construction", path, "--out", str(tmp_path / "p"), "--json"], capsys)
    assert rc == 0 and _json(out)["general"] is True
    rc, out, _ = _run(["train", "--construction", path, "--states", "2", "--actions", "2", "--mdps", "64",
                       "--frames", "3", "--seeds", "2", "--workers", "2", "--out", str(tmp_path / "w"),
                       "--report-dir", str(tmp_path / "rep"), "--json"], capsys)
    res = _json(out)
    assert rc in (0, 1) and [s["seed"] for s in res["seeds"]] == [0, 1]
    assert os.path.exists(tmp_path / "rep" / "sarsa-file-lsa.md")
    bad = _write(tmp_path, SARSA_FILE.replace('["phi", "w", "-1"]', '["phi", "w", "1"]'), "bad.toml")
    rc, out, _ = _run(["check", "--construction", bad, "--prompts", "100", "--mdps", "10", "--json"], capsys)
    assert rc == 1 and _json(out)["counterexample"] is not None
    rc, out, _ = _run(["prove", "--construction", bad, "--out", str(tmp_path / "p"), "--json"], capsys)
    assert rc == 1 and _json(out)["counterexample"] is not None


def test_train_record_takes_the_file_s_record_by_value():
    """``train_record(record, ...)``: one entry for every record; the file's depth and tying are the defaults."""
    from numerics.analysis.train import train_record
    res = train_record(construction_file.load(EXAMPLE), states=3, d=2, n=4, mrps=2, minibatches=1, steps=2, seeds=2,
                       eval_mrps=2, log_every=1)
    assert res["config"]["layers"] == 2 and res["config"]["tied"] is True and res["config"]["algorithm"] == "td-two-layer"
    assert tuple(res["P"].shape) == (2, 5, 5)                      # seeds x D x D (tied; D = 2d + 1)


def test_unreadable_files_and_clashing_options_are_refused(tmp_path, capsys):
    for text, name in (("name = [", "c.toml"), ("{", "c.json"), ("x", "c.yaml")):
        with pytest.raises(InputError) as e:
            construction_file.load(_write(tmp_path, text, name))
        assert e.value.field == "construction"
    path = _write(tmp_path, _text())
    rc, out, err = _run(["check", "--construction", path, "--algorithm", "sarsa"], capsys)
    assert rc == 2 and "error: construction: --construction and --algorithm" in err


def test_the_same_record_as_json(tmp_path, capsys):
    import tomllib
    doc = tomllib.loads(_text())
    path = _write(tmp_path, json.dumps(doc), "c.json")
    same = lambda r: dataclasses.replace(r, theorem="")
    assert same(construction_file.load(path)) == same(construction_file.load(EXAMPLE))


def test_the_worked_example_in_python_is_the_file_s_record_and_is_documented(capsys):
    """docs/architecture.md shows both example files verbatim; the Python record equals the file's
    (up to the report's theorem line) and, registered, runs under its name."""
    spec = importlib.util.spec_from_file_location("construction_td_two_layer", EXAMPLE_PY)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        from_file = construction_file.load(EXAMPLE)
        assert dataclasses.replace(from_file, theorem="") == dataclasses.replace(mod.RECORD, theorem="")
        assert "td-two-layer" in algorithms.names("mrp")
        rc, out, _ = _run(["check", "--algorithm", "td-two-layer", *SMALL_CHECK, "--json"], capsys)
        assert rc == 0 and _json(out)["layers"] == 2              # the record's own depth
    finally:
        algorithms.unregister("td-two-layer")
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as fh:
        doc = fh.read()
    for path in (EXAMPLE, EXAMPLE_PY):
        with open(path, encoding="utf-8") as fh:
            assert fh.read().strip() in doc, path
