"""Symbolic proofs that a block implements an algorithm's update (the logic of
``icrl-verify prove``; the command itself is ``numerics.commands.prove``).

Without weights: the record's construction (Theorem 3.1 for SARSA, expected
SARSA, Q-learning, TD(0); Theorem 3.3 for actor-critic; any registered
record) is proven for every feature dimension d and context length n at once
(SymPy matrix expressions of symbolic size: Lemma C.1 derived from
H + (1/n)(VH)(H^T P H), then read-out minus teacher simplified to zero), and
independently at every concrete size d <= 3, n <= 3 with every prompt entry
a symbol (exact arithmetic, literal block).  Step sizes stay symbolic unless
given.

With weights ({"P": [[...]], "V": [[...]]}, exact entries: integers,
decimals, strings like "1/5" or "-alpha/3" over the symbols alpha, beta,
gamma): the weights are proven at the size their shape implies for every
prompt and every n, or the simplified residual is returned.

:func:`prove` computes; :func:`summary` is its JSON; :func:`render` its
Markdown report (a header is passed in by the caller).  Nothing here writes
files.

One ``prove(record)`` for every record: a layer-by-layer (``mrp``) record
(Wang et al.'s four, or a construction file's) is proven by
:mod:`theory.layerwise` (one layer maps the prompt carrying ``w`` to the
prompt carrying the teacher's ``w+``, for symbolic ``d`` and ``n``; the base
case; induction over the layers; concrete sizes; planted faults), and
:func:`summary` / :func:`render` read its result the same way.
"""
from __future__ import annotations

import os
import time

import sympy as sp

from theory import algorithms
from theory import concrete as C
from theory import counterexample as CEX
from theory import layerwise
from theory import lemmas as LEM
from theory import softmax
from theory import symbolic as S
from theory.constructions import full_pv
from theory.errors import InputError
from theory.parse import feature_dim, load_weights_json, parse_step
from theory.symbols import alpha as ALPHA
from theory.symbols import beta as BETA
from theory.symmetry import parameter_count, prove_scaling_invariance, symmetry_tangent_dim, verify_symmetry_family

#: Concrete sizes of the independent second proof (every entry a symbol).
CONCRETE_SIZES = tuple((d, n) for d in (1, 2, 3) for n in (1, 2, 3))
#: Sizes at which Lemma C.1 is also checked with every entry of P and V a symbol
#: (by layout name; other layouts: the actor-critic sizes, the cheaper set).
LEMMA_SIZES = {"value": ((1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)),
               "actor-critic": ((1, 1), (1, 2), (1, 3))}
DEFAULT_LEMMA_SIZES = LEMMA_SIZES["actor-critic"]
#: Sizes (d, n) at which the symmetry family is checked exact and its tangent rank counted.
SYMMETRY_SIZES = ((1, 2), (2, 1))
def _subs(a, b):
    return {k: v for k, v in ((ALPHA, a), (BETA, b)) if v is not None}


def prove(algorithm, weights=None, alpha=None, beta=None) -> dict:
    """Prove that ``weights`` (default: the construction) implement the
    algorithm's update.

    Args:
      algorithm: a registered name or an :class:`theory.algorithms.Algorithm`.
      weights: ``None`` (the construction), a path to a JSON weight file, or
        ``(P, V)`` exact SymPy matrices (``D x D``).
      alpha, beta: the teacher's step sizes, exact SymPy values or the
        symbols themselves; ``None`` keeps them symbolic (two distinct
        symbols, so weights with alpha and beta swapped are refuted).
    Returns the full result (``render`` reads it); :func:`summary` gives its
    JSON: ``general`` is True when proven for every prompt and every n (and,
    for the construction, every d).
    """
    record = algorithms.get(algorithm)
    if record.spec.kind == "softmax":   # Xie et al. (2026): theory.softmax (Theorem 1, Lemma 1)
        if weights is not None or alpha is not None or beta is not None:
            raise InputError("weights" if weights is not None else "alpha",
                             f"{record.name!r} is proven as a construction with a free step per layer; give other "
                             f"weights as a construction file (--construction)")
        return softmax.prove_record(record)
    if record.data == "mrp":
        if weights is not None:
            raise InputError("weights", f"{record.name!r} is proven as a construction (its P in C^T blocks for every "
                                        f"preconditioner C); --weights is for the single-layer records")
        return layerwise.prove(record)
    alpha, beta = _exact_step(alpha, "alpha"), _exact_step(beta, "beta")
    t0 = time.perf_counter()
    if weights is None:
        res = _prove_construction(record, alpha, beta)
    else:
        res = _prove_weights(record, weights, ALPHA if alpha is None else alpha, BETA if beta is None else beta)
    res["seconds"] = round(time.perf_counter() - t0, 3)
    return res


def report_name(res: dict) -> str:
    """``<algorithm>`` or ``<algorithm>-<weights file stem>``."""
    if res.get("kind") == "softmax":
        return res["algorithm"]
    return res["algorithm"] if res.get("weights") is None else f"{res['algorithm']}-{_stem(res['weights'])}"


def summary(res: dict, report: str | None = None) -> dict:
    """The JSON of a proof result."""
    if res.get("kind") == "softmax":
        return softmax.summary(res, report)
    if res.get("data") == "mrp":
        return layerwise.summary(res, report)
    return {"algorithm": res["algorithm"], "general": res["general"], "concrete": res["concrete"],
            "counterexample": res.get("counterexample"),
            "residual": res["residual"], "report": report, "weights": res["weights"],
            "alpha": str(res["alpha"]), "beta": str(res["beta"]), "seconds": res["seconds"],
            "lemma_c1": res.get("lemma_ok"), "proposition_3_1": res.get("proposition_3_1"),
            "scaling": res.get("scaling"),
            "lemmas": {k: {"proven": v["proven"], "statement": v["statement"], "assumes": v["assumes"]}
                       for k, v in res.get("lemmas", {}).items()},
            "symmetry_tangent_dim": ({k: str(v["formula"]) for k, v in res["symmetry"].items()}
                                     if "symmetry" in res else None)}


def _exact_step(value, field):
    """``None``, a SymPy expression, an int / Fraction, a float (read from its
    shortest decimal text, so 0.2 is 1/5) or exact text (:func:`parse_step`)."""
    if value is None or isinstance(value, sp.Basic):
        return value
    if isinstance(value, str):
        return parse_step(value, field, None)
    if isinstance(value, bool):
        raise InputError(field, f"expected a number, got {value}")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(field, f"expected a finite number, got {value}")
        return sp.Rational(repr(value))
    try:
        return sp.Rational(value)
    except (TypeError, ValueError):
        raise InputError(field, f"expected an exact number, got {value!r}") from None


def _stem(path):
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem) or "weights"


def _prove_construction(record, a, b):
    lay = record.layout
    lemma_ok, never_read, lemma_steps = S.derive_lemma_c1(lay)
    g = S.prove_construction(record)
    subs = _subs(a, b)
    teach_a = ALPHA if a is None else a
    teach_b = BETA if b is None else b
    hp = {"alpha": teach_a, "beta": teach_b}
    concrete = []
    for d, n in CONCRETE_SIZES:
        P, V = full_pv(record, d, subs or None)
        r = C.construction_residual(record, d, n, P, V, hp)
        concrete.append({"d": d, "n": n, "ok": C.is_zero_matrix(r)})
    lemma_concrete = [{"d": d, "n": n, "ok": C.lemma_c1_concrete(record, d, n)}
                      for d, n in LEMMA_SIZES.get(lay.name, DEFAULT_LEMMA_SIZES)]
    prop = prove_proposition_3_1(record)
    scaling = prove_scaling_invariance(record)
    symmetry = {par: {"formula": symmetry_tangent_dim(record, par), "parameters": parameter_count(record, par),
                      "checks": [dict(d=dd, n=nn, **verify_symmetry_family(record, par, dd, nn))
                                 for dd, nn in SYMMETRY_SIZES]}
                for par in ("reduced", "full")}
    general = bool(lemma_ok and g.ok)
    all_concrete = all(c["ok"] for c in concrete)
    parts = LEM.lemmas_for(record)
    residual = None
    if not general:
        residual = g.residual or "Lemma C.1 derivation did not reduce to zero"
    elif not all_concrete:
        bad = next(c for c in concrete if not c["ok"])
        residual = f"concrete size d={bad['d']}, n={bad['n']} left a nonzero residual"
    elif not all(v["proven"] for v in parts.values()):
        residual = "algorithm-specific part not proven: " + ", ".join(k for k, v in parts.items() if not v["proven"])
    proven = general and all_concrete and all(v["proven"] for v in parts.values())
    # a refused construction: an exact prompt on which the literal block and the teacher differ (d = 1)
    cex = None if proven else CEX.find(record, *full_pv(record, 1, subs or None), hp)
    return dict(mode="construction", algorithm=record.name, theorem=record.theorem, record=record,
                general=proven, concrete=concrete, counterexample=cex,
                lemmas=parts,
                residual=residual, weights=None, alpha=teach_a, beta=teach_b, alpha_given=a is not None,
                beta_given=b is not None, lemma_ok=lemma_ok, lemma_steps=lemma_steps, construction_steps=g.steps,
                lemma_concrete=lemma_concrete, proposition_3_1=prop, scaling=scaling, symmetry=symmetry,
                statement=record.statement)


def _as_matrices(weights):
    if isinstance(weights, (str, os.PathLike)):
        return load_weights_json(str(weights)), str(weights)
    P, V = (sp.Matrix(M) for M in weights)
    for name, M in (("P", P), ("V", V)):
        if any(e.has(sp.Float) for e in M):
            raise InputError(f"weights.{name}", "entries must be exact (integers, rationals, alpha, beta, gamma), not floats")
    return (P, V), "given"


def _prove_weights(record, weights, a, b):
    lay = record.layout
    (P, V), source = _as_matrices(weights)
    if P.shape != V.shape or P.shape[0] != P.shape[1]:
        raise InputError("weights", f"P and V must be square and of one size, got {P.shape} and {V.shape}")
    d = feature_dim(lay, P.shape[0])
    for name, M in (("P", P), ("V", V)):
        CEX.check_defined(M, name)
    subs = _subs(a, b)
    P, V = P.subs(subs), V.subs(subs)
    for name, M in (("P", P), ("V", V)):
        for (i, j), e in ((ij, M[ij]) for ij in ((i, j) for i in range(M.rows) for j in range(M.cols))):
            if e.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
                raise InputError(f"weights.{name}[{i}][{j}]", f"undefined at the teacher's step sizes {subs}")
    hp = {"alpha": a, "beta": b}
    wr = C.weights_residual(record, P, V, hp)
    sizes = (1, 2, 3) if d <= 3 else (1, 2)
    concrete = []
    for n in sizes:
        r = C.construction_residual(record, d, n, P, V, hp)
        concrete.append({"d": d, "n": n, "ok": C.is_zero_matrix(r)})
    general = wr.ok
    residual = None if general else wr.text()
    if general and not all(c["ok"] for c in concrete):   # would contradict Lemma C.1; report, never hide
        residual = "the literal block disagrees with Lemma C.1 at a concrete size"
        general = False
    cex = None if general else CEX.find(record, P, V, hp)
    return dict(mode="weights", algorithm=record.name, theorem=record.theorem, record=record, general=general,
                concrete=concrete, residual=residual, weights=source, alpha=a, beta=b, alpha_given=True,
                beta_given=True, d=d, P=P, V=V, wr=wr, statement=record.statement, counterexample=cex)


# ---- Proposition 3.1 ---------------------------------------------------------------

def prove_proposition_3_1(algorithm="sarsa") -> dict:
    """Proposition 3.1 for the algorithm's layout; one boolean per statement.

    Keys: ``"P11"``, ``"P21"``, ``"V11"``, ``"V12"``, ``"V21 first row"``,
    ``"V22 first row"`` (the read-out's derivative with respect to the block
    is identically zero: general d, n, and entrywise at d = 1, n = 2),
    ``"P22 antisymmetric part"`` (exactly unread, entrywise at d = 1, 2),
    ``"P22 gradient zero when Vbar22 = 0"``, ``"Vbar22 gradient zero when P22 = 0"``
    (general d, n, and the loss gradient entrywise at d = 1), and
    ``"P22 and Vbar22 together read"`` (the negative control: together they do
    change the read-out, so they are not symmetries).
    """
    return dict(_prop_3_1(algorithms.get(algorithm)))


_PROP_CACHE: dict = {}
#: Size (d, n) of the entrywise Prop 3.1 check (every entry of P, V and the prompt a symbol).
PROP_SIZE = (1, 2)


def _prop_3_1(record):
    if record in _PROP_CACHE:
        return _PROP_CACHE[record]
    lay = record.layout
    _, never_read, _ = S.derive_lemma_c1(lay)
    grads = S.prove_p22_vbar22_gradients(lay)
    conc = _prop_3_1_concrete(record, *PROP_SIZE)
    out = {k: bool(v and conc[k]) for k, v in never_read.items()}
    out["P22 antisymmetric part"] = conc["P22 antisymmetric part"] and _antisym_concrete(record, 2)
    for k in ("P22 gradient zero when Vbar22 = 0", "Vbar22 gradient zero when P22 = 0", "P22 and Vbar22 together read"):
        out[k] = bool(grads[k] and conc[k])
    _PROP_CACHE[record] = out
    return out


def _blocks_idx(lay, d):
    m, p = lay.m(d), lay.p(d)
    D = m + p
    rows = lambda r0, r1, c0, c1: [(i, j) for i in range(r0, r1) for j in range(c0, c1)]
    return {"P11": ("P", rows(0, m, 0, m)), "P21": ("P", rows(m, D, 0, m)),
            "V11": ("V", rows(0, m, 0, m)), "V12": ("V", rows(0, m, m, D)),
            "V21 first row": ("V", rows(m, m + 1, 0, m)), "V22 first row": ("V", rows(m, m + 1, m, D)),
            "P22": ("P", rows(m, D, m, D)), "Vbar22": ("V", rows(m + 1, D, m, D))}


def _antisym_concrete(record, d, n=1):
    """Read-out with ``P22 = S + (A - A^T)``: free of ``A`` (general P, V otherwise)."""
    lay = record.layout
    P, V = C.general_weights(lay, d)
    m, p = lay.m(d), lay.p(d)
    A = sp.Matrix(p, p, lambda i, j: sp.Symbol(f"A{i}_{j}", real=True))
    P[m:, m:] = P[m:, m:] + A - A.T
    pr = C.concrete_prompt(record, d, n)
    ro = C.expand_matrix(C.literal_readout(P, V, pr.H, lay.q(d)))
    return not any(s in ro.free_symbols for s in A)


def _prop_3_1_concrete(record, d, n):
    lay = record.layout
    P, V = C.general_weights(lay, d)
    pr = C.concrete_prompt(record, d, n)
    ro = C.expand_matrix(C.literal_readout(P, V, pr.H, lay.q(d)))
    free = ro.free_symbols
    idx = _blocks_idx(lay, d)
    out = {}
    for name in S.NEVER_READ:
        which, entries = idx[name]
        M = P if which == "P" else V
        out[name] = all(sp.diff(e, M[i, j]) == 0 for i, j in entries for e in ro) and \
            not any(M[i, j] in free for i, j in entries)
    out["P22 antisymmetric part"] = _antisym_concrete(record, d, n)
    # the teacher-mimicking loss 1/2 ||TF(H) - teacher||^2 with the algorithm's teacher
    teach = C.teacher(record, pr)
    # d/ds 1/2 sum_r (TF_r - T_r)^2 = sum_r (TF_r - T_r) dTF_r/ds (the teacher does not depend on s)
    resid = [e - t for e, t in zip(ro, teach)]

    def grad(s, zero):
        return sp.expand(sum(r.xreplace(zero) * sp.diff(e, s).xreplace(zero) for r, e in zip(resid, ro)))

    P22 = [P[i, j] for i, j in idx["P22"][1]]
    Vb22 = [V[i, j] for i, j in idx["Vbar22"][1]]
    zero_V = {s: 0 for s in Vb22}
    zero_P = {s: 0 for s in P22}
    out["P22 gradient zero when Vbar22 = 0"] = all(grad(s, zero_V) == 0 for s in P22)
    out["Vbar22 gradient zero when P22 = 0"] = all(grad(s, zero_P) == 0 for s in Vb22)
    # negative control: with both present the read-out depends on them
    out["P22 and Vbar22 together read"] = any(s in free for s in P22) and any(s in free for s in Vb22)
    return out


# ---- report --------------------------------------------------------------------

def _tex(s):
    return s.replace(r"\mathbb{I}", r"I")


def render(res: dict, header: str = "") -> str:
    """The Markdown report of a proof result; ``header`` (the reproducing
    command, configuration and versions) goes under the title."""
    if res.get("kind") == "softmax":
        return softmax.render(res, header)
    if res.get("data") == "mrp":
        return layerwise.render(res, header)
    alg, record = res["algorithm"], res["record"]
    has_g = "g" in record.quantities
    L = []
    if res["mode"] == "construction":
        L.append(f"# Proof: {alg} ({res['theorem']}) implements the teacher update")
    else:
        L.append(f"# Proof attempt: weights `{res['weights']}` for {alg}")
    L.append(header)
    verdict = "PROVEN" if res["general"] else "NOT PROVEN (nonzero residual)"
    steps = ", ".join(f"${sp.latex(sym)}$ " + ("symbolic (every value)" if val == sym else f"$= {sp.latex(val)}$")
                      for sym, val in ((ALPHA, res["alpha"]), (BETA, res["beta"])))
    L.append(f"**Verdict: {verdict}.**  Teacher update: {res['statement']}.  Step sizes: {steps}.")
    L.append("")
    if res["mode"] == "construction":
        L += _render_construction(res)
    else:
        L += _render_weights(res)
    L.append("## Concrete sizes (independent second proof)")
    L.append("")
    L.append("Every entry of the prompt is its own symbol ($\\phi_{i,k}$, $\\phi^+_{i,k}$, $r_i$"
             + (", $g_{i,k}$" if has_g else "") + ", the parameters and $\\gamma$); the block "
             "$H+\\frac1n(VH)(H^\\top PH)$ is multiplied out entry by entry in exact arithmetic and the read-out "
             "minus the teacher (a loop over the window) is expanded to a polynomial.")
    L.append("")
    L.append("| d | n | read-out = teacher (polynomial identity) |")
    L.append("|---|---|---|")
    for c in res["concrete"]:
        L.append(f"| {c['d']} | {c['n']} | {'yes' if c['ok'] else 'NO'} |")
    L.append("")
    L.append("## What this does not cover")
    L.append("")
    L.append("- The block identity treats $\\phi^+_i$ (and the actor's score $g_i$) as arbitrary vectors, so it covers "
             "every choice; which one the algorithm needs is proven separately from its textbook update (section "
             "\"Algorithm-specific parts\" of the construction's report).  That the prompt builders compute those "
             "vectors in floating point is tested by `icrl-verify check` against an independent reference teacher.")
    L.append("- Floating-point evaluation: the identity is exact; rounding is measured by `icrl-verify check`.")
    L += [f"- {note}" for note in record.notes]
    L.append("")
    return "\n".join(L)


def _render_construction(res):
    record = res["record"]
    L = ["## What was proven", ""]
    L.append(f"1. **Lemma C.1** for every $d\\ge1$, $n\\ge1$ and arbitrary $P, V$ (blocks of symbolic size): "
             f"{'proven' if res['lemma_ok'] else 'NOT proven'}.")
    L.append(f"2. **{res['theorem']}**: with the construction, the read-out equals the teacher update for every "
             f"$d\\ge1$, $n\\ge1$, every prompt, every $\\gamma$"
             + (" and every step size $\\alpha$" + (", $\\beta$" if "beta" in record.steps else "")
                if not res["alpha_given"] else "") + f": {'proven' if res['general'] else 'NOT proven'}.")
    L.append("3. Independently, at every concrete size $d\\le3$, $n\\le3$ with every prompt entry a symbol: "
             + ("all proven." if all(c["ok"] for c in res["concrete"]) else "SOME FAILED.") + " Lemma C.1 with every "
             "entry of $P$, $V$ a symbol too at (d, n) = " + ", ".join(f"({c['d']}, {c['n']})" for c in res["lemma_concrete"])
             + ": " + ("all proven." if all(c["ok"] for c in res["lemma_concrete"]) else "SOME FAILED."))
    L.append("4. **Proposition 3.1** (this layout): " + "; ".join(
        f"{k}: {'proven' if v else 'NOT proven'}" for k, v in res["proposition_3_1"].items()) + ".")
    L.append(f"5. **Scaling symmetry** $(cP, V/c)$, $c\\ne0$, leaves $H_{{out}}$ unchanged for arbitrary $P, V$, "
             f"every $d$, $n$: {'proven' if res['scaling'] else 'NOT proven'}.  Hence every $(cP^*, V^*/c)$ and every "
             "change of the never-read blocks also implements the update.")
    for k, (name, v) in enumerate(res.get("lemmas", {}).items(), start=6):
        L.append(f"{k}. **Algorithm-specific part `{name}`**: {'proven' if v['proven'] else 'NOT proven'} "
                 f"(section \"Algorithm-specific parts\" below).")
    L.append("")
    L.append("Method: SymPy matrix expressions whose blocks are `MatrixSymbol`s of symbolic size ($d$ features, $n$ "
             "context columns); products are multiplied block by block (non-commutative algebra, no entries), and a "
             "difference is declared zero only when every term cancels after expansion.  $I$ is the identity of "
             "the block's size (the number 1 for $1\\times1$ blocks).")
    L.append("")
    L.append("## Algorithm-specific parts (chained to the block identity)")
    L.append("")
    if res.get("lemmas"):
        L.append("The block identity (Step 2) holds for every $\\phi^+_i$ and $g_i$; these parts prove, from the "
                 "update in its textbook form, that what this algorithm puts there gives its update "
                 "(`theory/lemmas.py`):")
        L.append("")
        for name, v in res["lemmas"].items():
            L.append(f"- **{name}** ({'proven' if v['proven'] else 'NOT proven'}): {v['statement']}.  "
                     f"Assumes: {v['assumes']}.")
    else:
        L.append(f"None: {res['algorithm']}'s $\\phi^+_i$ is the next state-action taken, "
                 "$\\phi(s_{i+1}, a_{i+1})$, which is the textbook SARSA target as written; the block identity "
                 "is the whole proof.")
    L.append("")
    L.append("## Step 1: Lemma C.1 from the block (general $d$, $n$)")
    L.append("")
    for s in res["lemma_steps"]:
        L += _step(s)
    L.append(f"## Step 2: the construction ({res['theorem']}, general $d$, $n$)")
    L.append("")
    for s in res["construction_steps"]:
        L += _step(s)
    L.append("## Step 3: Proposition 3.1")
    L.append("")
    L.append("- Never-read blocks: their symbols do not occur in the general read-out of Step 1 (so every derivative "
             "with respect to them is identically zero); checked again entrywise ($\\partial\\,\\mathrm{TF}/\\partial "
             "P_{jk}=0$) at $d=1$, $n=2$ with every entry a symbol.")
    L.append("- Antisymmetric $P_{22}$: it enters only through $\\tilde w^\\top P_{22}\\tilde w$, a $1\\times1$ "
             "matrix equal to its transpose $\\tilde w^\\top P_{22}^\\top\\tilde w=-\\tilde w^\\top P_{22}\\tilde w$, "
             "hence zero; checked entrywise with $P_{22}=S+A-A^\\top$ at $d=1,2$: the read-out is free of $A$.")
    L.append("- $P_{22}$, $\\bar V_{22}$: the read-out is affine in each, "
             "$\\mathrm{TF}(P_{22}+tE)-\\mathrm{TF}(P_{22})=\\tfrac tn\\bar V_{22}\\tilde w\\,\\tilde w^\\top E\\tilde w$ and "
             "$\\mathrm{TF}(\\bar V_{22}+tF)-\\mathrm{TF}(\\bar V_{22})=\\tfrac tn F\\tilde w\\,\\tilde w^\\top P_{22}\\tilde w$ "
             "(proven for general $d$, $n$), so the Jacobian with respect to $P_{22}$ vanishes when $\\bar V_{22}=0$ and "
             "vice versa; the gradient of $\\tfrac12\\|\\mathrm{TF}(H)-\\text{teacher}\\|^2$ is $J^\\top$ times the "
             "residual, hence zero, for every prompt and so for the population loss (checked entrywise on the loss at "
             "$d=1$, $n=2$).  Gradient flow from $P_{22}=\\bar V_{22}=0$: the flow of the other blocks with these two held "
             "at zero solves the full flow, and the loss is a polynomial (locally Lipschitz gradient), so by uniqueness "
             "it is the flow: $P_{22}$ and $\\bar V_{22}$ stay zero.")
    L.append("- Negative control: with both nonzero the cubic term is present (the read-out depends on both): "
             + ("confirmed." if res["proposition_3_1"]["P22 and Vbar22 together read"] else "NOT confirmed."))
    L.append("")
    L.append("## Step 4: the symmetry family and its tangent dimension")
    L.append("")
    L.append("Scaling $(P,V)\\mapsto(cP,V/c)$ is proven above for arbitrary weights.  With $m$, $p$ the context and "
             "parameter-column sizes, the tangent space of the symmetry family at the construction has dimension "
             "(full: scaling, the never-read entries $D m + m D + D$ and the antisymmetric part of $P_{22}$, "
             "$p(p-1)/2$; reduced $(P_{12}, \\bar V_{21})$: scaling only):")
    L.append("")
    for par, info in res["symmetry"].items():
        L.append(f"- {par}: $\\dim T = {sp.latex(info['formula'])}$ of ${sp.latex(info['parameters'])}$ parameters.")
    L.append("")
    L.append("Checked at concrete sizes: the whole family (symbolic $c$, every never-read entry its own symbol, "
             "$P_{22}=A-A^\\top$ with symbolic $A$) implements the update exactly, and the generators' rank equals "
             "the formula:")
    L.append("")
    L.append("| parameterisation | d | n | formula | rank of generators | family exact |")
    L.append("|---|---|---|---|---|---|")
    for par, info in res["symmetry"].items():
        for ck in info["checks"]:
            L.append(f"| {par} | {ck['d']} | {ck['n']} | {ck['formula']} | {ck['rank']} | {'yes' if ck['exact'] else 'NO'} |")
    L.append("")
    return L


def _step(s):
    out = [s.text, ""]
    if s.latex:
        out += ["$$", _tex(s.latex), "$$", ""]
    return out


def _render_weights(res):
    d, record = res["d"], res["record"]
    has_g = "g" in record.quantities
    L = ["## What was checked", ""]
    L.append(f"The file's $P$, $V$ are ${res['P'].shape[0]}\\times{res['P'].shape[0]}$, so $d = {d}$ in the "
             f"{record.layout.name} layout.  Symbols $\\alpha$, $\\beta$ in the file were replaced by the teacher's step sizes.")
    L.append("")
    L.append("By Lemma C.1 (proven for arbitrary $P$, $V$ and every $d$, $n$; see the construction's report) and the "
             "teacher's window sum, $n(\\mathrm{TF}(H)-\\text{teacher})=\\sum_i h(x_i)+g$ with "
             "$h(x)=\\bar V_{21}xx^\\top P_{12}\\tilde w-\\alpha\\,\\delta(x)\\,\\phi$"
             + (" (stacked with $-\\beta\\,\\delta(x)\\,g$ for the actor)" if has_g else "")
             + " and $g=\\bar V_{22}\\tilde w\\,\\tilde w^\\top P_{22}\\tilde w$.  This vanishes for every $n$ and every "
             "prompt exactly when $h$ and $g$ are zero polynomials ($n=1$, $x=0$ forces $g=0$, then $h=0$).")
    L.append("")
    wr = res["wr"]
    L.append("Symbols: $\\phi_{1\\,k}$, $phin_{1\\,k}$" + (", $g_{1\\,k}$" if has_g else "")
             + " are the $k$-th entries of $\\phi$, $\\phi^+$" + (", $g$" if has_g else "")
             + " in the generic column, $r_1$ its reward, $w_k$" + (", $lam_k$" if has_g else "")
             + " the current parameters.")
    L.append("")
    L.append("- $h$ (one generic column, expanded): " + ("$0$" if C.is_zero_matrix(wr.per_column) else ""))
    if not C.is_zero_matrix(wr.per_column):
        L += ["", "$$", "h = " + sp.latex(wr.per_column), "$$", ""]
    L.append("- $g$ (expanded): " + ("$0$" if C.is_zero_matrix(wr.constant) else ""))
    if not C.is_zero_matrix(wr.constant):
        L += ["", "$$", "g = " + sp.latex(wr.constant), "$$", ""]
    L.append("")
    L.append("**Proven for every prompt and every $n$ at this $d$.**" if res["general"] else
             "**Not implemented: the residual above is not zero.**")
    L.append("")
    cex = res.get("counterexample")
    if cex:
        L.append("### Counterexample (replay it in exact arithmetic)")
        L.append("")
        L.append(f"At $n = {cex['n']}$, $\\alpha = {cex['alpha']}$, $\\beta = {cex['beta']}$, "
                 f"$\\gamma = {cex['gamma']}$, the prompt below (exact rationals) gives different values for the "
                 f"literal block $H+\\frac1n(VH)(H^\\top PH)$ (no Lemma C.1 shortcut) and the teacher:")
        L.append("")
        L.append("- prompt columns: " + "; ".join(", ".join(f"{k} = {v}" for k, v in c.items()) for c in cex["columns"]))
        L.append("- parameters: " + "; ".join(f"{k} = {v}" for k, v in cex["theta"].items()))
        L.append(f"- $H$ = `{cex['H']}`")
        L.append(f"- block read-out: `{cex['block']}`")
        L.append(f"- teacher: `{cex['teacher']}`")
        L.append("")
    if res["P"].shape[0] <= 12:
        L += ["The weights, after substitution:", "", "$$", "P=" + sp.latex(res["P"]) + ",\\quad V=" + sp.latex(res["V"]),
              "$$", ""]
    return L
