"""Replayable counterexamples for ``prove --weights`` (issue 11), and the
check that every entry of a weight file is defined on the whole domain.

When given weights do not implement the update, :func:`find` returns an
exact prompt with small rational entries (``n = 1``, or ``n = 2`` if the
one-column residual happens to vanish), exact step sizes and discount, and
the two values that differ: the LITERAL block's read-out (``H + (1/n) (V H)
(H^T P H)`` multiplied out in exact arithmetic, no Lemma C.1 shortcut) and
the teacher's update (the record's rule as a loop over the window).  Anyone
can replay it with exact rationals (``property_tests/test_theory_prove.py``
does).

:func:`check_defined` refuses an entry that is undefined for some ``gamma``
in ``[0, 1)`` or some positive step size (``1/gamma``, ``1/(alpha - beta)``).
"""
from __future__ import annotations

import random

import sympy as sp

from theory import concrete as C
from theory.errors import InputError
from theory.symbols import alpha as ALPHA
from theory.symbols import beta as BETA
from theory.symbols import gamma as GAMMA

#: Small rationals the prompt's entries are drawn from (deterministically).
VALUES = tuple(sp.Rational(v) for v in ("-2", "-1", "-1/2", "1/2", "1", "3/2", "2"))
#: Step sizes and discount tried first when they are symbolic (distinct, so a swap of alpha and beta shows).
STEP_VALUES = {ALPHA: sp.Rational(1, 5), BETA: sp.Rational(1, 3), GAMMA: sp.Rational(1, 2)}
ATTEMPTS = 200


def check_defined(M: sp.Matrix, name: str) -> None:
    """:class:`InputError` naming ``weights.NAME[i][j]`` for an entry whose
    denominator may vanish for ``gamma`` in ``[0, 1)`` or positive step sizes.

    ``gamma`` is written ``t / (1 + t)`` with ``t >= 0`` and the step sizes
    are positive symbols; a denominator whose sign SymPy cannot fix on that
    domain is refused (it vanishes somewhere, or cannot be shown not to)."""
    t = sp.Symbol("t", nonnegative=True)
    a, b = sp.Symbol("a", positive=True), sp.Symbol("b", positive=True)
    for i in range(M.rows):
        for j in range(M.cols):
            e = M[i, j]
            den = sp.denom(sp.together(e))
            if not den.free_symbols:
                continue
            on_domain = sp.factor(sp.together(den.subs({GAMMA: t / (1 + t), ALPHA: a, BETA: b})))
            num, den2 = sp.fraction(on_domain)
            if not ((num.is_positive or num.is_negative) and (den2.is_positive or den2.is_negative)):
                raise InputError(f"weights.{name}[{i}][{j}]",
                                 f"{e} is undefined at some point of the domain: its denominator {den} vanishes (or "
                                 f"cannot be shown nonzero) for some gamma in [0, 1) or some positive step size")


def _text(v) -> str:
    return str(sp.nsimplify(v)) if v.is_number else str(v)


def find(record, P: sp.Matrix, V: sp.Matrix, hp: dict, seed: int = 0) -> dict | None:
    """An exact prompt on which the literal block and the teacher differ, or
    None when none is found (then the weights implement the update).

    ``hp``: the teacher's step sizes, exact values or the symbols themselves
    (symbols, like ``gamma``, get :data:`STEP_VALUES`, then random positive
    small rationals if those happen to make the two agree)."""
    lay = record.layout
    d = lay.feature_dim(P.shape[0])
    q = lay.q(d)
    rng = random.Random(seed)
    for n in (1, 2):
        pr = C.concrete_prompt(record, d, n)
        literal = C.literal_readout(P, V, pr.H, q)
        teacher = C.teacher(record, pr, hp)
        residual = C.expand_matrix(literal - teacher)
        if C.is_zero_matrix(residual):
            continue
        free = sorted(residual.free_symbols | literal.free_symbols | teacher.free_symbols, key=str)
        for attempt in range(ATTEMPTS):
            values = {}
            for s in free:
                if s in STEP_VALUES:
                    values[s] = STEP_VALUES[s] if attempt == 0 else rng.choice(VALUES[3:5]) / rng.choice((1, 2, 3, 5))
                else:
                    values[s] = rng.choice(VALUES)
            if values.get(GAMMA, 0) >= 1:
                continue
            got, want = literal.xreplace(values), teacher.xreplace(values)
            if any(sp.simplify(g - w) != 0 for g, w in zip(got, want)):
                return _describe(record, pr, values, got, want, n, P, V, hp)
    return None


def _step_value(hp: dict, name: str, symbol, values: dict) -> str:
    """The step size the counterexample was evaluated at: the value fixed by
    ``--alpha``/``--beta`` (``hp``), else the value drawn for the symbol;
    a step that enters nothing gets :data:`STEP_VALUES` (any value gives the
    same numbers)."""
    step = hp.get(name)
    # already exact (theory.parse.parse_step); strict: never parses a string
    v = sp.sympify(symbol if step is None else step, strict=True).xreplace(values)
    if v.free_symbols:
        v = v.xreplace(STEP_VALUES)
    return _text(v)


def _describe(record, pr, values, got, want, n, P, V, hp) -> dict:
    H = pr.H.xreplace(values)
    cols = []
    for c in pr.cols:
        col = {"phi": [_text(x.xreplace(values)) for x in c["phi"]],
               "phi_next": [_text(x.xreplace(values)) for x in c["phi_next"]],
               "r": _text(c["r"].xreplace(values))}
        if "g" in record.quantities:
            col["g"] = [_text(x.xreplace(values)) for x in c["g"]]
        cols.append(col)
    return {
        "n": n,
        **{k: (_step_value(hp, k, sym, values) if k in record.steps else str(sym))
           for k, sym in (("alpha", ALPHA), ("beta", BETA))},
        "gamma": _text(values.get(GAMMA, GAMMA)),
        "H": [[_text(x) for x in H.row(i)] for i in range(H.rows)],
        "columns": cols,
        "theta": {b: [_text(x.xreplace(values)) for x in v] for b, v in pr.params.items()},
        "block": [_text(x) for x in got],
        "teacher": [_text(x) for x in want],
        "how": "block = last q entries of the last column of H + (1/n) (V H) (H^T P H) with the file's P, V "
               "(alpha, beta, gamma substituted), exact rationals; teacher = the record's update on the columns",
    }
