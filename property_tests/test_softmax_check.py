"""``check`` of the softmax kind (issue 21; Xie et al. 2026): the block's one
forward equals the pure functions of ``numerics.core.softmax``; the check
holds on random MRPs, sizes and depths (Hypothesis); it refuses the four
planted faults from files, and a fault planted in the reference; the special
cases (tabular, linear) hold and are sensitive; bad weights are one line."""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from numerics import reference_softmax as REF
from numerics.analysis import check_softmax as CS
from numerics.core import softmax as SM
from numerics.core.block import forward_layers
from numerics.core.constructions import softmax_weights
from property_tests.test_theory_prove import _json, _run
from theory import algorithms as A
from theory import construction_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAULTS = os.path.join(ROOT, "examples", "softmax-faults")
SMALL = ["--mdps", "4", "--context", "20", "--states", "6", "--json"]


@pytest.mark.parametrize("name, form", [("softmax-td", "two-head"), ("softmax-td-shift", "one-head")])
def test_the_block_forward_is_the_softmax_modules_layer(name, form):
    """One forward for every kind: the block's softmax layers equal
    ``numerics.core.softmax.forward_layers`` bit for bit, tied and untied."""
    g = torch.Generator().manual_seed(3)
    mdp, sw = CS.draw("random", 3, 7, 4, 15, 0.8, g)
    Z = SM.prompt(torch.cat([sw.win.phi, sw.win.phi_q[:, None, :]], 1), sw.r)
    rec = A.get(name)
    alphas = [0.5, 1.0, 1.5]
    for tied in (True, False):
        steps = [0.7] * 3 if tied else alphas
        Aw, V = softmax_weights(rec, 4, steps, 0.8, tied=tied)
        ours = forward_layers(rec.spec_at(3, tied), Aw, V, Z, 4, gamma=sw.gamma)
        theirs = SM.forward_layers(Z, V, Aw, layers=3, form=form, gamma=sw.gamma, d=4, tied=tied)
        assert torch.equal(ours, torch.stack(theirs))


@given(form=st.sampled_from(["softmax-td", "softmax-td-shift"]), d=st.integers(1, 6), n=st.integers(1, 14),
       L=st.integers(1, 4), S=st.integers(2, 7), gamma=st.floats(0.0, 0.99), alpha=st.floats(0.1, 1.5),
       seed=st.integers(0, 2 ** 31 - 1), tied=st.booleans())
def test_the_check_holds_on_random_mrps_sizes_and_depths(form, d, n, L, S, gamma, alpha, seed, tied):
    g = torch.Generator().manual_seed(seed)
    mdp, sw = CS.draw("random", 3, S, d, n, gamma, g)
    alphas = [alpha] * L if tied else CS.untied_alphas(L, alpha, g)
    res = CS.check_softmax(form, sw, alphas, layers=L, tied=tied)
    assert res.verdict == "holds", res.counterexample or res.undecidable_example
    assert res.worst_error_over_bound <= 1.0 and res.max_rel_error < 1e-12


def test_the_reference_is_weighted_softmax_td_by_a_direct_formula():
    """The reference against the definition written out once more, the
    kernel as exp / sum exp directly (small features, no overflow)."""
    rng = np.random.default_rng(0)
    F = rng.uniform(-1, 1, (5, 3))
    states = rng.integers(0, 5, 13)
    r = rng.uniform(-1, 1, 12)
    run = REF.weighted_softmax_td(F, states, r, 0.9, [0.8, 1.1])
    v = np.zeros(5)
    for a in (0.8, 1.1):
        new = v.copy()
        for s in range(5):
            w = np.exp([F[s] @ F[x] for x in states[:-1]])
            new[s] = v[s] + a * sum(w[k] / w.sum() * (r[k] + 0.9 * v[states[k + 1]] - v[states[k]])
                                    for k in range(12))
        v = new
    assert np.allclose(run.v[-1], v, rtol=1e-13, atol=1e-15)
    assert np.allclose(run.kernel.sum(-1), 1.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("plant", ["kernel", "delta"])
def test_a_fault_planted_in_the_reference_makes_the_check_fail(plant):
    """The other side: a reference with a wrong kernel (exp(2 g)) or a wrong
    TD error (gamma dropped) must not agree with the block."""
    def kernel(F, sources, s):
        g = np.array([2.0 * float(F[s] @ F[x]) for x in sources])
        return np.exp(g - REF.log_sum_exp(g))

    def faulty(F, states, r, gamma, alphas):
        if plant == "kernel":
            return REF.weighted_softmax_td(F, states, r, gamma, alphas, kernel=kernel)
        return REF.weighted_softmax_td(F, states, r, gamma, alphas, td_error=lambda rk, vn, vp: rk + vn - vp)

    g = torch.Generator().manual_seed(1)
    mdp, sw = CS.draw("random", 4, 6, 3, 20, 0.9, g)
    for name in ("softmax-td", "softmax-td-shift"):
        res = CS.check_softmax(name, sw, [1.0] * 3, layers=3, tied=True, reference=faulty)
        assert res.verdict == "fails" and res.counterexample["layer"] == (1 if plant == "kernel" else 2)
        assert res.counterexample["quantity"] in ("current", "target")


@pytest.mark.parametrize("fault, first_layer", [
    ("sign-flipped.toml", 2), ("mask-dropped.toml", 1), ("shift-two.toml", 1), ("shift-zero.toml", 1),
    ("a-reward-row.toml", 1), ("a-doubled.toml", 1)])
def test_each_planted_fault_file_exits_1_with_a_counterexample(fault, first_layer, capsys):
    rc, out, err = _run(["check", "--construction", os.path.join(FAULTS, fault), *SMALL], capsys)
    res = _json(out)
    assert rc == 1 and res["verdict"] == "fails" and err == ""
    c = res["counterexample"]
    assert c["layer"] == first_layer and c["quantity"] in ("current", "target")
    assert {"layer", "column", "state", "got", "want", "bound", "prompt", "row"} <= set(c)
    assert abs(c["got"] - c["want"]) > c["bound"] > 0 or c["bound"] == 0.0
    assert "counterexample: window" in out and "reproduce: icrl-verify check --construction" in out


def test_the_constructions_hold_through_the_cli_with_the_example_file(capsys):
    for argv in (["--algorithm", "softmax-td"], ["--algorithm", "softmax-td-shift", "--untied"],
                 ["--construction", os.path.join(ROOT, "examples", "construction-softmax-td.toml")]):
        rc, out, err = _run(["check", *argv, *SMALL], capsys)
        res = _json(out)
        assert rc == 0 and res["verdict"] == "holds" and res["counterexample"] is None, out
    assert res["layers"] == 3 and res["form"] == "two-head"
    rec = construction_file.load(os.path.join(ROOT, "examples", "construction-softmax-td.toml"))
    builtin = A.get("softmax-td")
    assert (rec.spec, rec.construction, rec.context, rec.rule) == (builtin.spec, builtin.construction,
                                                                   builtin.context, builtin.rule)


def test_untied_layers_draw_one_step_per_layer(capsys):
    rc, out, _ = _run(["check", "--algorithm", "softmax-td", "--untied", "--layers", "4", *SMALL], capsys)
    res = _json(out)
    assert rc == 0 and res["tied"] is False and len(set(res["alphas"])) == 4 and "--untied" in res["command"]


def test_weights_files_of_the_right_shape_are_checked_and_others_refused(tmp_path, capsys):
    rec = A.get("softmax-td")
    Aw, V = softmax_weights(rec, 3, [1.0] * 3, 0.9)
    good = str(tmp_path / "good.npz")
    np.savez(good, A=Aw.numpy(), V=V.numpy())
    rc, out, _ = _run(["check", "--algorithm", "softmax-td", "--weights", good, *SMALL], capsys)
    assert rc == 0 and _json(out)["verdict"] == "holds"
    wrong = str(tmp_path / "wrong.npz")
    np.savez(wrong, A=Aw.numpy(), V=V[0].numpy())                 # one head for the two-head record
    bad = str(tmp_path / "bad.npz")
    np.savez(bad, P=Aw.numpy(), V=V.numpy())                      # the linear kind's names
    flipped = str(tmp_path / "flipped.npz")
    V2 = V.clone()
    V2[0, 5, 4] = -V2[0, 5, 4]                                    # the target's sign in the current row
    np.savez(flipped, A=Aw.numpy(), V=V2.numpy())
    for path, field in ((wrong, "weights.V"), (bad, "weights")):
        rc, out, err = _run(["check", "--algorithm", "softmax-td", "--weights", path, *SMALL], capsys)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and f"error: {field}" in err, err
    rc, out, _ = _run(["check", "--algorithm", "softmax-td", "--weights", flipped, *SMALL], capsys)
    assert rc == 1 and _json(out)["counterexample"]["layer"] == 2


@pytest.mark.parametrize("argv, field", [
    (["--algorithm", "softmax-td", "--gamma-range", "0.5", "0.9"], "gamma-range"),
    (["--algorithm", "softmax-td", "--preconditioner", "random"], "preconditioner"),
    (["--algorithm", "softmax-td", "--case", "tabular", "--tau", "1000"], "tau"),
    (["--algorithm", "softmax-td", "--case", "linear", "--eps", "2"], "eps"),
    (["--algorithm", "td-preconditioned", "--untied"], "untied"),
    (["--algorithm", "rg", "--case", "tabular"], "case"),
    (["--algorithm", "softmax-td", "--layers", "40", "--context", "100", "--mdps", "3000", "--max-time", "10"],
     "max-time"),
    (["--algorithm", "softmax-td-shift", "--layers", "40", "--context", "100", "--mdps", "3000", "--max-memory",
      "100M"], "max-memory"),
])
def test_bad_softmax_options_are_one_line(argv, field, capsys):
    rc, out, err = _run(["check", *argv], capsys)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and f"error: {field}" in err, err


def test_divergence_and_undecidable_verdicts():
    g = torch.Generator().manual_seed(0)
    mdp, sw = CS.draw("random", 3, 10, 3, 30, 0.9, g)
    res = CS.check_softmax("softmax-td", sw, [5.0] * 40, layers=40, tied=True)
    assert res.verdict == "diverges" and res.divergence["layer"] > 1 and not res.holds
    big = CS.softmax_windows(mdp, 1e6 * sw.F, sw.states)          # scores ~ 1e12: exp's argument rounds by ~1e-4
    res = CS.check_softmax("softmax-td", big, [1.0] * 3, layers=3, tied=True)
    assert res.verdict == "undecidable" and res.undecidable_example["bound_over_signal"] > 1e-6


def test_the_tabular_case_is_batch_tabular_td_and_is_sensitive_to_tau(capsys):
    rec = A.get("softmax-td-shift")
    res = CS.tabular_case(rec, 5, 6, 40, 3, 0.9, [1.0] * 3, torch.Generator().manual_seed(0))
    assert res["holds"] and res["max_rel_error"] < 1e-15 and res["tau"] == 40.0
    soft = CS.tabular_case(rec, 5, 6, 40, 3, 0.9, [1.0] * 3, torch.Generator().manual_seed(0), tau=10.0)
    assert not soft["holds"] and soft["max_rel_error"] > 1e-6            # exp(-10) weights: not tabular
    rc, out, _ = _run(["check", "--algorithm", "softmax-td", "--case", "tabular", *SMALL], capsys)
    res = _json(out)
    assert rc == 0 and res["special_case"]["holds"] and res["config"]["features_dim"] == 6
    assert "tabular case (tau = 40" in out
    rc, out, _ = _run(["check", "--algorithm", "softmax-td", "--case", "tabular", "--tau", "8", *SMALL], capsys)
    assert rc == 1 and not _json(out)["special_case"]["holds"] and _json(out)["verdict"] == "holds"


def test_the_linear_case_is_linear_td_to_fourth_order(capsys):
    res = CS.linear_case(A.get("softmax-td"), 4, 6, 3, 30, 3, 0.9, [1.0] * 3, torch.Generator().manual_seed(0))
    assert res["holds"] and abs(res["centered"]["slope"] - 4) < 0.3 and abs(res["symmetric"]["slope"] - 2) < 0.3
    assert res["centered"]["max_abs_error"][-1] < 1e-4
    rc, out, _ = _run(["check", "--algorithm", "softmax-td-shift", "--case", "linear", *SMALL], capsys)
    assert rc == 0 and _json(out)["special_case"]["holds"] and "linear case (eps = 0.4" in out


def test_a_window_with_one_transition_and_one_layer():
    g = torch.Generator().manual_seed(5)
    mdp, sw = CS.draw("boyan", 2, 4, 2, 1, 0.5, g)
    for name in ("softmax-td", "softmax-td-shift"):
        res = CS.check_softmax(name, sw, [1.0], layers=1, tied=True)
        assert res.verdict == "holds"
        # one context column: the kernel is 1, so v_1(s) = r_1 for every state
        Zs = CS.block_layers(A.get(name), sw, 1, True, [1.0])[0]
        assert torch.allclose(Zs[1, :, -1, :], sw.r.expand(2, 2), rtol=0, atol=1e-15)


def test_a_missing_target_row_is_refused_by_the_spec_not_the_check():
    rec = A.get("softmax-td")
    with pytest.raises(ValueError):
        replace(rec, spec=replace(rec.spec, heads=(None, "running-mean")))


@pytest.mark.parametrize("text, field", [
    ('name = "x"\n[block]\nkind = "softmax"\nform = "three-head"\n[weights]\nA = []\nV = [[]]\n', "construction.block.form"),
    ('name = "x"\n[block]\nkind = "softmax"\nform = "one-head"\nheads = ["identity"]\n[weights]\nA = []\nV = [[]]\n',
     "construction.block.form"),
    ('name = "x"\n[block]\nkind = "softmax"\nform = "one-head"\n[weights]\nP = []\nV = [[]]\n', "construction.weights.P"),
    ('name = "x"\n[block]\nkind = "softmax"\nform = "one-head"\nshift = "one"\n[weights]\nA = []\nV = [[]]\n',
     "construction.block.shift"),
    ('name = "x"\n[block]\nkind = "softmax"\nform = "one-head"\nshift = -1\n[weights]\nA = []\nV = [[]]\n',
     "construction.block"),
    ('name = "x"\n[block]\nkind = "softmax"\nform = "one-head"\n[weights]\nA = [["phi", "phi", "1"]]\n'
     'V = [[["current", "phi", "1"]]]\n', "construction.record"),
    ('name = "x"\nteacher = "semi-gradient"\n[block]\nkind = "softmax"\nform = "one-head"\n[weights]\nA = []\n'
     'V = [[]]\n', "construction.record"),
])
def test_a_bad_softmax_file_is_one_line_naming_the_field(tmp_path, capsys, text, field):
    path = tmp_path / "c.toml"
    path.write_text(text)
    rc, out, err = _run(["check", "--construction", str(path), *SMALL], capsys)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and f"error: {field}" in err, err


def test_a_step_off_by_one_part_in_a_billion_fails():
    """The bound is not vacuous: weights with alpha (1 + 1e-9) against the
    reference's alpha fail at layer 1 (the step's own terms are about 1, the
    bound about 1e-14)."""
    g = torch.Generator().manual_seed(2)
    mdp, sw = CS.draw("random", 4, 8, 5, 50, 0.9, g)
    for name in ("softmax-td", "softmax-td-shift"):
        weights = softmax_weights(A.get(name), 5, [1.0 + 1e-9] * 3, 0.9)
        res = CS.check_softmax(name, sw, [1.0] * 3, layers=3, tied=True, weights=weights)
        assert res.verdict == "fails" and res.counterexample["layer"] == 1
        assert res.counterexample["abs_error"] > 100 * res.counterexample["bound"]


def test_the_two_forms_agree_lemma_1_and_the_same_seed_gives_the_same_numbers(capsys):
    g = torch.Generator().manual_seed(4)
    mdp, sw = CS.draw("random", 5, 9, 4, 40, 0.8, g)
    outs = [CS.block_layers(A.get(name), sw, 10, True, [1.0] * 10)[0] for name in ("softmax-td", "softmax-td-shift")]
    rows = slice(4, 7)                                            # r, target, current
    assert torch.allclose(outs[0][:, :, rows], outs[1][:, :, rows], rtol=0, atol=1e-13)
    runs = [_json(_run(["check", "--algorithm", "softmax-td-shift", "--untied", *SMALL], capsys)[1])
            for _ in range(2)]
    for r in runs:
        r.pop("seconds")
    assert runs[0] == runs[1]


def test_a_write_into_the_reward_row_is_an_untouched_entry_that_changed():
    g = torch.Generator().manual_seed(0)
    mdp, sw = CS.draw("random", 3, 6, 3, 10, 0.9, g)
    Aw, V = softmax_weights(A.get("softmax-td"), 3, [1.0] * 2, 0.9)
    V[0, 3, 5] = 0.5                                              # head 1 writes the current value into the reward row
    res = CS.check_softmax("softmax-td", sw, [1.0] * 2, layers=2, tied=True, weights=(Aw, V))
    c = res.counterexample
    assert res.verdict == "fails" and c["quantity"] == "untouched" and c["row"] == 3 and c["layer"] == 2
    assert c["abs_error"] > 0 and res.errors["untouched"] == float("inf")
