"""Teacher updates (THEORY.md section 2): one batch step per window.

``semi_gradient_step`` is the rule itself (paper eq. 2), arrays in and out;
``window_features`` computes, from a window, what each algorithm feeds it
(``phi``, ``phi+`` and, for actor-critic, the score ``g``); ``teacher_update``
composes the two.  The prompt builders (``numerics.prompts``) read the same
``window_features``, so a prompt and its teacher see the same ``phi+``.
"""
from __future__ import annotations

import torch

from numerics.algorithms import behaviour_probs, check_algorithm, gather, split_theta
from numerics.sampler import Window


def semi_gradient_step(w: torch.Tensor, phi: torch.Tensor, phi_next: torch.Tensor, r: torch.Tensor,
                       gamma: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Semi-gradient SARSA / TD(0) batch step (paper eq. 2).

    ``delta_i = r_{i+1} + gamma w.phi+_i - w.phi_i``,
    ``w_new = w + (alpha/n) sum_i delta_i phi_i``.

    Shapes: ``w`` B x d, ``phi``, ``phi_next`` B x n x d, ``r`` B x n,
    ``gamma`` B.  Returns ``(w_new, delta)``.
    """
    delta = r + gamma[:, None] * (phi_next @ w.unsqueeze(-1)).squeeze(-1) - (phi @ w.unsqueeze(-1)).squeeze(-1)
    return w + alpha * (delta.unsqueeze(-1) * phi).mean(1), delta


def actor_critic_step(w, lam, phi, phi_next, g, r, gamma, alpha: float, beta: float):
    """Actor-critic batch step (paper eq. 3, reconstructed in THEORY.md).

    Critic as SARSA; actor ``lam + (beta/n) sum_i delta_i g_i`` with
    ``g_i = phi(s_i, a_i) - sum_b pi_lam(b|s_i) phi(s_i, b)``.
    """
    w_new, delta = semi_gradient_step(w, phi, phi_next, r, gamma, alpha)
    return w_new, lam + beta * (delta.unsqueeze(-1) * g).mean(1)


def window_features(algorithm: str, F: torch.Tensor, win: Window, theta: torch.Tensor,
                    epsilon: float) -> dict[str, torch.Tensor]:
    """``phi_i``, ``phi+_i`` (and ``g_i`` for actor-critic), each ``B x n x d``.

    ``phi+`` is the next state-action's features for SARSA, actor-critic and
    TD(0); the epsilon-greedy expectation for expected SARSA; the features
    of the greedy next action (argmax over ``Q_w``, first maximiser) for
    Q-learning.
    """
    check_algorithm(algorithm)
    s, a = win.s, win.a
    phi = gather(F, s[:, :-1], a[:, :-1])
    out = {"phi": phi}
    if algorithm in ("sarsa", "actor-critic", "td"):
        out["phi_next"] = gather(F, s[:, 1:], a[:, 1:])
    else:
        Fn = gather(F, s[:, 1:])                      # B x n x A x d
        w = split_theta(algorithm, theta)["w"]
        if algorithm == "expected-sarsa":
            pi = behaviour_probs(algorithm, Fn, theta, epsilon)
            out["phi_next"] = (pi.unsqueeze(-1) * Fn).sum(-2)
        else:  # q-learning
            Q = (Fn @ w[:, None, :, None]).squeeze(-1)
            best = Q.argmax(-1)
            out["phi_next"] = torch.gather(Fn, 2, best[..., None, None].expand(*best.shape, 1, Fn.shape[-1])).squeeze(2)
    if algorithm == "actor-critic":
        Fs = gather(F, s[:, :-1])
        pi = behaviour_probs(algorithm, Fs, theta, epsilon)
        out["g"] = phi - (pi.unsqueeze(-1) * Fs).sum(-2)
    return out


def teacher_update(algorithm: str, F: torch.Tensor, win: Window, theta: torch.Tensor, gamma: torch.Tensor,
                   epsilon: float, alpha: float, beta: float = 0.0, feats: dict | None = None) -> torch.Tensor:
    """The teacher's new ``theta`` after one batch step on ``win``."""
    f = feats if feats is not None else window_features(algorithm, F, win, theta, epsilon)
    parts = split_theta(algorithm, theta)
    if algorithm == "actor-critic":
        w, lam = actor_critic_step(parts["w"], parts["lam"], f["phi"], f["phi_next"], f["g"], win.r, gamma, alpha, beta)
        return torch.cat([w, lam], -1)
    w, _ = semi_gradient_step(parts["w"], f["phi"], f["phi_next"], win.r, gamma, alpha)
    return w
