"""Algorithm 1's data stream (THEORY.md section 5), batched over MDPs: the
one source of windows, prompts and teacher targets for ``check``, the Hessian
sample, training, control and the benchmarks.

Per MDP: ``theta_0 ~ Unif(-1, 1)^q`` and ``s_0 ~ rho0``; per frame: a window
of ``n`` transitions drawn with the behaviour policy of ``theta`` from
``s_0``, its prompt and the teacher's target; then ``theta <-`` the teacher's
output (training, the Hessian sample, ``check``) or the model's own output
(closed-loop control), and ``s_0 <- s_n``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterator

import torch

from numerics.core import compiled
from numerics.core.mdp import MDP
from numerics.core.policies import behaviour_probs, sample_categorical
from numerics.core.prompts import build_context, window_quantities
from numerics.core.teachers import teacher_update


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


def _draw(cdf: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Inverse-CDF draw: one uniform per row of ``cdf`` (``B x K``)."""
    u = torch.rand(cdf.shape[:-1], generator=gen, dtype=cdf.dtype, device=cdf.device)
    return (cdf < u.unsqueeze(-1)).sum(-1).clamp_max(cdf.shape[-1] - 1)


def sample_window(record, mdp: MDP, F: torch.Tensor, T_cdf: torch.Tensor, s0: torch.Tensor, theta: torch.Tensor,
                  n: int, epsilon: float, gen: torch.Generator) -> Window:
    """Roll ``n`` transitions from ``s0`` with the behaviour policy of ``theta``.

    The policy is evaluated once per window at every state (``theta`` is fixed
    within a window) and the transition CDFs ``T_cdf`` (``B x S x A x S``) are
    precomputed per MDP batch.  Draw order per step: the action, then the
    next state, one uniform per MDP each (as the per-step reference loop in
    ``property_tests/references.py``, which gives the same window).

    On the CPU in float64 the window is drawn by the compiled sampler
    (``numerics.core.compiled.sample_windows``) from the same uniforms, one
    ``torch.rand(2n+1, B)`` call (equal to ``2n+1`` successive
    ``torch.rand(B)`` calls on the CPU generator): the same window, bit for
    bit, as :func:`sample_window_torch` (tested), and faster at every batch
    size measured (Section 4.1, n = 20, one thread, the behaviour policy
    included: 41 us against 0.65 ms for one MDP, 0.27 against 1.4 ms for
    100, 58 against 93 ms for 10,000).
    """
    pi_cdf = behaviour_probs(record, F, theta, epsilon).detach().cumsum(-1)      # B x S x A
    if _compiled_sampler_applies(pi_cdf, T_cdf, mdp.R, s0, gen):
        U = torch.rand(2 * n + 1, mdp.batch, generator=gen, dtype=pi_cdf.dtype)
        s, a, r = compiled.sample_windows(T_cdf.numpy(), pi_cdf.numpy(), mdp.R.numpy(), s0.contiguous().numpy(),
                                          U.numpy())
        return Window(torch.from_numpy(s), torch.from_numpy(a), torch.from_numpy(r))
    return _sample_window_torch(mdp, T_cdf, s0, pi_cdf, n, gen)


def _compiled_sampler_applies(pi_cdf, T_cdf, R, s0, gen) -> bool:
    """The compiled sampler sees the torch path's uniforms only on the CPU
    generator, and computes in float64."""
    return (gen.device.type == "cpu" and all(t.device.type == "cpu" for t in (pi_cdf, T_cdf, R, s0))
            and pi_cdf.dtype == T_cdf.dtype == R.dtype == torch.float64 and not T_cdf.requires_grad
            and not R.requires_grad)


def sample_window_torch(record, mdp: MDP, F: torch.Tensor, T_cdf: torch.Tensor, s0: torch.Tensor,
                        theta: torch.Tensor, n: int, epsilon: float, gen: torch.Generator) -> Window:
    """:func:`sample_window` in torch operations only (any device; the path
    the compiled sampler is tested against)."""
    pi_cdf = behaviour_probs(record, F, theta, epsilon).cumsum(-1)
    return _sample_window_torch(mdp, T_cdf, s0, pi_cdf, n, gen)


def _sample_window_torch(mdp: MDP, T_cdf, s0, pi_cdf, n: int, gen: torch.Generator) -> Window:
    B = mdp.batch
    bidx = torch.arange(B, device=s0.device)
    s, a, r = [s0], [_draw(pi_cdf[bidx, s0], gen)], []
    for _ in range(n):
        nxt = _draw(T_cdf[bidx, s[-1], a[-1]], gen)
        r.append(mdp.R[bidx, s[-1], a[-1], nxt])
        s.append(nxt)
        a.append(_draw(pi_cdf[bidx, nxt], gen))
    return Window(torch.stack(s, 1), torch.stack(a, 1), torch.stack(r, 1))


def initial_state(record, mdp: MDP, F: torch.Tensor, gen: torch.Generator):
    """``theta_0 ~ Unif(-1, 1)^q`` and ``s_0 ~ rho0`` (Algorithm 1)."""
    q = record.layout.q(F.shape[-1])
    theta = torch.rand(mdp.batch, q, generator=gen, dtype=F.dtype, device=F.device) * 2 - 1
    s0 = sample_categorical(mdp.rho0, gen)
    return theta, s0


class Frame:
    """One frame of the stream: the parameters ``theta`` it was drawn with,
    its window, and (computed on first use) the quantities, the prompt
    ``(X, w~)`` and the teacher's target."""

    def __init__(self, stream: "Stream", theta: torch.Tensor, window: Window):
        self.stream, self.theta, self.window = stream, theta, window

    @cached_property
    def quantities(self) -> dict[str, torch.Tensor]:
        st = self.stream
        return window_quantities(st.record, st.F, self.window, self.theta, st.epsilon)

    @cached_property
    def prompt(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, w~)``: ``B x n x m`` and ``B x p``."""
        return build_context(self.stream.record, self.quantities, self.theta, self.stream.mdp.gamma)

    @property
    def X(self) -> torch.Tensor:
        return self.prompt[0]

    @property
    def wt(self) -> torch.Tensor:
        return self.prompt[1]

    @cached_property
    def target(self) -> torch.Tensor:
        """The teacher's output (``B x q``)."""
        st = self.stream
        return teacher_update(st.record, self.quantities, self.theta, st.mdp.gamma, st.steps)


class Stream:
    """Algorithm 1's frames for one batch of MDPs (see the module docstring).

    Args:
      record: the algorithm (``theory.algorithms``).
      mdp, F: the MDP batch and its features (``B x S x A x d``).
      n, epsilon: window length and exploration.
      steps: the teacher's step sizes, ``{"alpha": ..., "beta": ...}``.
      gen: the generator of every draw (initial state, windows).
      theta, s0: start here instead of drawing them.
    """

    def __init__(self, record, mdp: MDP, F: torch.Tensor, *, n: int, epsilon: float, steps: dict,
                 gen: torch.Generator, theta: torch.Tensor | None = None, s0: torch.Tensor | None = None):
        self.record, self.mdp, self.F, self.n, self.epsilon, self.steps, self.gen = \
            record, mdp, F, n, epsilon, steps, gen
        if theta is None or s0 is None:
            theta0, s00 = initial_state(record, mdp, F, gen)
            theta = theta0 if theta is None else theta
            s0 = s00 if s0 is None else s0
        self.theta, self.s0 = theta, s0
        self.T_cdf = mdp.T.cumsum(-1)

    def next(self, update: Callable[[Frame], torch.Tensor] | None = None) -> Frame:
        """The frame at the current ``theta`` and ``s_0``; then ``theta <-``
        ``update(frame)`` (default: the teacher's target) and ``s_0 <- s_n``."""
        win = sample_window(self.record, self.mdp, self.F, self.T_cdf, self.s0, self.theta, self.n, self.epsilon,
                            self.gen)
        frame = Frame(self, self.theta, win)
        self.theta = frame.target if update is None else update(frame)
        self.s0 = win.s[:, -1]
        return frame

    def frames(self, num: int, update: Callable[[Frame], torch.Tensor] | None = None) -> Iterator[Frame]:
        for _ in range(num):
            yield self.next(update)
