"""Mutation tier: the linear self-attention block (``numerics.core.block``)
against the layer formula of ``theory.spec`` written with NumPy, its masks
and operators built entry by entry, and Lemma C.1 written as loops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from numerics.core import block
from theory.algorithms import get
from theory.layout import VALUE_LAYOUT, WANG_AVG_LAYOUT, WANG_LAYOUT
from theory.spec import BlockSpec

pytestmark = pytest.mark.mutation
F64 = torch.float64


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64) * 2 - 1


def _mask_by_hand(spec, cols):
    n = cols - 1
    M = np.zeros((cols, cols))
    for i in range(cols):
        for j in range(cols):
            if spec.mask == "none":
                M[i, j] = float(i == j)
            elif not spec.has_decay:
                M[i, j] = float(i == j and i < n)
            elif j <= i < n:
                M[i, j] = float(spec.decay) ** (i - j)
    return M


def _running_mean_by_hand(cols):
    R = np.zeros((cols, cols))
    for j in range(cols):
        for i in range(j + 1):
            R[i, j] = 1.0 / (j + 1)
        R[j, j] -= 1.0
    return R


def _layer_by_hand(spec, P, V, H, d):
    """``H + (1/n) W sum_h (V_h H) R_h M (H^T P H)`` per prompt (NumPy)."""
    P, V, H = (np.asarray(x) for x in (P, V, H))
    B, D, cols = H.shape
    n = cols - 1
    M = _mask_by_hand(spec, cols)
    W = np.eye(D) if spec.writes is None else np.zeros((D, D))
    if spec.writes is not None:
        off = spec.layout.offsets("rows", d)
        for b in spec.writes:
            for r in range(*off[b]):
                W[r, r] = 1.0
    heads = [V] if len(spec.heads) == 1 else [V[h] for h in range(len(spec.heads))]
    out = np.empty_like(H)
    for b in range(B):
        vals = sum((Vh @ H[b]) @ (_running_mean_by_hand(cols) if mix == "running-mean" else np.eye(cols)) @ M
                   for Vh, mix in zip(heads, spec.heads))
        out[b] = H[b] + W @ vals @ (H[b].T @ P @ H[b]) / n
    return out


SPECS = {
    "none": BlockSpec(VALUE_LAYOUT),
    "context": BlockSpec(WANG_LAYOUT, mask="context"),
    "decay": BlockSpec(WANG_LAYOUT, mask="context", decay=0.5),
    "writes": BlockSpec(WANG_LAYOUT, mask="context", writes=("r",)),
    "heads": BlockSpec(WANG_AVG_LAYOUT, mask="context", heads=("running-mean", None)),
}


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("n", [2, 9])          # D >= n + 1 and D < n + 1: both product orders
def test_layer_is_the_specification_s_formula(name, n):
    spec = SPECS[name]
    d = 2
    D = int(spec.D(d))
    H = _rand(2, D, n + 1, seed=1)
    P = _rand(D, D, seed=2)
    V = _rand(*spec.value_shape(d), seed=3)
    got = block.layer(spec, P, V, H, d)
    np.testing.assert_allclose(got.numpy(), _layer_by_hand(spec, P, V, H, d), rtol=1e-12, atol=1e-13)


def test_block_literal_is_eq_1_by_loops():
    D, c = 3, 5                                                  # n = 4 context columns, D != n + 1
    H, P, V = _rand(1, D, c, seed=4), _rand(D, D, seed=5), _rand(D, D, seed=6)
    h, p, v = H[0].tolist(), P.tolist(), V.tolist()
    n = c - 1
    VH = [[sum(v[i][k] * h[k][j] for k in range(D)) for j in range(c)] for i in range(D)]
    S = [[sum(h[k][i] * p[k][l] * h[l][j] for k in range(D) for l in range(D)) for j in range(c)] for i in range(c)]
    want = [[h[i][j] + sum(VH[i][k] * S[k][j] for k in range(c)) / n for j in range(c)] for i in range(D)]
    torch.testing.assert_close(block.block_literal(P, V, H)[0], torch.tensor(want, dtype=F64), rtol=1e-13, atol=1e-14)


def test_the_mask_and_the_running_mean_operator_entry_by_entry():
    like = torch.zeros((), dtype=F64)
    assert block._mask(SPECS["none"], 4, like) is None
    np.testing.assert_array_equal(block._mask(SPECS["context"], 4, like).numpy(), [1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(block._mask(SPECS["decay"], 4, like).numpy(), _mask_by_hand(SPECS["decay"], 4),
                               rtol=0, atol=0)
    np.testing.assert_allclose(block.running_mean(4, like).numpy(), _running_mean_by_hand(4), rtol=0, atol=1e-16)


def test_a_layer_that_writes_some_rows_keeps_the_prompt_s_dtype_and_device():
    spec = SPECS["writes"]
    H, P, V = _rand(2, 5, 4, seed=49), _rand(5, 5, seed=50), _rand(5, 5, seed=51)
    assert block.layer(spec, P.bfloat16(), V.bfloat16(), H.bfloat16(), 2).dtype == torch.bfloat16
    assert block.layer(spec, P.to("meta"), V.to("meta"), H.to("meta"), 2).device.type == "meta"


@pytest.mark.parametrize("spec", ["context", "decay"])
def test_masks_and_operators_take_the_dtype_and_device_of_the_prompt(spec):
    half = torch.zeros((), dtype=torch.float16)
    assert block.running_mean(4, half).dtype == torch.float16
    assert block._mask(SPECS[spec], 4, half).dtype == torch.float16
    meta = torch.zeros((), dtype=F64, device="meta")
    assert block.running_mean(4, meta).device.type == "meta" and block._mask(SPECS[spec], 4, meta).device.type == "meta"


@pytest.mark.parametrize("tied", [True, False])
def test_forward_applies_depth_layers_in_turn_and_forward_layers_keeps_each(tied):
    spec = BlockSpec(WANG_LAYOUT, mask="context", depth=3, tied=tied)
    d, D = 2, 5
    H = _rand(2, D, 4, seed=7)
    P, V = _rand(*spec.weight_shape(d), seed=8) / 2, _rand(*spec.value_shape(d), seed=9) / 2
    one = BlockSpec(WANG_LAYOUT, mask="context")
    want = [H.numpy()]
    for k in range(3):
        Pk, Vk = (P, V) if tied else (P[k], V[k])
        want.append(_layer_by_hand(one, Pk, Vk, torch.from_numpy(want[-1]), d))
    layers = block.forward_layers(spec, P, V, H, d)
    assert layers.shape == (4, 2, D, 4)
    np.testing.assert_allclose(layers.numpy(), np.stack(want), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(block.forward(spec, P, V, H, d).numpy(), want[-1], rtol=1e-12, atol=1e-13)
    # the read-out: the signed read-out row of the last column (wang2025: -Z[r, -1])
    np.testing.assert_allclose(block.readout_literal(spec, P, V, H, d).numpy(), -want[-1][:, [4], -1], rtol=1e-12,
                               atol=1e-13)


def test_readout_literal_of_the_actor_critic_layout_is_w_then_lam():
    spec = get("actor-critic").spec                             # m = 7, p = 5, D = 12 at d = 2
    H, P, V = _rand(2, 12, 3, seed=43), _rand(12, 12, seed=44), _rand(12, 12, seed=45)
    out = _layer_by_hand(spec, P, V, H, 2)
    got = block.readout_literal(spec, P, V, H, 2)
    assert got.shape == (2, 4)
    np.testing.assert_allclose(got.numpy(), out[:, 8:12, -1], rtol=1e-12)


def test_readout_literal_runs_layers_that_write_only_some_rows():
    spec = BlockSpec(WANG_LAYOUT, mask="context", writes=("r",), depth=2)
    H, P, V = _rand(2, 5, 4, seed=46), _rand(5, 5, seed=47), _rand(5, 5, seed=48)
    out = _layer_by_hand(spec, P, V, torch.from_numpy(_layer_by_hand(spec, P, V, H, 2)), 2)
    np.testing.assert_allclose(block.readout_literal(spec, P, V, H, 2).numpy(), -out[:, [4], -1], rtol=1e-12)
    np.testing.assert_allclose(block.forward(spec, P, V, H, 2).numpy(), out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(block.forward_layers(spec, P, V, H, 2)[-1].numpy(), out, rtol=1e-12, atol=1e-13)


def test_readout_literal_of_the_value_layout_is_the_w_rows_of_the_last_column():
    spec = BlockSpec(VALUE_LAYOUT)
    H, P, V = _rand(2, 8, 3, seed=10), _rand(8, 8, seed=11), _rand(8, 8, seed=12)
    out = _layer_by_hand(spec, P, V, H, 2)
    np.testing.assert_allclose(block.readout_literal(spec, P, V, H, 2).numpy(), out[:, 6:8, -1], rtol=1e-12)


def test_split_full_and_embed_reduced_use_the_index_blocks():
    idx = get("sarsa").spec.index(2)          # m = 5, p = 3, q = 2, D = 8
    P = torch.arange(64, dtype=F64).reshape(8, 8)
    V = -torch.arange(64, dtype=F64).reshape(8, 8)
    P12, Vbar21, P22, Vbar22 = block.split_full(idx, P, V)
    assert torch.equal(P12, P[:5, 5:]) and torch.equal(P22, P[5:, 5:])
    assert torch.equal(Vbar21, V[6:, :5]) and torch.equal(Vbar22, V[6:, 5:])
    P2, V2 = block.embed_reduced(idx, P12, Vbar21)
    want_P, want_V = torch.zeros(8, 8, dtype=F64), torch.zeros(8, 8, dtype=F64)
    want_P[:5, 5:], want_V[6:, :5] = P[:5, 5:], V[6:, :5]
    assert torch.equal(P2, want_P) and torch.equal(V2, want_V)
    P3, V3 = block.embed_reduced(idx, P12, Vbar21, P22, Vbar22)
    want_P[5:, 5:], want_V[6:, 5:] = P[5:, 5:], V[6:, 5:]
    assert torch.equal(P3, want_P) and torch.equal(V3, want_V)
    K = block.embed_reduced(idx, torch.stack([P12, 2 * P12]), torch.stack([Vbar21, Vbar21]))
    assert K[0].shape == (2, 8, 8) and torch.equal(K[0][1], 2 * P2) and torch.equal(K[1][1], V2)


def _lemma_by_loops(X, wt, P12, Vbar21, P22=None, Vbar22=None):
    """``w + Vbar21 Sigma P12 w~ + (1/n) Vbar22 w~ (w~^T P22 w~)`` with ``Sigma = (1/n) sum_i x_i x_i^T``."""
    X, wt, P12, Vbar21 = (x.tolist() for x in (X, wt, P12, Vbar21))
    out, ss, quads = [], [], []
    for b in range(len(X)):
        n, m, p = len(X[b]), len(X[b][0]), len(wt[b])
        z = [sum(P12[a][c] * wt[b][c] for c in range(p)) for a in range(m)]
        s = [sum(X[b][i][a] * X[b][i][c] * z[c] for i in range(n) for c in range(m)) / n for a in range(m)]
        o = [wt[b][1 + k] + sum(Vbar21[k][a] * s[a] for a in range(m)) for k in range(len(Vbar21))]
        quad = None
        if P22 is not None:
            P22l, V22l = P22.tolist(), Vbar22.tolist()
            quad = sum(wt[b][i] * P22l[i][j] * wt[b][j] for i in range(p) for j in range(p))
            o = [o[k] + quad / n * sum(V22l[k][c] * wt[b][c] for c in range(p)) for k in range(len(o))]
        out.append(o)
        ss.append(s)
        quads.append(quad)
    return out, ss, quads


@pytest.mark.parametrize("cubic", [False, True])
def test_lemma_c1_is_the_formula_and_its_parts(cubic):
    B, n, m, p, q = 2, 3, 5, 3, 2
    X, wt = _rand(B, n, m, seed=13), _rand(B, p, seed=14)
    P12, Vbar21 = _rand(m, p, seed=15), _rand(q, m, seed=16)
    P22, Vbar22 = (_rand(p, p, seed=17), _rand(q, p, seed=18)) if cubic else (None, None)
    want, s, quad = _lemma_by_loops(X, wt, P12, Vbar21, P22, Vbar22)
    out, s_got, quad_got = block.lemma_c1(X, wt, P12, Vbar21, P22, Vbar22, parts=True)
    torch.testing.assert_close(out, torch.tensor(want, dtype=F64), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(s_got, torch.tensor(s, dtype=F64), rtol=1e-13, atol=1e-14)
    if cubic:
        torch.testing.assert_close(quad_got, torch.tensor(quad, dtype=F64), rtol=1e-13, atol=1e-14)
    else:
        assert quad_got is None
    assert torch.equal(block.lemma_c1(X, wt, P12, Vbar21, P22, Vbar22), out)
    # K weight sets at once: each set's read-out
    K = [(P12, Vbar21, P22, Vbar22), (2 * P12, -Vbar21, P22, Vbar22)]
    stack = lambda i: None if K[0][i] is None else torch.stack([k[i] for k in K])
    outK, sK, quadK = block.lemma_c1(X, wt, stack(0), stack(1), stack(2), stack(3), parts=True)
    assert outK.shape == (2, B, q)
    for k, (a, b_, c, e) in enumerate(K):
        want_k, s_k, quad_k = _lemma_by_loops(X, wt, a, b_, c, e)
        torch.testing.assert_close(outK[k], torch.tensor(want_k, dtype=F64), rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(sK[k], torch.tensor(s_k, dtype=F64), rtol=1e-13, atol=1e-14)
        if cubic:
            torch.testing.assert_close(quadK[k], torch.tensor(quad_k, dtype=F64), rtol=1e-13, atol=1e-14)
        else:
            assert quadK is None
    assert torch.equal(block.lemma_c1(X, wt, stack(0), stack(1), stack(2), stack(3)), outK)


@pytest.mark.parametrize("sets", [False, True])
def test_lemma_c1_with_only_one_of_the_cubic_blocks_is_the_reduced_read_out(sets):
    X, wt = _rand(2, 3, 5, seed=34), _rand(2, 3, seed=35)
    P12, Vbar21, P22, Vbar22 = _rand(5, 3, seed=36), _rand(2, 5, seed=37), _rand(3, 3, seed=38), _rand(2, 3, seed=39)
    if sets:
        P12, Vbar21, P22, Vbar22 = (t[None] for t in (P12, Vbar21, P22, Vbar22))
    reduced = block.lemma_c1(X, wt, P12, Vbar21)
    assert torch.equal(block.lemma_c1(X, wt, P12, Vbar21, P22, None), reduced)
    assert torch.equal(block.lemma_c1(X, wt, P12, Vbar21, None, Vbar22), reduced)


def test_lemma_c1_equals_the_literal_block_read_out():
    spec = BlockSpec(VALUE_LAYOUT)
    idx = spec.index(2)
    X, wt = _rand(2, 4, 5, seed=19), _rand(2, 3, seed=20)
    P, V = _rand(8, 8, seed=21), _rand(8, 8, seed=22)
    H = torch.zeros(2, 8, 5, dtype=F64)
    H[:, :5, :4], H[:, 5:, 4] = X.transpose(1, 2), wt
    torch.testing.assert_close(block.lemma_c1(X, wt, *block.split_full(idx, P, V)),
                               block.readout_literal(spec, P, V, H, 2), rtol=1e-12, atol=1e-13)


def test_term_scale_is_the_largest_sum_of_absolute_terms():
    X, wt = _rand(2, 3, 5, seed=23), _rand(2, 3, seed=24)
    P12, Vbar21, P22, Vbar22 = _rand(5, 3, seed=25), _rand(2, 5, seed=26), _rand(3, 3, seed=27), _rand(2, 3, seed=28)
    for cubic in (False, True):
        extra = (P22.abs(), Vbar22.abs()) if cubic else (None, None)
        want, _, _ = _lemma_by_loops(X.abs(), wt.abs(), P12.abs(), Vbar21.abs(), *extra)
        got = block.term_scale(X, wt, P12, Vbar21, *((P22, Vbar22) if cubic else (None, None)))
        torch.testing.assert_close(got, torch.tensor([max(o) for o in want], dtype=F64), rtol=1e-13, atol=0)
    # K weight sets at once: one scale per set and prompt (K x B)
    K = block.term_scale(X, wt, torch.stack([P12, -2 * P12, P12]), torch.stack([Vbar21] * 3))
    assert K.shape == (3, 2)
    torch.testing.assert_close(K[1], block.term_scale(X, wt, 2 * P12, Vbar21), rtol=1e-13, atol=0)


def test_mimic_loss_is_half_the_mean_squared_norm():
    r = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]], dtype=F64)
    t = torch.tensor([[0.0, 0.0], [0.0, 1.0], [3.0, 1.0]], dtype=F64)
    assert block.mimic_loss(r, t).item() == pytest.approx(0.5 * (5.0 + 4.0 + 4.0) / 3, rel=1e-15)
    assert block.mimic_loss(torch.stack([r, t]), t).tolist() == pytest.approx([0.5 * 13 / 3, 0.0], rel=1e-15)


def test_lsa_block_parameters_weights_and_read_outs():
    record = get("sarsa")
    spec, d = record.spec, 2
    idx = spec.index(d)
    red = block.LSABlock(spec, d)
    assert red.P12.shape == (5, 3) and red.Vbar21.shape == (2, 5) and red.P12.dtype == F64
    assert (red.m, red.p, red.q) == (5, 3, 2) and not red.P12.abs().sum() and not red.Vbar21.abs().sum()
    full = block.LSABlock(spec, d, "full")
    assert full.P.shape == (8, 8) and full.V.shape == (8, 8) and not full.P.abs().sum() and not full.V.abs().sum()
    P, V = _rand(8, 8, seed=30), _rand(8, 8, seed=31)
    red.set_weights(P, V)
    full.set_weights(P, V)
    assert torch.equal(red.P12.detach(), P[idx.p12]) and torch.equal(red.Vbar21.detach(), V[idx.vbar21])
    assert torch.equal(full.P.detach(), P) and torch.equal(full.V.detach(), V)
    b = red.blocks()
    assert b[2] is None and b[3] is None and torch.equal(b[0], red.P12)
    fb = full.blocks()
    assert all(torch.equal(x.detach(), y) for x, y in zip(fb, block.split_full(idx, P, V)))
    Pr, Vr = red.full_weights()
    assert torch.equal(Pr.detach(), block.embed_reduced(idx, P[idx.p12], V[idx.vbar21])[0])
    assert full.full_weights()[0] is full.P
    X, wt = _rand(2, 4, 5, seed=32), _rand(2, 3, seed=33)
    H = torch.zeros(2, 8, 5, dtype=F64)
    H[:, :5, :4], H[:, 5:, 4] = X.transpose(1, 2), wt
    with torch.no_grad():
        want = torch.tensor(_lemma_by_loops(X, wt, P[idx.p12], V[idx.vbar21])[0], dtype=F64)
        torch.testing.assert_close(red.readout(X, wt), want, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(red.readout_prompt(H), want, rtol=1e-12, atol=1e-13)
        want_full = torch.tensor(_lemma_by_loops(X, wt, *block.split_full(idx, P, V))[0], dtype=F64)
        torch.testing.assert_close(full.readout(X, wt), want_full, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(full(H).numpy(), _layer_by_hand(spec, P, V, H, d), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(red(H).numpy(), _layer_by_hand(spec, Pr, Vr, H, d), rtol=1e-12, atol=1e-13)


def test_lsa_block_refuses_an_unknown_or_impossible_parameterisation():
    with pytest.raises(ValueError, match="^parameterization: unknown 'tiny'"):
        block.LSABlock(get("sarsa").spec, 2, "tiny")
    with pytest.raises(ValueError, match="^parameterization: reduced needs"):
        block.LSABlock(BlockSpec(WANG_LAYOUT, mask="context"), 2)
    assert block.LSABlock(BlockSpec(WANG_LAYOUT, mask="context"), 2, "full").P.shape == (5, 5)


def test_lsa_block_parameters_take_the_dtype_and_device_asked_for():
    for parameterization in ("reduced", "full"):
        m = block.LSABlock(get("actor-critic").spec, 2, parameterization, dtype=torch.float32, device="meta")
        for p in m.parameters():
            assert p.dtype == torch.float32 and p.device.type == "meta"
        assert len(list(m.parameters())) == 2


def test_lsa_block_forward_writes_only_the_spec_s_rows():
    spec = BlockSpec(WANG_LAYOUT, mask="context", writes=("r",), depth=2)
    m = block.LSABlock(spec, 2, "full")
    P, V = _rand(5, 5, seed=40), _rand(5, 5, seed=41)
    m.set_weights(P, V)
    H = _rand(2, 5, 4, seed=42)
    with torch.no_grad():
        out = m(H)
    want = _layer_by_hand(spec, P, V, torch.from_numpy(_layer_by_hand(spec, P, V, H, 2)), 2)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-13)
    assert torch.equal(out[:, :4], H[:, :4])


# ---- magnitudes (the per-quantity rounding bound of check; numerics.core.tolerances) ----

def _layer_magnitudes_by_loops(spec, P, V, H, d):
    """Each entry of ``|H| + (1/n) W sum_h (|V_h| |H|) |R_h| |M| (|H|^T |P| |H|)``, by explicit loops over
    every term, each term's absolute value added (``R_h``: the running mean or the identity; ``M``: the mask)."""
    P, V, H = (np.asarray(x).tolist() for x in (P, V, H))
    B, D, cols = len(H), len(H[0]), len(H[0][0])
    n = cols - 1
    M = _mask_by_hand(spec, cols).tolist()
    Rm = _running_mean_by_hand(cols).tolist()
    eye = np.eye(cols).tolist()
    written = set(range(D))
    if spec.writes is not None:
        off = spec.layout.offsets("rows", d)
        written = {r for b in spec.writes for r in range(*off[b])}
    heads = [V] if len(spec.heads) == 1 else [V[h] for h in range(len(spec.heads))]
    out = []
    for b in range(B):
        h = H[b]
        vals = [[0.0] * cols for _ in range(D)]
        for Vh, mix in zip(heads, spec.heads):
            R = Rm if mix == "running-mean" else eye
            for i in range(D):
                for j in range(cols):
                    vals[i][j] += sum(abs(Vh[i][k]) * abs(h[k][c]) * abs(R[c][e]) * abs(M[e][j])
                                      for k in range(D) for c in range(cols) for e in range(cols))
        S = [[sum(abs(h[k][i]) * abs(P[k][l]) * abs(h[l][j]) for k in range(D) for l in range(D))
              for j in range(cols)] for i in range(cols)]
        out.append([[abs(h[i][j]) + (sum(vals[i][k] * S[k][j] for k in range(cols)) / n if i in written else 0.0)
                     for j in range(cols)] for i in range(D)])
    return np.array(out)


MAG_SPECS = {**SPECS, "negative-decay": BlockSpec(WANG_LAYOUT, mask="context", decay=-0.5),
             "negative-decay-heads": BlockSpec(WANG_AVG_LAYOUT, mask="context", decay=-0.5,
                                               heads=("running-mean", None))}


@pytest.mark.parametrize("name", list(MAG_SPECS))
@pytest.mark.parametrize("n", [2, 9])          # D >= n + 1 and D < n + 1: both product orders
def test_layer_magnitudes_are_the_sums_of_the_absolute_terms(name, n):
    spec = MAG_SPECS[name]
    d = 2
    D = int(spec.D(d))
    H = _rand(2, D, n + 1, seed=41)
    P = _rand(D, D, seed=42)
    V = _rand(*spec.value_shape(d), seed=43)
    got = block.layer(spec, P, V, H, d, magnitudes=True)
    np.testing.assert_allclose(got.numpy(), _layer_magnitudes_by_loops(spec, P, V, H, d), rtol=1e-12, atol=1e-13)
    # the triangle inequality: never below the layer's own magnitude, and the plain layer is unchanged
    plain = block.layer(spec, P, V, H, d)
    assert bool((got >= plain.abs() - 1e-12).all())
    torch.testing.assert_close(plain, block.layer(spec, P, V, H, d, magnitudes=False), rtol=0, atol=0)


def _readout_magnitudes_by_loops(X, wt, P12, Vbar21, P22=None, Vbar22=None):
    """``linear[k] = sum_a |Vbar21[k, a]| (1/n) sum_i sum_c |x_ia| |x_ic| sum_e |P12[c, e]| |w~_e|`` and
    ``cubic[k] = (1/n) (sum_ij |w~_i| |P22[i, j]| |w~_j|) sum_c |Vbar22[k, c]| |w~_c|``, term by term."""
    X, wt, P12, Vbar21 = (x.tolist() for x in (X, wt, P12, Vbar21))
    lin, cub = [], []
    for b in range(len(X)):
        n, m, p, q = len(X[b]), len(X[b][0]), len(wt[b]), len(Vbar21)
        w = wt[b]
        lin.append([sum(abs(Vbar21[k][a]) * abs(X[b][i][a]) * abs(X[b][i][c]) * abs(P12[c][e]) * abs(w[e])
                        for a in range(m) for i in range(n) for c in range(m) for e in range(p)) / n
                    for k in range(q)])
        if P22 is None or Vbar22 is None:
            cub.append([0.0] * q)
            continue
        P22l, V22l = P22.tolist(), Vbar22.tolist()
        quad = sum(abs(w[i]) * abs(P22l[i][j]) * abs(w[j]) for i in range(p) for j in range(p))
        cub.append([quad / n * sum(abs(V22l[k][c]) * abs(w[c]) for c in range(p)) for k in range(q)])
    return [[abs(x) for x in w[1:]] for w in wt], lin, cub


@pytest.mark.parametrize("cubic", ["both", "P22-only", "Vbar22-only", "none"])
def test_readout_magnitudes_are_the_sums_of_the_absolute_terms_part_by_part(cubic):
    B, n, m, p, q = 2, 3, 5, 3, 2
    X, wt = _rand(B, n, m, seed=44), _rand(B, p, seed=45)
    P12, Vbar21 = _rand(m, p, seed=46), _rand(q, m, seed=47)
    P22 = _rand(p, p, seed=48) if cubic in ("both", "P22-only") else None
    Vbar22 = _rand(q, p, seed=49) if cubic in ("both", "Vbar22-only") else None
    got = block.readout_magnitudes(X, wt, P12, Vbar21, P22, Vbar22)
    w, lin, cub = _readout_magnitudes_by_loops(X, wt, P12, Vbar21, P22, Vbar22)
    assert list(got) == ["w", "linear", "cubic"]
    assert torch.equal(got["w"], torch.tensor(w, dtype=F64))
    torch.testing.assert_close(got["linear"], torch.tensor(lin, dtype=F64), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(got["cubic"], torch.tensor(cub, dtype=F64), rtol=1e-13, atol=1e-14)
    assert got["cubic"].dtype == F64 and got["cubic"].shape == (B, q)
    if cubic == "both":
        assert bool((got["cubic"] > 0).all())
    # the three parts bound the read-out's own terms: w + linear + cubic >= |lemma_c1| term-wise
    total = got["w"] + got["linear"] + got["cubic"]
    assert bool((total >= block.lemma_c1(X, wt, P12, Vbar21, P22, Vbar22).abs() - 1e-12).all())
