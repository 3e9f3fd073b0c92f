"""``icrl-verify claims``: the Xie et al. (2026) section (numerics/claims/xie2026.py).

Theorem 1 and Lemma 1 are run here as shipped; a construction file that is
*not* a fault, listed among the planted faults, turns Theorem 1's check to
failed (the check's fault half cannot pass by construction); a wrong sign in
the registered construction turns both of its checks to failed; the decision
rules are exercised on synthetic evidence (Theorem 2's and 3's experiments
are the claims run's)."""
from __future__ import annotations

import os

from numerics.claims import xie2026
from numerics.claims.evidence import FAILS, HOLDS, NOT_CHECKED, QUALIFIED, Evidence, Settings, evaluate, run_checks
from theory import algorithms, construction_file


def _claims(*ids):
    return [c for c in xie2026.CLAIMS if c.id in ids]


def _verdicts(claims):
    ev = run_checks(dict.fromkeys(n for c in claims for n in c.checks), Settings())
    return {r["id"]: r["verdict"] for r in evaluate(claims, ev)}, ev


def test_theorem_1_and_lemma_1_hold_as_shipped_and_every_planted_fault_fails():
    verdicts, ev = _verdicts(_claims("xie-theorem-1", "xie-lemma-1", "xie-special-cases"))
    assert verdicts == {"xie-theorem-1": HOLDS, "xie-lemma-1": HOLDS, "xie-special-cases": QUALIFIED}
    faults = ev["check-xie-theorem-1"].data["faults"]
    assert len(faults) == 4 and all(f["verdict"] == "fails" and f["counterexample"] for f in faults.values())
    assert ev["prove-xie-theorem-1"].data["theorem_1"]["proven"] and ev["prove-xie-lemma-1"].data["lemma_1"]["proven"]


def test_a_fault_file_that_is_the_construction_is_not_counted_as_caught(monkeypatch):
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
    monkeypatch.setattr(xie2026, "_EXAMPLES", here)
    monkeypatch.setattr(xie2026, "FAULT_FILES", {"not a fault": "construction-softmax-td.toml"})
    ev = xie2026.check_theorem_1.run(Settings())
    assert ev.passed is False and ev.data["faults"]["not a fault"]["verdict"] == "holds"


def test_a_wrong_sign_in_the_registered_construction_fails_theorem_1(monkeypatch):
    good = algorithms.get("softmax-td")
    bad = construction_file.load(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                              "examples", "softmax-faults", "sign-flipped.toml"))
    monkeypatch.setitem(algorithms._REGISTRY, "softmax-td", bad)
    xie2026._PROOFS.clear()
    try:
        verdicts, ev = _verdicts(_claims("xie-theorem-1"))
    finally:
        xie2026._PROOFS.clear()
    assert good.name == "softmax-td"
    assert verdicts["xie-theorem-1"] == FAILS
    assert ev["prove-xie-theorem-1"].passed is False and ev["check-xie-theorem-1"].passed is False


def _one(name, passed, data=None):
    return {name: Evidence(name, "experiment", passed, "summary", "", data=data or {})}


def test_theorem_3_decision_rule():
    decide = next(c for c in xie2026.CLAIMS if c.id == "xie-theorem-3").decide
    cases = [{"reading": "neu", "layers": 3, "verdict": "fails"}, {"reading": "value", "layers": 3, "verdict": "holds"}]
    verdict, why = decide(_one("train-xie-theorem-3", False, {"cases": cases}))
    assert verdict == FAILS and "neu at L = 3" in why and "value at L = 3" not in why and "readings" in why
    assert decide(_one("train-xie-theorem-3", True, {"cases": []}))[0] == QUALIFIED
    assert decide(_one("train-xie-theorem-3", None))[0] == NOT_CHECKED


def test_reading_rule_never_says_plain_holds():
    decide = next(c for c in xie2026.CLAIMS if c.id == "xie-special-cases").decide
    assert decide(_one("check-xie-special-cases", True))[0] == QUALIFIED
    assert decide(_one("check-xie-special-cases", False))[0] == FAILS
    assert decide(_one("check-xie-special-cases", None))[0] == NOT_CHECKED


def test_theorem_2_check_passes_small_and_fails_on_a_planted_geometric_violation(monkeypatch):
    monkeypatch.setattr(xie2026.SB, "DEFAULT", {"mrps": 12, "contexts": [25, 50]})
    monkeypatch.setattr(xie2026, "_BOUND", {})
    s = Settings()
    ev = xie2026.theorem_2.run(s)
    rows = {r["family"]: r for r in ev.data["families"]}
    assert ev.passed is True and all(rows[f]["tested"] for f in xie2026.BOUND_FAMILIES)
    # plant: one window of a premise family above its geometric term
    cell = xie2026._BOUND[s][0]["summary"]["holding"]["cells"][-1]
    cell["violations"]["geometric"]["pairs"] = 1
    ev = xie2026.theorem_2.run(s)
    assert ev.passed is False
    verdict, why = next(c for c in xie2026.CLAIMS if c.id == "xie-theorem-2").decide({"bound-xie-theorem-2": ev})
    assert verdict == FAILS and "geometric" in why
    # plant: a premise family whose draws do not meet the assumption is not a test of the bound
    cell["violations"]["geometric"]["pairs"] = 0
    xie2026._BOUND[s][0]["margin"]["fraction_holds"] = 0.5
    assert xie2026.theorem_2.run(s).passed is False
