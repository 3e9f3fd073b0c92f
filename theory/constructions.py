"""Constructions as block tables (single source, one format for every record).

A construction (:class:`Construction`) gives the entries of ``P`` and of
each head's ``V`` on named row blocks of the prompt; every other entry is
zero.  Each table entry ``(row_block, col_block) -> coef`` means ``coef * I``
when both blocks have size ``d`` and the scalar ``coef`` when both have size
1 (``coef * C^T`` on ``d x d`` blocks of ``P`` for a preconditioned
construction).  Coefficients are SymPy expressions in the step sizes
(:data:`theory.symbols.alpha`, :data:`theory.symbols.beta`) and ``gamma``,
or numbers.  For the single-layer blocks with a parameter column only
``P12`` (context rows x parameter columns) and ``Vbar21`` (read-out rows x
context columns) are used (Lemma C.1).

Theorem 3.1 (SARSA): ``P12* w~ = (-w, w, 1)`` so that
``x_i^T P12* w~ = r_{i+1} + gamma w.phi+_i - w.phi_i = delta_i``, and
``Vbar21* = [alpha I, 0, 0]`` so that ``TF(H) = w + (alpha/n) sum delta_i phi_i``.

Theorem 3.3 (actor-critic, reconstructed in THEORY.md): the same ``P12*``
on the critic rows, and ``Vbar21*`` routes ``alpha * phi`` into ``w`` and
``beta * g`` into ``lam``.

Expected SARSA, Q-learning and TD(0) use the SARSA construction; they
differ only in what the prompt builder writes into ``gphi_next``
(:mod:`theory.algorithms` holds that rule).  Wang et al.'s (ICLR 2025)
four constructions are preconditioned tables on their layouts
(:data:`TD_PRECONDITIONED`, :data:`RESIDUAL_GRADIENT`,
:data:`AVERAGE_REWARD`; TD(lambda) is TD(0)'s tables with a decaying mask).
Every function below takes an algorithm record (anything with
``.spec.layout`` and ``.construction``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from theory.symbols import STEP_SIZES, alpha, beta, gamma  # noqa: F401  (re-exported names of the symbols)


Entry = tuple  # ((row block, column block), coefficient)


@dataclass(frozen=True)
class Construction:
    """The weights of a construction as block tables (one format for every
    record).

    ``p``: entries of ``P``; ``v``: one table per head, entries of that head's
    ``V`` (a single table is taken as the one head's).  An entry
    ``((row block, column block), coef)`` names blocks of the prompt's rows
    (the layout's context and parameter blocks) and means ``coef * I`` on a
    ``d x d`` block, the scalar ``coef`` on a ``1 x 1`` block; with
    ``preconditioned`` every ``d x d`` entry of ``P`` is ``coef * C^T`` for
    the layer's preconditioner ``C`` (a ``d x d`` step that replaces the step
    sizes; Wang et al.'s constructions).  Coefficients are exact SymPy
    expressions in the step sizes and ``gamma``; every other entry is zero.

    For a Lemma C.1 specification only ``P12`` (context rows x parameter
    columns) and ``Vbar21`` (read-out rows x context columns) are nonzero:
    :attr:`p12` and :attr:`vbar21` are ``p`` and the one head's ``v``.
    """

    p: tuple = ()
    v: tuple = ((),)
    preconditioned: bool = False

    def __post_init__(self):
        v = tuple(self.v)
        if not v or (len(v[0]) == 2 and isinstance(v[0][0], tuple) and len(v[0][0]) == 2
                     and all(isinstance(x, str) for x in v[0][0])):
            v = (v,)                                   # one table: the one head's
        object.__setattr__(self, "v", tuple(tuple(t) for t in v))
        object.__setattr__(self, "p", tuple(self.p))

    @property
    def p12(self):
        return self.p

    @property
    def vbar21(self):
        return self.v[0]

    def check_blocks(self, layout, name: str = "construction"):
        """``ValueError`` naming the entry when a table names a block the
        layout lacks or joins blocks of different sizes."""
        sizes = dict(layout.context + layout.params)
        for which, table in [("P", self.p)] + [(f"V[{h}]", t) for h, t in enumerate(self.v)]:
            for (rb, cb), _ in table:
                for b in (rb, cb):
                    if b not in sizes:
                        raise ValueError(f"{name}: {which} entry ({rb}, {cb}) names {b!r}, not a row block of "
                                         f"layout {layout.name!r}")
                if sizes[rb] != sizes[cb]:
                    raise ValueError(f"{name}: {which} entry ({rb}, {cb}) joins blocks of sizes {sizes[rb]} and "
                                     f"{sizes[cb]}")

    def flipped(self, entry=("phi", "phi"), table: str = "p"):
        """The construction with one entry of ``P`` (or of head 0's ``V``) negated (a planted fault)."""
        flip = lambda t: tuple(((k, -c) if k == entry else (k, c)) for k, c in t)
        if table == "p":
            return replace(self, p=flip(self.p))
        return replace(self, v=(flip(self.v[0]),) + self.v[1:])


#: Theorem 3.1: P12* w~ = (-w, w, 1), Vbar21* = [alpha I, 0, 0].
SARSA = Construction(
    p=(
        (("phi", "w"), sp.Integer(-1)),
        (("gphi_next", "w"), sp.Integer(1)),
        (("r", "one"), sp.Integer(1)),
    ),
    v=((("w", "phi"), alpha),),
)

#: Theorem 3.3 (reconstructed): SARSA's P12* on the critic rows; Vbar21* routes alpha phi into w, beta g into lam.
ACTOR_CRITIC = Construction(p=SARSA.p, v=((("w", "phi"), alpha), (("lam", "g"), beta)))

#: The preconditioned TD(0) construction (Wang et al. 2025, THEORY.md section 9): P = [[-C^T, C^T, 0], ...] on
#: (phi, phi), (phi, gphi_next); V writes the reward row.
TD_PRECONDITIONED = Construction(p=((("phi", "phi"), sp.Integer(-1)), (("phi", "gphi_next"), sp.Integer(1))),
                                 v=((("r", "r"), sp.Integer(1)),), preconditioned=True)
#: Residual gradient: TD(0)'s P plus the (gphi_next, .) row of the residual direction.
RESIDUAL_GRADIENT = Construction(p=TD_PRECONDITIONED.p + ((("gphi_next", "phi"), sp.Integer(1)),
                                                          (("gphi_next", "gphi_next"), sp.Integer(-1))),
                                 v=TD_PRECONDITIONED.v, preconditioned=True)
#: Average-reward TD: two heads share P; head 1 reads the reward row (through the running mean), head 2 row y.
AVERAGE_REWARD = Construction(p=((("phi", "phi"), sp.Integer(-1)), (("phi", "phi_next"), sp.Integer(1))),
                              v=(((("y", "r"), sp.Integer(1)),), ((("y", "y"), sp.Integer(1)),)), preconditioned=True)


def _offsets(record, d):
    lay = record.spec.layout
    ctx, par = lay.offsets("context", d), lay.offsets("params", d)
    read = {b: (s - 1, e - 1) for b, (s, e) in par.items() if b != "one"}
    return lay, ctx, par, read


def _fill(table, rows_off, cols_off, rows, cols, value):
    M = sp.zeros(rows, cols)
    for (rb, cb), coef in table:
        r0, r1 = rows_off[rb]
        c0, c1 = cols_off[cb]
        if (r1 - r0) != (c1 - c0):
            raise ValueError(f"construction: block ({rb},{cb}) is not square")
        v = value(coef)
        for k in range(r1 - r0):
            M[r0 + k, c0 + k] = v
    return M


def p12_vbar21(record, d: int, subs: dict | None = None):
    """Concrete SymPy ``(P12, Vbar21)`` for feature dimension ``d``.

    ``subs`` maps step-size symbols to values (exact or float); without it
    the step sizes stay symbolic.
    """
    lay, ctx, par, read = _offsets(record, d)
    c = record.construction
    value = (lambda e: sp.sympify(e, strict=True).subs(subs)) if subs else (lambda e: sp.sympify(e, strict=True))
    return (_fill(c.p12, ctx, par, lay.m(d), lay.p(d), value),
            _fill(c.vbar21, read, ctx, lay.q(d), lay.m(d), value))


def full_pv(record, d: int, subs: dict | None = None):
    """Concrete SymPy ``(P, V)``, each ``D x D``, every unused block zero."""
    idx = record.spec.index(d)
    P12, Vbar21 = p12_vbar21(record, d, subs)
    P = sp.zeros(idx.D, idx.D)
    V = sp.zeros(idx.D, idx.D)
    P[idx.p12] = P12
    V[idx.vbar21] = Vbar21
    return P, V


def numeric_blocks(record, d: int, steps: dict[str, float]):
    """``(P12, Vbar21)`` as nested float lists, read straight off the tables.

    ``steps`` maps step-size names (``alpha``, ``beta``) to numbers.  This is
    how ``numerics`` realises a construction at any size without building a
    ``D x D`` SymPy matrix: it walks the same tables as :func:`p12_vbar21` and
    evaluates each coefficient once.
    """
    lay, ctx, par, read = _offsets(record, d)
    subs = {STEP_SIZES[k]: v for k, v in steps.items() if k in STEP_SIZES}

    def fill(table, roff, coff, rows, cols):
        M = [[0.0] * cols for _ in range(rows)]
        for (rb, cb), coef in table:
            r0, r1 = roff[rb]
            c0, _ = coff[cb]
            v = float(sp.sympify(coef, strict=True).subs(subs))
            for k in range(r1 - r0):
                M[r0 + k][c0 + k] = v
        return M

    c = record.construction
    return (fill(c.p12, ctx, par, lay.m(d), lay.p(d)), fill(c.vbar21, read, ctx, lay.q(d), lay.m(d)))


def numeric_tables(record, d: int):
    """``(P entries, [V entries per head], D)`` of a preconditioned
    construction at feature dimension ``d``: ``P`` as ``[(r0, c0, coef)]``
    (the top-left corner of a ``d x d`` block that holds ``coef * C^T``), each
    ``V`` as ``[(row, col, coef)]``; the offsets read from the layout.  This
    is how ``numerics`` realises such a construction without re-typing it."""
    off = record.layout.offsets("rows", d)
    c = record.construction
    P = [(off[rb][0], off[cb][0], float(coef)) for (rb, cb), coef in c.p]
    Vs = [[(off[rb][0], off[cb][0], float(coef)) for (rb, cb), coef in table] for table in c.v]
    return P, Vs, int(record.layout.D(d))


def numeric_entries(record, d: int, subs: dict):
    """``(P entries, [V entries per head], D)`` of a plain (not
    preconditioned) construction on a layout without parameter rows, each
    entry ``(r0, c0, size, value)``: ``value * I`` on the ``size x size``
    block at ``(r0, c0)``, the coefficient evaluated with ``subs`` (symbol ->
    number: the step ``alpha`` and ``gamma``).  How ``numerics`` realises a
    softmax record's ``(A, V)`` (every entry read off the tables)."""
    off = record.layout.offsets("rows", d)
    c = record.construction

    def entries(table):
        out = []
        for (rb, cb), coef in table:
            value = sp.sympify(coef, strict=True).subs(subs)
            if value.free_symbols:
                raise ValueError(f"construction: coefficient {coef} of ({rb}, {cb}) needs a value for "
                                 f"{sorted(map(str, value.free_symbols))}")
            out.append((off[rb][0], off[cb][0], off[rb][1] - off[rb][0], float(value)))
        return out

    return entries(c.p), [entries(t) for t in c.v], int(record.layout.D(d))
