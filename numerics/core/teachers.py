"""The fast batched teacher (THEORY.md section 2): the record's update rule
(``theory.rules``) evaluated on batched torch tensors.

``TorchOps`` is the rule's algebra here: per-transition vectors are
``B x n x d``, scalars ``B x n``, parameters ``B x d``; the batch step is
``theta_b + step_b * mean_i direction_b,i``.  For SARSA this is exactly
``w + alpha * (delta.unsqueeze(-1) * phi).mean(1)`` with
``delta = r + gamma w.phi+ - w.phi`` (paper eq. 2).  Used for training
targets and the Hessian sample; ``check`` compares the block with the
independent reference teacher (``numerics.reference``) instead.
"""
from __future__ import annotations

import torch

from numerics.core.policies import split_theta
from numerics.core.prompts import window_quantities
from theory.rules import Quantities


class TorchOps:
    """Batched torch algebra for update rules."""

    @staticmethod
    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (v @ u.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def scale(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return s.unsqueeze(-1) * v


def teacher_update(record, q: dict[str, torch.Tensor], theta: torch.Tensor, gamma: torch.Tensor,
                   steps: dict[str, float]) -> torch.Tensor:
    """The teacher's new ``theta`` (``B x q``) after one batch step.

    ``q``: the window's quantities (:func:`numerics.core.prompts.window_quantities`);
    ``gamma``: ``B`` discounts; ``steps``: ``{"alpha": ..., "beta": ...}``.
    """
    t = Quantities(phi=q["phi"], phi_next=q.get("phi_next"), r=q["r"], gamma=gamma[:, None], g=q.get("g"),
                   one=q.get("one"))
    parts = split_theta(record, theta)
    out = record.rule(t, parts, record.numeric_hp(steps), TorchOps)
    new = [parts[b] + out[b][0] * out[b][1].mean(1) if b in out else parts[b] for b in record.layout.readout_blocks]
    return new[0] if len(new) == 1 else torch.cat(new, -1)


def teacher_from_window(record, F: torch.Tensor, win, theta: torch.Tensor, gamma: torch.Tensor, epsilon: float,
                        steps: dict[str, float]) -> torch.Tensor:
    """The teacher's new ``theta`` for a window (the quantities computed by the
    prompt path, :func:`numerics.core.prompts.window_quantities`)."""
    return teacher_update(record, window_quantities(record, F, win, theta, epsilon), theta, gamma, steps)
