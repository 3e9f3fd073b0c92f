"""Proofs for the layer-by-layer (``mrp``) records, Wang et al.'s (ICLR 2025)
constructions among them (:mod:`theory.algorithms`): one layer maps
the prompt carrying ``w`` to the prompt carrying ``w+``, for symbolic ``d``
and ``n``; the prompt as built carries ``w_0 = 0``; hence, by induction,
``L`` layers compute ``L`` steps.  SymPy only.

* :func:`prove_layer` (general ``d``, ``n``): block matrices of
  ``MatrixSymbol``\\ s of symbolic size, as in ``theory.symbolic``.  The
  prompt carrying ``w`` has feature rows as built, the carried row
  (``delta(w) = r + w^T(gamma Phi' - Phi)`` in the reward row for TD(0),
  TD(lambda), RG; ``y = w^T(Phi - Phi')`` for average-reward TD) and the query
  entry (``-w.phi_q``; ``+w.phi_q`` for average reward).  One layer with
  preconditioner ``C`` must give the prompt carrying
  ``w+ = w + (1/n) C U delta(w)`` with ``U = Phi`` (TD(0)), ``Phi Lambda^T``
  for an *arbitrary* ``n x n`` mask block ``Lambda`` (TD(lambda):
  ``Lambda_ij = lambda^(i-j)``, ``j <= i``, makes column ``i`` of
  ``Phi Lambda^T`` the trace ``e_i``), ``Phi - gamma Phi'`` (RG); average
  reward: ``delta = r - rbar + Phi'^T w - Phi^T w`` with the running mean
  written ``rbar - r = r B`` for an arbitrary block ``B`` standing for the
  running-mean operator.  The **whole** output matrix is compared, so a
  feature row that changes, a query column that moves, or a wrong update all
  leave a residual.  ``w``, ``C``, ``gamma`` are free symbols: the identity
  holds at every layer, tied or untied.
* :func:`prove_base_case`: the prompt as built is the prompt carrying 0.
* :func:`concrete_layer_residual` (independent): every entry of the prompt
  and of ``C`` a symbol at ``d <= 2``, ``n <= 3``; the layer multiplied out
  entry by entry with the mask, the running mean and the tables as explicit
  matrices; the teacher a plain loop over the window written from the
  update rule.  :func:`concrete_stack_residual` checks the induction
  directly: two untied layers from the prompt as built against two loop
  steps.
* Planted faults (:data:`FAULTS`): a flipped sign, no mask, ``C`` where
  ``C^T`` belongs, a teacher with ``C^T``, a doubled ``V``, writing into a
  feature row, ... each must leave a nonzero residual.

A residual is a SymPy expression; zero means SymPy cancelled every term.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import sympy as sp
from sympy import BlockMatrix, Identity, MatrixSymbol, ZeroMatrix

from theory import algorithms
from theory.errors import InputError
from theory.spec import block_equation
from theory.symbolic import residual_of
from theory.symbols import d, gamma, lam, n

INDUCTION = (
    "Let Z(w) be the prompt carrying w (feature rows as built; the carried row: delta_j(w) = r_j + "
    "w.(gamma phi'_j - phi_j) in the reward row, or y_j = w.(phi_j - phi'_j) for average-reward TD; the query "
    "entry -w.phi_q, or +w.phi_q for average-reward TD). Base: the prompt as built is Z(0) (prove_base_case). "
    "Step: for every w and every C, one layer with preconditioner C maps Z(w) to Z(w + (1/n) C U delta(w)) "
    "(prove_layer, symbolic d and n). Hence, by induction on l, L layers with preconditioners C_0..C_{L-1} "
    "(tied layers: all equal) map Z(0) to Z(w_L), w_{l+1} = w_l + (1/n) C_l U delta(w_l), and the read-out "
    "-Z_L[-1,-1] (+Z_L[-1,-1] for average-reward TD) equals w_L.phi_q: L layers compute L steps of batch TD "
    "on the window, for every L.")


def _bsize(s, dim):
    return dim if s == "d" else 1


# ---- general d and n --------------------------------------------------------------

@dataclass
class Symbols:
    """The MatrixSymbols of a general-size prompt."""

    Phi: MatrixSymbol = MatrixSymbol(r"\Phi", d, n)
    Phin: MatrixSymbol = MatrixSymbol(r"\Phi'", d, n)
    r: MatrixSymbol = MatrixSymbol("r", 1, n)
    q: MatrixSymbol = MatrixSymbol(r"\phi_q", d, 1)
    w: MatrixSymbol = MatrixSymbol("w", d, 1)
    C: MatrixSymbol = MatrixSymbol("C", d, d)
    Lam: MatrixSymbol = MatrixSymbol(r"\Lambda", n, n)
    B: MatrixSymbol = MatrixSymbol("B", n, n)


def table_block_matrix(record, table, key, dim=d):
    """A block table over the record's context blocks as a ``BlockMatrix``:
    a ``d x d`` entry is ``coef * key``, a ``1 x 1`` entry ``coef``."""
    rows = record.layout.context
    T = dict(table)
    out = []
    for rb, rs in rows:
        line = []
        for cb, cs in rows:
            if (rb, cb) in T:
                line.append(T[(rb, cb)] * (key if rs == "d" else Identity(1)))
            else:
                line.append(ZeroMatrix(_bsize(rs, dim), _bsize(cs, dim)))
        out.append(line)
    return BlockMatrix(out)


def carrying_prompt(record, s: Symbols, w):
    """The prompt carrying ``w`` (general size), columns ``(n | 1)``."""
    z = ZeroMatrix
    if record.carried == "r":
        G = gamma * s.Phin
        return BlockMatrix([[s.Phi, s.q], [G, z(d, 1)], [s.r + w.T * (G - s.Phi), -w.T * s.q]])
    return BlockMatrix([[s.Phi, s.q], [s.Phin, z(d, 1)], [s.r, z(1, 1)], [w.T * (s.Phi - s.Phin), w.T * s.q]])


def general_mask(record, s: Symbols, mask: str | None = None):
    """``M`` with columns ``(n | 1)``: ``[[I_n, 0], [0, 0]]`` (diagonal),
    ``[[Lambda, 0], [0, 0]]`` with ``Lambda`` arbitrary (a decay), or
    ``I_{n+1}`` (``none``: the query column is a key and a value too)."""
    z = ZeroMatrix
    kind = mask or ("lambda" if record.spec.has_decay else "diag")
    if kind == "none":
        return BlockMatrix([[Identity(n), z(n, 1)], [z(1, n), Identity(1)]])
    top = s.Lam if kind == "lambda" else Identity(n)
    return BlockMatrix([[top, z(n, 1)], [z(1, n), z(1, 1)]])


def general_value_mix(mix, s: Symbols):
    """``running-mean`` as ``[[B, a], [0, b]]``: ``B`` arbitrary (their
    ``A - I``, ``A_ij = 1/(j+1)`` for ``i <= j``), ``a``, ``b`` arbitrary (the
    mask removes them); the zero block is theirs: the query column never
    enters a context column's mean."""
    if mix is None:
        return None
    return BlockMatrix([[s.B, MatrixSymbol("a", n, 1)], [ZeroMatrix(1, n), MatrixSymbol("b", 1, 1)]])


def expected_update(record, s: Symbols, C=None):
    """``w+`` from the update rule (general size), read off the record's
    ``direction`` and ``centered``."""
    C = s.C if C is None else C
    w = s.w
    if record.centered:
        delta = -(s.r * s.B).T + s.Phin.T * w - s.Phi.T * w
    else:
        delta = s.r.T + gamma * s.Phin.T * w - s.Phi.T * w
    U = {"phi": s.Phi, "trace": s.Phi * s.Lam.T, "residual": s.Phi - gamma * s.Phin}[record.direction]
    return w + C * U * delta / n


@dataclass
class LayerProof:
    algorithm: str
    ok: bool
    residual: object          # 0 or the nonzero residual (block by block)
    statement: str


def prove_layer(record, con=None, *, key=None, mask: str | None = None, teacher_C=None) -> LayerProof:
    """One layer maps the prompt carrying ``w`` to the prompt carrying
    ``w+`` (general ``d``, ``n``; module docstring).

    ``con`` replaces the record whose *tables* the layer uses (planted
    faults: a flipped sign, a dropped head) while the prompt and the teacher
    stay the record's; ``key`` replaces the matrix written where the table
    says ``C^T`` (fault: ``C``); ``mask`` overrides the mask (fault:
    ``"none"``); ``teacher_C`` the teacher's preconditioner.
    """
    base = algorithms.get(record)
    con = base if con is None else con
    s = Symbols()
    key = s.C.T if key is None else key
    P = table_block_matrix(con, con.construction.p, key)
    heads = [(table_block_matrix(con, t, key), general_value_mix(mix, s))
             for t, mix in zip(con.construction.v, con.spec.heads)]
    M = general_mask(base, s, mask)
    Z = carrying_prompt(base, s, s.w)
    out = block_equation(Z, P, [V for V, _ in heads], n, mask=M, mixes=[R for _, R in heads])
    res = residual_of(out - carrying_prompt(base, s, expected_update(base, s, teacher_C)))
    return LayerProof(base.name, res == 0, res, base.statement)


def prove_base_case(record) -> bool:
    """The prompt as built carries ``w_0 = 0``: carried row ``r = delta(0)``
    (or ``y = 0``), query entry 0."""
    record = algorithms.get(record)
    s = Symbols()
    z = ZeroMatrix
    if record.carried == "r":
        built = BlockMatrix([[s.Phi, s.q], [gamma * s.Phin, z(d, 1)], [s.r, z(1, 1)]])
    else:
        built = BlockMatrix([[s.Phi, s.q], [s.Phin, z(d, 1)], [s.r, z(1, 1)], [z(1, n), z(1, 1)]])
    return residual_of(built - carrying_prompt(record, s, ZeroMatrix(d, 1))) == 0


# ---- concrete sizes (independent: explicit entries, a loop teacher) ------------------

def _syms(name, k):
    return [sp.Symbol(f"{name}_{i}", real=True) for i in range(k)]


@dataclass
class ConcreteCase:
    """Every entry a symbol: context features, rewards, query, ``w``, ``C``."""

    dim: int
    cols: int
    phi: list
    phin: list
    r: list
    q: list
    w: list
    C: sp.Matrix


def concrete_case(dim: int, cols: int) -> ConcreteCase:
    return ConcreteCase(dim, cols, [_syms(f"phi{j}", dim) for j in range(cols)],
                        [_syms(f"phin{j}", dim) for j in range(cols)], _syms("r", cols), _syms("q", dim),
                        _syms("w", dim), sp.Matrix(dim, dim, lambda a, b: sp.Symbol(f"C_{a}{b}", real=True)))


def concrete_prompt(record, cc: ConcreteCase, w) -> sp.Matrix:
    """The explicit prompt carrying ``w`` (a list of ``dim`` expressions)."""
    dim, cols = cc.dim, cc.cols
    H = int(record.layout.D(dim))
    Z = sp.zeros(H, cols + 1)
    avg = record.carried == "y"
    for j in range(cols):
        vphi = sum(w[k] * cc.phi[j][k] for k in range(dim))
        vnext = sum(w[k] * cc.phin[j][k] for k in range(dim))
        Z[:dim, j] = sp.Matrix(cc.phi[j])
        Z[dim:2 * dim, j] = sp.Matrix([v if avg else gamma * v for v in cc.phin[j]])
        if avg:
            Z[2 * dim, j] = cc.r[j]
            Z[2 * dim + 1, j] = vphi - vnext
        else:
            Z[2 * dim, j] = cc.r[j] + gamma * vnext - vphi
    vq = sum(w[k] * cc.q[k] for k in range(dim))
    Z[:dim, cols] = sp.Matrix(cc.q)
    Z[H - 1, cols] = vq if avg else -vq
    return Z


def concrete_mask(kind: str, cols: int) -> sp.Matrix:
    """``diag(1,..,1,0)``; ``lambda``: ``lambda^(i-j)`` for ``j <= i < cols``; ``none``: the identity."""
    M = sp.zeros(cols + 1, cols + 1)
    for i in range(cols):
        for j in range(i + 1):
            if kind == "lambda":
                M[i, j] = lam ** (i - j)
            elif i == j:
                M[i, j] = 1
    if kind == "none":
        M[cols, cols] = 1
    return M


def concrete_running_mean(cols: int) -> sp.Matrix:
    """``R_ij = 1/(j+1)`` for ``i <= j``, minus the identity (size ``cols + 1``)."""
    R = sp.zeros(cols + 1, cols + 1)
    for j in range(cols + 1):
        for i in range(j + 1):
            R[i, j] = sp.Rational(1, j + 1)
        R[j, j] -= 1
    return R


def concrete_table(record, table, key: sp.Matrix, dim: int) -> sp.Matrix:
    """A block table at size ``dim`` (``coef * key`` on ``d``-blocks, decided by
    the declared size so that ``dim = 1`` still gets ``key``)."""
    off = record.layout.offsets("rows", dim)
    kind = dict(record.layout.context)
    H = int(record.layout.D(dim))
    A = sp.zeros(H, H)
    for (rb, cb), coef in table:
        r0, r1 = off[rb]
        c0, c1 = off[cb]
        A[r0:r1, c0:c1] = coef * (key if kind[rb] == "d" else sp.Matrix([[1]]))
    return A


def concrete_layer(con, Z: sp.Matrix, C: sp.Matrix, mask: str, key=None) -> sp.Matrix:
    """Eq. W1 multiplied out: ``Z + (1/n) sum_h (V_h Z) R_h M (Z^T P Z)``."""
    dim, cols = C.shape[0], Z.shape[1] - 1
    key = C.T if key is None else key
    P = concrete_table(con, con.construction.p, key, dim)
    M = concrete_mask(mask, cols)
    Vs = [concrete_table(con, table, key, dim) for table in con.construction.v]
    Rs = [None if mix is None else concrete_running_mean(cols) for mix in con.spec.heads]
    return block_equation(Z, P, Vs, cols, mask=M, mixes=Rs)


def loop_update(record, cc: ConcreteCase, w, C: sp.Matrix):
    """One step of the algorithm as a plain loop over the window (update
    rules, not the transformer); ``w + (1/n) C u``."""
    dim, cols = cc.dim, cc.cols
    u = [sp.Integer(0)] * dim
    e = [sp.Integer(0)] * dim
    for j in range(cols):
        vphi = sum(w[k] * cc.phi[j][k] for k in range(dim))
        vnext = sum(w[k] * cc.phin[j][k] for k in range(dim))
        if record.centered:
            delta = cc.r[j] - sum(cc.r[: j + 1]) / (j + 1) + vnext - vphi
        else:
            delta = cc.r[j] + gamma * vnext - vphi
        if record.direction == "trace":
            e = [lam * e[k] + cc.phi[j][k] for k in range(dim)]
            g = e
        elif record.direction == "residual":
            g = [cc.phi[j][k] - gamma * cc.phin[j][k] for k in range(dim)]
        else:
            g = cc.phi[j]
        u = [u[k] + delta * g[k] for k in range(dim)]
    step = C * sp.Matrix(u) / cols
    return [w[k] + step[k] for k in range(dim)]


def _mask_kind(record, mask):
    return mask or ("lambda" if record.spec.has_decay else "diag")


def concrete_layer_residual(record, dim: int, cols: int, con=None, mask: str | None = None, key=None,
                            teacher_C=None) -> sp.Matrix:
    """Literal layer on the explicit prompt carrying symbolic ``w`` minus the
    prompt carrying the loop's ``w+``, every entry expanded."""
    base = algorithms.get(record)
    con = base if con is None else con
    cc = concrete_case(dim, cols)
    Z = concrete_prompt(base, cc, cc.w)
    out = concrete_layer(con, Z, cc.C, _mask_kind(base, mask), key=None if key is None else key(cc))
    w_next = loop_update(base, cc, cc.w, cc.C if teacher_C is None else teacher_C(cc))
    return (out - concrete_prompt(base, cc, w_next)).applyfunc(sp.expand)


def concrete_stack_residual(record, dim: int, cols: int, layers: int) -> sp.Matrix:
    """``layers`` untied layers (independent symbolic ``C_l``) from the prompt as
    built against ``layers`` loop steps from ``w_0 = 0``."""
    record = algorithms.get(record)
    cc = concrete_case(dim, cols)
    zero = [sp.Integer(0)] * dim
    Z = concrete_prompt(record, cc, zero)
    w = zero
    for lay in range(layers):
        C = sp.Matrix(dim, dim, lambda a, b: sp.Symbol(f"C{lay}_{a}{b}", real=True))
        Z = concrete_layer(record, Z, C, _mask_kind(record, None))
        w = loop_update(record, cc, w, C)
    return (Z - concrete_prompt(record, cc, w)).applyfunc(sp.expand)


def is_zero_matrix(M) -> bool:
    return all(e == 0 for e in M)


# ---- planted faults -------------------------------------------------------------------

def _doubled_v(record):
    c = record.construction
    return replace(record, construction=replace(c, v=tuple(tuple((k, 2 * v) for k, v in t) for t in c.v)))


def faults(record) -> dict:
    """Planted faults for ``record``: name -> keyword arguments of
    :func:`prove_layer` and :func:`concrete_layer_residual` (``key`` and
    ``teacher_C`` given as functions of the symbols, ``"general"`` or a
    :class:`ConcreteCase`)."""
    record = algorithms.get(record)
    out = {
        "flipped sign in P (their Q)": dict(con=algorithms.with_p_sign_flipped(record)),
        "mask removed (the query is a key and a value)": dict(mask="none"),
        "C instead of C^T in P": dict(key=lambda s: s.C),
        "teacher with C^T": dict(teacher_C=lambda s: s.C.T),
        "V doubled (step 2C)": dict(con=_doubled_v(record)),
    }
    if record.direction == "residual":
        out["TD(0) tables for RG"] = dict(con=replace(algorithms.get("td-preconditioned"), name=record.name))
    if record.spec.has_decay:
        out["diagonal mask instead of the lambda mask"] = dict(mask="diag")
    c = record.construction
    if len(c.v) > 1:
        out["running-mean head dropped"] = dict(con=replace(
            record, construction=replace(c, v=c.v[1:]), spec=replace(record.spec, heads=record.spec.heads[1:])))
    if record.direction == "phi" and not record.centered:
        out["an extra block in P (gamma phi' rows x phi columns)"] = dict(
            con=replace(record, construction=replace(c, p=c.p + ((("gphi_next", "phi"), sp.Integer(1)),))))
    return out


def _general_kwargs(kw):
    s = Symbols()
    out = dict(kw)
    for k in ("key", "teacher_C"):
        if k in out:
            out[k] = out[k](s)
    return out


def refuse_faults(record, concrete_size=(2, 2)) -> list[dict]:
    """Every planted fault through both proofs: ``[{fault, general_refused,
    concrete_refused}]`` (refused: a nonzero residual)."""
    rows = []
    for name, kw in faults(record).items():
        g = prove_layer(record, **_general_kwargs(kw))
        c = concrete_layer_residual(record, *concrete_size, **kw)
        rows.append(dict(fault=name, general_refused=not g.ok, concrete_refused=not is_zero_matrix(c)))
    return rows

#: Concrete sizes of the independent second proof (every entry a symbol).
CONCRETE_SIZES = tuple((dd, nn) for dd in (1, 2) for nn in (1, 2, 3))
#: Size (d, layers) of the direct two-layer check of the induction, with n = 2.
STACK_SIZE = (1, 2)
#: Size (d, n) at which the planted faults are also refused entrywise.
FAULT_SIZE = (2, 2)


#: The layouts these proofs write the carrying prompt for: TD's [phi; gamma phi'; r] (read-out -r) and average
#: reward's [phi; phi'; r; y] (read-out +y).
LAYOUTS = {((("phi", "d"), ("gphi_next", "d"), ("r", 1)), (("r", -1),)),
           ((("phi", "d"), ("phi_next", "d"), ("r", 1), ("y", 1)), (("y", 1),))}


def counterexample(record, sizes=((1, 2), (2, 2))):
    """An exact prompt on which one layer of the record's construction and
    the teacher's step disagree: every symbol of the concrete case (features,
    rewards, query, ``w``, ``C``) set to a small rational, ``gamma = 1/2``,
    ``lambda = 1/3``; the first entry of the output prompt that differs, with
    both values.  None when none is found at ``sizes``."""
    for dim, cols in sizes:
        cc = concrete_case(dim, cols)
        Z = concrete_prompt(record, cc, cc.w)
        out = concrete_layer(record, Z, cc.C, _mask_kind(record, None))
        want = concrete_prompt(record, cc, loop_update(record, cc, cc.w, cc.C))
        free = sorted((out - want).free_symbols - {gamma, lam}, key=lambda x: x.name)
        values = {x: sp.Rational((7 * k) % 11 - 5, 3) or sp.Rational(1, 2) for k, x in enumerate(free, 1)}
        values.update({gamma: sp.Rational(1, 2), lam: sp.Rational(1, 3)})
        for i in range(out.rows):
            for j in range(out.cols):
                got, exp = sp.nsimplify(out[i, j].subs(values)), sp.nsimplify(want[i, j].subs(values))
                if sp.simplify(got - exp) != 0:
                    return dict(d=dim, n=cols, entry=[i, j], block=str(got), teacher=str(exp),
                                values={str(k): str(v) for k, v in values.items()},
                                why="one layer of the construction on this exact prompt (carrying w) differs from "
                                    "the prompt carrying the teacher's w+")
    return None


def prove(algorithm) -> dict:
    """Prove the construction of ``algorithm`` (a name or a record)."""
    record = algorithms.get(algorithm)
    if (record.layout.context, record.layout.readout) not in LAYOUTS:
        raise InputError("construction", f"the layer-by-layer proofs cover the layouts [phi; gamma phi'; r] (read-out "
                                         f"-r) and [phi; phi'; r; y] (read-out +y); {record.name!r} has "
                                         f"{[b for b, _ in record.layout.context]}")
    t0 = time.perf_counter()
    layer = prove_layer(record)
    base = prove_base_case(record)
    concrete = [{"d": dd, "n": nn, "ok": is_zero_matrix(concrete_layer_residual(record, dd, nn))}
                for dd, nn in CONCRETE_SIZES]
    dim, layers = STACK_SIZE
    stack = {"d": dim, "n": 2, "layers": layers,
             "ok": is_zero_matrix(concrete_stack_residual(record, dim, 2, layers))}
    faults = refuse_faults(record, FAULT_SIZE)
    general = bool(layer.ok and base)
    all_concrete = all(c["ok"] for c in concrete) and stack["ok"]
    residual = None
    if not layer.ok:
        residual = str(layer.residual)
    elif not base:
        residual = "the prompt as built does not carry w_0 = 0"
    elif not all_concrete:
        residual = "a concrete size left a nonzero residual"
    cex = None if (general and all_concrete) else counterexample(record)
    return dict(counterexample=cex, data="mrp", layout=record.layout.name, algorithm=record.name, record=record, title=record.title,
                statement=record.statement, general=general and all_concrete, layer=layer.ok, base_case=base,
                concrete=concrete, stack=stack, faults=faults,
                faults_refused=all(f["general_refused"] and f["concrete_refused"] for f in faults),
                residual=residual, induction=INDUCTION, seconds=round(time.perf_counter() - t0, 3))


def summary(res: dict, report: str | None = None) -> dict:
    return {k: res[k] for k in ("data", "layout", "algorithm", "general", "layer", "base_case", "concrete", "stack",
                                "faults", "faults_refused", "residual", "counterexample", "seconds")} | {"report": report}


def render(res: dict, header: str = "") -> str:
    record = res["record"]
    L = [f"# Proof: {record.theorem or record.name}, {res['title']}: L masked layers compute L steps", header]
    verdict = "PROVEN" if res["general"] else "NOT PROVEN (nonzero residual)"
    L += [f"**Verdict: {verdict}.**  Update: {res['statement']}.", ""]
    L += ["## The layer and the construction", "",
          "One layer (our notation; their $P$ is our $V$, their $Q$ our $P$): "
          "$Z \\leftarrow Z + \\frac1n \\sum_h (V_h Z) R_h M (Z^\\top P Z)$ with the mask "
          + ("$M_{ij}=\\lambda^{i-j}$ for $j\\le i<n$, zero last row and column"
             if record.spec.has_decay else "$M=\\mathrm{diag}(1,\\dots,1,0)$")
          + " (the query column is never a key or a value). Layout rows: "
          + ", ".join(f"`{b}` ({s})" for b, s in record.layout.context)
          + f"; read-out ${'+' if record.readout_sign > 0 else '-'}Z[-1,-1]$.", "",
          "- $P$ (each entry times $C^\\top$, $C$ the layer's preconditioner): "
          + ", ".join(f"({rb}, {cb}): ${sp.latex(coef)}\\,C^\\top$" for (rb, cb), coef in record.construction.p) + ".",
          ]
    for h, (table, mix) in enumerate(zip(record.construction.v, record.spec.heads)):
        L.append(f"- $V_{{{h + 1}}}$" + (f" (value side: `{mix}`)" if mix else "") + ": "
                 + ", ".join(f"({rb}, {cb}): ${sp.latex(coef)}$" for (rb, cb), coef in table) + "; zero elsewhere.")
    L += [f"- {note}" for note in record.notes]
    L += ["", "## What was proven", "",
          f"1. **One layer** (symbolic $d$, $n$; $w$, $C$, $\\gamma$ free; the whole output matrix compared): the "
          f"prompt carrying $w$ is mapped to the prompt carrying $w^+$: {'proven' if res['layer'] else 'NOT proven'}.",
          f"2. **Base case**: the prompt as built carries $w_0 = 0$: {'proven' if res['base_case'] else 'NOT proven'}.",
          "3. **Induction** (hence every $L$, tied or untied layers): " + res["induction"],
          "4. Independently, every entry a symbol, the layer multiplied out and the teacher a loop over the window, "
          "at (d, n) = " + ", ".join(f"({c['d']}, {c['n']})" for c in res["concrete"]) + ": "
          + ("all zero." if all(c["ok"] for c in res["concrete"]) else "SOME NONZERO.")
          + f" Two untied layers from the prompt as built against two loop steps at d = {res['stack']['d']}, "
          f"n = {res['stack']['n']}: {'zero' if res['stack']['ok'] else 'NONZERO'}.", "",
          "Method: SymPy block matrices whose blocks are `MatrixSymbol`s of symbolic size ($d$ features, $n$ context "
          "columns); " + ("the mask block $\\Lambda$ is an arbitrary $n\\times n$ matrix, so the proof covers every "
                          "mask of this shape, and with $\\Lambda_{ij}=\\lambda^{i-j}$ ($j\\le i$) column $i$ of "
                          "$\\Phi\\Lambda^\\top$ is the trace $e_i=\\lambda e_{i-1}+\\phi_i$; "
                          if record.spec.has_decay else "")
          + ("the running-mean operator is an arbitrary block $B$ with $\\bar r - r = rB$; " if record.centered else "")
          + "a difference is declared zero only when every term cancels after expansion.", "",
          "## Planted faults (each must be refused)", "",
          "| fault | general proof | concrete proof (d = %d, n = %d) |" % FAULT_SIZE, "|---|---|---|"]
    for f in res["faults"]:
        L.append(f"| {f['fault']} | {'refused' if f['general_refused'] else 'ACCEPTED'} | "
                 f"{'refused' if f['concrete_refused'] else 'ACCEPTED'} |")
    L += ["", "## What this does not cover", "",
          "- Floating point: the identity is exact; rounding over 40 layers is measured by "
          f"`icrl-verify check --algorithm {record.name}`.",
          "- The prompt builder (which features, rewards and query the prompt holds) is tested numerically.",
          ""]
    return "\n".join(L)
