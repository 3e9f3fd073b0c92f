"""General-dimension proofs: symbolic ``d`` and ``n`` (SymPy matrix expressions).

The prompt, ``P`` and ``V`` are block matrices whose blocks are
``MatrixSymbol``\\ s of symbolic size (``d`` features, ``n`` context columns),
so every identity proven here holds for every ``d >= 1`` and ``n >= 1`` at
once; SymPy's non-commutative matrix algebra never looks at an entry.

* :func:`derive_lemma_c1`: from ``H_out = H + (1/n)(V H)(H^T P H)`` with
  arbitrary blocks, the read-out equals
  ``w + Vbar21 Sigma P12 w~ + (1/n) Vbar22 w~ w~^T P22 w~``
  (``Sigma = X X^T / n``; the context ``X`` has ``n`` columns ``x_i``, so
  ``X X^T = sum_i x_i x_i^T``), and the never-read blocks do not occur.
* :func:`prove_construction`: substitutes the construction of
  ``theory.constructions`` into Lemma C.1 and shows read-out minus the
  teacher update of THEORY.md section 2 is the zero matrix; a second route
  substitutes into the literal block and gets the same zero.
* :func:`prove_p22_vbar22_gradients`: the read-out is affine in ``P22`` and in
  ``Vbar22``; its change along any direction ``E`` of one is zero when the
  other is zero, so the loss gradient with respect to it vanishes there.
* :func:`prove_scaling`: ``(c P, V / c)`` leaves ``H_out`` unchanged.

A residual is returned as a SymPy expression; zero means SymPy cancelled every
term exactly (it never declares zero what is not).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp
from sympy import BlockMatrix, Identity, MatrixSymbol, ZeroMatrix, block_collapse

from theory import rules
from theory.layout import Layout
from theory.spec import block_equation
from theory.symbols import c, d, n

#: The three row groups of ``P`` and ``V`` used by Lemma C.1: the context
#: rows (``m``), the constant ``one`` row, the read-out rows (``q``).
GROUPS = ("ctx", "one", "out")
_TEX = {"ctx": "c", "one": "o", "out": "r"}


@dataclass
class Step:
    """One step of a derivation: a sentence and a LaTeX display."""

    text: str
    latex: str = ""


@dataclass
class GeneralProof:
    ok: bool
    residual: str | None
    steps: list[Step] = field(default_factory=list)


def is_zero(expr) -> bool:
    """True when the (block) matrix expression collapses and expands to zero."""
    return residual_of(expr) == 0


def residual_of(expr):
    """``0`` or the expanded nonzero residual of a matrix expression."""
    e = block_collapse(expr)
    if isinstance(e, BlockMatrix):
        parts = [residual_of(b) for b in e.blocks]
        return 0 if all(p == 0 for p in parts) else sp.Matrix(e.blocks.shape[0], e.blocks.shape[1], parts)
    e = sp.expand(e)
    if isinstance(e, ZeroMatrix) or e == 0:
        return 0
    return e


def _size(s, dim=d):
    return dim if s == "d" else 1


def group_sizes(layout: Layout, dim=d):
    return {"ctx": sp.expand(layout.m(dim)), "one": 1, "out": sp.expand(layout.q(dim))}


def block_weights(layout: Layout, name: str, dim=d):
    """``name`` (``P`` or ``V``) as a 3 x 3 BlockMatrix of MatrixSymbols ``name_{ab}``."""
    sz = group_sizes(layout, dim)
    return BlockMatrix([[MatrixSymbol(f"{name}_{{{_TEX[a]}{_TEX[b]}}}", sz[a], sz[b]) for b in GROUPS] for a in GROUPS])


def general_prompt(layout: Layout, dim=d, cols=n, context=None):
    """``(H, X, theta, wt)``: ``H = [[X, 0], [0, 1], [0, theta]]`` with the
    context ``X`` (``m x n``; a MatrixSymbol unless ``context`` gives it)."""
    sz = group_sizes(layout, dim)
    X = context if context is not None else MatrixSymbol("X", sz["ctx"], cols)
    theta = MatrixSymbol(r"\theta", sz["out"], 1)
    H = BlockMatrix([[X, ZeroMatrix(sz["ctx"], 1)], [ZeroMatrix(1, cols), Identity(1)], [ZeroMatrix(sz["out"], cols), theta]])
    wt = BlockMatrix([[Identity(1)], [theta]])
    return H, X, theta, wt


def readout_block(P, V, H, cols=n):
    """The read-out block (rows ``out``, last column) of ``H + (1/n)(VH)(H^T P H)``."""
    Hout = block_collapse(block_equation(H, P, V, cols))
    return Hout.blocks[2, 1]


def lemma_c1_formula(P, V, X, theta, wt, cols=n):
    """``theta + Vbar21 (X X^T / n) P12 w~ + (1/n) Vbar22 w~ w~^T P22 w~`` from the 3 x 3 blocks."""
    B, W = P.blocks, V.blocks
    P12 = BlockMatrix([[B[0, 1], B[0, 2]]])
    P22 = BlockMatrix([[B[1, 1], B[1, 2]], [B[2, 1], B[2, 2]]])
    Vbar21 = W[2, 0]
    Vbar22 = BlockMatrix([[W[2, 1], W[2, 2]]])
    return theta + Vbar21 * (X * X.T / cols) * P12 * wt + Vbar22 * wt * (wt.T * P22 * wt) / cols


#: Blocks of the 3 x 3 partition the read-out must not read (Prop 3.1):
#: P11, P21 (first column group of P), V11, V12 (first row group of V), first row of V21, V22.
NEVER_READ = {
    "P11": ("P", [(0, 0)]),
    "P21": ("P", [(1, 0), (2, 0)]),
    "V11": ("V", [(0, 0)]),
    "V12": ("V", [(0, 1), (0, 2)]),
    "V21 first row": ("V", [(1, 0)]),
    "V22 first row": ("V", [(1, 1), (1, 2)]),
}


@lru_cache(maxsize=None)
def derive_lemma_c1(layout: Layout) -> tuple[bool, dict, list]:
    """Lemma C.1 for symbolic ``d`` and ``n`` and arbitrary ``P``, ``V``.

    Returns ``(ok, never_read, steps)``: ``ok`` when the literal read-out minus
    the formula is zero; ``never_read[block]`` True when none of that block's
    symbols occurs in the read-out (so its derivative is identically zero).
    """
    P, V = block_weights(layout, "P"), block_weights(layout, "V")
    H, X, theta, wt = general_prompt(layout)
    steps = [Step("Partition the prompt and the weights into the row groups (context $m$, constant $1$, "
                  "read-out $q$); $X$ is the $m\\times n$ context, $\\theta$ the current parameter.",
                  "H=" + sp.latex(H) + ",\\quad P=" + sp.latex(P) + ",\\quad V=" + sp.latex(V))]
    HtPH = block_collapse(H.T * P * H)
    steps.append(Step("The attention scores, block by block:", "H^\\top P H=" + sp.latex(HtPH)))
    VH = block_collapse(V * H)
    steps.append(Step("The values:", "VH=" + sp.latex(VH)))
    ro = readout_block(P, V, H)
    steps.append(Step("The read-out (rows $r$, last column of $H+\\frac1n (VH)(H^\\top PH)$):",
                      "\\mathrm{TF}(H)=" + sp.latex(ro)))
    lem = lemma_c1_formula(P, V, X, theta, wt)
    res = residual_of(ro - lem)
    ok = res == 0
    steps.append(Step("Lemma C.1 with $P_{12}=[P_{co}\\ P_{cr}]$, $\\bar V_{21}=V_{rc}$, "
                      "$\\bar V_{22}=[V_{ro}\\ V_{rr}]$, $P_{22}=\\begin{bmatrix}P_{oo}&P_{or}\\\\P_{ro}&P_{rr}\\end{bmatrix}$, "
                      "$\\tilde w=[1;\\theta]$, $\\Sigma = XX^\\top/n=\\frac1n\\sum_i x_ix_i^\\top$; the read-out minus this "
                      "formula expands to " + ("zero." if ok else "a nonzero residual:"),
                      "\\theta+\\bar V_{21}\\Sigma P_{12}\\tilde w+\\tfrac1n\\bar V_{22}\\tilde w\\tilde w^\\top P_{22}\\tilde w"
                      + ("" if ok else "\\;\\Rightarrow\\;" + sp.latex(res))))
    free = block_collapse(ro).free_symbols
    never = {}
    for name, (which, idx) in NEVER_READ.items():
        M = P if which == "P" else V
        never[name] = all(M.blocks[i, j] not in free for i, j in idx)
    steps.append(Step("Symbols occurring in the read-out: " + ", ".join(sorted(f"${sp.latex(s)}$" for s in free
                                                                             if isinstance(s, MatrixSymbol)))
                      + ". None of $P_{cc}, P_{oc}, P_{rc}$ ($P_{11}, P_{21}$), $V_{c\\cdot}$ ($V_{11}, V_{12}$), "
                      "$V_{o\\cdot}$ (first rows of $V_{21}, V_{22}$) occurs, so the read-out's derivative with respect "
                      "to each is identically zero (Proposition 3.1)." if all(never.values()) else
                      "Some never-read block occurs in the read-out: " + str([k for k, v in never.items() if not v])))
    return ok, never, steps


# ---- constructions ------------------------------------------------------------

def param_values(dim=d) -> dict:
    return {"one": Identity(1), "w": MatrixSymbol("w", dim, 1), "lam": MatrixSymbol(r"\lambda", dim, 1)}


def context_matrix(record, t: rules.Quantities):
    """The context (``m x n``) in named blocks, filled by the record's recipe
    ``block = coefficient * quantity`` (THEORY.md section 3): column ``i`` is
    ``x_i``.  Per-transition scalars of ``t`` are ``n x 1``, so they enter
    transposed."""
    rows = {"phi": t.phi, "phi_next": t.phi_next, "r": t.r.T, "g": t.g, "one": t.one.T}
    return BlockMatrix([[coef * rows[q] if coef != 1 else rows[q]] for _, coef, q in record.context])


def table_matrix(table, rows, cols, dim=d):
    """A block table ``{(row block, col block): coef}`` as a BlockMatrix of ``coef I`` and zeros."""
    T = dict(table)
    out = []
    for rb, rs in rows:
        row = []
        for cb, cs in cols:
            r, s = _size(rs, dim), _size(cs, dim)
            if (rb, cb) in T:
                if r != s:
                    raise ValueError(f"construction: block ({rb},{cb}) is not square")
                row.append(T[(rb, cb)] * Identity(r))
            else:
                row.append(ZeroMatrix(r, s))
        out.append(row)
    return BlockMatrix(out)


def teacher_general(record, t: rules.Quantities, pars: dict, cols=n, hp: dict | None = None):
    """The record's update rule (THEORY.md section 2) for the whole window at
    once (:class:`theory.rules.WindowOps`): e.g. for SARSA
    ``w + (alpha/n) Phi delta`` with ``delta = r^T + gamma Phi+^T w - Phi^T w``
    (``n x 1``).  Written from the update rule, not from the construction."""
    hp = record.exact_hp(hp)
    ops = rules.WindowOps(cols)
    theta = {b: pars[b] for b in record.layout.readout_blocks}
    new = ops.step(theta, record.rule(t, theta, hp, ops))
    return BlockMatrix([[new[b]] for b in record.layout.readout_blocks])


def prove_construction(record) -> GeneralProof:
    """Theorem 3.1 / 3.3 (the record's theorem) for symbolic ``d``, ``n``,
    step sizes and ``gamma``."""
    lay = record.layout
    ok_lemma, _, _ = derive_lemma_c1(lay)
    t = rules.window_quantities()
    pars = param_values()
    X = context_matrix(record, t)
    wt = BlockMatrix([[pars[b]] for b, _ in lay.params])
    theta = BlockMatrix([[pars[b]] for b, _ in lay.params[1:]])
    P12 = table_matrix(record.construction.p12, lay.context, lay.params)
    Vbar21 = table_matrix(record.construction.vbar21, lay.params[1:], lay.context)
    steps = [Step("The context in named blocks (each $d\\times n$ or $1\\times n$; column $i$ is $x_i$) and the "
                  "parameter column:", "X=" + sp.latex(X) + ",\\quad \\tilde w=" + sp.latex(wt)),
             Step("The construction (" + record.theorem
                  + "); every other block of $P$ and $V$ is zero, in particular $P_{22}=0$ and $\\bar V_{22}=0$, "
                  "so Lemma C.1's cubic term vanishes:",
                  "P_{12}^*=" + sp.latex(P12) + ",\\quad \\bar V_{21}^*=" + sp.latex(Vbar21))]
    u = block_collapse(X.T * P12 * wt)
    steps.append(Step("The scores $x_i^\\top P_{12}^*\\tilde w$ for all $i$ at once ($n\\times 1$):",
                      "X^\\top P_{12}^*\\tilde w=" + sp.latex(u)))
    ro = block_collapse(theta + Vbar21 * X * X.T * P12 * wt / n)
    steps.append(Step("Lemma C.1's read-out with the construction:", "\\mathrm{TF}(H)=" + sp.latex(ro)))
    teach = teacher_general(record, t, pars)
    steps.append(Step("The teacher update (THEORY.md section 2), from the algorithm's update rule over the whole "
                      "window:", "\\text{teacher}=" + sp.latex(teach)))
    res = residual_of(ro - teach)
    ok_sub = res == 0
    # a second route: the literal block with the construction embedded in full P, V (no Lemma C.1)
    H = _prompt_with_context(lay, X, pars)
    P, V = _full_construction(lay, P12, Vbar21)
    res_lit = residual_of(_literal_readout(P, V, H) - teach)
    ok_lit = res_lit == 0
    steps.append(Step("Read-out minus teacher, expanded: " + ("$0$ (every term cancels)." if ok_sub else
                      "a nonzero residual:"), "" if ok_sub else sp.latex(res)))
    steps.append(Step("Cross-check without Lemma C.1: the literal block $H+\\frac1n(VH)(H^\\top PH)$ with the full "
                      "$P^*, V^*$ (zeros elsewhere) gives the same read-out; minus the teacher it expands to "
                      + ("$0$." if ok_lit else "a nonzero residual.")))
    ok = ok_lemma and ok_sub and ok_lit
    residual = None if ok else str(res if res != 0 else res_lit)
    return GeneralProof(ok, residual, steps)


def _prompt_with_context(lay: Layout, X, pars):
    m = sum(_size(s) for _, s in lay.context)
    q = sum(_size(s) for _, s in lay.params[1:])
    theta = BlockMatrix([[pars[b]] for b, _ in lay.params[1:]])
    return BlockMatrix([[X, ZeroMatrix(m, 1)], [ZeroMatrix(1, n), Identity(1)], [ZeroMatrix(q, n), theta]])


def _full_construction(lay: Layout, P12, Vbar21):
    sz = group_sizes(lay)
    m, q = sz["ctx"], sz["out"]
    P12_one = BlockMatrix([[blk] for blk in P12.blocks[:, 0]])
    P12_w = BlockMatrix([list(row) for row in P12.blocks[:, 1:].tolist()])
    P = BlockMatrix([[ZeroMatrix(m, m), P12_one, P12_w],
                     [ZeroMatrix(1, m), ZeroMatrix(1, 1), ZeroMatrix(1, q)],
                     [ZeroMatrix(q, m), ZeroMatrix(q, 1), ZeroMatrix(q, q)]])
    V = BlockMatrix([[ZeroMatrix(m, m), ZeroMatrix(m, 1), ZeroMatrix(m, q)],
                     [ZeroMatrix(1, m), ZeroMatrix(1, 1), ZeroMatrix(1, q)],
                     [Vbar21, ZeroMatrix(q, 1), ZeroMatrix(q, q)]])
    return P, V


def _literal_readout(P, V, H):
    Hout = block_collapse(block_equation(H, P, V, n))
    return Hout.blocks[2, 1]


# ---- Proposition 3.1: P22 and Vbar22 ------------------------------------------

def prove_p22_vbar22_gradients(layout: Layout) -> dict:
    """The read-out is affine in ``P22`` and in ``Vbar22`` separately; its change
    along a direction ``E`` of one is zero when the other is zero.

    Returns ``{"P22 gradient zero when Vbar22 = 0": bool,
    "Vbar22 gradient zero when P22 = 0": bool, "P22 and Vbar22 together read": bool}``
    (the last a negative control: with both nonzero the cubic term is present).
    """
    P, V = block_weights(layout, "P"), block_weights(layout, "V")
    H, X, theta, wt = general_prompt(layout)
    sz = group_sizes(layout)
    q = sz["out"]
    # directions, partitioned like P22 (1 | q) and Vbar22 (q x (1 | q)) so that block sums collapse
    EP = BlockMatrix([[MatrixSymbol("E_{oo}", 1, 1), MatrixSymbol("E_{or}", 1, q)],
                      [MatrixSymbol("E_{ro}", q, 1), MatrixSymbol("E_{rr}", q, q)]])
    EV = BlockMatrix([[MatrixSymbol("F_{ro}", q, 1), MatrixSymbol("F_{rr}", q, q)]])
    B, W = P.blocks, V.blocks
    P22 = BlockMatrix([[B[1, 1], B[1, 2]], [B[2, 1], B[2, 2]]])
    Vbar22 = BlockMatrix([[W[2, 1], W[2, 2]]])
    Vbar21, P12 = W[2, 0], BlockMatrix([[B[0, 1], B[0, 2]]])

    def tf(p22, vb22):
        return theta + Vbar21 * (X * X.T / n) * P12 * wt + vb22 * wt * (wt.T * p22 * wt) / n

    t = sp.Symbol("t")
    # TF(P22 + t E) - TF(P22) = t * (1/n) Vbar22 w~ w~^T E w~ exactly (affine in P22): derivative along E is that / t.
    dP = block_collapse(tf(P22 + t * EP, Vbar22) - tf(P22, Vbar22))
    dP_expected = t * Vbar22 * wt * (wt.T * EP * wt) / n
    affine_P = is_zero(dP - dP_expected)
    zeroV = {W[2, j]: ZeroMatrix(*W[2, j].shape) for j in (1, 2)}
    dP_at_zero = residual_of(block_collapse(Vbar22 * wt * (wt.T * EP * wt) / n).subs(zeroV))
    dV = block_collapse(tf(P22, Vbar22 + t * EV) - tf(P22, Vbar22))
    dV_expected = t * EV * wt * (wt.T * P22 * wt) / n
    affine_V = is_zero(dV - dV_expected)
    zeroP = {B[i, j]: ZeroMatrix(*B[i, j].shape) for i in (1, 2) for j in (1, 2)}
    dV_at_zero = residual_of(block_collapse(EV * wt * (wt.T * P22 * wt) / n).subs(zeroP))
    zero22 = BlockMatrix([[ZeroMatrix(1, 1), ZeroMatrix(1, q)], [ZeroMatrix(q, 1), ZeroMatrix(q, q)]])
    both = not is_zero(tf(P22, Vbar22) - tf(zero22, BlockMatrix([[ZeroMatrix(q, 1), ZeroMatrix(q, q)]])))
    return {"P22 gradient zero when Vbar22 = 0": bool(affine_P and dP_at_zero == 0),
            "Vbar22 gradient zero when P22 = 0": bool(affine_V and dV_at_zero == 0),
            "P22 and Vbar22 together read": bool(both)}


def prove_scaling(layout: Layout) -> bool:
    """``H + (1/n)((V/c) H)(H^T (c P) H) = H + (1/n)(V H)(H^T P H)`` for every
    ``c != 0``, arbitrary ``P``, ``V`` (3 x 3 blocks), symbolic ``d``, ``n``."""
    P, V = block_weights(layout, "P"), block_weights(layout, "V")
    H, _, _, _ = general_prompt(layout)
    lhs = block_equation(H, c * P, V / c, n)
    rhs = block_equation(H, P, V, n)
    return is_zero(lhs - rhs)


# ---- numeric evaluation (cross-check against numerics) -------------------------

def general_readout_function(layout: Layout, dim: int, cols: int):
    """A NumPy function ``f(P, V, X, theta) -> q x 1`` evaluating the general
    read-out derived in :func:`derive_lemma_c1` (the block-collapsed matrix
    expression, with ``d``, ``n`` set to ``dim``, ``cols``).

    ``P``, ``V`` are ``D x D`` arrays, ``X`` the ``m x n`` context, ``theta``
    a ``q x 1`` column.  Used to cross-check the symbolic derivation against
    ``numerics.block`` on random inputs.
    """
    P, V = block_weights(layout, "P"), block_weights(layout, "V")
    H, X, theta, _ = general_prompt(layout)
    ro = readout_block(P, V, H)
    sub = {d: dim}          # n stays a scalar argument (a literal 1/n = 1 would print as (1).dot)
    args = list(P.blocks) + list(V.blocks) + [X, theta]
    ren = {}
    for a in args:
        a2 = a.subs(sub)
        ren[a2] = MatrixSymbol(re.sub(r"[^A-Za-z0-9_]", "", a.name), *a2.shape)
    f = sp.lambdify(list(ren.values()) + [n], ro.subs(sub).xreplace(ren), modules="numpy")
    m = int(layout.m(dim))
    cuts = (0, m, m + 1, int(layout.D(dim)))

    def blocks(M):
        return [M[cuts[i]:cuts[i + 1], cuts[j]:cuts[j + 1]] for i in range(3) for j in range(3)]

    def evaluate(Pn, Vn, Xn, thn):
        return np.asarray(f(*blocks(Pn), *blocks(Vn), Xn, thn, cols), dtype=float).reshape(-1, 1)

    return evaluate
