"""Safe parsing of exact weight files (theory/parse.py): the grammar, the
bad-input table (each raises InputError naming the entry), never eval."""
from __future__ import annotations

import json

import pytest
import sympy as sp

from theory.algorithms import get
from theory.constructions import alpha, beta, full_pv, gamma
from theory.errors import InputError
from theory.layout import ACTOR_CRITIC_LAYOUT, VALUE_LAYOUT
from theory.parse import feature_dim, parse_exact, parse_step, parse_weights, weights_to_json


@pytest.mark.parametrize("text, value", [
    ("3", sp.Integer(3)),
    ("1/5", sp.Rational(1, 5)),
    (" -1 / 5 ", sp.Rational(-1, 5)),
    ("0.2", sp.Rational(1, 5)),
    ("alpha", alpha),
    ("-alpha/3", -alpha / 3),
    ("2*beta - gamma", 2 * beta - gamma),
    ("(alpha + 1)/(2*3)", (alpha + 1) / 6),
    ("--1", sp.Integer(1)),
])
def test_parse_exact_grammar(text, value):
    assert sp.simplify(parse_exact(text, "x") - value) == 0


@pytest.mark.parametrize("text, fragment", [
    ("__import__('os')", "unknown symbol"),
    ("x", "unknown symbol"),
    ("1/0", "division by zero"),
    ("alpha/(alpha-alpha)", "division by zero"),
    ("2**3", "unexpected"),
    ("1 2", "unexpected"),
    ("(1", "missing ')'"),
    ("", "empty"),
    ("1;", "unexpected character"),
    ("a" * 300, "longer than"),
    ("-" * 100 + "1", "nesting deeper"),
])
def test_parse_exact_rejects(text, fragment):
    with pytest.raises(InputError) as e:
        parse_exact(text, "weights.P[0][0]")
    assert fragment in str(e.value) and "weights.P[0][0]" in str(e.value)
    assert "\n" not in str(e.value)


def test_parse_weights_round_trip_exact():
    P, V = full_pv(get("actor-critic"), 2)
    P2, V2 = parse_weights(weights_to_json(-3 * P, V / -3))
    assert P2 == -3 * P and (V2 - V / -3).applyfunc(sp.simplify) == sp.zeros(*V.shape)


def test_json_decimals_are_exact():
    P, V = parse_weights('{"P": [[0.2]], "V": [[1e-1]]}')
    assert P[0, 0] == sp.Rational(1, 5) and V[0, 0] == sp.Rational(1, 10)


BAD_FILES = [
    ('{"P": [[1]], "V": [[1]]', "not valid JSON"),
    ('[1, 2]', "expected an object"),
    ('{"P": [[1]]}', "lacks key(s) V"),
    ('{"P": [[1]], "V": [[1]], "W": 1}', "unknown key"),
    ('{"P": [], "V": [[1]]}', "non-empty list of rows"),
    ('{"P": [[1, 2], [3]], "V": [[1]]}', "row 1 has 1 entries"),
    ('{"P": [[1]], "V": [[1, 0], [0, 1]]}', "P is 1 x 1 but V is 2 x 2"),
    ('{"P": [[true]], "V": [[1]]}', "weights.P[0][0]"),
    ('{"P": [[null]], "V": [[1]]}', "weights.P[0][0]"),
    ('{"P": [[NaN]], "V": [[1]]}', "not an exact number"),
    ('{"P": [["eval(1)"]], "V": [[1]]}', "unknown symbol 'eval'"),
    (json.dumps({"P": [[0]] * 401, "V": [[0]]}), "larger than"),
]


@pytest.mark.parametrize("text, fragment", BAD_FILES)
def test_parse_weights_bad_input_table(text, fragment):
    with pytest.raises(InputError) as e:
        parse_weights(text)
    assert fragment in str(e.value)


def test_feature_dim_from_shape():
    assert feature_dim(VALUE_LAYOUT, 5) == 1 and feature_dim(VALUE_LAYOUT, 110) == 36
    assert feature_dim(ACTOR_CRITIC_LAYOUT, 12) == 2
    for bad in (4, 6, 12):
        with pytest.raises(InputError, match="3d\\+2"):
            feature_dim(VALUE_LAYOUT, bad)


def test_parse_step():
    assert parse_step(None, "alpha", None) is None
    assert parse_step("1/5", "alpha", None) == sp.Rational(1, 5)
    assert parse_step("alpha", "alpha", None) == alpha
    with pytest.raises(InputError, match="alpha"):
        parse_step("import os", "alpha", None)


def test_weights_json_is_plain_json():
    P, V = full_pv(get("sarsa"), 1)
    data = json.loads(weights_to_json(P, V))
    assert set(data) == {"P", "V"} and data["V"][4][0] == "alpha"
