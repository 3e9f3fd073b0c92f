"""The paper's own block (Liang & Lai, Theorem 3.1) stacked L times:
``BlockSpec(VALUE_LAYOUT, depth=L)`` with the construction in every layer.

Question (issue 13): do L copies of ``H <- H + (1/n)(V H)(H^T P H)`` with the
Theorem 3.1 weights compute L batch steps of the algorithm on the same
window?

* SARSA (and TD(0), whose ``phi+`` is also the transition actually taken):
  **proven** for every ``d``, ``n``, ``L``.  One block maps the whole prompt
  ``H(w) = [[X, 0], [0, 1], [0, w]]`` to ``H(w+)``,
  ``w+ = w + (alpha/n) Phi delta(w)``: the parameter column is rewritten, the
  context columns and the constant 1 are not (the scores ``H^T P H`` are
  nonzero only in the last column, because ``P`` reads the parameter rows of
  its right factor, zero in every context column; the values ``V H`` are
  zero in the last column, because ``V`` reads only context rows).  By
  induction ``L`` blocks give ``T^L(w_0)`` with the window's ``phi+``
  (:func:`prove_stacked_block`, symbolic ``d``, ``n``, any ``Phi+``).
* Expected SARSA and Q-learning: **refuted** as L-step algorithms.  Their
  ``phi+`` depends on ``w`` (the epsilon-greedy expectation, the greedy
  action) but is written into the prompt once, at ``w_0``; the stack runs
  ``L`` steps with ``phi+`` frozen, which differs from ``L`` steps of the
  algorithm as soon as the greedy action at some ``s_{i+1}`` changes.  Exact
  counterexample (d = 1, n = 1, L = 2): :func:`frozen_target_counterexample`.
* Proposition 3.1's never-read blocks are read by a stack: ``V11 = I``
  leaves one block's read-out unchanged but changes the second's
  (:func:`never_read_counterexample`).

SymPy only; the tables come from the records (``theory.algorithms``).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import BlockMatrix, Identity, MatrixSymbol, ZeroMatrix

from theory import algorithms
from theory.constructions import full_pv
from theory.errors import InputError
from theory.layout import VALUE_LAYOUT
from theory.spec import BlockSpec, block_equation
from theory.symbolic import residual_of
from theory.symbols import alpha, d, gamma, n

R = sp.Rational

#: The records a stack is decided for: the value layout (one prompt row
#: block ``gphi_next`` that the prompt builder fills once).
STACKABLE = ("sarsa", "td", "expected-sarsa", "q-learning")


def stacked_spec(layers: int) -> BlockSpec:
    """The paper's block repeated ``layers`` times (tied, no mask, every row written)."""
    return BlockSpec(VALUE_LAYOUT, depth=layers)


def _record(algorithm):
    record = algorithms.get(algorithm)
    if record.name not in STACKABLE or record.layout != VALUE_LAYOUT:
        raise InputError("algorithm", f"--stacked decides the value-layout algorithms ({', '.join(STACKABLE)}), "
                                      f"got {record.name!r}")
    return record


def _rows(record):
    lay = record.layout
    return tuple(lay.context) + tuple(lay.params)


def weights_general(record):
    """``(P, V)`` of the record's construction as block matrices over the
    prompt's row blocks (``P12`` on (context, parameter) blocks, ``Vbar21`` on
    (read-out, context) blocks; ``coef * I``)."""
    P12, V21 = dict(record.construction.p12), dict(record.construction.vbar21)
    rows = _rows(record)

    def build(table):
        out = []
        for rb, rs in rows:
            line = []
            for cb, cs in rows:
                r, c = (d if rs == "d" else 1), (d if cs == "d" else 1)
                line.append(table[(rb, cb)] * Identity(r) if (rb, cb) in table else ZeroMatrix(r, c))
            out.append(line)
        return BlockMatrix(out)

    return build(P12), build(V21)


def prompt_general(w, Phi, Phin, r):
    """``H(w)``: context columns ``[phi_i; gamma phi+_i; r_i; 0; 0]``, the
    parameter column ``[0; 0; 0; 1; w]``; columns ``(n | 1)``."""
    z = ZeroMatrix
    return BlockMatrix([[Phi, z(d, 1)], [gamma * Phin, z(d, 1)], [r, z(1, 1)],
                        [z(1, n), Identity(1)], [z(d, n), w]])


@dataclass
class StackProof:
    ok: bool
    residual: object
    statement: str


def prove_stacked_block(algorithm="sarsa", P=None, V=None) -> StackProof:
    """One block maps the whole prompt ``H(w)`` to ``H(w + (alpha/n) Phi delta)``,
    ``delta = r^T + gamma Phi+^T w - Phi^T w``, for symbolic ``d``, ``n``,
    ``alpha``, ``gamma`` and free ``w``, ``Phi``, ``Phi+``, ``r``.  ``P``, ``V``
    override the weights (planted faults)."""
    record = _record(algorithm)
    P0, V0 = weights_general(record)
    P = P0 if P is None else P
    V = V0 if V is None else V
    Phi, Phin = MatrixSymbol(r"\Phi", d, n), MatrixSymbol(r"\Phi^{+}", d, n)
    r, w = MatrixSymbol("r", 1, n), MatrixSymbol("w", d, 1)
    H = prompt_general(w, Phi, Phin, r)
    out = block_equation(H, P, V, n)
    delta = r.T + gamma * Phin.T * w - Phi.T * w
    res = residual_of(out - prompt_general(w + alpha * Phi * delta / n, Phi, Phin, r))
    return StackProof(res == 0, res, "H(w) -> H(w + (alpha/n) Phi delta(w)) for every w, with the prompt's Phi+; "
                                     "by induction L blocks map H(w_0) to H(T^L w_0)")


# ---- concrete sizes -------------------------------------------------------------------

def concrete_prompt(phi, phin, r, w, gam) -> sp.Matrix:
    """``H`` (``(3d+2) x (n+1)``) from explicit columns (lists) and ``w``."""
    dim, cols = len(w), len(r)
    H = sp.zeros(3 * dim + 2, cols + 1)
    for i in range(cols):
        H[:dim, i] = sp.Matrix(phi[i])
        H[dim:2 * dim, i] = gam * sp.Matrix(phin[i])
        H[2 * dim, i] = r[i]
    H[2 * dim + 1, cols] = 1
    H[2 * dim + 2:, cols] = sp.Matrix(w)
    return H


def block(H: sp.Matrix, P: sp.Matrix, V: sp.Matrix) -> sp.Matrix:
    """``H + (1/n)(V H)(H^T P H)`` (paper eq. 1), literally."""
    return block_equation(H, P, V, H.shape[1] - 1)


def sarsa_step(phi, phin, r, w, gam, a):
    """One batch step from the update rule, a loop:
    ``delta_i = r_i + gamma w.phi+_i - w.phi_i``, ``w + (a/n) sum_i delta_i phi_i``."""
    dim, cols = len(w), len(r)
    out = list(w)
    for i in range(cols):
        delta = r[i] + gam * sum(w[k] * phin[i][k] for k in range(dim)) - sum(w[k] * phi[i][k] for k in range(dim))
        out = [out[k] + a * delta * phi[i][k] / cols for k in range(dim)]
    return out


def concrete_stacked_residual(algorithm, dim: int, cols: int, layers: int) -> sp.Matrix:
    """``layers`` literal blocks on a prompt whose every entry is a symbol,
    minus the prompt carrying ``layers`` loop steps: the whole matrix, expanded."""
    record = _record(algorithm)
    phi = [[sp.Symbol(f"phi{i}_{k}", real=True) for k in range(dim)] for i in range(cols)]
    phin = [[sp.Symbol(f"phin{i}_{k}", real=True) for k in range(dim)] for i in range(cols)]
    r = [sp.Symbol(f"r{i}", real=True) for i in range(cols)]
    w = [sp.Symbol(f"w_{k}", real=True) for k in range(dim)]
    P, V = full_pv(record, dim)
    H = concrete_prompt(phi, phin, r, w, gamma)
    wl = w
    for _ in range(layers):
        H = block(H, P, V)
        wl = sarsa_step(phi, phin, r, wl, gamma, alpha)
    return (H - concrete_prompt(phi, phin, r, wl, gamma)).applyfunc(sp.expand)


# ---- counterexamples ----------------------------------------------------------------------

@dataclass
class FrozenTarget:
    """An exact counterexample for an algorithm whose ``phi+`` depends on ``w``.

    Window (d = 1, n = 1): ``phi(s_0, a_0) = 1``, reward ``r_1 = -2``, next
    state ``s_1`` with two actions, ``phi(s_1, .) = (1, -1)``; ``gamma = 1/2``,
    ``alpha = 1``, ``w_0 = 1``; ``epsilon = 1/2`` for expected SARSA.
    ``stack``: ``w`` after each of L = 2 literal blocks on the prompt built at
    ``w_0``; ``frozen``: the loop with ``phi+`` frozen at ``w_0``; ``algorithm``:
    the loop that re-derives ``phi+`` from the current ``w`` at every step."""

    name: str
    phi_next_built: sp.Expr
    stack: list
    frozen: list
    algorithm: list

    @property
    def refuted(self) -> bool:
        return self.stack == self.frozen and self.stack[-1] != self.algorithm[-1]

    def text(self) -> str:
        return (f"{self.name}, d = 1, n = 1, L = 2: phi(s0,a0) = {PHI0}, r = {REWARD}, phi(s1,.) = {NEXT_FEATURES}, "
                f"gamma = {GAMMA}, alpha = {ALPHA}, w0 = {W0}" + (f", epsilon = {EPS}" if self.name == "expected-sarsa"
                                                                   else "")
                + f"; phi+ written at w0: {self.phi_next_built}; the stack gives w = {', '.join(map(str, self.stack))}"
                f" (L steps with phi+ frozen: {', '.join(map(str, self.frozen))}); {self.name} gives "
                f"w = {', '.join(map(str, self.algorithm))}")


PHI0, REWARD, NEXT_FEATURES, GAMMA, ALPHA, W0, EPS = R(1), R(-2), (R(1), R(-1)), R(1, 2), R(1), R(1), R(1, 2)


def target_feature(next_rule: str, w, feats=NEXT_FEATURES, eps=EPS):
    """``phi+`` at ``s_1`` under ``w`` (d = 1): ``greedy`` (Q-learning) the greedy
    action's feature; ``expected`` (expected SARSA) ``sum_b pi(b) phi(s_1, b)``,
    ``pi`` epsilon-greedy in ``Q_w``."""
    q = [w * f for f in feats]
    g = max(range(len(feats)), key=lambda b: q[b])
    if next_rule == "greedy":
        return feats[g]
    A = len(feats)
    return sum(((1 - eps + eps / A) if b == g else eps / A) * feats[b] for b in range(A))


def frozen_target_counterexample(algorithm, layers: int = 2) -> FrozenTarget:
    record = _record(algorithm)
    if record.next_rule == "taken":
        raise InputError("algorithm", f"{record.name!r} reads the next action taken; it has no frozen target")
    built = target_feature(record.next_rule, W0)
    P, V = full_pv(record, 1, {alpha: ALPHA})
    H = concrete_prompt([[PHI0]], [[built]], [REWARD], [W0], GAMMA)
    stack, frozen, algo = [], [], []
    wf = wa = W0
    for _ in range(layers):
        H = block(H, P, V)
        stack.append(sp.nsimplify(H[-1, -1]))
        wf = sarsa_step([[PHI0]], [[built]], [REWARD], [wf], GAMMA, ALPHA)[0]
        frozen.append(wf)
        wa = sarsa_step([[PHI0]], [[target_feature(record.next_rule, wa)]], [REWARD], [wa], GAMMA, ALPHA)[0]
        algo.append(wa)
    return FrozenTarget(record.name, built, stack, frozen, algo)


@dataclass
class NeverRead:
    """Construction plus ``V11 = I`` (a never-read block of Proposition 3.1):
    read-outs after one and two blocks, with and without it."""

    one_layer: tuple
    two_layers: tuple

    @property
    def refuted(self) -> bool:
        return self.one_layer[0] == self.one_layer[1] and self.two_layers[0] != self.two_layers[1]


def never_read_counterexample() -> NeverRead:
    """Same window as :func:`frozen_target_counterexample` (SARSA, ``phi+ = 1``)."""
    P, V = full_pv(algorithms.get("sarsa"), 1, {alpha: ALPHA})
    m = 3
    V2 = V.copy()
    V2[:m, :m] = sp.eye(m)
    H0 = concrete_prompt([[PHI0]], [[R(1)]], [REWARD], [W0], GAMMA)
    a1, b1 = block(H0, P, V), block(H0, P, V2)
    a2, b2 = block(a1, P, V), block(b1, P, V2)
    return NeverRead((a1[-1, -1], b1[-1, -1]), (a2[-1, -1], b2[-1, -1]))


# ---- the verdict (the logic of `icrl-verify prove --stacked`) --------------------------------

#: Concrete sizes (d, n, L) of the independent check of the stack.
STACK_SIZES = ((1, 1, 2), (1, 2, 3), (2, 2, 2))


def decide(algorithm) -> dict:
    """Proven (SARSA, TD(0)) or refuted with an exact counterexample
    (expected SARSA, Q-learning); the never-read observation."""
    record = _record(algorithm)
    proof = prove_stacked_block(record)
    concrete = [{"d": a, "n": b, "layers": c, "ok": all(e == 0 for e in concrete_stacked_residual(record, a, b, c))}
                for a, b, c in STACK_SIZES]
    cex = None if record.next_rule == "taken" else frozen_target_counterexample(record)
    holds = bool(proof.ok and all(c["ok"] for c in concrete) and cex is None)
    nr = never_read_counterexample()
    return dict(algorithm=record.name, next_rule=record.next_rule, holds=holds, one_block=proof.ok,
                residual=None if proof.ok else str(proof.residual), concrete=concrete,
                counterexample=None if cex is None else cex.text(), refuted=bool(cex is not None and cex.refuted),
                never_read=dict(one_layer=[str(x) for x in nr.one_layer], two_layers=[str(x) for x in nr.two_layers],
                                read_by_stack=nr.refuted),
                statement=f"L stacked copies of the Theorem 3.1 block compute L batch {record.name} steps on the "
                          "same window")


def render(res: dict, header: str = "") -> str:
    alg = res["algorithm"]
    L = [f"# Stacked blocks: do L copies of Theorem 3.1's block compute L batch {alg} steps?", header]
    if res["holds"]:
        L.append(f"**Verdict: PROVEN** for every d, n and L ({alg}: phi+ is the transition actually taken).")
    else:
        L.append(f"**Verdict: REFUTED** for {alg} as an L-step algorithm (exact counterexample below).")
    L += ["", "## One block on the whole prompt (symbolic d, n)", "",
          "The prompt $H(w)=\\begin{pmatrix}X&0\\\\0&1\\\\0&w\\end{pmatrix}$, $X=[\\Phi;\\gamma\\Phi^+;r]$, with the "
          "construction $P_{12}^*$, $\\bar V_{21}^*=[\\alpha I,0,0]$ (every other block zero) is mapped to "
          "$H(w+\\frac{\\alpha}{n}\\Phi\\delta(w))$, the **whole** matrix compared (context columns and the constant 1 "
          f"unchanged): {'proven' if res['one_block'] else 'NOT proven'}.  By induction, $L$ blocks compute "
          "$w_L=T^L(w_0)$, $T(w)=w+\\frac{\\alpha}{n}\\Phi\\delta(w)$ with the $\\Phi^+$ written into the prompt.", "",
          "Independently, every entry a symbol, literal blocks against a loop: "
          + ", ".join(f"(d, n, L) = ({c['d']}, {c['n']}, {c['layers']}): {'zero' if c['ok'] else 'NONZERO'}"
                      for c in res["concrete"]) + ".", ""]
    if res["counterexample"]:
        L += ["## Why the statement fails for this algorithm", "",
              f"{alg}'s $\\phi^+_i$ depends on $w$ (next rule `{res['next_rule']}`) but the prompt builder writes it "
              "once, at $w_0$: the stack runs $L$ steps with $\\phi^+$ frozen (policy evaluation of $w_0$'s target "
              "policy).  Exact counterexample: " + res["counterexample"] + ".", ""]
    nr = res["never_read"]
    L += ["## Side finding: never-read blocks are read by a stack", "",
          f"Construction plus $V_{{11}}=I$ (never read by one block, Proposition 3.1): read-out after one block "
          f"{nr['one_layer'][0]} vs {nr['one_layer'][1]}, after two blocks {nr['two_layers'][0]} vs "
          f"{nr['two_layers'][1]}: the symmetry family of one block does not carry over to a stack.", ""]
    return "\n".join(L)
