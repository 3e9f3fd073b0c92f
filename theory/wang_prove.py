"""The logic of ``icrl-verify prove --layout wang2025``: Wang et al.'s
constructions proven (:mod:`theory.wang_proofs`), planted faults refused, the
induction stated; :func:`prove` computes, :func:`summary` is its JSON,
:func:`render` its Markdown report.  Nothing here writes files."""
from __future__ import annotations

import time

import sympy as sp

from theory import wang as W
from theory import wang_proofs as WP

#: Concrete sizes of the independent second proof (every entry a symbol).
CONCRETE_SIZES = tuple((dd, nn) for dd in (1, 2) for nn in (1, 2, 3))
#: Size (d, layers) of the direct two-layer check of the induction, with n = 2.
STACK_SIZE = (1, 2)
#: Size (d, n) at which the planted faults are also refused entrywise.
FAULT_SIZE = (2, 2)


def prove(algorithm) -> dict:
    """Prove the construction of ``algorithm`` (a name or a record)."""
    record = W.get(algorithm)
    t0 = time.perf_counter()
    layer = WP.prove_layer(record)
    base = WP.prove_base_case(record)
    concrete = [{"d": dd, "n": nn, "ok": WP.is_zero_matrix(WP.concrete_layer_residual(record, dd, nn))}
                for dd, nn in CONCRETE_SIZES]
    dim, layers = STACK_SIZE
    stack = {"d": dim, "n": 2, "layers": layers,
             "ok": WP.is_zero_matrix(WP.concrete_stack_residual(record, dim, 2, layers))}
    faults = WP.refuse_faults(record, FAULT_SIZE)
    general = bool(layer.ok and base)
    all_concrete = all(c["ok"] for c in concrete) and stack["ok"]
    residual = None
    if not layer.ok:
        residual = str(layer.residual)
    elif not base:
        residual = "the prompt as built does not carry w_0 = 0"
    elif not all_concrete:
        residual = "a concrete size left a nonzero residual"
    return dict(layout="wang2025", algorithm=record.name, record=record, title=record.title,
                statement=record.statement, general=general and all_concrete, layer=layer.ok, base_case=base,
                concrete=concrete, stack=stack, faults=faults,
                faults_refused=all(f["general_refused"] and f["concrete_refused"] for f in faults),
                residual=residual, induction=WP.INDUCTION, seconds=round(time.perf_counter() - t0, 3))


def summary(res: dict, report: str | None = None) -> dict:
    return {k: res[k] for k in ("layout", "algorithm", "general", "layer", "base_case", "concrete", "stack",
                                "faults", "faults_refused", "residual", "seconds")} | {"report": report}


def render(res: dict, header: str = "") -> str:
    record = res["record"]
    L = [f"# Proof: Wang et al. (ICLR 2025), {res['title']}: L masked layers compute L steps", header]
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
          + ", ".join(f"({rb}, {cb}): ${sp.latex(coef)}\\,C^\\top$" for (rb, cb), coef in record.p_table) + ".",
          ]
    for h, (table, mix) in enumerate(zip(record.v_tables, record.spec.heads)):
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
          "`icrl-verify check --layout wang2025`.",
          "- The prompt builder (which features, rewards and query the prompt holds) is tested numerically.",
          ""]
    return "\n".join(L)
