"""The symbolic proofs (theory/symbolic.py, theory/concrete.py, theory/symmetry.py):
each proof succeeds on the paper's objects and fails on a planted fault."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy as sp
import torch

from numerics.core.block import block_literal, lemma_c1, split_full
from numerics.core.tolerances import SYMBOLIC_NUMERIC_RTOL, VISIBLE_RTOL
from theory import concrete as C
from theory import symbolic as S
from theory.algorithms import get, paper
from theory.constructions import alpha, full_pv, gamma
from theory.layout import ACTOR_CRITIC_LAYOUT, VALUE_LAYOUT
from theory.spec import Index

ALGORITHMS = tuple(a.name for a in paper())
from theory.symmetry import prove_scaling_invariance


@pytest.mark.parametrize("layout", [VALUE_LAYOUT, ACTOR_CRITIC_LAYOUT], ids=lambda l: l.name)
def test_lemma_c1_readout_identity_general_d_n(layout):
    ok, never_read, steps = S.derive_lemma_c1(layout)
    assert ok and all(never_read.values()) and len(steps) >= 5


def test_lemma_c1_wrong_formula_leaves_residual():
    """Drop the 1/n of the cubic term: the derivation must not reduce to zero."""
    P, V = S.block_weights(VALUE_LAYOUT, "P"), S.block_weights(VALUE_LAYOUT, "V")
    H, X, theta, wt = S.general_prompt(VALUE_LAYOUT)
    ro = S.readout_block(P, V, H)
    good = S.lemma_c1_formula(P, V, X, theta, wt)
    B, W = P.blocks, V.blocks
    P22 = sp.BlockMatrix([[B[1, 1], B[1, 2]], [B[2, 1], B[2, 2]]])
    Vbar22 = sp.BlockMatrix([[W[2, 1], W[2, 2]]])
    bad = good + (1 - 1 / S.n) * Vbar22 * wt * (wt.T * P22 * wt)     # cubic term without its 1/n
    assert S.is_zero(ro - good)
    assert not S.is_zero(ro - bad)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_theorem_construction_general_d_n(algorithm):
    proof = S.prove_construction(get(algorithm))
    assert proof.ok and proof.residual is None


def _patched(algorithm, **changes):
    """The algorithm's record with its construction's tables changed."""
    record = get(algorithm)
    return dataclasses.replace(record, construction=dataclasses.replace(record.construction, **changes))


@pytest.mark.parametrize("fault", ["flipped sign in P12", "wrong step size", "reward dropped"])
@pytest.mark.parametrize("algorithm", ["sarsa", "actor-critic"])
def test_construction_faults_fail_general_and_concrete(algorithm, fault):
    con = get(algorithm).construction
    if fault == "flipped sign in P12":
        record = _patched(algorithm, p=tuple(((k, -v) if k == ("phi", "w") else (k, v)) for k, v in con.p12))
    elif fault == "wrong step size":
        record = _patched(algorithm, v=tuple((k, 2 * v) for k, v in con.vbar21))
    else:
        record = _patched(algorithm, p=tuple((k, v) for k, v in con.p12 if k != ("r", "one")))
    proof = S.prove_construction(record)
    assert not proof.ok and proof.residual not in (None, "0")
    r = C.construction_residual(record, 1, 2)
    assert not C.is_zero_matrix(r)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("d, n", [(1, 1), (2, 3), (3, 2)])
def test_theorem_construction_concrete(algorithm, d, n):
    assert C.is_zero_matrix(C.construction_residual(get(algorithm), d, n))


def test_concrete_teacher_without_gamma_fails():
    """Teacher with gamma dropped (a different update): the identity must fail."""
    P, V = full_pv(get("sarsa"), 2)
    pr = C.concrete_prompt(get("sarsa"), 2, 2)
    teach = C.teacher(get("sarsa"), pr).subs(gamma, 1)
    assert not C.is_zero_matrix(C.expand_matrix(C.literal_readout(P, V, pr.H, 2) - teach))


@pytest.mark.parametrize("algorithm, d, n", [("sarsa", 1, 2), ("sarsa", 2, 1), ("actor-critic", 1, 1)])
def test_lemma_c1_concrete_every_entry_symbolic(algorithm, d, n):
    assert C.lemma_c1_concrete(get(algorithm), d, n)


@pytest.mark.parametrize("layout", [VALUE_LAYOUT, ACTOR_CRITIC_LAYOUT], ids=lambda l: l.name)
def test_proposition_3_1_p22_vbar22_gradients_general(layout):
    res = S.prove_p22_vbar22_gradients(layout)
    assert res == {"P22 gradient zero when Vbar22 = 0": True, "Vbar22 gradient zero when P22 = 0": True,
                   "P22 and Vbar22 together read": True}


@pytest.mark.parametrize("layout", [VALUE_LAYOUT, ACTOR_CRITIC_LAYOUT], ids=lambda l: l.name)
def test_scaling_orbit_preserves_output_general(layout):
    assert S.prove_scaling(layout)


def test_scaling_with_wrong_power_is_not_a_symmetry():
    P, V = S.block_weights(VALUE_LAYOUT, "P"), S.block_weights(VALUE_LAYOUT, "V")
    H, _, _, _ = S.general_prompt(VALUE_LAYOUT)
    lhs = H + ((V / S.c ** 2) * H) * (H.T * (S.c * P) * H) / S.n
    assert not S.is_zero(lhs - (H + (V * H) * (H.T * P * H) / S.n))


def test_prove_scaling_invariance():
    assert prove_scaling_invariance(get("sarsa")) is True


def _prompt_tensor(Xn, th, m, D, n):
    H = torch.zeros(1, D, n + 1, dtype=torch.float64)
    H[0, :m, :n] = torch.tensor(Xn)
    H[0, m, n] = 1.0
    H[0, m + 1:, n] = torch.tensor(th[:, 0])
    return H


@pytest.mark.parametrize("layout, d, n, seed", [(VALUE_LAYOUT, 2, 3, 0), (ACTOR_CRITIC_LAYOUT, 2, 4, 1),
                                                (VALUE_LAYOUT, 3, 1, 2)])
def test_symbolic_readout_equals_numeric(layout, d, n, seed):
    """The general symbolic read-out (d, n set afterwards) and the concrete
    literal expression, lambdified, equal numerics.block's literal and fast
    read-outs on random float64 inputs (arbitrary P, V)."""
    rng = np.random.default_rng(seed)
    m, q, D = layout.m(d), layout.q(d), layout.D(d)
    f_general = S.general_readout_function(layout, d, n)
    f_literal = C.literal_readout_function(layout, d, n)
    for _ in range(3):
        Pn, Vn = rng.uniform(-1, 1, (D, D)), rng.uniform(-1, 1, (D, D))
        Xn, th = rng.uniform(-1, 1, (m, n)), rng.uniform(-1, 1, (q, 1))
        H = _prompt_tensor(Xn, th, m, D, n)
        Pt, Vt = torch.tensor(Pn), torch.tensor(Vn)
        lit = block_literal(Pt, Vt, H)[0, -q:, -1].numpy().reshape(-1, 1)
        wt = torch.cat([torch.ones(1, 1, dtype=torch.float64), torch.tensor(th.T)], 1)
        idx = Index(m, D - m, q, D)
        fast = lemma_c1(torch.tensor(Xn.T)[None], wt, *split_full(idx, Pt, Vt))[0].numpy().reshape(-1, 1)
        sym_g = f_general(Pn, Vn, Xn, th)
        sym_l = f_literal(Pn, Vn, H[0].numpy())
        scale = max(1.0, float(np.abs(lit).max()))
        for got in (sym_g, sym_l):
            np.testing.assert_allclose(got, lit, rtol=0, atol=SYMBOLIC_NUMERIC_RTOL * scale)
            np.testing.assert_allclose(got, fast, rtol=0, atol=SYMBOLIC_NUMERIC_RTOL * scale)


def test_symbolic_readout_detects_numeric_fault():
    """The cross-check can fail: a numeric read-out without the 1/n differs."""
    lay, d, n = VALUE_LAYOUT, 1, 3
    rng = np.random.default_rng(5)
    m, q, D = lay.m(d), lay.q(d), lay.D(d)
    Pn, Vn = rng.uniform(-1, 1, (D, D)), rng.uniform(-1, 1, (D, D))
    Xn, th = rng.uniform(-1, 1, (m, n)), rng.uniform(-1, 1, (q, 1))
    H = _prompt_tensor(Xn, th, m, D, n)
    Pt, Vt = torch.tensor(Pn), torch.tensor(Vn)
    wrong = (H + (Vt @ H) @ (H.transpose(-1, -2) @ Pt @ H))[0, -q:, -1].numpy().reshape(-1, 1)
    got = S.general_readout_function(lay, d, n)(Pn, Vn, Xn, th)
    assert np.abs(got - wrong).max() > VISIBLE_RTOL


def test_weights_residual_per_column_argument():
    """h and g of theory.concrete.weights_residual reproduce n (TF - teacher)
    at n = 3 for weights with a cubic term (so the every-n argument is sound)."""
    sarsa, hp = get("sarsa"), {"alpha": sp.Rational(1, 5)}
    P, V = full_pv(sarsa, 1, {alpha: sp.Rational(1, 5)})
    P[3, 3], V[4, 4], P[0, 4] = 2, 3, 1
    wr = C.weights_residual(sarsa, P, V, hp)
    pr = C.concrete_prompt(sarsa, 1, 3)
    direct = C.expand_matrix(3 * (C.literal_readout(P, V, pr.H, 1) - C.teacher(sarsa, pr, hp)))
    h = wr.per_column
    one = wr.prompt.cols[0]
    total = sp.zeros(1, 1)
    for col in pr.cols:
        rep = {one["r"]: col["r"]}
        rep.update(dict(zip(one["phi"], col["phi"])))
        rep.update(dict(zip(one["phi_next"], col["phi_next"])))
        total += h.xreplace(rep)
    total += wr.constant
    assert not wr.ok
    assert C.is_zero_matrix(C.expand_matrix(total - direct))
