"""Mutation tier: the constructions (``theory.constructions``,
``numerics.core.constructions``) by what Theorems 3.1 / 3.3 say they do:
``P12* w~ = (-w, w, 1)`` so that ``x_i^T P12* w~ = delta_i``, ``Vbar21*``
routing ``alpha phi`` into ``w`` (and ``beta g`` into ``lam``); the symmetry
family ``(c P, V / c)`` with arbitrary never-read blocks."""
from __future__ import annotations

import dataclasses

import pytest
import sympy as sp
import torch

from numerics.core import constructions as NC
from theory import constructions as TC
from theory.algorithms import get, with_p_sign_flipped
from theory.symbols import alpha, beta

pytestmark = pytest.mark.mutation
F64 = torch.float64


def _w_tilde(q):
    w = sp.Matrix(sp.symbols(f"w0:{q}"))
    return w, sp.Matrix([1, *w])


@pytest.mark.parametrize("algorithm", ["sarsa", "actor-critic"])
def test_p12_times_w_tilde_is_minus_w_w_one_and_vbar21_routes_the_steps(algorithm):
    record, d = get(algorithm), 2
    P12, Vbar21 = TC.p12_vbar21(record, d)
    q = record.layout.q(d)
    w, wt = _w_tilde(q)
    z = P12 * wt
    want = [-w[0], -w[1], w[0], w[1], 1] + ([0, 0] if algorithm == "actor-critic" else [])
    assert list(z) == want                                   # x_i . z = -w.phi + w.(gamma phi+) + r = delta_i
    x = sp.Matrix(sp.symbols(f"x0:{record.layout.m(d)}"))
    y = list(Vbar21 * x)
    assert y[:2] == [alpha * x[0], alpha * x[1]]             # alpha phi into w
    if algorithm == "actor-critic":
        assert y[2:] == [beta * x[5], beta * x[6]]          # beta g into lam
    assert P12.shape == (record.layout.m(d), record.layout.p(d)) and Vbar21.shape == (q, record.layout.m(d))


def test_substituted_and_numeric_blocks_equal_the_symbolic_ones_at_the_step_sizes():
    record, d = get("actor-critic"), 3
    P12, Vbar21 = TC.p12_vbar21(record, d)
    subs = {alpha: sp.Rational(1, 5), beta: sp.Rational(1, 20)}
    P12s, Vbar21s = TC.p12_vbar21(record, d, subs)
    assert P12s == P12 and Vbar21s == Vbar21.subs(subs) and not Vbar21s.free_symbols
    nP12, nV = TC.numeric_blocks(record, d, {"alpha": 0.2, "beta": 0.05, "epsilon": 0.3})
    assert nP12 == [[float(v) for v in row] for row in P12.tolist()]
    assert nV == [[float(v) for v in row] for row in Vbar21s.tolist()]
    tP12, tV = NC.constructed_blocks(record, d, {"alpha": 0.2, "beta": 0.05})
    assert tP12.dtype == F64 and tP12.tolist() == nP12 and tV.tolist() == nV


def test_full_pv_and_constructed_weights_are_zero_outside_the_two_blocks():
    record, d = get("sarsa"), 2
    idx = record.spec.index(d)
    P, V = TC.full_pv(record, d, {alpha: sp.Rational(1, 4)})
    P12, Vbar21 = TC.p12_vbar21(record, d, {alpha: sp.Rational(1, 4)})
    assert P.shape == (idx.D, idx.D) and V.shape == (idx.D, idx.D)
    assert P[idx.p12] == P12 and V[idx.vbar21] == Vbar21
    assert sum(abs(v) for v in P) == sum(abs(v) for v in P12) and sum(abs(v) for v in V) == sum(abs(v) for v in Vbar21)
    tP, tV = NC.constructed_weights(record, d, {"alpha": 0.25})
    assert tP.tolist() == [[float(v) for v in row] for row in P.tolist()]
    assert tV.tolist() == [[float(v) for v in row] for row in V.tolist()]
    Ps, _ = TC.full_pv(record, d)
    assert Ps[idx.p12] == TC.p12_vbar21(record, d)[0] and TC.full_pv(record, d)[1][6, 0] == alpha


def test_a_table_entry_joining_blocks_of_different_sizes_is_refused():
    bad = TC.Construction(p=((("r", "w"), sp.Integer(1)),), v=((("w", "phi"), alpha),))
    with pytest.raises(ValueError, match=r"^algorithm 'sarsa': P entry \(r, w\) joins blocks of sizes 1 and d$"):
        dataclasses.replace(get("sarsa"), construction=bad)
    with pytest.raises(ValueError, match=r"^algorithm 'sarsa': P entry \(x, w\) names 'x', not a row block"):
        dataclasses.replace(get("sarsa"), construction=TC.Construction(p=((("x", "w"), 1),), v=()))
    with pytest.raises(ValueError, match=r"^construction: P entry \(r, w\) joins blocks of sizes 1 and d$"):
        bad.check_blocks(get("sarsa").layout)                # the default name of what is checked
    with pytest.raises(ValueError, match=r"^mine: V\[1\] entry \(w, x\) names 'x', not a row block of layout"):
        TC.Construction(v=((), ((("w", "x"), 1),))).check_blocks(get("sarsa").layout, "mine")
    # the fill itself refuses a non-square block too (a record built without validation)
    rec = get("sarsa")
    object.__setattr__(rec, "construction", bad)
    with pytest.raises(ValueError, match=r"^construction: block \(r,w\) is not square$"):
        TC.p12_vbar21(rec, 2)


def test_unread_mask_marks_the_never_read_blocks_of_proposition_3_1():
    record, d = get("sarsa"), 2
    mP, mV = NC.unread_mask(record, d)
    m, D = 5, 8
    for i in range(D):
        for j in range(D):
            assert bool(mP[i, j]) == (j < m), (i, j)
            assert bool(mV[i, j]) == (i <= m), (i, j)
    assert mP.dtype == torch.bool and mV.dtype == torch.bool


def test_symmetry_member_scales_and_fills_the_never_read_blocks_from_the_generator():
    record, d = get("sarsa"), 2
    P, V = NC.constructed_weights(record, d, {"alpha": 0.2})
    P2, V2 = NC.symmetry_member(P, V, -2.0, record, d)
    assert torch.equal(P2, -2.0 * P) and torch.equal(V2, V / -2.0)
    mP, mV = NC.unread_mask(record, d)
    P3, V3 = NC.symmetry_member(P, V, 3.0, record, d, gen=torch.Generator().manual_seed(4), scale=0.5)
    g = torch.Generator().manual_seed(4)
    nP = (torch.rand(8, 8, generator=g, dtype=F64) * 2 - 1) * 0.5
    nV = (torch.rand(8, 8, generator=g, dtype=F64) * 2 - 1) * 0.5
    assert torch.equal(P3[mP], nP[mP]) and torch.equal(V3[mV], nV[mV])
    assert torch.equal(P3[~mP], 3.0 * P[~mP]) and torch.equal(V3[~mV], V[~mV] / 3.0)
    assert float(P3[mP].abs().max()) <= 0.5 and float(P3[mP].abs().max()) > 0.25
    with pytest.raises(ValueError, match="^c: must be nonzero"):
        NC.symmetry_member(P, V, 0, record, d)
    # the default scale is 1: noise Unif(-1, 1)
    P4, V4 = NC.symmetry_member(P, V, 1.0, record, d, gen=torch.Generator().manual_seed(6))
    g = torch.Generator().manual_seed(6)
    assert torch.equal(P4[mP], (torch.rand(8, 8, generator=g, dtype=F64) * 2 - 1)[mP])
    assert torch.equal(V4[mV], (torch.rand(8, 8, generator=g, dtype=F64) * 2 - 1)[mV])


def test_masks_and_family_members_live_on_the_device_of_the_weights():
    record, d = get("sarsa"), 2
    mP, mV = NC.unread_mask(record, d, device="meta")          # the meta device: shapes and devices, no data
    assert mP.device.type == "meta" and mV.device.type == "meta" and mP.dtype == torch.bool
    blocks = NC.constructed_blocks(record, d, {"alpha": 0.2}, device="meta")
    assert [b.device.type for b in blocks] == ["meta", "meta"]
    P, V = NC.constructed_weights(record, d, {"alpha": 0.2}, device="meta")
    assert P.device.type == "meta" and V.device.type == "meta"
    P2, V2 = NC.symmetry_member(P, V, 2.0, record, d, gen=torch.Generator().manual_seed(1))
    assert P2.device.type == "meta" and V2.device.type == "meta" and P2.shape == (8, 8)


def test_flipped_negates_one_entry_of_p_or_of_head_0_s_v():
    rg = TC.RESIDUAL_GRADIENT
    assert [c for _, c in rg.p] == [-1, 1, 1, -1]
    f = rg.flipped()                                          # default: P's (phi, phi) entry
    assert [k for k, _ in f.p] == [k for k, _ in rg.p] and [c for _, c in f.p] == [1, 1, 1, -1]
    assert f.v == rg.v and f.preconditioned is True
    g = rg.flipped(("gphi_next", "phi"))
    assert [c for _, c in g.p] == [-1, 1, -1, -1] and g.v == rg.v
    avg = TC.AVERAGE_REWARD.flipped(("y", "r"), table="v")      # head 0's V; head 1 and P untouched
    assert avg.p == TC.AVERAGE_REWARD.p and avg.v == (((("y", "r"), -1),), ((("y", "y"), 1),))
    assert TC.AVERAGE_REWARD.flipped(("y", "y"), table="v").v == TC.AVERAGE_REWARD.v
    rec = get("td-preconditioned")
    planted = with_p_sign_flipped(rec)
    assert planted.name == rec.name and planted.spec == rec.spec and planted.construction.v == rec.construction.v
    assert [c for _, c in planted.construction.p] == [1, 1] and [c for _, c in rec.construction.p] == [-1, 1]
    assert [c for _, c in with_p_sign_flipped(rec, ("phi", "gphi_next")).construction.p] == [-1, -1]


def test_a_construction_takes_one_v_table_as_the_one_head_s_and_stores_tuples():
    # built here, at test time (the module-level tables are built at import, before any mutant is switched on)
    one = TC.Construction(p=[(("phi", "w"), -1)], v=((("w", "phi"), alpha),))          # one table of one entry
    assert one.p == ((("phi", "w"), -1),) and one.v == (((("w", "phi"), alpha),),)
    assert one.p12 == one.p and one.vbar21 == ((("w", "phi"), alpha),) and one.preconditioned is False
    two_entries = TC.Construction(v=((("w", "phi"), alpha), (("lam", "g"), beta)))   # one table of two entries
    assert two_entries.v == (((("w", "phi"), alpha), (("lam", "g"), beta)),) and two_entries.p == ()
    heads = TC.Construction(v=[[(("y", "r"), 1), (("y", "y"), 2)], [(("y", "y"), 1)]])  # two tables (two heads)
    assert heads.v == (((("y", "r"), 1), (("y", "y"), 2)), ((("y", "y"), 1),))
    assert TC.Construction(v=(((("y", "r"), 1),), ((("y", "y"), 1),))).v == (((("y", "r"), 1),), ((("y", "y"), 1),))
    assert TC.Construction().v == ((),) and TC.Construction(v=()).v == ((),) and TC.Construction().p == ()
