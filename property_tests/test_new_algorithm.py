"""Adding an algorithm is data plus one teacher function (issue 10).

This file defines an algorithm the package does not ship, SARSA with a fixed
reward baseline subtracted (``delta_i = r_{i+1} - b + gamma w.phi+_i -
w.phi_i``), registers it from here, and runs ``check``, ``prove`` and a small
``train`` on it through the public API and the command line, with no edit to
any package file.  Its construction differs from SARSA's: the prompt gains a
constant context row (``bias``) and ``P12`` an entry ``-b`` from that row
into the constant ``one`` of the parameter column.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import sympy as sp
import torch

from numerics.analysis.check import run_check
from numerics.analysis.train import TrainConfig, train_block
from numerics.commands.cli import main
from numerics.core.distributions import MDPDistribution
from numerics.core.tolerances import STRUCTURE_RECOVERY_RTOL
from theory import algorithms
from theory.constructions import Construction
from theory.layout import Layout
from theory.prove import prove
from theory.spec import BlockSpec
from theory.symbols import alpha, gamma

BASELINE = sp.Rational(1, 2)


def baseline_sarsa_rule(t, theta, hp, ops):
    """The one teacher function: semi-gradient SARSA on ``r - b``."""
    w = theta["w"]
    delta = t.r - hp["baseline"] * t.one + t.gamma * ops.dot(w, t.phi_next) - ops.dot(w, t.phi)
    return {"w": (hp["alpha"], ops.scale(delta, t.phi))}


LAYOUT = Layout(name="value-bias", context=(("phi", "d"), ("gphi_next", "d"), ("r", 1), ("bias", 1)),
                params=(("one", 1), ("w", "d")))
RECORD = algorithms.Algorithm(
    name="sarsa-baseline", spec=BlockSpec(LAYOUT),
    construction=Construction(p=((("phi", "w"), sp.Integer(-1)), (("gphi_next", "w"), sp.Integer(1)),
                                    (("r", "one"), sp.Integer(1)), (("bias", "one"), -BASELINE)),
                              v=((("w", "phi"), alpha),)),
    context=(("phi", sp.Integer(1), "phi"), ("gphi_next", gamma, "phi_next"), ("r", sp.Integer(1), "r"),
             ("bias", sp.Integer(1), "one")),
    rule=baseline_sarsa_rule, constants=(("baseline", BASELINE),), theorem="SARSA with a reward baseline (test-defined)",
    statement="w + (alpha/n) sum_i (r_{i+1} - 1/2 + gamma w.phi+_i - w.phi_i) phi_i")


@pytest.fixture
def registered():
    algorithms.register(RECORD)
    yield RECORD
    algorithms.unregister(RECORD.name)


def wrong_sign(record):
    """The same algorithm with the baseline entry of P12 of the wrong sign."""
    con = record.construction
    p12 = tuple((k, -v) if k == ("bias", "one") else (k, v) for k, v in con.p12)
    return dataclasses.replace(record, construction=dataclasses.replace(con, p=p12))


def test_new_algorithm_check_holds_and_a_wrong_construction_fails(registered):
    dist = MDPDistribution(states=3, actions=2)
    res = run_check(registered, dist, prompts=200, mdps=20, n=5, seed=1)
    assert res.holds and res.max_abs_error <= res.tolerance
    bad = run_check(wrong_sign(registered), dist, prompts=200, mdps=20, n=5, seed=1)
    assert not bad.holds and bad.counterexample is not None


def test_new_algorithm_prove_every_d_and_n(registered):
    res = prove(registered)
    assert res["general"] is True and all(c["ok"] for c in res["concrete"])
    bad = prove(wrong_sign(registered))
    assert bad["general"] is False and bad["residual"]


def test_new_algorithm_through_the_command_line(registered, tmp_path, capsys):
    rc = main(["check", "--algorithm", "sarsa-baseline", "--states", "3", "--actions", "2", "--prompts", "100",
               "--mdps", "10", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["holds"] is True
    rc = main(["prove", "--algorithm", "sarsa-baseline", "--out", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["general"] is True
    assert (tmp_path / "sarsa-baseline.md").read_text().startswith("# Proof: sarsa-baseline")


def test_new_algorithm_trains_towards_its_construction(registered):
    """A small teacher-mimicking run on the new algorithm's teacher ends near
    its own construction (not SARSA's: the baseline entry must be learned)."""
    cfg = TrainConfig(algorithm="sarsa-baseline", states=2, actions=2, n=5, mdps=640, frames=20, batch_mdps=32,
                      lr=3e-2, lr_every=32, lr_decay=0.85, eval_mdps=16)
    res = train_block(cfg)
    assert res["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL
    P12 = res["model"].P12.detach()
    m = LAYOUT.m(cfg.d)
    c = res["scale_c"]
    assert abs(float(P12[m - 1, 0]) / c - float(-BASELINE)) < 0.05     # the learned -b, up to the scale c


def test_registry_refuses_duplicates_and_unknown_names(registered):
    with pytest.raises(ValueError, match="exists"):
        algorithms.register(RECORD)
    with pytest.raises(ValueError, match="paper"):
        algorithms.unregister("sarsa")
    with pytest.raises(algorithms.InputError, match="algorithm"):
        algorithms.get("no-such-algorithm")
    assert torch.is_tensor(torch.zeros(1))


# ----------------------------------------------------------- records by value (issue 20)
SWEEP = """
name = "baseline-cells"
command = "train"
retries = 0
[options]
algorithm = "sarsa-baseline"
states = 2
actions = 2
context = 5
mdps = 8
frames = 10
batch-mdps = 4
eval-mdps = 4
[grid]
seed = [0, 1]
"""


def test_new_algorithm_travels_by_value_to_spawned_seeds_and_dask_cells(registered, tmp_path, capsys):
    """The record registered here is unknown to a fresh process; ``train
    --seeds 2`` (two spawned worker processes) and a two-worker sweep (Dask
    LocalCluster, processes) must receive it by value, and give the numbers
    of the same seeds trained here."""
    from numerics.analysis import sweep as engine
    from numerics.analysis.seeds import run_seeds, seed_configs
    from numerics.commands import cells
    from numerics.commands.sweep import build_cells

    small = ["--states", "2", "--actions", "2", "--context", "5", "--mdps", "8", "--frames", "10", "--batch-mdps", "4",
             "--eval-mdps", "4"]
    rc = main(["train", "--algorithm", "sarsa-baseline", *small, "--seeds", "2", "--workers", "2",
               "--out", str(tmp_path / "train"), "--report-dir", str(tmp_path / "rep"), "--json"])
    cap = capsys.readouterr()
    assert rc in (0, 1), cap.err          # 1: ran, but so small a run does not recover the construction
    assert len(json.loads(cap.out.strip().splitlines()[-1])["seeds"]) == 2
    cfg = TrainConfig(algorithm="sarsa-baseline", states=2, actions=2, n=5, mdps=8, frames=10, batch_mdps=4,
                      eval_mdps=4)
    here = run_seeds("minibatch", seed_configs(cfg, 2), out_dirs=[None, None], workers=1)
    there = run_seeds("minibatch", seed_configs(cfg, 2), out_dirs=[None, None], workers=2)
    for a, b in zip(here, there):
        assert a["curve"] == b["curve"] and a["final_loss"] == b["final_loss"]
        assert torch.equal(a["model"].P12, b["model"].P12)
    # The record itself (never registered) also travels: a config holding it trains in a worker.
    unregistered = dataclasses.replace(RECORD, name="sarsa-baseline-unregistered")
    own = run_seeds("minibatch", seed_configs(dataclasses.replace(cfg, algorithm=unregistered), 2),
                    out_dirs=[None, None], workers=2)
    assert [r["curve"] for r in own] == [r["curve"] for r in here]

    file = tmp_path / "cells.toml"
    file.write_text(SWEEP)
    rc = main(["sweep", str(file), "--workers", "2", "--out", str(tmp_path / "runs"),
               "--report-dir", str(tmp_path / "sweeps"), "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = json.loads(cap.out.strip().splitlines()[-1])
    assert res["computed"] == 2 and res["failed"] == {}, res
    spec = engine.load_sweep_file(str(file))
    built = build_cells(spec)
    serial = engine.run_serial(built, cells.run_cell, spec.command)
    for c, ref in zip(built, serial):
        doc = engine.read_done(str(tmp_path / "runs" / "baseline-cells"), c.key)
        assert doc is not None and doc["result"] == json.loads(json.dumps(ref["result"]))


def test_a_record_whose_module_a_worker_cannot_import_still_travels():
    """A rule defined in a module the worker cannot import (a notebook, a
    script's own module) is pickled by value: loading needs no import."""
    import sys
    import types

    from numerics.io import records

    mod = types.ModuleType("icrl_user_rules_not_on_any_path")
    exec("def rule(t, theta, hp, ops):\n    return {'w': (hp['alpha'], ops.scale(t.r, t.phi))}\n", mod.__dict__)
    sys.modules[mod.__name__] = mod
    try:
        record = dataclasses.replace(RECORD, name="user-module-rule", rule=mod.rule)
        data = records.dumps((record,), [record])
    finally:
        del sys.modules[mod.__name__]
    (back,) = records.loads(data)           # the module is gone: by reference this would not load
    assert back.name == "user-module-rule" and back.rule.__code__.co_code == mod.rule.__code__.co_code
    assert back.construction == RECORD.construction and back.constants == RECORD.constants
    import pickle
    with pytest.raises(pickle.PicklingError):   # plain pickle cannot send it at all
        pickle.dumps(record)


def test_every_paper_record_and_the_test_record_round_trip_through_pickle():
    """Records are frozen data plus a module-level rule: plain pickle and
    :func:`numerics.io.records.dumps` both give back an equal record."""
    import pickle

    from numerics.io import records
    for record in algorithms.paper():
        assert pickle.loads(pickle.dumps(record)) == record
        assert records.loads(records.dumps(record, [record])) == record      # ours: the rule by reference
    assert pickle.loads(pickle.dumps(RECORD)) == RECORD
    back = records.loads(records.dumps(RECORD, [RECORD]))                     # the test's rule by value: a copy
    assert back.rule is not RECORD.rule and back.rule.__code__.co_code == RECORD.rule.__code__.co_code
    assert dataclasses.replace(back, rule=RECORD.rule) == RECORD
    cfg = TrainConfig(algorithm=RECORD, states=2, actions=2, n=5)
    assert cfg.as_dict()["algorithm"] == "sarsa-baseline" and TrainConfig(states=2).with_record().record.name == "sarsa"
