"""Issue 19: verdicts that cannot be talked into "holds".

* The per-quantity rule itself (``numerics.core.tolerances``): bounds add
  up part by part, NaN is never within a bound, ``changed`` is exact,
  verdict precedence.
* The issue's first file (``--layout wang2025``, L = 40, alpha = 10, the last
  layer rewrites a feature row): exit 1 naming layer 40 and row 0; a
  Hypothesis property: any weight file that rewrites a row the construction
  keeps, at any alpha (converging or diverging), any layer and row, fails
  with that layer and row.  A diverging construction is reported as such.
* The issue's second file (SARSA construction, antisymmetric ``P22`` of
  entries 1e12, nonzero ``Vbar22``): never exit 0; the 1% step error is
  refused or not decidable, the right step is not decidable, with the
  bound; ``prove --weights`` on its exact entries decides both.  The same
  through the torch stream (expected SARSA).
* One entry's magnitudes never excuse another entry's error.
* ``prove``'s counterexample records the value of a step fixed by ``--alpha``.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.analysis.check import check_against_loop, draw_windows
from numerics.commands.cli import main
from numerics.core import tolerances as T
from numerics.core.constructions import constructed_weights
from numerics.core.tolerances import DTYPE
from numerics.core.constructions import preconditioned_weights
from numerics.io.models import save_weights
from theory import algorithms
from theory import algorithms
from theory.constructions import full_pv
from theory.parse import weights_to_json
from theory.symbols import alpha as ALPHA
from theory.symbols import beta as BETA


def run(argv, capsys):
    rc = main([*argv, "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out.strip().splitlines()[-1]), out


# ---- the rule ----------------------------------------------------------------------------------

def test_rounding_bound_is_the_sum_of_depth_times_magnitude_part_by_part():
    e = T.eps()
    got = T.rounding_bound([(np.array([1.0, 0.0]), 3), (np.array([0.0, 10.0]), 5)])
    assert np.array_equal(got, np.array([T.ROUNDING_FACTOR * e * 3, T.ROUNDING_FACTOR * e * 50]))
    assert T.bound_coefficients([3, 5]) == [T.ROUNDING_FACTOR * e * 3, T.ROUNDING_FACTOR * e * 5]


def test_exceeds_changed_decidable_and_verdict_precedence():
    assert list(T.exceeds(np.array([0.5, 2.0, np.nan, np.inf]), 1.0)) == [False, True, True, True]
    assert list(T.changed(np.array([1.0, np.nan, -0.0]), np.array([1.0, np.nan, 0.0]))) == [False, True, False]
    assert bool(T.changed(torch.tensor([1.0 + 2 ** -52], dtype=DTYPE), torch.tensor([1.0], dtype=DTYPE)))
    assert T.decidable(1e-7, 1.0) and not T.decidable(1e-5, 1.0) and T.decidable(0.0, 0.0)
    assert T.verdict(failed=True, undecidable=True, diverged=True) == T.FAILS
    assert T.verdict(failed=False, undecidable=True, diverged=True) == T.DIVERGES
    assert T.verdict(failed=False, undecidable=True) == T.UNDECIDABLE
    assert T.verdict(failed=False, undecidable=False) == T.HOLDS


# ---- issue file 1: --layout wang2025, a feature row rewritten ------------------------------------

def _issue_bad_npz(path, d=4, L=40, a=10.0):
    D = 2 * d + 1
    P, V = np.zeros((L, D, D)), np.zeros((L, D, D))
    P[:, :d, :d] = -a * np.eye(d)
    P[:, :d, d:2 * d] = a * np.eye(d)
    V[:, -1, -1] = 1
    V[-1, 0, 0] = 1
    np.savez(path, P=P, V=V)
    return str(path)


@pytest.mark.parametrize("alpha", ["10", "1"])
def test_issue_19_wang_file_rewriting_a_feature_row_fails_naming_layer_and_row(alpha, tmp_path, capsys):
    """The issue's command: before issue 19, --alpha 10 exited 0 (every error
    divided by the largest magnitude over all layers, ~1e23)."""
    path = _issue_bad_npz(tmp_path / "bad.npz")
    rc, res, out = run(["check", "--algorithm", "td-preconditioned", "--weights", path, "--layers", "40", "--features-dim", "4",
                        "--context", "30", "--alpha", alpha], capsys)
    assert rc == 1 and res["verdict"] == "fails" and not res["holds"], res
    c = res["counterexample"]
    if alpha == "10":          # C = 10 I matches the file: only the rewritten row is wrong
        assert c["quantity"] == "untouched" and c["layer"] == 40 and c["rows"] == [0], c
        assert res["divergence"] is not None and res["divergence"]["layer"] < 40
        assert "diverges from layer" in out and "rows changed: [0]" in out
    else:                      # P holds 10 I against the teacher's C = I: wrong from the first layer on
        assert c["layer"] == 1 and c["quantity"] in ("carried", "value"), c
    assert "FAILS" in out


def test_issue_19_diverging_construction_is_reported_diverging_never_holds(capsys):
    rc, res, out = run(["check", "--algorithm", "td-preconditioned", "--layers", "40", "--features-dim", "4", "--context", "30",
                        "--alpha", "10"], capsys)
    assert rc == 1 and res["verdict"] == "diverges" and res["counterexample"] is None, res
    v = res["divergence"]
    # the reported first diverging layer lies inside the stack and its magnitude is past the stated bound
    # (DIVERGENCE_RATIO x the window's size): a report that named a layer whose values were not yet above
    # the bound, or no layer of the 40, fails here
    assert 1 <= v["layer"] < 40 and v["magnitude"] > T.DIVERGENCE_RATIO * v["window_size"]
    assert "DIVERGES" in out


@settings(max_examples=12)
@given(d=st.integers(2, 3), layers=st.integers(1, 8), data=st.data(),
       alpha=st.floats(0.05, 40.0), coef=st.sampled_from([-2.0, -0.5, 1e-3, 1.0, 3.0]), seed=st.integers(0, 2 ** 16))
def test_any_rewritten_kept_row_fails_at_any_alpha_naming_layer_and_row(d, layers, data, alpha, coef, seed):
    """A weight file whose layer ``l`` writes a row the construction keeps
    (a feature row, the query, a zero row) fails at layer ``l``, naming that
    row, whether the iteration converges (small alpha) or diverges."""
    record = algorithms.get("td-preconditioned")
    D = 2 * d + 1
    carried = record.layout.offsets("rows", d)[record.carried][0]
    kept = [i for i in range(D) if i != carried]
    row = data.draw(st.sampled_from(kept), label="row")
    source = data.draw(st.integers(0, 2 * d - 1), label="source feature row")
    at = data.draw(st.integers(0, layers - 1), label="layer (0-based)")
    g = torch.Generator().manual_seed(seed)
    win = draw_windows("random", 3, 6, d, 8, 0.9, g)
    Cs = alpha * torch.eye(d, dtype=DTYPE).expand(layers, d, d).clone()
    P, V = preconditioned_weights(record, Cs)
    V = V.clone()
    V[at, row, source] = coef
    res = check_against_loop(record, win, Cs, layers=layers, tied=False, weights=(P, V))
    assert res.verdict == T.FAILS and not res.holds, res
    c = res.counterexample
    assert c["quantity"] == "untouched" and c["layer"] == at + 1 and row in c["rows"], (c, row, at)


# ---- issue file 2: the SARSA construction with a cancelling cubic term ------------------------------

def _cubic_file(tmp_path, name: str, alpha: sp.Rational, d: int):
    """The issue's weights, exact (JSON) and as float64 (npz): the SARSA
    construction at ``alpha``, ``P22`` antisymmetric with entries 1e12,
    ``Vbar22`` all ones (so ``w~^T P22 w~ = 0`` exactly)."""
    record = algorithms.get("sarsa")
    idx = record.spec.index(d)
    P, V = full_pv(record, d, {ALPHA: alpha})
    r0, c0 = idx.p22[0].start, idx.p22[1].start
    for i in range(idx.p):
        for j in range(i + 1, idx.p):
            P[r0 + i, c0 + j], P[r0 + j, c0 + i] = 10 ** 12, -10 ** 12
    v0, v1 = idx.vbar22[0].start, idx.vbar22[1].start
    for k in range(idx.q):
        for j in range(idx.p):
            V[v0 + k, v1 + j] = 1
    js = tmp_path / f"{name}.json"
    js.write_text(weights_to_json(P, V))
    npz = tmp_path / f"{name}.npz"
    np.savez(npz, P=np.array(P.tolist(), dtype=float), V=np.array(V.tolist(), dtype=float))
    return str(js), str(npz)


SMALL = ["--states", "2", "--actions", "2", "--prompts", "2000"]          # d = 4


@pytest.mark.parametrize("algorithm", ["sarsa", "expected-sarsa"])     # compiled stream, torch stream
def test_issue_19_cubic_file_never_holds_and_prove_decides_it(algorithm, tmp_path, capsys):
    right_js, right = _cubic_file(tmp_path, "right", sp.Rational(1, 5), 4)
    wrong_js, wrong = _cubic_file(tmp_path, "wrong", sp.Rational(202, 1000), 4)
    base = ["check", "--algorithm", algorithm, "--alpha", "0.2", *SMALL]
    rc, res, out = run(base + ["--weights", right], capsys)
    assert rc == 1 and res["verdict"] == "undecidable" and res["counterexample"] is None, res
    u = res["undecidable_example"]
    assert u["bound"] > T.DECIDABLE_RTOL * u["signal"] and u["bound"] > 0 and "prove" in u["suggestion"]
    assert "NOT DECIDABLE" in out and "prove" in out
    rc, res, out = run(base + ["--weights", wrong], capsys)
    assert rc == 1 and res["verdict"] in ("fails", "undecidable") and not res["holds"], res
    if res["verdict"] == "undecidable":
        assert res["undecidable_example"]["bound"] > 0
    if algorithm == "sarsa":
        rc, res, _ = run(["prove", "--algorithm", "sarsa", "--weights", right_js, "--alpha", "1/5",
                          "--out", str(tmp_path / "p")], capsys)
        assert rc == 0 and res["general"] is True, res
        rc, res, _ = run(["prove", "--algorithm", "sarsa", "--weights", wrong_js, "--alpha", "1/5",
                          "--out", str(tmp_path / "p")], capsys)
        assert rc == 1 and res["general"] is False and res["counterexample"] is not None, res
        assert res["counterexample"]["alpha"] == "1/5"          # the value fixed by --alpha, not the symbol


def test_issue_19_cubic_file_at_section_4_1_sizes(tmp_path, capsys):
    """The issue's own sizes (d = 36): before issue 19, tolerance ~4-61 and exit 0."""
    _, right = _cubic_file(tmp_path, "right", sp.Rational(1, 5), 36)
    _, wrong = _cubic_file(tmp_path, "wrong", sp.Rational(202, 1000), 36)
    for path in (right, wrong):
        rc, res, _ = run(["check", "--weights", path, "--alpha", "0.2", "--prompts", "500"], capsys)
        assert rc == 1 and res["verdict"] in ("undecidable", "fails"), res
        assert res["verdict"] == "fails" or res["undecidable_example"]["bound_over_signal"] > T.DECIDABLE_RTOL


def test_one_entrys_magnitudes_never_excuse_another_entrys_error(tmp_path, capsys):
    """Entry 0 carries a huge (exactly cancelling) cubic term; entry 1 has a
    step error of 1e-6 relative.  A per-prompt tolerance (the largest
    magnitude of any entry) would let it pass; its own bound refuses it."""
    d = 4
    record = algorithms.get("sarsa")
    idx = record.spec.index(d)
    P, V = constructed_weights(record, d, {"alpha": 0.2})
    p = idx.p
    A = torch.triu(torch.ones(p, p, dtype=DTYPE), 1) * 1e8
    P[idx.p22] = A - A.T
    V22 = torch.zeros(idx.q, p, dtype=DTYPE)
    V22[0] = 1.0
    V[idx.vbar22] = V22
    rows = range(idx.vbar21[0].start, idx.vbar21[0].stop)
    V[rows[1], idx.vbar21[1]] *= 1 + 1e-6                            # entry 1: alpha (1 + 1e-6)
    path = str(tmp_path / "w.npz")
    save_weights(path, P, V)
    rc, res, _ = run(["check", "--weights", path, *SMALL], capsys)
    assert rc == 1 and res["verdict"] == "fails", res
    c = res["counterexample"]
    err = np.abs(np.array(c["got"]) - np.array(c["expected"]))
    assert int(err.argmax()) == 1 and c["abs_error"] > c["tolerance"]


def test_constructions_hold_with_room_under_the_per_quantity_rule(capsys):
    """Every paper algorithm's construction holds, its worst error far inside
    each entry's own bound (the rule is not so loose that it cannot fail)."""
    for algorithm in ("sarsa", "expected-sarsa", "q-learning", "actor-critic", "td-preconditioned"):
        rc, res, _ = run(["check", "--algorithm", algorithm, "--prompts", "500"], capsys)
        assert rc == 0 and res["verdict"] == "holds" and res["undecidable"] == 0, res
        assert 0.0 <= res["worst_error_over_bound"] < 0.5 and math.isfinite(res["tolerance"])


def test_wang_step_too_small_for_float64_is_undecidable_with_its_bound(capsys):
    """C = 1e-12 I: each TD step moves the carried TD errors by ~1e-12 of
    their size, within a few hundred ulps: float64 cannot tell that step
    from a wrong one, so the check says so instead of "holds"; at alpha =
    1e-3 the same check is decidable and holds."""
    base = ["check", "--algorithm", "td-preconditioned", "--layers", "3", "--features-dim", "3", "--context", "20",
            "--mdps", "5"]
    rc, res, out = run(base + ["--alpha", "1e-12"], capsys)
    assert rc == 1 and res["verdict"] == "undecidable" and res["counterexample"] is None, res
    u = res["undecidable_example"]
    assert u["bound"] > T.DECIDABLE_RTOL * u["signal"] > 0 and 1 <= u["layer"] <= 3
    assert "NOT DECIDABLE" in out
    rc, res, _ = run(base + ["--alpha", "1e-3"], capsys)
    assert rc == 0 and res["verdict"] == "holds" and res["undecidable"] == 0, res


@pytest.mark.parametrize("algorithm", ["sarsa", "actor-critic"])
def test_prove_counterexample_records_the_steps_fixed_on_the_command_line(algorithm, tmp_path, capsys):
    """Issue 19's small defect: with --alpha (and --beta) fixed, the
    counterexample recorded the symbol's name "alpha" instead of its value."""
    record = algorithms.get(algorithm)
    P, V = full_pv(record, 1, {ALPHA: sp.Rational(3, 10), BETA: sp.Rational(1, 7)})
    path = tmp_path / "w.json"
    path.write_text(weights_to_json(P, V))
    rc, res, out = run(["prove", "--algorithm", algorithm, "--weights", str(path), "--alpha", "1/5",
                        "--beta", "2/9", "--out", str(tmp_path / "p")], capsys)
    assert rc == 1 and res["counterexample"] is not None, res
    c = res["counterexample"]
    assert c["alpha"] == "1/5" and "alpha = 1/5" in out
    assert c["beta"] == ("2/9" if algorithm == "actor-critic" else "beta")
