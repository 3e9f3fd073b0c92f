"""The block specification (issue 10): one description of layout, depth,
tied or untied layers, attention mask and written rows, from which the
read-out, the loss and the block slices come.  The paper's single-layer
unmasked block is one value of it; a second specification, two untied masked
layers writing one row (the shape of Wang et al.'s TD transformer), is
accepted by the same read-out and loss code, checked against a plain loop
over layers written here."""
from __future__ import annotations

import pytest
import torch

from numerics.core.block import LSABlock, block_literal, lemma_c1, mimic_loss, readout_literal, split_full
from numerics.core.tolerances import DTYPE, REORDER_RTOL
from theory.algorithms import get
from theory.layout import WANG_LAYOUT
from theory.spec import BlockSpec


def plain_layers(P, V, H, n: int, mask, writes, depth: int, tied: bool):
    """``H <- H + (1/n) W (V H) M (H^T P H)`` layer by layer, each prompt
    alone, with ``M = diag(mask)`` and ``W = diag(writes)`` as explicit matrices."""
    outs = []
    M = torch.diag(mask)
    W = torch.diag(writes)
    for b in range(H.shape[0]):
        Z = H[b].clone()
        for k in range(depth):
            Pk, Vk = (P, V) if tied else (P[k], V[k])
            Z = Z + W @ (Vk @ Z) @ M @ (Z.T @ Pk @ Z) / n
        outs.append(Z)
    return torch.stack(outs)


def random_prompt(B, D, n, gen, query_rows=()):
    H = torch.randn(B, D, n + 1, generator=gen, dtype=DTYPE)
    keep = torch.zeros(D, dtype=torch.bool)
    keep[list(query_rows)] = True
    H[:, ~keep, -1] = 0.0
    return H


@pytest.mark.parametrize("tied", [False, True])
def test_depth_two_masked_spec_readout_and_loss_equal_a_plain_loop(tied):
    d, n, B, L = 3, 5, 4, 2
    spec = BlockSpec(WANG_LAYOUT, depth=L, tied=tied, mask="context", writes=("r",))
    D = spec.D(d)
    gen = torch.Generator().manual_seed(0)
    shape = spec.weight_shape(d)
    assert shape == ((D, D) if tied else (L, D, D))
    P = torch.randn(*shape, generator=gen, dtype=DTYPE) / D
    V = torch.randn(*shape, generator=gen, dtype=DTYPE) / D
    H = random_prompt(B, D, n, gen, query_rows=range(d))
    mask = torch.ones(n + 1, dtype=DTYPE)
    mask[-1] = 0
    writes = torch.zeros(D, dtype=DTYPE)
    writes[-1] = 1
    want_H = plain_layers(P, V, H, n, mask, writes, L, tied)
    want = -want_H[:, -1:, -1]                                     # read-out -Z[-1, -1]
    got = readout_literal(spec, P, V, H, d)
    assert torch.allclose(got, want, rtol=0, atol=REORDER_RTOL)
    target = torch.randn(B, 1, generator=gen, dtype=DTYPE)
    assert abs(float(mimic_loss(got, target)) - float(0.5 * ((want - target) ** 2).sum(-1).mean())) <= REORDER_RTOL
    block = LSABlock(spec, d, "full")
    block.set_weights(P, V)
    assert torch.allclose(block.readout_prompt(H), want, rtol=0, atol=REORDER_RTOL)
    # the plain loop is not fooled by a spec that ignores the mask or the written rows
    for other in (BlockSpec(WANG_LAYOUT, depth=L, tied=tied), BlockSpec(WANG_LAYOUT, depth=L, tied=tied, mask="context")):
        assert not torch.allclose(readout_literal(other, P, V, H, d), want, rtol=0, atol=1e-6)


def test_paper_spec_is_lemma_c1_and_the_literal_readout_agrees():
    record = get("actor-critic")
    spec, d, n, B = record.spec, 2, 4, 3
    assert spec.lemma_c1 and not BlockSpec(WANG_LAYOUT, depth=2, mask="context").lemma_c1
    idx = spec.index(d)
    gen = torch.Generator().manual_seed(1)
    P = torch.randn(idx.D, idx.D, generator=gen, dtype=DTYPE)
    V = torch.randn(idx.D, idx.D, generator=gen, dtype=DTYPE)
    X = torch.randn(B, n, idx.m, generator=gen, dtype=DTYPE)
    wt = torch.cat([torch.ones(B, 1, dtype=DTYPE), torch.randn(B, idx.q, generator=gen, dtype=DTYPE)], -1)
    H = torch.zeros(B, idx.D, n + 1, dtype=DTYPE)
    H[:, :idx.m, :n] = X.transpose(1, 2)
    H[:, idx.m:, n] = wt
    lit = readout_literal(spec, P, V, H, d)
    assert torch.allclose(lit, block_literal(P, V, H)[:, -idx.q:, -1], rtol=0, atol=0)
    assert torch.allclose(lemma_c1(X, wt, *split_full(idx, P, V)), lit, rtol=0, atol=REORDER_RTOL)


def test_spec_validation():
    with pytest.raises(ValueError, match="depth"):
        BlockSpec(WANG_LAYOUT, depth=0)
    with pytest.raises(ValueError, match="mask"):
        BlockSpec(WANG_LAYOUT, mask="causal")
    with pytest.raises(ValueError, match="written block"):
        BlockSpec(WANG_LAYOUT, writes=("w",))
    with pytest.raises(ValueError, match="reduced"):
        LSABlock(BlockSpec(WANG_LAYOUT, depth=2), 3, "reduced")
