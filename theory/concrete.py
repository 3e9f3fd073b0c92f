"""Concrete-size proofs: every entry a symbol, exact arithmetic, literal block.

Independent of :mod:`theory.symbolic`: here the prompt ``H`` is an explicit
``D x (n+1)`` SymPy matrix whose entries are symbols (``phi_i_k``,
``phin_i_k`` for ``phi+``, ``r_i``, ``g_i_k``, ``w_k``, ``lam_k``,
``gamma``), the block ``H + (1/n)(V H)(H^T P H)`` is multiplied out entry by
entry, and the read-out minus the teacher update (written as a loop over the
window, THEORY.md section 2) is expanded to a polynomial.  The polynomial is
zero exactly when the identity holds for every prompt of that size.

:func:`weights_residual` proves user weights for every ``n`` at the weights'
``d`` by the linearity of the window sum (see its docstring).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from theory import rules
from theory.constructions import full_pv
from theory.layout import Layout
from theory.spec import block_equation
from theory.symbols import gamma


@dataclass
class ConcretePrompt:
    """A prompt of size ``d``, ``n`` with symbolic entries."""

    H: sp.Matrix           # D x (n+1)
    X: sp.Matrix           # m x n, column i = x_i
    wt: sp.Matrix          # p x 1, [1; theta]
    cols: list             # per column: {"phi": [...], "phi_next": [...], "r": r_i, "g": [...], "one": 1}
    params: dict           # {"w": [...], "lam": [...]}
    symbols: list          # every free symbol of the prompt, in a fixed order (gamma last)


def _vec(name, i, d):
    return [sp.Symbol(f"{name}{i}_{k}", real=True) for k in range(1, d + 1)]


def concrete_prompt(record, d: int, n: int) -> ConcretePrompt:
    """``H`` with ``x_i`` filled by the record's recipe (``[phi_i; gamma phin_i;
    r_i (; g_i)]`` for the paper's algorithms) over zeros, and ``[0; 1; w (; lam)]``."""
    layout = record.layout
    cols, X_cols, syms = [], [], []
    for i in range(1, n + 1):
        col = {"phi": _vec("phi", i, d), "phi_next": _vec("phin", i, d), "r": sp.Symbol(f"r{i}", real=True),
               "g": _vec("g", i, d), "one": sp.Integer(1)}
        x = []
        for _, coef, q in record.context:
            vals = col[q] if isinstance(col[q], list) else [col[q]]
            x += [coef * v for v in vals]
            syms += [v for v in vals if isinstance(v, sp.Symbol) and v not in syms]
        cols.append(col)
        X_cols.append(x)
    params = {b: [sp.Symbol(f"{b}_{k}", real=True) for k in range(1, d + 1)] for b, _ in layout.params[1:]}
    wt = [sp.Integer(1)] + [v for b, _ in layout.params[1:] for v in params[b]]
    syms += wt[1:] + [gamma]
    m, p = layout.m(d), layout.p(d)
    X = sp.Matrix(m, n, lambda r, c: X_cols[c][r])
    H = sp.zeros(m + p, n + 1)
    H[:m, :n] = X
    H[m:, n] = sp.Matrix(wt)
    return ConcretePrompt(H, X, sp.Matrix(wt), cols, params, syms)


def literal_readout(P: sp.Matrix, V: sp.Matrix, H: sp.Matrix, q: int) -> sp.Matrix:
    """Last ``q`` entries of the last column of ``H + (1/n)(V H)(H^T P H)`` (paper eq. 1)."""
    n = H.shape[1] - 1
    Hout = block_equation(H, P, V, n)
    return Hout[-q:, n]


def lemma_c1_readout(P: sp.Matrix, V: sp.Matrix, X: sp.Matrix, wt: sp.Matrix) -> sp.Matrix:
    """``theta + Vbar21 Sigma P12 w~ + (1/n) Vbar22 w~ w~^T P22 w~`` (Lemma C.1)."""
    m, n = X.shape
    P12, P22, Vbar21, Vbar22 = P[:m, m:], P[m:, m:], V[m + 1:, :m], V[m + 1:, m:]
    Sigma = X * X.T / n
    return wt[1:, :] + Vbar21 * Sigma * P12 * wt + Vbar22 * wt * (wt.T * P22 * wt)[0, 0] / n


def teacher(record, pr: ConcretePrompt, hp: dict | None = None) -> sp.Matrix:
    """The record's update rule (THEORY.md section 2) as a loop over the
    window's exact columns (:func:`theory.rules.column_step`), stacked in the
    read-out order; ``hp`` maps ``alpha``, ``beta`` to values (default: the
    symbols)."""
    hp = record.exact_hp(hp)
    vec = lambda key: [sp.Matrix(c[key]) for c in pr.cols]
    t = rules.Quantities(phi=vec("phi"), phi_next=vec("phi_next"), r=[c["r"] for c in pr.cols], gamma=gamma,
                         g=vec("g"), one=[c["one"] for c in pr.cols])
    theta = {b: sp.Matrix(v) for b, v in pr.params.items()}
    new = rules.column_step(record.rule, t, theta, hp, len(pr.cols))
    return sp.Matrix.vstack(*[new[b] for b in record.layout.readout_blocks])


def _expand(e):
    """Expanded; a rational function (weights with ``gamma`` or a step size in
    a denominator, e.g. a rescaling by ``1/(1 - gamma)``) is put over one
    denominator first, so that it is zero exactly when it expands to 0."""
    e = sp.expand(e)
    if any(p.exp.is_negative and p.base.free_symbols for p in e.atoms(sp.Pow)):
        e = sp.cancel(sp.together(e))
    return e


def expand_matrix(M: sp.Matrix) -> sp.Matrix:
    return M.applyfunc(_expand)


def is_zero_matrix(M: sp.Matrix) -> bool:
    return all(e == 0 for e in M)


def construction_residual(record, d: int, n: int, P=None, V=None, hp: dict | None = None) -> sp.Matrix:
    """Literal read-out minus teacher, expanded, for the construction (or ``P``, ``V``)."""
    lay = record.layout
    if P is None or V is None:
        P, V = full_pv(record, d)
    pr = concrete_prompt(record, d, n)
    return expand_matrix(literal_readout(P, V, pr.H, lay.q(d)) - teacher(record, pr, hp))


@lru_cache(maxsize=None)
def lemma_c1_concrete(record, d: int, n: int) -> bool:
    """Lemma C.1 at size ``d``, ``n`` with every entry of ``P``, ``V`` and ``H`` a symbol."""
    layout = record.layout
    P, V = general_weights(layout, d)
    pr = concrete_prompt(record, d, n)
    res = expand_matrix(literal_readout(P, V, pr.H, layout.q(d)) - lemma_c1_readout(P, V, pr.X, pr.wt))
    return is_zero_matrix(res)


def general_weights(layout: Layout, d: int):
    """``P``, ``V`` with every entry its own symbol."""
    D = layout.D(d)
    return (sp.Matrix(D, D, lambda i, j: sp.Symbol(f"P{i}_{j}", real=True)),
            sp.Matrix(D, D, lambda i, j: sp.Symbol(f"V{i}_{j}", real=True)))


# ---- user weights for every n ----------------------------------------------------

@dataclass
class WeightsResidual:
    """``n (TF(H) - teacher) = sum_i h(x_i) + g`` for every window (Lemma C.1)."""

    per_column: sp.Matrix   # h(x): residual contributed by one context column x (generic symbols)
    constant: sp.Matrix     # g: the column-independent cubic term Vbar22 w~ (w~^T P22 w~)
    prompt: ConcretePrompt  # the one-column prompt whose symbols h uses
    column: tuple = ()      # the context column's blocks in words, e.g. ("phi1_*", "gamma phin1_*", "r1")
    parameters: tuple = ("w",)

    @property
    def ok(self) -> bool:
        return is_zero_matrix(self.per_column) and is_zero_matrix(self.constant)

    def text(self) -> str:
        parts = []
        if not is_zero_matrix(self.per_column):
            pars = ", ".join(f"{b}_*" for b in self.parameters)
            parts.append(f"(1/n) sum_i h(x_i) with h(x) = {list(self.per_column)}  "
                         f"(x = [{'; '.join(self.column)}] one context column, parameters {pars})")
        if not is_zero_matrix(self.constant):
            parts.append(f"(1/n) {list(self.constant)}  (the cubic term Vbar22 w~ w~^T P22 w~)")
        return " + ".join(parts) if parts else "0"


_SYMBOL_TEXT = {"phi": "phi1_*", "phi_next": "phin1_*", "r": "r1", "g": "g1_*", "one": "1"}


def weights_residual(record, P: sp.Matrix, V: sp.Matrix, hp: dict | None = None) -> WeightsResidual:
    """Read-out minus teacher for the given exact weights, for every ``n`` and every prompt.

    By Lemma C.1 (proven for arbitrary ``P``, ``V`` and every ``d``, ``n`` in
    :func:`theory.symbolic.derive_lemma_c1`) and the teacher's window sum,
    ``n (TF(H) - teacher) = sum_i h(x_i) + g(w~)`` with
    ``h(x) = Vbar21 x x^T P12 w~ - sum_b step_b direction_b(x)`` (the record's
    rule at one column, e.g. ``alpha delta(x) phi``) and
    ``g = Vbar22 w~ w~^T P22 w~``.  This vanishes for every ``n`` and every
    prompt exactly when ``h`` and ``g`` are the zero polynomials (``n = 1``
    with ``x = 0`` forces ``g = 0``; then ``h = 0``; the converse is
    immediate), so expanding the two polynomials at one generic column proves
    or refutes the identity for all ``n`` at once.
    """
    lay = record.layout
    d = lay.feature_dim(P.shape[0])
    idx = record.spec.index(d)
    pr = concrete_prompt(record, d, 1)
    x = pr.X[:, 0]
    P12, P22, Vbar21, Vbar22 = P[idx.p12], P[idx.p22], V[idx.vbar21], V[idx.vbar22]
    # teacher(n = 1) = theta + sum_b step_b direction_b(x): the per-column increment is teacher - theta
    inc = teacher(record, pr, hp) - pr.wt[1:, :]
    h = expand_matrix(Vbar21 * x * (x.T * P12 * pr.wt) - inc)
    g = expand_matrix(Vbar22 * pr.wt * (pr.wt.T * P22 * pr.wt))
    column = tuple(("" if coef == 1 else f"{coef} ") + _SYMBOL_TEXT[q] for _, coef, q in record.context)
    return WeightsResidual(h, g, pr, column, lay.readout_blocks)


def literal_readout_function(layout: Layout, d: int, n: int):
    """A NumPy function ``f(P, V, H) -> q x 1``: the literal block read-out with
    every entry of ``P``, ``V``, ``H`` a symbol, lambdified (cross-check of the
    exact expression against ``numerics.block``)."""
    D = layout.D(d)
    P, V = general_weights(layout, d)
    Hs = sp.Matrix(D, n + 1, lambda i, j: sp.Symbol(f"H{i}_{j}", real=True))
    expr = literal_readout(P, V, Hs, layout.q(d))
    f = sp.lambdify([list(P), list(V), list(Hs)], expr, modules="numpy")

    def evaluate(Pn, Vn, Hn):
        return np.asarray(f(list(Pn.ravel()), list(Vn.ravel()), list(Hn.ravel())), dtype=float).reshape(-1, 1)

    return evaluate
