"""`icrl-verify claims`: the verdict machinery (fast tier).

The full quick report takes minutes; here the registry is exercised claim by
claim on the cheap numeric checks, and a planted fault in the single source
of the constructions must turn the affected verdicts to `fails`.
"""
import dataclasses
import json

from numerics.claims import (
    checks,  # noqa: F401  (registers the checks)
    liang_lai,
)
from numerics.claims.evidence import FAILS, HOLDS, NOT_CHECKED, Evidence, Settings, all_pass, evaluate, run_checks
from numerics.commands.cli import main
from theory import algorithms


def _flip_p12_sign(monkeypatch, algorithm):
    """Plant a wrong sign in the registered record's construction (the
    single source every check reads)."""
    record = algorithms.get(algorithm)
    c = record.construction
    flipped = tuple((k, -v) if k == ("phi", "w") else (k, v) for k, v in c.p12)
    monkeypatch.setitem(algorithms._REGISTRY, algorithm,
                        dataclasses.replace(record, construction=dataclasses.replace(c, p=flipped)))


def _claims(*ids):
    return [c for c in liang_lai.CLAIMS if c.id in ids]


def test_numeric_claims_hold_on_the_code_as_shipped():
    claims = _claims("lemma-c1", "theorem-3.1", "theorem-3.3", "prop-3.1")
    ev = run_checks(dict.fromkeys(n for c in claims for n in c.checks), Settings())
    verdicts = {r["id"]: r["verdict"] for r in evaluate(claims, ev)}
    assert verdicts == {c.id: HOLDS for c in claims}


def test_wrong_sign_in_the_construction_turns_theorem_3_1_to_fails(monkeypatch):
    _flip_p12_sign(monkeypatch, "sarsa")
    claims = _claims("theorem-3.1", "theorem-3.3")
    ev = run_checks(dict.fromkeys(n for c in claims for n in c.checks), Settings())
    verdicts = {r["id"]: r["verdict"] for r in evaluate(claims, ev)}
    assert verdicts["theorem-3.1"] == FAILS
    assert verdicts["theorem-3.3"] == HOLDS   # actor-critic has its own record, untouched


def test_a_check_that_cannot_run_is_not_checked_never_holds():
    e_ok = Evidence("a", "numeric", True, "", "")
    e_none = Evidence("b", "numeric", None, "could not run", "")
    e_bad = Evidence("c", "numeric", False, "", "")
    assert all_pass({"a": e_ok, "b": e_none})[0] == NOT_CHECKED
    assert all_pass({"a": e_ok, "c": e_bad})[0] == FAILS
    assert all_pass({"a": e_ok})[0] == HOLDS


def test_claims_cli_writes_json_with_required_keys(tmp_path, capsys):
    rc = main(["claims", "--only", "lemma-c1", "prop-3.1", "--out", str(tmp_path), "--json"])
    assert rc == 0
    doc = json.loads((tmp_path / "claims.json").read_text())
    for row in doc["claims"]:
        assert {"id", "statement", "verdict", "evidence", "command"} <= row.keys()
        assert row["verdict"] == HOLDS
    assert (tmp_path / "claims.md").read_text().startswith("# Claim-by-claim verdict")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["claims"] == {"lemma-c1": HOLDS, "prop-3.1": HOLDS}


def test_claims_cli_unknown_claim_id_exits_2(tmp_path, capsys):
    rc = main(["claims", "--only", "no-such-claim", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "only" in err[0]
    assert not (tmp_path / "claims.md").exists()


# ------------------------------------------------ docs/architecture.md, "How to add a claim"
def _worked_example() -> str:
    """The Python block of the "How to add a claim" section of docs/architecture.md."""
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    section = text.split("## How to add a claim", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_the_documented_worked_claim_holds_and_its_planted_twin_fails(tmp_path, capsys):
    namespace: dict = {"__name__": "worked_claim_example"}
    exec(compile(_worked_example(), "docs/architecture.md", "exec"), namespace)
    try:
        from numerics.claims import evidence
        ids = [c.id for c in evidence.claims()]
        assert ids[-2:] == ["example-td", "example-td-wrong"] and "lemma-c1" in ids   # after the papers' claims
        rc = main(["claims", "--only", "example-td", "example-td-wrong", "--out", str(tmp_path), "--json"])
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert rc == 0 and out["claims"] == {"example-td": HOLDS, "example-td-wrong": FAILS}
        doc = json.loads((tmp_path / "claims.json").read_text())
        (wrong,) = [r for r in doc["claims"] if r["id"] == "example-td-wrong"]
        assert wrong["paper"] == namespace["PAPER"] and wrong["evidence"][0]["passed"] is False
        assert wrong["evidence"][0]["data"]["max_abs_error"] > 1e-3
        assert "--prompts 200" in wrong["command"]                  # --quick's size, as run
        assert f"# Claim-by-claim verdict: {namespace['PAPER']}" in (tmp_path / "claims.md").read_text()
    finally:
        evidence.unregister("example-td")
        evidence.unregister("example-td-wrong")
    assert "example-td" not in [c.id for c in evidence.claims()]


def test_a_claim_takes_check_records_never_names_and_ids_are_unique():
    import pytest

    from numerics.claims import evidence
    good = liang_lai.CLAIMS[0]
    with pytest.raises(TypeError, match="Check records"):
        evidence.Claim("x", "x", "x", "x", ("prove-sarsa",))
    with pytest.raises(ValueError, match="exists"):
        evidence.register(good)
    twin = evidence.Check(good.checks[0].name, "numeric", lambda s: None)   # another check under a taken name
    with pytest.raises(ValueError, match="two different checks"):
        evidence.register(evidence.Claim("twin", "t", "t", "t", (twin,)))
    assert "twin" not in [c.id for c in evidence.claims()]
