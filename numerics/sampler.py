"""Window sampler of Algorithm 1 (THEORY.md section 5), batched over MDPs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from numerics.algorithms import behaviour_probs, gather
from numerics.mdp import MDP
from numerics.policies import sample_categorical


@dataclass(frozen=True)
class Window:
    """``n`` consecutive transitions of one trajectory per MDP.

    ``s``, ``a``: ``B x (n+1)`` states and actions ``s_0..s_n``, ``a_0..a_n``
    (``a_n`` is the action actually taken next, recorded for ``phi+``);
    ``r``: ``B x n`` rewards ``r_1..r_n``.
    """

    s: torch.Tensor
    a: torch.Tensor
    r: torch.Tensor

    @property
    def n(self) -> int:
        return self.r.shape[1]


def sample_window(algorithm: str, mdp: MDP, F: torch.Tensor, s0: torch.Tensor, theta: torch.Tensor,
                  n: int, epsilon: float, gen: torch.Generator) -> Window:
    """Roll ``n`` transitions from ``s0`` with the behaviour policy of ``theta``."""
    B = mdp.batch
    bidx = torch.arange(B, device=s0.device)
    s = [s0]
    a = [sample_categorical(behaviour_probs(algorithm, gather(F, s0[:, None])[:, 0], theta, epsilon), gen)]
    r = []
    for _ in range(n):
        nxt = sample_categorical(mdp.T[bidx, s[-1], a[-1]], gen)
        r.append(mdp.R[bidx, s[-1], a[-1], nxt])
        s.append(nxt)
        a.append(sample_categorical(behaviour_probs(algorithm, gather(F, nxt[:, None])[:, 0], theta, epsilon), gen))
    return Window(torch.stack(s, 1), torch.stack(a, 1), torch.stack(r, 1))


def initial_state(algorithm: str, mdp: MDP, F: torch.Tensor, gen: torch.Generator):
    """``theta_0 ~ Unif(-1, 1)^q`` and ``s_0 ~ rho0`` (Algorithm 1)."""
    from numerics.algorithms import q_dim
    q = q_dim(algorithm, F.shape[-1])
    theta = torch.rand(mdp.batch, q, generator=gen, dtype=F.dtype, device=F.device) * 2 - 1
    s0 = sample_categorical(mdp.rho0, gen)
    return theta, s0


def frames(algorithm: str, mdp: MDP, F: torch.Tensor, n: int, epsilon: float, num_frames: int,
           gen: torch.Generator, update: Callable[[torch.Tensor, Window], torch.Tensor],
           theta: torch.Tensor | None = None, s0: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, Window]]:
    """Algorithm 1's data stream: yields ``(theta, window)`` per frame, then
    sets ``theta <- update(theta, window)`` (the teacher's output in training;
    the model's output in closed-loop control) and ``s_0 <- s_n``."""
    if theta is None or s0 is None:
        theta0, s00 = initial_state(algorithm, mdp, F, gen)
        theta = theta0 if theta is None else theta
        s0 = s00 if s0 is None else s0
    for _ in range(num_frames):
        win = sample_window(algorithm, mdp, F, s0, theta, n, epsilon, gen)
        yield theta, win
        theta = update(theta, win)
        s0 = win.s[:, -1]
