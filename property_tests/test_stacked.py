"""The paper's block (Theorem 3.1) stacked L times (theory/stacked.py,
``icrl-verify prove --stacked``): L blocks = L batch SARSA steps on the same
window (proven for symbolic d, n; concrete sizes; float64 at L = 10 through
the block specification ``BlockSpec(VALUE_LAYOUT, depth=L)``); for Q-learning
and expected SARSA, whose phi+ is fixed when the prompt is built, refuted
with an exact counterexample; the never-read blocks of Proposition 3.1 are
read by a stack."""
from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp
import torch
from sympy import BlockMatrix, Identity, MatrixSymbol

from numerics.commands.cli import main
from numerics.core.block import readout_literal
from numerics.core.tolerances import DTYPE, REORDER_RTOL
from theory import algorithms
from theory import stacked as S
from theory.constructions import alpha, full_pv
from theory.symbols import d


@pytest.mark.parametrize("algorithm", S.STACKABLE)
def test_stacked_block_one_step_on_the_whole_prompt_general_d_n(algorithm):
    proof = S.prove_stacked_block(algorithm)
    assert proof.ok and proof.residual == 0


def _with_block(M, i, j, blk):
    rows = [list(M.blocks[k, :]) for k in range(M.blocks.shape[0])]
    rows[i][j] = blk
    return BlockMatrix(rows)


def test_stacked_proof_refuses_faults():
    P, V = S.weights_general(algorithms.get("sarsa"))
    assert not S.prove_stacked_block(P=_with_block(P, 0, 4, Identity(d))).ok             # flipped sign of (phi, w)
    assert not S.prove_stacked_block(V=_with_block(V, 4, 0, 2 * alpha * Identity(d))).ok  # step 2 alpha
    # a block one layer never reads (V11) rewrites the parameter column's context rows, read by the next layer
    assert not S.prove_stacked_block(V=_with_block(V, 0, 0, MatrixSymbol("E", d, d))).ok


@pytest.mark.parametrize("dim, cols, layers", [(1, 1, 2), (1, 2, 3), (2, 2, 2)])
def test_stacked_sarsa_concrete(dim, cols, layers):
    assert all(e == 0 for e in S.concrete_stacked_residual("sarsa", dim, cols, layers))


def test_stacked_sarsa_float64_through_the_block_specification(rng):
    """10 layers of BlockSpec(VALUE_LAYOUT, depth=10) with the construction
    (numerics.core.block.forward) on random windows equal 10 SARSA steps by a
    plain loop; the context columns never change."""
    g = rng.numpy
    dim, cols, L, a, gam = 3, 20, 10, 0.2, 0.9
    P, V = (torch.tensor(np.array(M, dtype=float), dtype=DTYPE)
            for M in full_pv(algorithms.get("sarsa"), dim, {alpha: a}))
    spec = S.stacked_spec(L)
    for _ in range(5):
        phi, phin = g.uniform(-1, 1, (cols, dim)), g.uniform(-1, 1, (cols, dim))
        r, w = g.uniform(-1, 1, cols), g.uniform(-1, 1, dim)
        H = np.zeros((3 * dim + 2, cols + 1))
        H[:dim, :cols], H[dim:2 * dim, :cols], H[2 * dim, :cols] = phi.T, gam * phin.T, r
        H[2 * dim + 1, cols], H[2 * dim + 2:, cols] = 1.0, w
        got = readout_literal(spec, P, V, torch.tensor(H)[None], dim)[0].numpy()
        for _ in range(L):
            w = w + a * phi.T @ (r + gam * phin @ w - phi @ w) / cols
        assert np.abs(got - w).max() <= REORDER_RTOL * max(1.0, np.abs(w).max())


@pytest.mark.parametrize("name, stack, algorithm", [
    ("q-learning", [sp.Rational(-3, 2), sp.Rational(-11, 4)], sp.Rational(-5, 4)),
    ("expected-sarsa", [sp.Rational(-7, 4), sp.Rational(-39, 16)], sp.Rational(-25, 16)),
])
def test_stacked_frozen_target_counterexample(name, stack, algorithm):
    """d = 1, n = 1, L = 2, exact: the stack follows phi+ frozen at w_0, the
    algorithm re-derives it (the greedy action flips when w changes sign)."""
    c = S.frozen_target_counterexample(name)
    assert c.refuted and c.stack == stack and c.frozen == stack
    assert c.algorithm[0] == stack[0] and c.algorithm[1] == algorithm


def test_stacked_counterexample_replayed_by_hand():
    """The Q-learning counterexample by hand: w0 = 1, the greedy action at s1 has
    phi = 1; step 1: delta = -2 + 1/2 - 1 = -5/2, w1 = -3/2; the stack keeps
    phi+ = 1: delta = -2 - 3/4 + 3/2 = -5/4, w2 = -11/4; Q-learning re-derives the
    greedy action at w1 < 0 (phi = -1): delta = -2 + 3/4 + 3/2 = 1/4, w2 = -5/4."""
    R = sp.Rational
    w1 = 1 + (-2 + R(1, 2) * 1 * 1 - 1)
    assert w1 == R(-3, 2)
    assert w1 + (-2 + R(1, 2) * w1 * 1 - w1) == R(-11, 4)
    assert w1 + (-2 + R(1, 2) * w1 * (-1) - w1) == R(-5, 4)


def test_never_read_blocks_are_read_by_a_stack():
    c = S.never_read_counterexample()
    assert c.refuted
    assert c.one_layer == (sp.Rational(-3, 2), sp.Rational(-3, 2))
    assert c.two_layers == (sp.Rational(-11, 4), sp.Rational(-169, 16))


def test_prove_cli_stacked(tmp_path, capsys):
    """sarsa: proven, exit 0; q-learning: refuted, exit 1, the counterexample printed and in the report."""
    rc = main(["prove", "--stacked", "--algorithm", "sarsa", "--out", str(tmp_path), "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res["holds"] and res["counterexample"] is None
    rc = main(["prove", "--stacked", "--algorithm", "q-learning", "--out", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    res = json.loads(out.strip().splitlines()[-1])
    assert rc == 1 and not res["holds"] and res["refuted"] and "-5/4" in res["counterexample"]
    assert "REFUTED" in out and "counterexample:" in out
    text = (tmp_path / "stacked-q-learning.md").read_text()
    assert "REFUTED" in text and "-11/4" in text and "Reproduce: `icrl-verify prove --stacked" in text
