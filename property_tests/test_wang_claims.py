"""``icrl-verify claims``: the Wang et al. (2025) section (numerics/claims/wang2025.py).

The cheap claims are run here; a planted fault in the single source of their
construction turns the verdict to ``fails``; the decision rules for the
training claim and the stacking question are exercised on synthetic
evidence (the training itself is the claims run's)."""
from __future__ import annotations

import json

from numerics.claims import (
    checks,  # noqa: F401  (registers the checks)
    wang2025,
)
from numerics.claims.evidence import FAILS, HOLDS, NOT_CHECKED, QUALIFIED, Evidence, Settings, evaluate, run_checks
from numerics.commands.cli import main
from theory import algorithms


def _claims(*ids):
    return [c for c in wang2025.CLAIMS if c.id in ids]


def _verdicts(claims):
    ev = run_checks(dict.fromkeys(n for c in claims for n in c.checks), Settings())
    return {r["id"]: r["verdict"] for r in evaluate(claims, ev)}, ev


def test_wang_td_and_stacking_verdicts_on_the_code_as_shipped():
    verdicts, ev = _verdicts(_claims("wang-td", "stacked"))
    assert verdicts == {"wang-td": HOLDS, "stacked": QUALIFIED}
    faults = ev["check-wang-td"].data["faults"]
    assert set(faults) == {"flipped sign in P (their Q)", "missing mask", "wrong C (C^T)"}
    assert all(not f["holds"] for f in faults.values())
    assert "refuted for expected-sarsa, q-learning" in evaluate(_claims("stacked"), ev)[0]["reasoning"]


def test_a_wrong_sign_in_their_construction_turns_wang_td_to_fails(monkeypatch):
    monkeypatch.setitem(algorithms._REGISTRY, "td-preconditioned", algorithms.with_p_sign_flipped(algorithms.get("td-preconditioned")))
    wang2025._PROOFS.clear()
    verdicts, ev = _verdicts(_claims("wang-td"))
    assert verdicts["wang-td"] == FAILS
    assert ev["prove-wang-td"].passed is False and ev["check-wang-td"].passed is False
    wang2025._PROOFS.clear()


def _train_evidence(passed, pattern, distance=(0.5, 0.4, 0.6)):
    data = {"final": {"distance": {"mean": distance[0], "ci95": list(distance[1:])}}, "pattern": pattern}
    return {"train-wang2025": Evidence("train-wang2025", "experiment", passed, "", "", data=data)}


def test_training_claim_decision_rule():
    decide = next(c for c in wang2025.CLAIMS if c.id == "wang-learned").decide
    yes = {"a": True, "b": True}
    assert decide(_train_evidence(True, yes, (0.05, 0.04, 0.06)))[0] == HOLDS
    assert decide(_train_evidence(False, yes))[0] == QUALIFIED
    verdict, why = decide(_train_evidence(False, {"a": True, "b": False}))
    assert verdict == FAILS and "b" in why
    assert decide({"train-wang2025": Evidence("train-wang2025", "experiment", None, "", "")})[0] == NOT_CHECKED


def test_claims_cli_renders_both_papers(tmp_path, capsys):
    rc = main(["claims", "--only", "lemma-c1", "stacked", "--out", str(tmp_path), "--json"])
    assert rc == 0
    doc = json.loads((tmp_path / "claims.json").read_text())
    papers = {r["id"]: r["paper"] for r in doc["claims"]}
    assert papers["lemma-c1"].startswith("Liang & Lai") and papers["stacked"].startswith("Wang, Blaser")
    text = (tmp_path / "claims.md").read_text()
    assert "## Liang & Lai (2026)" in text and "## Wang, Blaser, Daneshmand, Zhang (ICLR 2025)" in text
    assert "reproduce: `icrl-verify prove --stacked --algorithm q-learning`" in text
    capsys.readouterr()


def test_training_claim_reports_every_distance_and_says_which_one_the_threshold_reads():
    """With the distances of numerics.analysis.distances in the evidence, the
    reasoning names the function-space distance, the split, the seed average
    and the gamma phi' diagonals, and says the threshold reads the weight
    distance; the verdict is still the weight distance's."""
    import torch

    from numerics.analysis import train as T
    from numerics.analysis.distances import learned_distances

    cfg = T.LayersTrainConfig(seeds=3, eval_mrps=4, steps=8, n=10)
    gen = torch.Generator().manual_seed(0)
    P = torch.randn(3, cfg.D, cfg.D, generator=gen, dtype=torch.float64)
    V = torch.randn(3, cfg.D, cfg.D, generator=gen, dtype=torch.float64)
    dist = learned_distances(cfg, P, V, torch.ones(3, dtype=torch.float64), T.heldout_draws(cfg))
    json.dumps(dist)
    decide = next(c for c in wang2025.CLAIMS if c.id == "wang-learned").decide
    ev = _train_evidence(False, {"a": True})
    ev["train-wang2025"].data["distances"] = dist
    verdict, why = decide(ev)
    assert verdict == QUALIFIED
    for phrase in ("threshold applies to the weight distance", "function-space distance", "seeds converged",
                   "seed-averaged weights", "gamma phi' diagonals"):
        assert phrase in why, phrase
    text = wang2025.distances_summary(dist)
    assert "the threshold applies to the weight distance" in text and "function-space distance" in text
