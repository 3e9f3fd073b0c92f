"""Mutation tier: Wang et al.'s layout (``numerics.core.prompts.evaluation_prompt``,
``numerics.core.constructions.preconditioned_weights``, ``numerics.core.block.readout_entry``)
and its independent loop (``numerics.reference.batch_td_loop``): prompts entry by entry,
constructions block by block, the L-layer block against the loop, and the
loop against hand-computed steps and the matrix form of batch TD."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy as sp
import torch

from numerics.core import block
from numerics.core.block import readout_entry
from numerics.core.constructions import preconditioned_weights
from numerics.core.prompts import _per_prompt, evaluation_prompt
from numerics import reference as WR
from numerics.core.mrp import Windows
from theory import algorithms
from theory.symbols import gamma, lam
from theory.errors import InputError

pytestmark = pytest.mark.mutation
F64 = torch.float64


def _windows(B=2, n=4, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=F64) * 2 - 1
    return Windows(phi=r(B, n, d), phi_next=r(B, n, d), r=r(B, n), phi_q=r(B, d),
                   gamma=torch.tensor([0.5, 0.8], dtype=F64)[:B])


@pytest.mark.parametrize("name", ["td-preconditioned", "avg-reward"])
def test_prompt_entry_by_entry(name):
    record = algorithms.get(name)
    win = _windows()
    Z = evaluation_prompt(record, win)
    B, n, d = 2, 4, 2
    D = 5 if name == "td-preconditioned" else 6
    assert Z.shape == (B, D, n + 1) and Z.dtype == F64
    for b in range(B):
        g = win.gamma[b].item() if name == "td-preconditioned" else 1.0
        for j in range(n + 1):
            if j < n:
                col = win.phi[b, j].tolist() + [g * v for v in win.phi_next[b, j].tolist()] + [win.r[b, j].item()]
                col += [] if name == "td-preconditioned" else [0.0]
            else:
                col = win.phi_q[b].tolist() + [0.0] * (D - d)
            np.testing.assert_allclose(Z[b, :, j].numpy(), col, rtol=1e-15, atol=0)


def test_a_context_coefficient_is_one_gamma_or_a_number_and_nothing_else():
    g = torch.tensor([0.5, 0.25], dtype=F64)
    assert torch.equal(_per_prompt(gamma, g), g)
    assert _per_prompt(sp.Integer(3), g).tolist() == [3.0, 3.0]
    assert _per_prompt(1, g).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="^context coefficient 2\\*lambda may depend on gamma only"):
        _per_prompt(2 * lam, g)


@pytest.mark.parametrize("name", ["td-preconditioned", "rg", "avg-reward"])
@pytest.mark.parametrize("untied", [False, True])
def test_construction_places_coef_times_c_transpose_and_the_v_entries(name, untied):
    record, d = algorithms.get(name), 2
    C = torch.arange(1.0, 1 + (3 if untied else 1) * d * d, dtype=F64).reshape(*((3,) if untied else ()), d, d)
    P, V = preconditioned_weights(record, C)
    off = record.layout.offsets("rows", d)
    D = int(record.layout.D(d))
    lead = (3,) if untied else ()
    want_P = torch.zeros(*lead, D, D, dtype=F64)
    for (rb, cb), coef in record.construction.p:
        want_P[..., off[rb][0]:off[rb][0] + d, off[cb][0]:off[cb][0] + d] += float(coef) * C.transpose(-1, -2)
    assert torch.equal(P, want_P)
    heads = []
    for table in record.construction.v:
        Vh = torch.zeros(*lead, D, D, dtype=F64)
        for (rb, cb), coef in table:
            Vh[..., off[rb][0], off[cb][0]] = float(coef)
        heads.append(Vh)
    want_V = heads[0] if len(heads) == 1 else torch.stack(heads, -3)
    assert V.shape == want_V.shape and torch.equal(V, want_V)


@pytest.mark.parametrize("shape", [(2,), (2, 3), (2, 2, 2, 2), (3, 2, 4)])
def test_construction_refuses_a_preconditioner_of_the_wrong_shape(shape):
    with pytest.raises(InputError, match=r"^preconditioner: expected shape \(d, d\) or \(L, d, d\), got"):
        preconditioned_weights(algorithms.get("td-preconditioned"), torch.zeros(shape, dtype=F64))


def test_construction_holds_the_preconditioner_in_float64_on_its_device():
    P, V = preconditioned_weights(algorithms.get("td-preconditioned"), [[0.1, 0.2], [0.3, 0.7]])           # plain Python floats
    assert P.dtype == torch.float64 and P[0, 0].item() == -0.1 and P[1, 0].item() == -0.2 and P[0, 3].item() == 0.3
    Pm, Vm = preconditioned_weights(algorithms.get("avg-reward"), torch.eye(2, dtype=F64, device="meta"))
    assert Pm.device.type == "meta" and Vm.device.type == "meta" and Vm.shape == (2, 6, 6)
    Pt, Vt = preconditioned_weights(algorithms.get("td-preconditioned"), torch.eye(2, dtype=F64, device="meta"))
    assert Pt.device.type == "meta" and Vt.device.type == "meta"


def test_prompt_lives_on_the_device_of_the_window_and_reads_the_recipe_in_any_order():
    win = _windows()
    meta = Windows(*(t.to("meta") for t in (win.phi, win.phi_next, win.r, win.phi_q, win.gamma)))
    assert evaluation_prompt(algorithms.get("td-preconditioned"), meta).device.type == "meta"
    rec = algorithms.get("avg-reward")
    zero_first = dataclasses.replace(rec, context=tuple(sorted(rec.context, key=lambda c: c[2] != "zero")))
    assert zero_first.context[0][2] == "zero"
    assert torch.equal(evaluation_prompt(zero_first, win), evaluation_prompt(rec, win))


def test_prompt_evaluates_a_coefficient_of_gamma_in_float64_from_a_float32_discount():
    # a record's context coefficient may be any expression in gamma: it is evaluated in float64 from the window's
    # discount whatever the discount's dtype (float32 here: 0.3f is 0.30000001192...), never rounded to float32
    rec = algorithms.get("td-preconditioned")
    sq = dataclasses.replace(rec, context=(("phi", 1, "phi"), ("gphi_next", gamma ** 2, "phi_next"), ("r", 1, "r")))
    win = _windows()
    g32 = torch.tensor([0.3, 0.7], dtype=torch.float32)
    Z = evaluation_prompt(sq, Windows(win.phi, win.phi_next, win.r, win.phi_q, g32))
    assert Z.dtype == F64
    for b in range(2):
        g = float(g32[b])                                     # the float32 value, exactly, as a Python float
        for j in range(4):
            for k in range(2):
                assert Z[b, 2 + k, j].item() == g ** 2 * win.phi_next[b, j, k].item()
            assert Z[b, 4, j].item() == win.r[b, j].item() and Z[b, 0, j].item() == win.phi[b, j, 0].item()


def test_a_coefficient_of_gamma_is_built_in_the_dtype_and_on_the_device_of_the_discounts():
    g = torch.tensor([0.5, 0.25], dtype=F64)
    c = _per_prompt(gamma ** 2, g)
    assert c.dtype == F64 and c.tolist() == [0.25, 0.0625]
    assert _per_prompt(gamma ** 2, torch.tensor([0.5], dtype=torch.float32)).dtype == torch.float32

    # a GPU window's discounts live on the GPU, and a coefficient built on the CPU would not multiply its rows; the
    # tier has no GPU: a stand-in holding the CPU values that says it lives on the meta device shows where it is put
    class OnMeta:
        dtype, device = F64, torch.device("meta")

        def __iter__(self):
            return iter(g)

    on_meta = _per_prompt(gamma ** 2, OnMeta())
    assert on_meta.device.type == "meta" and on_meta.dtype == F64 and on_meta.shape == (2,)


def test_readout_is_the_signed_carried_entry_of_the_last_column():
    Z = torch.arange(2 * 5 * 3, dtype=F64).reshape(2, 5, 3)
    assert readout_entry(algorithms.get("td-preconditioned").layout, Z).tolist() == [-Z[0, 4, 2].item(), -Z[1, 4, 2].item()]
    Z6 = torch.arange(2 * 6 * 3, dtype=F64).reshape(2, 6, 3)
    assert readout_entry(algorithms.get("avg-reward").layout, Z6).tolist() == [Z6[0, 5, 2].item(), Z6[1, 5, 2].item()]


@pytest.mark.parametrize("name, direction, centered", [("td-preconditioned", "phi", False), ("td-lambda", "trace", False),
                                                       ("rg", "residual", False), ("avg-reward", "phi", True)])
def test_the_constructed_block_runs_the_loop_layer_by_layer(name, direction, centered):
    record, d, L = algorithms.get(name), 2, 3
    win = _windows(B=1)
    Cs = torch.stack([torch.eye(d, dtype=F64) * 0.5, torch.tensor([[0.3, 0.1], [-0.2, 0.6]], dtype=F64),
                      torch.eye(d, dtype=F64)])
    spec = record.spec_at(L, tied=False, lam_value=0.6)
    P, V = preconditioned_weights(record, Cs)
    Zs = block.forward_layers(spec, P, V, evaluation_prompt(record, win), d)
    loop = WR.batch_td_loop(win.phi[0], win.phi_next[0], win.r[0], win.phi_q[0], float(win.gamma[0]), Cs,
                            direction=direction, centered=centered, lam=0.6)
    for layer in range(L + 1):
        np.testing.assert_allclose(readout_entry(record.layout, Zs[layer]).numpy(), [loop.value[layer]], rtol=1e-12,
                                   atol=1e-13)
        carried = record.layout.offsets("rows", d)[record.carried][0]
        np.testing.assert_allclose(Zs[layer][0, carried, :-1].numpy(), loop.carried[layer], rtol=1e-12, atol=1e-13)


def test_batch_td_loop_one_step_by_hand():
    # d = 1, n = 2: phi = (1, 2), phi' = (2, 0), r = (1, 0), gamma = 1/2, C = 1, w_0 = 0
    t = WR.batch_td_loop([[1.0], [2.0]], [[2.0], [0.0]], [1.0, 0.0], [3.0], 0.5, [[[1.0]]])
    # delta(w_0) = (1, 0); u = 1; w_1 = 1/2; delta(w_1) = (1 + 1/2 - 1/2, 0 + 0 - 1) = (1, -1)
    assert t.w.tolist() == [[0.0], [0.5]] and t.carried.tolist() == [[1.0, 0.0], [1.0, -1.0]]
    assert t.value.tolist() == [0.0, 1.5]
    # trace, lambda = 1/2: e = (1, 2 + 1/2); u = 1 * 1 + 0 = 1: the same first step
    tr = WR.batch_td_loop([[1.0], [2.0]], [[2.0], [0.0]], [0.0, 1.0], [1.0], 0.5, [[[1.0]]], "trace", lam=0.5)
    # delta(w_0) = (0, 1); u = 0 * 1 + 1 * (2 + 0.5 * 1) = 2.5; w_1 = 1.25
    assert tr.w.tolist() == [[0.0], [1.25]]
    # without lam the trace does not decay past one step: lambda = 0, e_j = phi_j (the phi direction)
    tr0 = WR.batch_td_loop([[1.0], [2.0]], [[2.0], [0.0]], [0.0, 1.0], [1.0], 0.5, [[[1.0]]], "trace")
    assert tr0.w.tolist() == [[0.0], [1.0]]                     # u = 0 * 1 + 1 * 2
    # residual: u = sum delta_j (phi_j - gamma phi'_j) = 1 * (1 - 1) + 0 = 0 with r = (1, 0)
    rg = WR.batch_td_loop([[1.0], [2.0]], [[2.0], [0.0]], [1.0, 0.0], [1.0], 0.5, [[[1.0]]], "residual")
    assert rg.w.tolist() == [[0.0], [0.0]]
    rg2 = WR.batch_td_loop([[1.0], [2.0]], [[2.0], [0.0]], [0.0, 1.0], [1.0], 0.5, [[[1.0]]], "residual")
    assert rg2.w.tolist() == [[0.0], [1.0]]                   # u = 1 * (2 - 0) = 2, w_1 = 1
    # centered: rbar = (1, 1/2); delta(w_0) = (0, -1/2); y_j(w) = w.(phi_j - phi'_j)
    c = WR.batch_td_loop([[1.0], [2.0]], [[2.0], [0.0]], [1.0, 0.0], [1.0], 0.9, [[[1.0]]], centered=True)
    assert c.w.tolist() == [[0.0], [-0.5]] and c.carried.tolist() == [[0.0, 0.0], [0.5, -1.0]]
    with pytest.raises(ValueError, match="^direction: unknown 'sideways'; expected one of phi, trace, residual"):
        WR.batch_td_loop([[1.0]], [[1.0]], [1.0], [1.0], 0.5, [[[1.0]]], "sideways")


@pytest.mark.parametrize("direction, centered", [("phi", False), ("trace", False), ("residual", False),
                                                 ("phi", True)])
def test_batch_td_loop_equals_the_matrix_form(direction, centered):
    rng = np.random.default_rng(3)
    n, d, L, gam, lam = 5, 3, 3, 0.7, 0.4
    phi, nxt, r, q = rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.normal(size=n), rng.normal(size=d)
    Cs = rng.normal(size=(L, d, d)) * 0.3
    g = 1.0 if centered else gam
    target = r - np.cumsum(r) / np.arange(1, n + 1) if centered else r
    E = np.array([[lam ** (i - j) if j <= i else 0.0 for j in range(n)] for i in range(n)]) @ phi
    M = {"phi": phi, "trace": E, "residual": phi - g * nxt}[direction]
    w, ws = np.zeros(d), [np.zeros(d)]
    for C in Cs:
        w = w + C @ (M.T @ (target + g * nxt @ w - phi @ w)) / n
        ws.append(w)
    t = WR.batch_td_loop(phi, nxt, r, q, gam, Cs, direction, centered, lam)
    np.testing.assert_allclose(t.w, ws, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(t.value, [v @ q for v in ws], rtol=1e-12, atol=1e-13)
    want_c = [phi @ v - nxt @ v if centered else target + g * nxt @ v - phi @ v for v in ws]
    np.testing.assert_allclose(t.carried, want_c, rtol=1e-12, atol=1e-13)
