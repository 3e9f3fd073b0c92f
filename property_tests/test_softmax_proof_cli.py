"""``icrl-verify prove`` on the softmax kind (issue 21): Theorem 1 and Lemma 1
proven with what the proof covers and assumes; construction files that differ
from the construction (examples/softmax-faults/) exit 1 with a counterexample;
options that do not apply exit 2 with one line."""
from __future__ import annotations

import glob

import pytest

from property_tests.test_theory_prove import _json, _run


@pytest.mark.parametrize("name,form", [("softmax-td", "two-head"), ("softmax-td-shift", "one-head")])
def test_prove_softmax_record_reports_theorem_1_and_lemma_1(tmp_path, capsys, name, form):
    rc, out, _ = _run(["prove", "--algorithm", name, "--json", "--out", str(tmp_path)], capsys)
    res = _json(out)
    assert rc == 0 and res["general"] is True and res["kind"] == "softmax" and res["form"] == form
    for key in ("theorem_1", "lemma_1"):
        assert res[key]["proven"] is True and res[key]["assumes"] and "every d" in res[key]["covers"]["d"]
    assert res["sentence"].startswith("Proven for every d and n")
    assert res["faults_refused"] and {f["fault"] for f in res["faults"]} == {"sign", "mask", "shift", "A"}
    assert all(f["general_refused"] and f["concrete_refused"] and f["counterexample"] for f in res["faults"])
    assert res["concrete"] and all(c["ok"] for c in res["concrete"])
    text = (tmp_path / f"{name}.md").read_text()
    assert "## Theorem 1: proven" in text and "## Lemma 1: proven" in text and "Assumes:" in text
    assert f"Reproduce: `icrl-verify prove --algorithm {name}`" in text


def test_prove_theorem_1_construction_file_exit_0(tmp_path, capsys):
    rc, out, _ = _run(["prove", "--construction", "examples/construction-softmax-td.toml", "--json", "--out",
                       str(tmp_path)], capsys)
    res = _json(out)
    assert rc == 0 and res["matches_construction"] is True and res["theorem_1"]["proven"]


@pytest.mark.parametrize("path", sorted(glob.glob("examples/softmax-faults/*.toml")))
def test_prove_fault_file_exit_1_with_counterexample(tmp_path, capsys, path):
    rc, out, _ = _run(["prove", "--construction", path, "--json", "--out", str(tmp_path)], capsys)
    res = _json(out)
    assert rc == 1 and res["general"] is False and res["theorem_1"]["proven"] is False
    cex = res["counterexample"]
    assert cex and cex["layer"] != cex["reference"] and cex["residual"] not in ("0", "")


@pytest.mark.parametrize("argv,field", [(["--weights", "w.json"], "weights"), (["--alpha", "1/2"], "alpha")])
def test_prove_softmax_refuses_weights_and_alpha(tmp_path, capsys, argv, field):
    (tmp_path / "w.json").write_text("{}")
    argv = [a if a != "w.json" else str(tmp_path / "w.json") for a in argv]
    rc, _, err = _run(["prove", "--algorithm", "softmax-td", "--out", str(tmp_path)] + argv, capsys)
    assert rc == 2 and field in err and len(err.strip().splitlines()) == 1
