"""Wang et al. (ICLR 2025), symbolically (their records in theory/algorithms.py,
theory/layerwise.py, ``icrl-verify prove --algorithm td-preconditioned``): one masked layer maps the prompt
carrying w to the prompt carrying w+ for symbolic d and n (TD(0) with a
preconditioner, TD(lambda) for any mask block, residual gradient,
average-reward TD with two heads); the base case; an independent
concrete-size proof and a direct two-layer check of the induction; planted
faults leave a nonzero residual; the symbolic layer evaluated at numbers
equals the numeric block (numerics.core.block, one forward for every spec)."""
from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import pytest
import sympy as sp
import torch

from numerics.commands.cli import main
from numerics.core.block import forward
from numerics.core.tolerances import SYMBOLIC_NUMERIC_RTOL
from numerics.core.constructions import preconditioned_weights
from theory import algorithms
from theory import layerwise as WP
from theory.errors import InputError
from theory.layout import WANG_LAYOUT
from theory.spec import BlockSpec
from theory.symbols import lam

NAMES = tuple(a for a in algorithms.names("mrp") if algorithms.get(a).spec.kind == "linear")   # Wang et al.'s


@functools.lru_cache(maxsize=None)
def proved(algorithm):
    """``theory.WP.prove`` once per algorithm (the general proof, the
    base case, the concrete sizes, the two-layer stack, the planted faults)."""
    return WP.prove(algorithm)


@pytest.mark.parametrize("algorithm", NAMES)
def test_wang_one_layer_identity_general_d_n(algorithm):
    res = proved(algorithm)
    assert res["layer"] and res["general"] and res["residual"] is None


@pytest.mark.parametrize("algorithm", NAMES)
def test_wang_base_case_prompt_carries_zero(algorithm):
    assert proved(algorithm)["base_case"]


@pytest.mark.parametrize("algorithm", NAMES)
def test_wang_planted_faults_are_refused(algorithm):
    """Every planted fault leaves a nonzero residual in the general proof and
    in the concrete one (d = 2, n = 2, C a generic symbolic matrix)."""
    rows = proved(algorithm)["faults"]
    assert len(rows) >= 6
    for r in rows:
        assert r["general_refused"] and r["concrete_refused"], r


@pytest.mark.parametrize("algorithm", NAMES)
def test_wang_one_layer_identity_concrete_and_two_layers(algorithm):
    """Every entry a symbol at d <= 2, n <= 3; two untied layers from the
    prompt as built equal two loop steps (the induction at one size)."""
    res = proved(algorithm)
    assert [(c["d"], c["n"]) for c in res["concrete"]] == list(WP.CONCRETE_SIZES)
    assert all(c["ok"] for c in res["concrete"]) and res["stack"]["ok"]


def test_wang_general_proof_refuses_a_flipped_sign_directly():
    """The general proof alone, without the concrete sizes: a flipped sign and
    a missing mask leave a residual."""
    assert not WP.prove_layer("td-preconditioned", con=algorithms.with_p_sign_flipped(algorithms.get("td-preconditioned"))).ok
    assert not WP.prove_layer("td-preconditioned", mask="none").ok


def test_wang_missing_mask_is_invisible_only_at_w_zero():
    """Without the mask the residual is proportional to the query's carried
    entry -w.phi_q: zero at w = 0 (the first layer), not after."""
    r = WP.concrete_layer_residual("td-preconditioned", 1, 1, mask="none")
    assert not WP.is_zero_matrix(r)
    assert WP.is_zero_matrix(r.subs(sp.Symbol("w_0", real=True), 0))


@pytest.mark.parametrize("algorithm", NAMES)
def test_wang_symbolic_layer_equals_numeric_block(algorithm, rng):
    """The concrete symbolic layer at random numbers equals one layer of
    numerics.core.block.forward on the record's specification, with the
    tensors of numerics.core.wang.construction (the same tables)."""
    record = algorithms.get(algorithm)
    dim, cols = 2, 3
    cc = WP.concrete_case(dim, cols)
    Z = WP.concrete_prompt(record, cc, cc.w)
    out = WP.concrete_layer(record, Z, cc.C, "lambda" if record.uses_lambda else "diag")
    syms = sorted(out.free_symbols | Z.free_symbols, key=lambda s: s.name)
    vals = {s: float(v) for s, v in zip(syms, rng.numpy.uniform(-1, 1, len(syms)))}
    vals.update({lam: 0.6, sp.Symbol("gamma", real=True): 0.9})
    Zn = torch.tensor(np.array(Z.subs(vals), dtype=float))[None]
    want = np.array(out.subs(vals), dtype=float)
    C = torch.tensor(np.array(cc.C.subs(vals), dtype=float))
    P, V = preconditioned_weights(record, C)
    got = forward(record.spec_at(1, True, lam_value=0.6), P, V, Zn, dim)[0].numpy()
    assert np.abs(got - want).max() <= SYMBOLIC_NUMERIC_RTOL * max(1.0, np.abs(want).max())


def test_wang_records_validate_their_tables():
    td, avg = algorithms.get("td-preconditioned"), algorithms.get("avg-reward")
    with pytest.raises(ValueError, match="two d-blocks"):
        dataclasses.replace(td, construction=dataclasses.replace(td.construction, p=((("r", "r"), 1),)))
    with pytest.raises(ValueError, match="V tables"):
        dataclasses.replace(avg, construction=dataclasses.replace(avg.construction, v=avg.construction.v[:1]))
    with pytest.raises(ValueError, match="names 'nowhere'"):
        dataclasses.replace(td, construction=dataclasses.replace(td.construction, p=((("phi", "nowhere"), 1),)))
    with pytest.raises(ValueError, match="teacher must be one of"):
        dataclasses.replace(td, rule=algorithms.rules.actor_critic)
    with pytest.raises(InputError) as e:
        algorithms.get("no-such-record")
    assert e.value.field == "algorithm"


def test_spec_decay_and_heads_validation():
    with pytest.raises(ValueError, match="decay"):
        BlockSpec(WANG_LAYOUT, decay=0.5)
    with pytest.raises(ValueError, match="heads"):
        BlockSpec(WANG_LAYOUT, heads=("softmax",))
    spec = algorithms.get("avg-reward").spec_at(3, tied=False)
    assert spec.weight_shape(2) == (3, 6, 6) and spec.value_shape(2) == (3, 2, 6, 6)
    assert not spec.lemma_c1 and algorithms.get("td-lambda").spec.has_decay and not algorithms.get("td-preconditioned").spec.has_decay


def test_induction_statement_names_every_L():
    assert "induction" in WP.INDUCTION and "every L" in WP.INDUCTION and "w_L.phi_q" in WP.INDUCTION


# ---- the command ----------------------------------------------------------------------

def _check_cli_result(r, report):
    assert r["general"] and r["faults_refused"] and r["base_case"] and r["stack"]["ok"]
    text = report.read_text()
    assert "symbolic $d$, $n$" in text and "Reproduce: `icrl-verify prove --algorithm" in text
    assert "| refused | refused |" in text and "ACCEPTED" not in text


def test_prove_cli_td_preconditioned(tmp_path, capsys):
    rc = main(["prove", "--algorithm", "td-preconditioned", "--out", str(tmp_path), "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res["algorithm"] == "td-preconditioned" and res["data"] == "mrp"
    _check_cli_result(res, tmp_path / "td-preconditioned.md")


def test_prove_cli_deprecated_layout_alias(tmp_path, capsys):
    """``--layout wang2025`` (deprecated, one release): no --algorithm and ``--algorithm td`` both mean
    td-preconditioned."""
    for extra in ([], ["--algorithm", "td"]):
        rc = main(["prove", "--layout", "wang2025", *extra, "--out", str(tmp_path), "--json"])
        out, err = capsys.readouterr()
        res = json.loads(out.strip().splitlines()[-1])
        assert rc == 0 and res["algorithm"] == "td-preconditioned"


@pytest.mark.slow
def test_prove_cli_wang_layout_all(tmp_path, capsys):
    rc = main(["prove", "--layout", "wang2025", "--algorithm", "all", "--out", str(tmp_path), "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res["all_proven"] is True
    assert [r["algorithm"] for r in res["algorithms"]] == list(NAMES)
    for r in res["algorithms"]:
        _check_cli_result(r, tmp_path / f"{r['algorithm']}.md")


def test_prove_cli_refuses_a_planted_fault(tmp_path, capsys, monkeypatch):
    """A flipped sign in the single source of the construction: exit 1 with the residual and an exact
    counterexample."""
    monkeypatch.setitem(algorithms._REGISTRY, "td-preconditioned",
                        algorithms.with_p_sign_flipped(algorithms.get("td-preconditioned")))
    rc = main(["prove", "--algorithm", "td-preconditioned", "--out", str(tmp_path), "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and res["general"] is False and res["residual"]
    c = res["counterexample"]
    assert c["block"] != c["teacher"] and c["d"] >= 1 and "w_0" in c["values"]


@pytest.mark.parametrize("argv, field", [
    (["--layout", "wang2025", "--algorithm", "sarsa"], "algorithm"),
    (["--algorithm", "td-preconditioned", "--weights", "w.json"], "weights"),
    (["--layout", "wang2025", "--stacked"], "stacked"),
    (["--stacked", "--algorithm", "actor-critic"], "algorithm"),
])
def test_prove_cli_bad_input(argv, field, tmp_path, capsys):
    rc = main(["prove", *argv, "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and f"error: {field}:" in err
    assert list(tmp_path.iterdir()) == []
