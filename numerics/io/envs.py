"""Gymnasium tabular environments as :class:`numerics.mdp.MDP` (THEORY.md
section 7, issue 5: control out of distribution).

An environment qualifies when ``gymnasium.make(env_id).unwrapped`` exposes
its transition table ``P`` (``P[s][a]`` = list of
``(prob, next_state, reward, terminated)``) and has discrete observation and
action spaces: FrozenLake-v1, FrozenLake8x8-v1, CliffWalking-v1, Taxi-v4 do.

Conversion (:func:`table_to_mdp`):

* duplicate next states of one ``(s, a)`` are merged: their probabilities
  add, their rewards are averaged with the probabilities as weights, so
  ``R[s, a, s']`` keeps the expected reward ``r(s, a)`` of the table;
* a transition with ``terminated = True`` goes to one added *absorbing*
  state ``S_env`` (its reward is kept); the absorbing state loops to itself
  under every action with reward zero.  Returns ``J(pi) = rho0 . V^pi`` are
  computed on this MDP (:attr:`TabularEnv.mdp`);
* ``rho0`` is ``unwrapped.initial_state_distrib`` (zero on the absorbing
  state);
* for *acting* (closed-loop data), the absorbing state restarts the episode:
  :attr:`TabularEnv.restart` equals :attr:`TabularEnv.mdp` except that every
  action in the absorbing state leads to ``s ~ rho0`` with reward zero.
  Without this an agent stops learning at its first terminal transition.
  The features of the absorbing state are zero (:func:`env_features`), so
  ``Q_w(absorbing, .) = 0`` for every ``w``: the SARSA target of a terminal
  transition is its reward alone (episodic SARSA), and the restart step
  (``phi_i = 0``) changes nothing.

Time limits (``TimeLimit`` truncation) are not part of the table and are
ignored: the MDP is the infinite-horizon discounted one.
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from numerics.core.distributions import FEATURE_KINDS
from numerics.core.mdp import MDP
from numerics.core.tolerances import DTYPE
from theory.errors import InputError


@dataclass(frozen=True)
class TabularEnv:
    """One Gymnasium table as MDPs (batch of one).

    Attributes:
      name: the Gymnasium id.
      mdp: the evaluation MDP (terminal transitions into an absorbing state).
      restart: the acting MDP (the absorbing state restarts from ``rho0``).
      env_states: ``|S|`` of the environment (without the absorbing state).
      absorbing: index of the absorbing state, or None when the table has no
        terminal transition (then ``mdp`` and ``restart`` are the same).
    """

    name: str
    mdp: MDP
    restart: MDP
    env_states: int
    absorbing: int | None

    @property
    def states(self) -> int:
        return self.mdp.states

    @property
    def actions(self) -> int:
        return self.mdp.actions


def table_to_mdp(P, n_states: int, n_actions: int, rho0, gamma: float, name: str = "table") -> TabularEnv:
    """Read a Gymnasium-style table ``P[s][a] = [(prob, s', r, terminated), ...]``.

    Raises :class:`InputError` when an entry is missing or malformed, or the
    result is not a valid MDP (rows not summing to 1, negative
    probabilities, non-finite rewards).
    """
    if not (isinstance(gamma, float) or isinstance(gamma, int)) or not (0 <= gamma < 1):
        raise InputError("gamma", f"must satisfy 0 <= gamma < 1, got {gamma}")
    S, A = int(n_states), int(n_actions)
    entries = []
    any_terminal = False
    for s in range(S):
        row = P.get(s) if hasattr(P, "get") else P[s]
        if row is None:
            raise InputError("env", f"{name}: transition table has no entry for state {s}")
        for a in range(A):
            trans = row.get(a) if hasattr(row, "get") else row[a]
            if trans is None or len(trans) == 0:
                raise InputError("env", f"{name}: transition table has no entry for state {s}, action {a}")
            for k, tr in enumerate(trans):
                try:
                    p, s2, r, term = tr[0], tr[1], tr[2], tr[3]
                    p, s2, r, term = float(p), int(s2), float(r), bool(term)
                except (TypeError, ValueError, IndexError):
                    raise InputError("env", f"{name}: P[{s}][{a}][{k}] = {tr!r} is not (prob, next_state, reward, terminated)") from None
                if not (0 <= s2 < S):
                    raise InputError("env", f"{name}: P[{s}][{a}][{k}] leads to state {s2}, outside 0..{S - 1}")
                any_terminal |= term
                entries.append((s, a, p, s2, r, term))
    S_all = S + 1 if any_terminal else S
    absorbing = S if any_terminal else None
    T = np.zeros((S_all, A, S_all))
    PR = np.zeros((S_all, A, S_all))          # probability-weighted reward sums
    for s, a, p, s2, r, term in entries:
        tgt = absorbing if term else s2
        T[s, a, tgt] += p
        PR[s, a, tgt] += p * r
    R = np.divide(PR, T, out=np.zeros_like(PR), where=T > 0)
    rho = np.asarray(rho0, dtype=np.float64).reshape(-1)
    if rho.shape != (S,):
        raise InputError("rho0", f"{name}: expected {S} start probabilities, got shape {rho.shape}")
    rho = np.concatenate([rho, np.zeros(S_all - S)])
    if absorbing is not None:
        T[absorbing, :, absorbing] = 1.0
    mdp = MDP(torch.as_tensor(T[None], dtype=DTYPE), torch.as_tensor(R[None], dtype=DTYPE),
              torch.tensor([float(gamma)], dtype=DTYPE), torch.as_tensor(rho[None], dtype=DTYPE))
    if absorbing is None:
        return TabularEnv(name, mdp, mdp, S, None)
    T2 = T.copy()
    T2[absorbing] = rho[None, :]
    restart = MDP(torch.as_tensor(T2[None], dtype=DTYPE), mdp.R, mdp.gamma, mdp.rho0)
    return TabularEnv(name, mdp, restart, S, absorbing)


def load_gym_env(env_id: str, gamma: float) -> TabularEnv:
    """``gymnasium.make(env_id)``'s table as a :class:`TabularEnv`.

    Raises :class:`InputError` (one line) for an unknown id, an environment
    that cannot be built here, or one without a transition table.
    """
    try:
        env = gym.make(env_id)
    except gym.error.Error as e:
        raise InputError("env", f"cannot make Gymnasium environment {env_id!r}: {e}") from None
    except (ImportError, TypeError, ValueError, AttributeError) as e:
        raise InputError("env", f"cannot make Gymnasium environment {env_id!r}: {type(e).__name__}: {e}") from None
    try:
        u = env.unwrapped
        P = getattr(u, "P", None)
        if P is None:
            raise InputError("env", f"{env_id} has no transition table (unwrapped.P); "
                             "control needs a tabular environment such as FrozenLake-v1, CliffWalking-v1, Taxi-v4")
        obs, act = env.observation_space, env.action_space
        if not isinstance(obs, gym.spaces.Discrete) or not isinstance(act, gym.spaces.Discrete):
            raise InputError("env", f"{env_id}: expected Discrete observation and action spaces, got {obs} and {act}")
        S, A = int(obs.n), int(act.n)
        rho0 = getattr(u, "initial_state_distrib", None)
        if rho0 is None:
            raise InputError("env", f"{env_id} has no start distribution (unwrapped.initial_state_distrib)")
        return table_to_mdp(P, S, A, rho0, gamma, name=env_id)
    finally:
        env.close()


def broadcast_mdp(mdp: MDP, B: int) -> MDP:
    """A batch of ``B`` copies of a validated one-MDP batch, as stride-0 views
    (no copy, no re-validation: the single MDP was validated)."""
    if mdp.batch != 1:
        raise ValueError("broadcast_mdp: expected a batch of one MDP")
    out = object.__new__(MDP)
    object.__setattr__(out, "T", mdp.T.expand(B, *mdp.T.shape[1:]))
    object.__setattr__(out, "R", mdp.R.expand(B, *mdp.R.shape[1:]))
    object.__setattr__(out, "gamma", mdp.gamma.expand(B))
    object.__setattr__(out, "rho0", mdp.rho0.expand(B, *mdp.rho0.shape[1:]))
    return out


def env_features(env: TabularEnv, kind: str, d: int, num: int, gen: torch.Generator,
                 feature_seed: int = 0, device=None) -> torch.Tensor:
    """State-action features ``F`` (``num x S x A x d``) for ``env``.

    ``dense``: Unif(-1, 1) entries drawn from ``gen`` afresh for each of the
    ``num`` copies; ``dense-shared``: one draw (generator seeded
    ``feature_seed``) for all; ``onehot``: ``d`` must equal
    ``env_states * actions``.  The absorbing state's features are zero.
    """
    if kind not in FEATURE_KINDS:
        raise InputError("features", f"unknown {kind!r}; expected one of {', '.join(FEATURE_KINDS)}")
    if not isinstance(d, int) or d < 1:
        raise InputError("feature-dim", f"must be a positive integer, got {d!r}")
    S0, A, S = env.env_states, env.actions, env.states
    rows = S0 * A
    device = device or gen.device
    if kind == "onehot":
        if d != rows:
            raise InputError("feature-dim", f"onehot features of {env.name} need d = |S||A| = {rows}, got {d}")
        Fe = torch.eye(rows, dtype=DTYPE, device=device).expand(num, rows, d)
    elif kind == "dense":
        Fe = torch.rand(num, rows, d, generator=gen, dtype=DTYPE, device=device) * 2 - 1
    else:
        g0 = torch.Generator(device=device).manual_seed(feature_seed)
        Fe = (torch.rand(1, rows, d, generator=g0, dtype=DTYPE, device=device) * 2 - 1).expand(num, rows, d)
    F = torch.zeros(num, S, A, d, dtype=DTYPE, device=device)
    F[:, :S0] = Fe.reshape(num, S0, A, d)
    return F
