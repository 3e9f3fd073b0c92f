"""``icrl-verify prove`` (theory/prove.py): the acceptance points of issue 3.

Rescaled constructions and arbitrary never-read blocks are proven; a flipped
sign, a wrong step size, and P22 with Vbar22 both nonzero exit 1 with a
nonzero residual; a malformed file exits 2 with one line; reports are
Markdown with LaTeX stating what was proven for which sizes.
"""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import sympy as sp

from numerics.commands.cli import main
from theory import algorithms
from theory import symbolic as S
from theory.algorithms import get
from theory.constructions import alpha, beta
from theory.constructions import full_pv as _full_pv
from theory.layout import VALUE_LAYOUT
from theory.parse import weights_to_json
from theory.prove import prove, prove_proposition_3_1, render
from theory.symbols import gamma


def _write(tmp_path, name, P, V):
    path = tmp_path / f"{name}.json"
    path.write_text(weights_to_json(P, V))
    return str(path)


def _run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _json(out):
    return json.loads(out.strip().splitlines()[-1])


def full_pv(algorithm, d, subs=None):
    return _full_pv(get(algorithm), d, subs)


def _variants(algorithm, d):
    """Name -> (P, V, expected proven)."""
    P, V = full_pv(algorithm, d)
    lay = get(algorithm).layout
    m, p = lay.m(d), lay.p(d)
    D = m + p
    out = {"construction": (P, V, True), "rescaled c=-3": (-3 * P, V / -3, True),
           "rescaled c=1/2": (P / 2, 2 * V, True)}
    Pu, Vu = P.copy(), V.copy()
    for i in range(D):                       # P11, P21 and V11, V12, first row of V21, V22: arbitrary
        for j in range(m):
            Pu[i, j] = sp.Rational(i + 2 * j + 1, 7) - 1
        for j in range(D):
            if i < m + 1:
                Vu[i, j] = sp.Rational(3 * i - j, 5) + (alpha if (i + j) % 3 == 0 else 0)
    A = sp.Matrix(p, p, lambda i, j: (i - j) * (i + j + 1))           # antisymmetric P22 ...
    Pu[m:, m:] = A
    Vu[m + 1:, m:] = sp.Matrix(p - 1, p, lambda i, j: i + j + 1)      # ... with a nonzero Vbar22: still unread
    out["never-read blocks arbitrary"] = (Pu, Vu, True)
    Pf = P.copy()
    Pf[0, m + 1] = -Pf[0, m + 1]                                      # flipped sign in P12 (phi, w)
    out["flipped sign"] = (Pf, V, False)
    out["wrong step size"] = (P, V.subs({alpha: 2 * alpha, beta: 2 * beta}), False)
    Pa, Va = P.copy(), V.copy()
    Pa[m:, m:] = sp.Matrix(p, p, lambda i, j: i + 2 * j + 1)         # P22 alone (Vbar22 = 0): unread
    out["P22 alone"] = (Pa, Va, True)
    Vb = V.copy()
    Vb[m + 1:, m:] = sp.Matrix(p - 1, p, lambda i, j: 2 * i - j + 1)  # Vbar22 alone (P22 = 0): unread
    out["Vbar22 alone"] = (P, Vb, True)
    Pc, Vc = P.copy(), V.copy()
    Pc[m, m] = 1                                                      # P22 (not antisymmetric) and Vbar22 both nonzero
    Vc[m + 1, m + 1] = 2
    out["P22 and Vbar22 nonzero"] = (Pc, Vc, False)
    return out


@pytest.mark.parametrize("algorithm, d", [("sarsa", 2), ("actor-critic", 1)])
def test_weights_variants_api(tmp_path, algorithm, d):
    for name, (P, V, expect) in _variants(algorithm, d).items():
        r = prove(algorithm, weights=_write(tmp_path, name.replace(" ", "_").replace("/", "_"), P, V))
        assert r["general"] is expect, name
        if expect:
            assert r["residual"] is None and all(c["ok"] for c in r["concrete"]), name
        else:
            assert r["residual"] and r["residual"] != "0" and not any(c["ok"] for c in r["concrete"]), name
        assert {c["d"] for c in r["concrete"]} == {d}


@pytest.mark.parametrize("name, expect_rc", [("rescaled c=-3", 0), ("never-read blocks arbitrary", 0),
                                             ("flipped sign", 1), ("wrong step size", 1),
                                             ("P22 and Vbar22 nonzero", 1)])
def test_weights_cli_exit_status(tmp_path, capsys, name, expect_rc):
    P, V, _ = _variants("sarsa", 1)[name]
    path = _write(tmp_path, "w", P, V)
    rc, out, err = _run(["prove", "--algorithm", "sarsa", "--weights", path, "--out", str(tmp_path), "--json"], capsys)
    assert rc == expect_rc, out + err
    res = _json(out)
    assert set(res) >= {"algorithm", "general", "concrete", "residual", "report"}
    assert res["general"] is (expect_rc == 0)
    assert (res["residual"] is None) is (expect_rc == 0)
    if expect_rc:
        assert "residual:" in out
    assert os.path.exists(res["report"])


def test_weights_symbolic_step_size(tmp_path, capsys):
    P, V = full_pv("actor-critic", 1)
    path = _write(tmp_path, "ac", -3 * P, V / -3)
    rc, out, _ = _run(["prove", "--algorithm", "actor-critic", "--weights", path, "--alpha", "alpha",
                       "--beta", "beta", "--out", str(tmp_path), "--json"], capsys)
    assert rc == 0 and _json(out)["alpha"] == "alpha"
    # the same file against a teacher with another step size fails
    rc, out, _ = _run(["prove", "--algorithm", "actor-critic", "--weights", path, "--alpha", "alpha",
                       "--beta", "1/3", "--out", str(tmp_path)], capsys)
    # beta in the file is replaced by the teacher's 1/3, so the weights still match: proven
    assert rc == 0
    P2 = P.subs(beta, sp.Rational(1, 5))
    V2 = V.subs(beta, sp.Rational(1, 5))
    path2 = _write(tmp_path, "ac_fixed", P2, V2)
    rc, out, _ = _run(["prove", "--algorithm", "actor-critic", "--weights", path2, "--beta", "1/3",
                       "--out", str(tmp_path)], capsys)
    assert rc == 1 and "residual" in out


BAD = [
    ('{"P": [[1]], "V": [[1]]', "not valid JSON"),
    ('{"P": [["os.system(1)"]], "V": [[1]]}', "unknown symbol"),
    ('{"P": [[0,0],[0,0]], "V": [[0,0],[0,0]]}', "3d+2"),
    ('{"P": [[1, 2], [3]], "V": [[1]]}', "row 1"),
    (json.dumps({"P": [["1/(alpha-1/5)"] + [0] * 4] + [[0] * 5] * 4, "V": [[0] * 5] * 5}), "undefined at"),
]


@pytest.mark.parametrize("text, fragment", BAD)
def test_malformed_weights_exit_2_one_line(tmp_path, capsys, text, fragment):
    path = tmp_path / "bad.json"
    path.write_text(text)
    rc, out, err = _run(["prove", "--weights", str(path), "--out", str(tmp_path)], capsys)
    assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("*.md"))


@pytest.mark.parametrize("argv, fragment", [
    (["--alpha", "import os"], "alpha"),
    (["--algorithm", "all", "--weights", "x.json"], "one algorithm"),
    (["--weights", "/nonexistent/w.json"], "no such file"),
])
def test_bad_options_exit_2(tmp_path, capsys, argv, fragment):
    rc, out, err = _run(["prove", "--out", str(tmp_path)] + argv, capsys)
    assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_prove_all_json_general_true(tmp_path, capsys):
    """Acceptance: `prove --algorithm all --json` reports general: true for every record of the one
    registry (the layer-by-layer ones through their own proofs, planted faults refused)."""
    rc, out, _ = _run(["prove", "--algorithm", "all", "--json", "--out", str(tmp_path)], capsys)
    res = _json(out)
    assert rc == 0 and res["all_proven"] is True
    assert [r["algorithm"] for r in res["algorithms"]] == list(algorithms.names())
    for r in res["algorithms"]:
        assert r["general"] is True and r["residual"] is None
        if r.get("kind") == "softmax":   # Xie et al. (2026): property_tests/test_softmax_proof_cli.py
            assert r["theorem_1"]["proven"] and r["lemma_1"]["proven"] and r["faults_refused"]
            continue
        if r.get("data") == "mrp":
            assert r["faults_refused"] and r["base_case"] and r["stack"]["ok"]
            continue
        assert {(c["d"], c["n"]) for c in r["concrete"] if c["ok"]} == {(d, n) for d in (1, 2, 3) for n in (1, 2, 3)}
        with open(r["report"], encoding="utf-8") as fh:
            text = fh.read()
        assert "$$" in text and "\\begin{matrix}" in text and "Reproduce: `icrl-verify prove --algorithm" in text
        assert "for every $d\\ge1$, $n\\ge1$" in text and "| 3 | 3 | yes |" in text and "Versions:" in text


def test_wrong_construction_is_not_proven(monkeypatch, tmp_path, capsys):
    """A construction with a wrong sign in the code turns the verdict to not proven (exit 1)."""
    record = get("sarsa")
    con = record.construction
    bad = dataclasses.replace(con, p=tuple(((k, -v) if k == ("gphi_next", "w") else (k, v)) for k, v in con.p12))
    monkeypatch.setitem(algorithms._REGISTRY, "sarsa", dataclasses.replace(record, construction=bad))
    r = prove("sarsa")
    assert r["general"] is False and r["residual"]
    assert not any(c["ok"] for c in r["concrete"])
    rc, out, _ = _run(["prove", "--algorithm", "sarsa", "--out", str(tmp_path)], capsys)
    assert rc == 1 and "NOT PROVEN" in out


def test_proposition_3_1_statements():
    res = prove_proposition_3_1("sarsa")
    assert set(res) == {"P11", "P21", "V11", "V12", "V21 first row", "V22 first row", "P22 antisymmetric part",
                        "P22 gradient zero when Vbar22 = 0", "Vbar22 gradient zero when P22 = 0",
                        "P22 and Vbar22 together read"}
    assert all(v is True for v in res.values())


def test_never_read_check_can_fail(monkeypatch):
    """Listing a block that is read (P12 = P_{co}) must be reported as read."""
    monkeypatch.setitem(S.NEVER_READ, "P12 (read!)", ("P", [(0, 1)]))
    ok, never_read, _ = S.derive_lemma_c1.__wrapped__(VALUE_LAYOUT)
    assert ok and never_read["P12 (read!)"] is False and never_read["P11"] is True


def test_api_step_sizes_exact():
    """prove() takes exact text, ints, Fractions or floats (read from their decimal text) as step sizes."""
    from fractions import Fraction
    P, V = full_pv("sarsa", 1, {alpha: sp.Rational(1, 5)})
    for a in ("1/5", 0.2, Fraction(1, 5), sp.Rational(1, 5)):
        assert prove("sarsa", weights=(P, V), alpha=a)["general"] is True
    assert prove("sarsa", weights=(P, V), alpha=0.25)["general"] is False
    from theory.errors import InputError
    with pytest.raises(InputError, match="exact"):
        prove("sarsa", weights=(P.evalf(), V.evalf()))


# ---- issue 11: distinct step sizes, replayable counterexamples, undefined entries, lemmas ----------

def _literal_block_exact(P, V, H, q):
    """``H + (1/n) (V H) (H^T P H)``, last ``q`` entries of the last column, in exact rationals."""
    n = H.shape[1] - 1
    out = H + (V * H) * (H.T * P * H) / n
    return [sp.nsimplify(x) for x in out[-q:, n]]


def test_swapped_alpha_beta_actor_critic_file_exits_1(tmp_path, capsys):
    P, V = full_pv("actor-critic", 1)
    swapped = {alpha: beta, beta: alpha}
    path = _write(tmp_path, "swapped", P.xreplace(swapped), V.xreplace(swapped))
    rc, out, _ = _run(["prove", "--algorithm", "actor-critic", "--weights", path, "--out", str(tmp_path), "--json"],
                      capsys)
    res = _json(out)
    assert rc == 1 and res["general"] is False and res["alpha"] == "alpha" and res["beta"] == "beta"
    cex = res["counterexample"]
    assert cex["alpha"] != cex["beta"] and cex["block"] != cex["teacher"]
    # control: the unswapped file is proven with the same (symbolic) defaults
    rc, _, _ = _run(["prove", "--algorithm", "actor-critic", "--weights", _write(tmp_path, "ok", P, V),
                     "--out", str(tmp_path)], capsys)
    assert rc == 0


def test_p12_sign_flip_counterexample_replays_in_exact_arithmetic(tmp_path, capsys):
    P, V = full_pv("sarsa", 1)
    m = get("sarsa").layout.m(1)
    P[0, m + 1] = -P[0, m + 1]                                   # one sign of P12 flipped
    path = _write(tmp_path, "flip", P, V)
    rc, out, _ = _run(["prove", "--algorithm", "sarsa", "--weights", path, "--out", str(tmp_path), "--json"], capsys)
    res = _json(out)
    assert rc == 1 and "counterexample" in out
    cex = res["counterexample"]
    assert cex["n"] == 1
    values = {alpha: sp.Rational(cex["alpha"]), gamma: sp.Rational(cex["gamma"])}
    H = sp.Matrix([[sp.Rational(x) for x in row] for row in cex["H"]])
    assert all(x.is_Rational for x in H)
    block = _literal_block_exact(P.xreplace(values), V.xreplace(values), H, 1)
    assert [str(x) for x in block] == cex["block"]
    # the teacher, written out here: w + alpha (r + gamma w.phi+ - w.phi) phi at n = 1
    col = cex["columns"][0]
    phi, phin, r = (sp.Rational(col["phi"][0]), sp.Rational(col["phi_next"][0]), sp.Rational(col["r"]))
    w = sp.Rational(cex["theta"]["w"][0])
    teacher = w + values[alpha] * (r + values[gamma] * w * phin - w * phi) * phi
    assert [str(teacher)] == cex["teacher"] and block[0] != teacher
    # the report holds it too
    with open(res["report"], encoding="utf-8") as fh:
        assert "Counterexample" in fh.read()


@pytest.mark.parametrize("entry, where", [("1/gamma", "P"), ("alpha/(alpha-beta)", "V"), ("1/(1-2*gamma)", "P")])
def test_entry_undefined_on_the_domain_exits_2_naming_it(tmp_path, capsys, entry, where):
    P, V = full_pv("sarsa", 1)
    rows = json.loads(weights_to_json(P, V))
    rows[where][0][0] = entry
    path = tmp_path / "undef.json"
    path.write_text(json.dumps(rows))
    rc, out, err = _run(["prove", "--algorithm", "sarsa", "--weights", str(path), "--out", str(tmp_path)], capsys)
    assert rc == 2 and f"weights.{where}[0][0]" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_entries_defined_on_the_domain_are_accepted(tmp_path, capsys):
    """``1/(1-gamma)``, ``1/(1+gamma)``: defined on gamma in [0, 1); a rescaled construction with them is proven."""
    P, V = full_pv("sarsa", 1)
    c = (1 - gamma) / (1 + gamma)
    path = _write(tmp_path, "scaled", P * c, V / c)
    rc, out, err = _run(["prove", "--algorithm", "sarsa", "--weights", path, "--out", str(tmp_path), "--json"],
                        capsys)
    assert rc == 0, out + err


@pytest.mark.slow
def test_lemmas_reported_per_algorithm(tmp_path, capsys):
    want = {"actor-critic": "softmax_score", "expected-sarsa": "expected_sarsa_next",
            "q-learning": "q_learning_next", "td": "td0_state_features"}
    for alg, key in want.items():
        res = prove(alg)
        assert res["lemmas"][key]["proven"] is True and res["general"] is True, alg
        assert "statement" in res["lemmas"][key] and "assumes" in res["lemmas"][key]
        text = render(res)
        assert "Algorithm-specific parts" in text and key in text
    assert prove("sarsa")["lemmas"] == {}
