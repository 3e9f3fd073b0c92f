"""The algorithm-specific parts of Theorems 3.1 and 3.3, proven and chained to
the block identity (issue 11).

The block identity (:func:`theory.symbolic.prove_construction`) shows that
the read-out equals the record's rule in the prompt's terms, ``w + (alpha/n)
sum_i (r_{i+1} + gamma w.phi+_i - w.phi_i) phi_i`` (and the actor's ``lam +
(beta/n) sum_i delta_i g_i``) for EVERY ``phi+`` and ``g``.  What each
algorithm puts there is proven here, from the update in its textbook form:

* :func:`softmax_score`: ``g = phi(s, a) - sum_b pi_lam(b|s) phi(s, b)`` is
  ``grad_lam log pi_lam(a|s)`` for ``pi_lam(b|s) = exp(lam.phi_b) / sum_c
  exp(lam.phi_c)``; symbolic feature vectors of symbolic dimension ``d``
  (SymPy matrix calculus), every number of actions ``A <= 6`` and every
  taken action ``a``, plus a componentwise check at ``d = 2``;
* :func:`expected_sarsa_next`: with ``phi+ = sum_b pi(b|s') phi(s', b)``,
  ``pi`` epsilon-greedy in ``Q_w`` (``epsilon/A`` plus ``1 - epsilon`` on
  the greedy action), the rule's direction is textbook expected SARSA's
  ``(r + gamma sum_b pi(b|s') Q_w(s', b) - Q_w(s, a)) phi(s, a)``, and ``pi``
  is a distribution; symbolic ``d``, ``epsilon``, every ``A <= 6`` and every
  greedy action;
* :func:`q_learning_next`: with ``phi+ = phi(s', b*)``, ``b*`` the first
  maximiser of ``Q_w(s', .)`` (tie rule: the lowest index), ``w.phi+ =
  max_b Q_w(s', b)``, so the rule's direction is the semi-gradient
  Q-learning step ``(r + gamma max_b Q_w(s', b) - Q_w(s, a)) phi(s, a)``;
  every ``A <= 6`` and every position of the maximiser;
* :func:`td0_state_features`: with state features ``phi(s, a) = psi(s)``
  for every action, the rule's direction is TD(0)'s ``(r + gamma w.psi(s')
  - w.psi(s)) psi(s)`` whatever actions were taken, and the behaviour
  ``pi(b|s) = 1/A`` is a distribution (the uniform policy is evaluated);
  its ``phi+`` (the next action taken) equals the expectation of
  ``phi(s', b)`` under that policy.

Each returns ``{"proven", "statement", "assumes", "checked"}``;
:func:`lemmas_for` selects those that apply to a record (from its fields
``next_rule``, ``behaviour``, ``features`` and its quantities).
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp
from sympy import MatrixSymbol

from theory.rules import Quantities
from theory.symbols import d as D_SYM
from theory.symbols import gamma

#: Numbers of actions at which the lemmas are proven (SymPy cannot sum over a symbolic number of
#: softmax terms and differentiate through it, so A is enumerated).
ACTIONS = tuple(range(1, 7))


def _is_zero(expr) -> bool:
    """Whether a matrix expression (a linear combination of matrix terms with
    scalar coefficients, symbolic size) or a scalar is identically zero: the
    coefficients of each distinct matrix term are summed and simplified."""
    e = sp.expand(expr).doit()
    if isinstance(e, sp.MatrixBase):
        return all(sp.expand(x) == 0 or sp.simplify(x) == 0 for x in e)
    if not isinstance(e, sp.MatrixExpr):
        return sp.expand(e) == 0 or sp.simplify(e) == 0
    if isinstance(e, sp.ZeroMatrix) or getattr(e, "is_ZeroMatrix", False):
        return True
    coeffs: dict = {}
    for term in (e.args if isinstance(e, sp.MatAdd) else (e,)):
        c, mats = term.as_coeff_mmul() if isinstance(term, sp.MatMul) else (sp.Integer(1), term)
        scalars = [x for x in getattr(mats, "args", ()) if not isinstance(x, sp.MatrixExpr)] \
            if isinstance(mats, sp.MatMul) else []
        key = sp.MatMul(*[x for x in mats.args if isinstance(x, sp.MatrixExpr)]) if isinstance(mats, sp.MatMul) \
            else mats
        coeffs[key] = coeffs.get(key, 0) + c * sp.Mul(*scalars)
    return all(sp.expand(v) == 0 or sp.simplify(v) == 0 for v in coeffs.values())


def _vectors(name: str, A: int, dim=D_SYM):
    return [MatrixSymbol(f"{name}_{b}", dim, 1) for b in range(A)]


class _MatOps:
    """One transition as SymPy matrix expressions of symbolic size: ``dot(u,
    v) = u^T v`` (``1 x 1``), ``scale(s, v) = v s``."""

    @staticmethod
    def dot(u, v):
        return u.T * v

    @staticmethod
    def scale(s, v):
        return v * s


def _rule_direction(record, phi, phi_next, w, extra=None):
    """The record's own rule (``record.rule``) on one transition: its ``w``
    direction, a ``d x 1`` matrix expression."""
    r = MatrixSymbol("r", 1, 1)
    t = Quantities(phi=phi, phi_next=phi_next, r=r, gamma=gamma, g=extra, one=sp.Integer(1))
    theta = {"w": w, **({"lam": MatrixSymbol("lam", D_SYM, 1)} if "lam" in record.layout.readout_blocks else {})}
    out = record.rule(t, theta, record.exact_hp(), _MatOps)
    return out["w"][1], r


def prompt_score(phis, pi, a):
    """The score the prompt carries (paper, THEORY.md section 4): ``phi_a - sum_b pi_b phi_b``."""
    return phis[a] - sp.MatAdd(*[pi[b] * phis[b] for b in range(len(phis))])


@lru_cache(maxsize=None)
def softmax_score(score=prompt_score, actions=ACTIONS) -> dict:
    """``score(phis, pi, a) = grad_lam log pi_lam(a)`` (module docstring), for
    the prompt's score unless another is given (a test plants a wrong one)."""
    ok = True
    lam = MatrixSymbol("lambda", D_SYM, 1)
    for A in actions:
        phis = _vectors(r"\phi", A)
        z = sp.symbols(f"z0:{A}", real=True)                       # z_b = lam^T phi_b
        total = sum(sp.exp(zb) for zb in z)
        pi = [sp.exp(zb) / total for zb in z]
        # d z_b / d lam by SymPy's matrix calculus (every d): phi_b
        dz = [(lam.T * phis[b]).diff(lam) for b in range(A)]
        ok = ok and all(_is_zero(dz[b] - phis[b]) for b in range(A))
        for a in range(A):
            coeff = [sp.diff(z[a] - sp.log(total), z[b]) for b in range(A)]   # chain rule through z
            grad = sp.MatAdd(*[coeff[b] * dz[b] for b in range(A)])
            ok = ok and _is_zero(grad - score(phis, pi, a))
    # componentwise at d = 2, A = 3: differentiate log pi in each lambda component
    lc = sp.symbols("l0:2", real=True)
    ph = [sp.Matrix(sp.symbols(f"p{b}_0:2", real=True)) for b in range(3)]
    logits = [sum(lc[k] * ph[b][k] for k in range(2)) for b in range(3)]
    pi = [sp.exp(x) / sum(sp.exp(y) for y in logits) for x in logits]
    for a in range(3):
        logp = logits[a] - sp.log(sum(sp.exp(x) for x in logits))
        claimed = sp.Matrix(score(ph, pi, a).doit()) if not isinstance(score(ph, pi, a), sp.MatrixBase) \
            else score(ph, pi, a)
        ok = ok and all(_is_zero(sp.diff(logp, lc[k]) - claimed[k]) for k in range(2))
    return dict(proven=bool(ok),
                statement="the actor's g_i = phi(s_i,a_i) - sum_b pi_lam(b|s_i) phi(s_i,b) equals "
                          "grad_lam log pi_lam(a_i|s_i) for the softmax policy pi_lam(b|s) = exp(lam.phi(s,b)) / "
                          "sum_c exp(lam.phi(s,c)), so the actor's step lam + (beta/n) sum_i delta_i g_i is the "
                          "textbook one-step actor-critic (policy-gradient) update",
                assumes=f"linear logits lam.phi(s,b); feature vectors symbolic of symbolic dimension d; "
                        f"every number of actions A in {actions[0]}..{actions[-1]} and every taken action "
                        f"(A enumerated: a symbolic number of softmax terms is not differentiable in SymPy); "
                        f"also componentwise at d = 2, A = 3",
                checked=f"A = {actions[0]}..{actions[-1]}, every a; symbolic d")


def epsilon_greedy_probs(A: int, greedy: int, eps):
    """``epsilon/A`` on every action plus ``1 - epsilon`` on ``greedy`` (the policy that acts)."""
    return [eps / A + (1 - eps) * (1 if b == greedy else 0) for b in range(A)]


@lru_cache(maxsize=None)
def expected_sarsa_next(record, actions=ACTIONS) -> dict:
    """Expected SARSA's ``phi+`` (module docstring), through the record's own rule."""
    eps = sp.Symbol(r"\epsilon", nonnegative=True)
    w, phi = MatrixSymbol("w", D_SYM, 1), MatrixSymbol(r"\phi", D_SYM, 1)
    ok = True
    for A in actions:
        phis = _vectors(r"\phi'", A)
        for gidx in range(A):
            pi = epsilon_greedy_probs(A, gidx, eps)
            ok = ok and sp.expand(sum(pi) - 1) == 0
            ok = ok and all(p.subs(eps, e) >= 0 for p in pi for e in (0, sp.Rational(1, 2), 1))
            phi_next = sp.MatAdd(*[pi[b] * phis[b] for b in range(A)])
            direction, r = _rule_direction(record, phi, phi_next, w)
            expected_q = sp.MatAdd(*[pi[b] * (w.T * phis[b]) for b in range(A)])      # sum_b pi(b) Q_w(s', b)
            textbook = phi * (r + gamma * expected_q - w.T * phi)
            ok = ok and _is_zero(direction - textbook)
    return dict(proven=bool(ok),
                statement="with phi+_i = sum_b pi(b|s_{i+1}) phi(s_{i+1},b), pi epsilon-greedy in Q_w "
                          "(epsilon/A on every action, 1 - epsilon more on the greedy one), the block's update is "
                          "textbook expected SARSA: w + (alpha/n) sum_i (r_{i+1} + gamma sum_b pi(b|s_{i+1}) "
                          "Q_w(s_{i+1},b) - Q_w(s_i,a_i)) phi(s_i,a_i); and pi is a probability distribution",
                assumes=f"Q_w(s,b) = w.phi(s,b) (linear); 0 <= epsilon <= 1 (symbolic); the greedy action any "
                        f"one action (ties: the policy's first maximiser, as the prompt builds it); symbolic d; "
                        f"every A in {actions[0]}..{actions[-1]}",
                checked=f"A = {actions[0]}..{actions[-1]}, every greedy action; symbolic d, epsilon")


@lru_cache(maxsize=None)
def q_learning_next(record, actions=ACTIONS) -> dict:
    """Q-learning's ``phi+`` (module docstring): ``w.phi(s', b*) = max_b Q_w(s', b)``."""
    w, phi = MatrixSymbol("w", D_SYM, 1), MatrixSymbol(r"\phi", D_SYM, 1)
    ok = True
    qstar = sp.Symbol("q", real=True)
    for A in actions:
        for best in range(A):
            # Q_w(s', b) = q - u_b: u_b > 0 before the first maximiser, u_b >= 0 after it, u_best = 0
            gaps = [sp.Symbol(f"u{b}", positive=True) if b < best else sp.Symbol(f"u{b}", nonnegative=True)
                    for b in range(A)]
            Q = [qstar if b == best else qstar - gaps[b] for b in range(A)]
            ok = ok and sp.Max(*Q) == qstar
            # the first maximiser: every earlier action is strictly smaller
            ok = ok and all(bool((Q[best] - Q[b]).is_positive) for b in range(best))
            phis = _vectors(r"\phi'", A)
            direction, r = _rule_direction(record, phi, phis[best], w)
            textbook = phi * (r + gamma * (w.T * phis[best]) - w.T * phi)   # w.phi(s', b*) = max_b Q_w(s', b)
            ok = ok and _is_zero(direction - textbook)
    return dict(proven=bool(ok),
                statement="with phi+_i = phi(s_{i+1}, b*), b* = argmax_b Q_w(s_{i+1}, b), w.phi+_i = "
                          "max_b Q_w(s_{i+1}, b), so the block's update is the semi-gradient Q-learning step "
                          "w + (alpha/n) sum_i (r_{i+1} + gamma max_b Q_w(s_{i+1},b) - Q_w(s_i,a_i)) phi(s_i,a_i)",
                assumes=f"Q_w(s,b) = w.phi(s,b) (linear); tie rule: b* is the first maximiser (lowest index), as "
                        f"the prompt builds it (any maximiser gives the same max); the argmax is taken when the "
                        f"prompt is built (the block itself computes no max); symbolic d; every A in "
                        f"{actions[0]}..{actions[-1]} and every position of the maximiser",
                checked=f"A = {actions[0]}..{actions[-1]}, every maximiser position; symbolic d")


@lru_cache(maxsize=None)
def td0_state_features(record, actions=ACTIONS) -> dict:
    """TD(0) with state features and the uniform behaviour (module docstring)."""
    w = MatrixSymbol("w", D_SYM, 1)
    psi, psi_next = MatrixSymbol(r"\psi", D_SYM, 1), MatrixSymbol(r"\psi'", D_SYM, 1)
    ok = True
    for A in actions:
        uniform = [sp.Rational(1, A)] * A
        ok = ok and sum(uniform) == 1
        # phi(s, a) = psi(s) for every a: whatever action was taken, phi_i = psi(s_i), phi+_i = psi(s_{i+1})
        for taken in range(A):
            feats = [psi for _ in range(A)]
            feats_next = [psi_next for _ in range(A)]
            direction, r = _rule_direction(record, feats[taken], feats_next[taken], w)
            textbook = psi * (r + gamma * (w.T * psi_next) - w.T * psi)
            ok = ok and _is_zero(direction - textbook)
            # the next action taken gives the expectation under the uniform policy
            ok = ok and _is_zero(feats_next[taken] - sp.MatAdd(*[uniform[b] * feats_next[b] for b in range(A)]))
    return dict(proven=bool(ok),
                statement="with state features phi(s,a) = psi(s) for every action, the block's update is TD(0) "
                          "policy evaluation w + (alpha/n) sum_i (r_{i+1} + gamma w.psi(s_{i+1}) - w.psi(s_i)) "
                          "psi(s_i), whatever actions were taken; the behaviour pi(b|s) = 1/A is a distribution, "
                          "so the value learnt is that of the uniform random policy, and phi+ (the next action "
                          "taken) equals the expectation of phi(s',b) under it",
                assumes=f"features broadcast over actions; the uniform behaviour; symbolic d; every A in "
                        f"{actions[0]}..{actions[-1]}",
                checked=f"A = {actions[0]}..{actions[-1]}, every action taken; symbolic d")


def lemmas_for(record, actions=ACTIONS) -> dict[str, dict]:
    """The lemmas that apply to ``record`` (by its fields), each proven on first use."""
    out = {}
    if "g" in record.quantities and record.behaviour == "softmax":
        out["softmax_score"] = softmax_score(actions=actions)
    if record.next_rule == "expected" and record.behaviour == "epsilon-greedy":
        out["expected_sarsa_next"] = expected_sarsa_next(record, actions)
    if record.next_rule == "greedy":
        out["q_learning_next"] = q_learning_next(record, actions)
    if record.features == "state":
        out["td0_state_features"] = td0_state_features(record, actions)
    return out
