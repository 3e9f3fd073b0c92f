"""The exact protocol beside the minibatch one (issue 14):
``numerics.analysis.protocols``, the rounds-to-level and paired-difference
helpers of ``numerics.analysis.control``, ``icrl-verify protocols``, and the
claims' decision rules for structure recovery and near-oracle control."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from numerics.analysis import exact as E
from numerics.analysis.control import paired_difference, rounds_to_level
from numerics.analysis.protocols import compare_protocols, equivalence
from numerics.analysis.train import TrainConfig, train_block
from numerics.claims import checks  # noqa: F401  (registers the checks)
from numerics.claims import liang_lai
from numerics.claims.evidence import FAILS, HOLDS, NOT_CHECKED, QUALIFIED, Evidence
from numerics.commands.cli import main
from numerics.core.models import build_model
from numerics.core.tolerances import CONTROL_EQUIVALENCE_ATOL, FEW_OPS_ATOL

TINY = dict(states=3, actions=2, n=5, eval_mdps=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny exact run and a tiny minibatch run (3 states, 2 actions, d = 6),
    both saved as model files."""
    root = tmp_path_factory.mktemp("protocols")
    ecfg = E.paper_config(mdps=40, frames=50, lr=1e-2, **TINY)
    mcfg = TrainConfig(mdps=320, frames=20, batch_mdps=32, lr=3e-2, lr_every=32, lr_decay=0.85, **TINY)
    ex = E.train_exact_block(ecfg, out_dir=str(root / "exact"))
    mb = dict(train_block(mcfg, out_dir=str(root / "mb")), protocol="minibatch")
    return dict(exact=(ex, ecfg), minibatch=(mb, mcfg), root=root)


def _compare(trained, models=None, **kw):
    models = models or {k: trained[k][0]["model"] for k in ("exact", "minibatch")}
    cfgs = {k: trained[k][1] for k in ("exact", "minibatch")}
    return compare_protocols(models, cfgs, seeds=3, mdps=6, rounds=40, eval_frames=20, eval_mdps=4, **kw)


def test_compare_protocols_reports_and_decides_consistently(trained):
    res = _compare(trained)
    M = res["control"]["methods"]
    assert set(M) == {"constructed", "exact", "minibatch", "teacher", "oracle", "uniform"}
    assert res["control"]["reproduces_teacher"]
    for k in ("exact", "minibatch"):
        assert res["structure"][k]["distance_to_manifold"] == pytest.approx(trained[k][0]["distance_to_manifold"],
                                                                            rel=1e-12)
    last = res["exact_minus_minibatch"][40]
    assert res["agree_control"] == (-CONTROL_EQUIVALENCE_ATOL <= last["ci95"][0] and last["ci95"][1] <= CONTROL_EQUIVALENCE_ATOL)
    assert res["agree"] == (res["agree_control"] and res["agree_structure"])
    assert res["agree_control"] == (res["control_equivalence"] == "equivalent")
    assert res["rounds_to_level"]["oracle"]["mean_curve"] == 0
    assert res["rounds_to_level"]["uniform"]["mean_curve"] is None


def test_an_untrained_block_does_not_agree(trained):
    """The planted case: a block with zero weights (the identity map
    w -> w, it never improves its policy) in the place of the minibatch
    block fails both the structure and the control comparison."""
    d = trained["exact"][1].d
    zero = build_model("lsa", "sarsa", d, 5, init=False)
    res = _compare(trained, models={"exact": trained["exact"][0]["model"], "minibatch": zero})
    assert not res["agree_structure"] and not res["agree"] and res["differ"]


def test_equivalence_has_three_outcomes():
    assert equivalence([-0.01, 0.015], 0.02) == "equivalent"
    assert equivalence([0.021, 0.05], 0.02) == "different" and equivalence([-0.05, -0.03], 0.02) == "different"
    assert equivalence([-0.03, 0.01], 0.02) == "inconclusive" and equivalence([-0.03, 0.03], 0.02) == "inconclusive"


def _fake(per_seed: dict) -> dict:
    return {"per_seed": {k: np.asarray(v, dtype=float).tolist() for k, v in per_seed.items()}}


def test_rounds_to_level_and_paired_difference_on_known_curves():
    a = [[0.0, 0.5, 0.95, 0.97, 0.99], [0.0, 0.92, 0.93, 0.94, 0.96], [0.0, 0.1, 0.2, 0.91, 0.95]]
    b = [[0.0, 0.1, 0.2, 0.3, 0.4]] * 3
    r = rounds_to_level(_fake({"a": a, "b": b}), 0.9)
    assert r["a"]["per_seed"] == [2, 1, 3] and r["a"]["seeds_reached"] == 3
    assert r["a"]["mean"] == pytest.approx(2.0) and r["a"]["ci95"][0] < 2.0 < r["a"]["ci95"][1]
    assert r["a"]["mean_curve"] == 3                        # mean curve: 0, .507, .693, .94, .967
    assert r["b"]["mean_curve"] is None and r["b"]["seeds_reached"] == 0 and r["b"]["mean"] is None
    assert r["b"]["late_change"] == pytest.approx(0.1)
    d = paired_difference(_fake({"a": a, "b": b}), "a", "a", [1, 4])
    assert all(abs(v["mean"]) <= FEW_OPS_ATOL and v["ci95"] == [0.0, 0.0] for v in d.values())


def test_protocols_cli_writes_report_and_bad_input_exits_2(trained, tmp_path, capsys):
    root = trained["root"]
    argv = ["protocols", "--exact", str(root / "exact" / "lsa.npz"), "--minibatch", str(root / "mb" / "lsa.npz"),
            "--seeds", "2", "--mdps", "4", "--rounds", "15", "--eval-frames", "10", "--out", str(tmp_path), "--json"]
    rc = main(argv)
    out = capsys.readouterr().out.strip().splitlines()
    res = json.loads(out[-1])
    assert rc == (0 if res["agree"] else 1)
    md = (tmp_path / "protocols.md").read_text()
    assert "Reproduce: `icrl-verify protocols" in md and "rounds to 0.9 of the oracle" in md
    doc = json.loads((tmp_path / "protocols.json").read_text())
    assert "per_seed" not in doc["control"] and doc["control"]["curve_rounds"] == list(range(16))
    assert len(doc["control"]["methods"]["teacher"]["curve"]) == 16
    rc = main(["protocols", "--exact", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("icrl-verify: error: exact:")
    assert not (tmp_path / "x").exists()
    rc = main([*argv[:-3], "--seeds", "1", "--out", str(tmp_path / "y")])
    assert rc == 2 and not (tmp_path / "y").exists()


def _ev(name, passed, data):
    return Evidence(name, "experiment", passed, "", "", data=data)


def _claim(cid):
    return next(c for c in liang_lai.CLAIMS if c.id == cid)


def _control_data(trained_reach, final=0.95):
    return dict(trained="exact", level=0.9, rounds=1000, context=20, gap=0.001,
                rounds_to_level={"exact": trained_reach, "teacher": trained_reach, "minibatch": 400, "constructed": 400},
                final={"exact": {"final_normalized_return": final}, "teacher": {"final_normalized_return": final}})


def test_control_claim_is_judged_against_near_oracle_wording():
    decide = _claim("control").decide
    gym = _ev("control-gymnasium", True, {})
    assert decide({"control-section41": _ev("control-section41", True, _control_data(400)), "control-gymnasium": gym})[0] == HOLDS
    v, why = decide({"control-section41": _ev("control-section41", True, _control_data(None, 0.8)),
                     "control-gymnasium": gym})
    assert v == QUALIFIED and "not reached within 1000 rounds" in why
    assert decide({"control-section41": _ev("control-section41", False, _control_data(400)),
                   "control-gymnasium": gym})[0] == FAILS
    assert decide({"control-section41": _ev("control-section41", None, {}), "control-gymnasium": gym})[0] == NOT_CHECKED


def test_structure_claim_needs_the_protocols_to_agree():
    decide = _claim("structure-recovery").decide
    st = {k: {"distance_to_manifold": 1e-5} for k in ("exact", "minibatch")}
    tr = {"exact": {"mdps": 10_000, "frames": 1_000}}
    train = _ev("train-section41", True, dict(protocol="exact", distance_to_manifold=1e-5))
    data = lambda eq: dict(structure=st, training=tr, agree_structure=True, control_equivalence=eq,
                           agree=eq == "equivalent")
    agree = _ev("protocols", True, data("equivalent"))
    assert decide({"train-section41": train, "protocols": agree})[0] == HOLDS
    v, why = decide({"train-section41": train, "protocols": _ev("protocols", False, data("different"))})
    assert v == QUALIFIED and "differs" in why
    v, why = decide({"train-section41": train, "protocols": _ev("protocols", True, data("inconclusive"))})
    assert v == QUALIFIED and "not established" in why
    bad = _ev("train-section41", False, dict(protocol="exact", distance_to_manifold=0.3))
    assert decide({"train-section41": bad, "protocols": agree})[0] == FAILS


def test_exact_training_result_has_train_block_keys(trained):
    ex, _ = trained["exact"]
    keys = {"final_loss", "identity_loss", "distance_to_manifold", "scale_c", "weights", "model", "curve", "seconds",
            "total_seconds", "frames_per_s", "mdp_frames_per_s", "config", "recovery"}
    assert keys <= set(ex) and ex["protocol"] == "paper"
    assert torch.equal(ex["model"].full_weights()[0], ex["model"].full_weights()[0])
