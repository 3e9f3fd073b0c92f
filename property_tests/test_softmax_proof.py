"""Theorem 1 and Lemma 1 of Xie et al. (2026) proven in SymPy (theory/softmax.py, issue 21).

Each proof part is zero for the construction, and each has a test that feeds
it something wrong and asserts a nonzero residual: the planted faults (the
sign in the [1, 1, -1] row, the mask dropped, the shift off by one, A not
diag(I, 0)) are refused by the general proof and by an exact counterexample
that is replayed here with its own arithmetic.
"""
from __future__ import annotations

import glob

import pytest
import sympy as sp

from theory import algorithms, construction_file
from theory import softmax as SM
from theory.symbolic import residual_of
from theory.symbols import gamma

FAULT_FILES = sorted(glob.glob("examples/softmax-faults/*.toml"))


# ---- general proofs (every d, n) -------------------------------------------------------------

def test_theorem_1_scores_are_the_feature_inner_products_every_d():
    assert SM.prove_scores() == 0
    res = SM.prove_scores("A")                       # A = I: the memory rows enter the scores
    assert res != 0 and "r.T*r" in str(res)


@pytest.mark.parametrize("form", SM.FORMS)
def test_theorem_1_one_layer_is_one_iteration_every_d_n(form):
    assert SM.prove_layer(form) == 0


@pytest.mark.parametrize("form", SM.FORMS)
@pytest.mark.parametrize("fault", ["sign", "mask", "shift"])
def test_theorem_1_block_proof_refuses_faults(form, fault):
    assert SM.prove_layer(form, fault) != 0


def test_theorem_1_masked_column_softmax_is_the_kernel_every_n():
    assert SM.prove_softmax_sum() == 0
    assert SM.prove_softmax_sum(mask=False) != 0     # the query column as a key
    assert SM.prove_softmax_sum(sign=+1) != 0        # r + t + c is not the TD error


def test_theorem_1_reference_sum_index_matters():
    """The normal form does not hide a misaligned kernel (K(s_k, s_j) instead of K(s_{k-1}, s_j))."""
    q = SM.Entrywise
    wrong = sp.Sum((q.r[q.k] + gamma * q.v[q.k] - q.v[q.k - 1]) * q.E[q.k, q.j]
                   / sp.Sum(q.E[q.m - 1, q.j], (q.m, 1, SM.n)), (q.k, 1, SM.n))
    assert SM._normal(SM.block_sum(q.j) - wrong) != 0


def test_theorem_1_shift_every_n():
    assert all(v == 0 for v in SM.prove_shift().values())
    assert SM.prove_shift(offset=2)["context"] != 0
    assert SM.prove_shift(offset=0)["context"] != 0


def test_normal_form_refuses_other_ranges():
    with pytest.raises(ValueError, match="outside the normal form"):
        SM._normal(sp.Sum(SM.Entrywise.E[SM.Entrywise.i, 0], (SM.Entrywise.i, 2, SM.n)))


def test_lemma_1_one_head_with_token_shift_equals_two_heads_every_d_n():
    assert SM.prove_lemma_1() == 0
    off = SM.prove_lemma_1(general_prompt=True)      # an arbitrary target row: exactly gamma c Pi - t
    s = SM.Blocks()
    assert off != 0 and residual_of(off[2, 0] - (gamma * s.c * s.J + gamma * s.cq * s.e - s.t)) == 0
    assert all(off[i, j] == 0 for i in range(4) for j in range(2) if (i, j) != (2, 0))


def test_base_case_z0_carries_zero():
    assert SM.prove_base_case() == 0


# ---- concrete sizes (explicit matrices, SymPy's exp) -------------------------------------------

@pytest.mark.parametrize("form", SM.FORMS)
@pytest.mark.parametrize("dim,cols,layers", [(1, 2, 3), (2, 3, 1), (3, 2, 2)])
def test_theorem_1_concrete_untied_layers(form, dim, cols, layers):
    assert SM.concrete_ok(dim, cols, layers, form)


@pytest.mark.slow
@pytest.mark.parametrize("form", SM.FORMS)
@pytest.mark.parametrize("dim,cols,layers", SM.CONCRETE_SLOW)
def test_theorem_1_concrete_slow(form, dim, cols, layers):
    assert SM.concrete_ok(dim, cols, layers, form)


@pytest.mark.parametrize("fault", ["sign", "mask", "shift", "A"])
def test_concrete_check_can_fail(fault):
    """Two layers from Z_0 (the first leaves v != 0, so the sign shows): the residual is not zero."""
    build, opts = SM._fault_layer(fault)
    res = SM.concrete_residual(1, 2, 2, "two-head", weights=lambda a: build(1, "two-head", a, gamma), **opts)
    assert not all(SM.is_zero(e) for e in res)


def test_is_zero_is_exact():
    x, y = sp.symbols("x y", real=True)
    assert SM.is_zero(sp.exp(x * y) / (sp.exp(x * y) + sp.exp(x)) - sp.exp(x * y) / (sp.exp(x) + sp.exp(y * x)))
    assert not SM.is_zero(sp.exp(x) / (sp.exp(x) + sp.exp(y)) - sp.Rational(1, 2))
    assert SM.is_zero(sp.Integer(0)) and not SM.is_zero(sp.Rational(1, 3))


def test_reference_one_transition_by_hand():
    """n = 1: the kernel is 1, so v+(s_j) = v(s_j) + alpha (r_1 + gamma v(s_1) - v(s_0)) at both states."""
    a, r1, v0, v1 = sp.symbols("a r1 v0 v1")
    out = SM.reference_iterations([[1], [2]], [r1], [a], v0=[v0, v1])
    step = a * (r1 + gamma * v1 - v0)
    assert [sp.simplify(o - w) for o, w in zip(out, [v0 + step, v1 + step])] == [0, 0]


# ---- planted faults: exact counterexamples, replayed ---------------------------------------------

def _replay(cex, fault):
    """The counterexample's output entry recomputed: a literal layer written here (uniform or explicit
    softmax over exact rationals) against the loop reference."""
    phi = [[sp.Rational(x) for x in p] for p in cex["features"]]
    r = [sp.Rational(x) for x in cex["rewards"]]
    v = [sp.Rational(x) for x in cex["v"]]
    a, g = sp.Rational(cex["alpha"]), sp.Rational(cex["gamma"])
    build, opts = SM._fault_layer(fault)
    Z = SM.prompt_from(phi, r, v, g)
    out = SM.literal_layer(Z, build(len(phi[0]), cex["form"], a, g), cex["form"], g=g, **opts)
    want = SM.prompt_from(phi, r, SM.reference_iterations(phi, r, [a], g, v0=v), g)
    i, j = cex["entry"]
    return out[i, j], want[i, j]


@pytest.mark.parametrize("form", SM.FORMS)
@pytest.mark.parametrize("fault", list(SM.FAULTS))
def test_planted_fault_refused_with_exact_counterexample(form, fault):
    res = SM.refuse_fault(form, fault)
    assert res["general_refused"] and res["concrete_refused"]
    cex = res["counterexample"]
    got, want = _replay(cex, fault)
    assert sp.N(got - want, 30) != 0 and abs(sp.N(got - want, 30)) > 1e-20
    if fault != "A":                                  # features 0: every score 0, the residual is rational
        assert (got - want).is_Rational and got - want != 0


def test_construction_has_no_counterexample():
    for form in SM.FORMS:
        assert SM.counterexample(form, lambda dim, f, a, g: SM.construction(dim, f, a, g)) is None


# ---- records and construction files ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["softmax-td", "softmax-td-shift"])
def test_registered_records_are_the_construction(name):
    assert SM.matches_construction(algorithms.get(name))


def test_construction_file_of_theorem_1_is_proven():
    rec = construction_file.load("examples/construction-softmax-td.toml")
    assert SM.matches_construction(rec)
    res = SM.prove_record(rec, concrete=((1, 2, 1),))
    assert res["general"] and res["theorem_1"]["proven"] and res["lemma_1"]["proven"]


@pytest.mark.parametrize("path", FAULT_FILES)
def test_fault_file_refused_with_counterexample(path):
    rec = construction_file.load(path)
    assert not SM.matches_construction(rec)
    res = SM.prove_record(rec)
    assert res["general"] is False and res["counterexample"] is not None
    assert res["sentence"].startswith("NOT proven") and "counterexample" in res["sentence"]


def test_prove_json_covers_and_assumes():
    res = SM.prove("two-head", concrete=((1, 2, 1),))
    for key in ("theorem_1", "lemma_1"):
        part = res[key]
        assert part["proven"] is True and part["assumes"]
        assert {"d", "n"} <= set(part["covers"]) and "every d" in part["covers"]["d"]
        assert "every n" in part["covers"]["n"]
    assert res["sentence"].startswith("Proven for every d and n")
    assert res["faults_refused"] and len(res["faults"]) == len(SM.FAULTS)
