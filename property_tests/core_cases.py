"""Tiny cases and plain-loop answers for the mutation tier (``-m mutation``,
property_tests/README.md "Mutation tier").

Everything here is built from plain torch / Python on a few states, actions
and transitions, and the answers are written from the definitions (THEORY.md
sections 1-2, Sutton & Barto) as Python loops over floats: they call nothing
from ``numerics`` or ``theory`` except the ``MDP`` container, so a fault in
the code under test cannot move the answer with it.  Nothing is computed at
import (the mutation runner forks its test processes after importing this
module).
"""
from __future__ import annotations

import math

import torch

from numerics.core.mdp import MDP

F64 = torch.float64


def tiny_mdp(seed: int = 0, B: int = 2, S: int = 3, A: int = 2) -> MDP:
    """``B`` random MDPs with ``S`` states and ``A`` actions (every row of
    ``T`` a distribution, rewards per ``(s, a, s')``)."""
    g = torch.Generator().manual_seed(seed)
    T = torch.rand(B, S, A, S, generator=g, dtype=F64) + 0.1
    T = T / T.sum(-1, keepdim=True)
    R = torch.rand(B, S, A, S, generator=g, dtype=F64) * 2 - 1
    rho0 = torch.rand(B, S, generator=g, dtype=F64) + 0.1
    rho0 = rho0 / rho0.sum(-1, keepdim=True)
    gamma = torch.linspace(0.5, 0.9, B, dtype=F64)
    return MDP(T=T, R=R, gamma=gamma, rho0=rho0)


def tiny_features(seed: int = 1, B: int = 2, S: int = 3, A: int = 2, d: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, S, A, d, generator=g, dtype=F64) * 2 - 1


def dot(u, v) -> float:
    return sum(x * y for x, y in zip(u, v))


def first_argmax(values) -> int:
    best = 0
    for k, v in enumerate(values):
        if v > values[best]:
            best = k
    return best


def eps_greedy(q, eps: float) -> list[float]:
    """epsilon/A on every action plus 1 - epsilon on the first maximiser."""
    A = len(q)
    g = first_argmax(q)
    return [eps / A + (1.0 - eps) * (c == g) for c in range(A)]


def softmax(logits) -> list[float]:
    z = [math.exp(x) for x in logits]
    return [x / sum(z) for x in z]


def policy(behaviour: str, F_s, w, lam, eps: float) -> list[float]:
    """The behaviour policy at one state whose features are ``F_s`` (``A`` lists of ``d``)."""
    if behaviour == "softmax":
        return softmax([dot(lam, f) for f in F_s])
    if behaviour == "uniform":
        return [1.0 / len(F_s)] * len(F_s)
    return eps_greedy([dot(w, f) for f in F_s], eps)


def next_phi(rule: str, F_next, a_next: int, w, eps: float) -> list[float]:
    """``phi+`` at ``s'`` for a next rule (``taken``, ``expected``, ``greedy``)."""
    if rule == "taken":
        return list(F_next[a_next])
    q = [dot(w, f) for f in F_next]
    if rule == "greedy":
        return list(F_next[first_argmax(q)])
    pi = eps_greedy(q, eps)
    return [sum(pi[c] * F_next[c][k] for c in range(len(F_next))) for k in range(len(F_next[0]))]


def score(F_s, a: int, lam) -> list[float]:
    """``grad_lam log pi_lam(a|s) = phi(s, a) - sum_b pi_lam(b|s) phi(s, b)``."""
    pi = softmax([dot(lam, f) for f in F_s])
    return [F_s[a][k] - sum(pi[c] * F_s[c][k] for c in range(len(F_s))) for k in range(len(F_s[0]))]


def textbook_step(next_rule: str, actor: bool, F, s, a, r, theta, gamma, eps: float, alpha: float,
                  beta: float = 0.0) -> list[list[float]]:
    """One batch step per MDP from the raw window, Python floats: ``w + (alpha/n)
    sum_i delta_i phi_i`` (and ``lam + (beta/n) sum_i delta_i g_i`` for the actor)."""
    F, s, a, r, theta, gamma = (x.tolist() if hasattr(x, "tolist") else x for x in (F, s, a, r, theta, gamma))
    out = []
    for b in range(len(theta)):
        d = len(F[b][0][0])
        w, lam = theta[b][:d], theta[b][d:]
        n = len(r[b])
        acc_w, acc_l = [0.0] * d, [0.0] * d
        for i in range(n):
            phi = F[b][s[b][i]][a[b][i]]
            nxt = next_phi(next_rule, F[b][s[b][i + 1]], a[b][i + 1], w, eps)
            delta = r[b][i] + gamma[b] * dot(w, nxt) - dot(w, phi)
            acc_w = [acc_w[k] + delta * phi[k] for k in range(d)]
            if actor:
                g = score(F[b][s[b][i]], a[b][i], lam)
                acc_l = [acc_l[k] + delta * g[k] for k in range(d)]
        new = [w[k] + alpha * acc_w[k] / n for k in range(d)]
        if actor:
            new += [lam[k] + beta * acc_l[k] / n for k in range(d)]
        out.append(new)
    return out


def inverse_cdf(probs, u: float) -> int:
    """The first index whose running sum reaches ``u`` (the last index if none does)."""
    total = 0.0
    for k, p in enumerate(probs):
        total += p
        if not total < u:
            return k
    return len(probs) - 1


def window_by_hand(behaviour: str, mdp: MDP, F, s0, theta, n: int, eps: float, gen: torch.Generator):
    """Algorithm 1's window drawn one uniform at a time (the documented order:
    the first action, then per step the next state and the next action, one
    uniform per MDP each), every probability from its definition."""
    T, R, F, s0, theta = mdp.T.tolist(), mdp.R.tolist(), F.tolist(), s0.tolist(), theta.tolist()
    B = len(s0)
    d = len(F[0][0][0])

    def act(b, st, u):
        return inverse_cdf(policy(behaviour, F[b][st], theta[b][:d], theta[b][d:], eps), u)

    u = torch.rand(B, generator=gen, dtype=F64).tolist()
    s = [[s0[b]] for b in range(B)]
    a = [[act(b, s0[b], u[b])] for b in range(B)]
    r = [[] for _ in range(B)]
    for _ in range(n):
        u = torch.rand(B, generator=gen, dtype=F64).tolist()
        for b in range(B):
            nxt = inverse_cdf(T[b][s[b][-1]][a[b][-1]], u[b])
            r[b].append(R[b][s[b][-1]][a[b][-1]][nxt])
            s[b].append(nxt)
        u = torch.rand(B, generator=gen, dtype=F64).tolist()
        for b in range(B):
            a[b].append(act(b, s[b][-1], u[b]))
    return s, a, r
