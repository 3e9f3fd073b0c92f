"""The softmax layer kind and Xie et al.'s (2026) records (issue 21): the
specification accepts what the two forms need and nothing more, the records
carry Theorem 1's tables, and the record validation keeps refusing what it
refused (a softmax block with a batch-TD teacher, a linear block with the
softmax teacher)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import sympy as sp

from theory import algorithms as A
from theory import rules
from theory.layout import WANG_LAYOUT, XIE_LAYOUT
from theory.spec import BlockSpec
from theory.symbols import alpha, gamma


def test_the_two_records_hold_theorem_1s_tables():
    two, one = A.get("softmax-td"), A.get("softmax-td-shift")
    assert [r.name for r in A.softmax()] == ["softmax-td", "softmax-td-shift"]
    assert (two.form, one.form) == ("two-head", "one-head")
    for r in (two, one):
        assert r.data == "mrp" and r.spec.kind == "softmax" and r.layout is XIE_LAYOUT and r.spec.mask == "context"
        assert r.rule is rules.weighted_softmax_td and r.direction == "kernel" and not r.centered
        assert r.construction.p == ((("phi", "phi"), 1),) and not r.construction.preconditioned
        assert r.construction.v[0] == ((("current", "r"), alpha), (("current", "target"), alpha),
                                       (("current", "current"), -alpha))
        assert r.statement == "v_{l+1}(s_j) = v_l(s_j) + alpha sum_k delta_k K(s_{k-1}, s_j)"
        assert "Xie" in r.theorem and "2605.07333" in r.theorem and r.steps == ("alpha",)
        assert r.carried == "current" and r.readout_sign == 1 and XIE_LAYOUT.D(5) == 8
    assert two.construction.v[1] == ((("target", "r"), gamma * alpha), (("target", "target"), gamma * alpha),
                                     (("target", "current"), -gamma * alpha))
    assert two.spec.heads == (None, "successor") and two.spec.post is None
    assert one.spec.heads == (None,) and one.spec.post == "token-shift" and one.spec.shift == 1
    assert "Theorem 1" in two.theorem and "Lemma 1" in one.theorem


@pytest.mark.parametrize("kw, message", [
    (dict(kind="linear", heads=(None, "successor")), "head mixes"),
    (dict(kind="softmax", heads=("running-mean",)), "head mixes"),
    (dict(kind="linear", post="token-shift"), "softmax kind"),
    (dict(kind="linear", shift=2), "softmax kind"),
    (dict(kind="softmax", post="token-swap"), "post map"),
    (dict(kind="softmax", shift=-1), "shift"),
    (dict(kind="softmax", mask="context", decay=sp.Rational(1, 2)), "decay"),
    (dict(kind="softmax", writes=("current",)), "writes"),
    (dict(kind="attention"), "layer kind"),
])
def test_the_spec_refuses_what_a_kind_does_not_have(kw, message):
    with pytest.raises(ValueError, match=message):
        BlockSpec(XIE_LAYOUT, **kw)


def test_the_token_shift_needs_its_rows():
    with pytest.raises(ValueError, match="target"):
        BlockSpec(WANG_LAYOUT, kind="softmax", post="token-shift")
    assert BlockSpec(XIE_LAYOUT, kind="softmax", post="token-shift", shift=0).shift == 0


def test_record_validation_keeps_the_kinds_and_their_teachers_apart():
    sm, wang = A.get("softmax-td"), A.get("td-preconditioned")
    with pytest.raises(ValueError, match="teacher must be one of weighted-softmax-td"):
        replace(sm, rule=rules.semi_gradient)
    with pytest.raises(ValueError, match="teacher must be one of semi-gradient"):
        replace(wang, rule=rules.weighted_softmax_td)
    with pytest.raises(ValueError, match="plain tables"):
        replace(sm, construction=replace(sm.construction, preconditioned=True))
    with pytest.raises(ValueError, match="start at zero"):
        replace(sm, context=(("phi", 1, "phi"), ("r", 1, "r"), ("target", 1, "zero"), ("current", 1, "r")))
    with pytest.raises(ValueError, match="1-blocks"):
        replace(sm, construction=replace(sm.construction, v=(((("phi", "phi"), 1),), sm.construction.v[1])))
    with pytest.raises(ValueError, match="step is alpha"):
        replace(sm, steps=("C",))
    with pytest.raises(ValueError, match="Lemma C.1"):           # no softmax mdp record
        replace(sm, data="mdp")
    # the planted faults of issue 21 are records the validation accepts (the check refuses them)
    faults = (sm.construction.flipped(("current", "target"), table="v"),
              replace(sm.construction, p=sm.construction.p + ((("r", "r"), sp.Integer(1)),)))
    for con in faults:
        assert replace(sm, construction=con).construction == con
    assert replace(sm, spec=replace(sm.spec, mask="none")).spec.mask == "none"
    assert replace(sm, spec=replace(sm.spec, shift=2)).spec.shift == 2


def test_train_refuses_the_softmax_kind_in_one_line(capsys, tmp_path):
    """(prove proves the softmax kind: property_tests/test_softmax_proof_cli.py.)"""
    from numerics.commands.cli import main
    for argv in (["train", "--algorithm", "softmax-td-shift", "--out", str(tmp_path / "t")],):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "softmax" in err and "error: algorithm" in err
