"""The verdict of ``icrl-verify check`` (paper layouts, torch and compiled
streams), prompt by prompt, by the per-quantity rule of
``numerics.core.tolerances`` (docs/check.md, "Tolerances").

Each stream reduces a frame to five numbers per prompt (``stats``, ``B x
5``): the largest ``|TF(H) - teacher|`` over the read-out's entries, the
largest error over its entry's own rounding bound, that entry's bound, the
largest bound, and the size of the teacher update's own terms (``signal``:
the largest entry of ``(step/n) sum_i |delta_i| |phi_i|`` in magnitudes).
A prompt fails when an entry's error is above its bound (or not finite),
is undecidable when its largest bound is not small against the signal
(``numerics.core.tolerances.decidable``), and holds otherwise.
"""
from __future__ import annotations

import math

import numpy as np

from numerics.core import tolerances as T

#: Columns of a frame's ``stats``.
ERR, RATIO, BOUND_AT_WORST, BOUND_MAX, SIGNAL = range(5)

#: What to do with weights float64 cannot decide.
SUGGESTION = ("float64 cannot decide these weights: decide them in exact arithmetic with "
              "`icrl-verify prove --algorithm ALG --weights FILE.json --alpha EXACT` (the weights' exact entries "
              "as JSON: docs/prove.md)")


def entry_stats(err, bound, signal) -> np.ndarray:
    """``stats`` (``B x 5``) from per-entry errors and bounds (``B x q``,
    NumPy) and per-prompt signals (``B``)."""
    err, bound, signal = (np.asarray(x, dtype=np.float64) for x in (err, bound, signal))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0.0, 0.0, err / bound)
    ratio = np.where(T.exceeds(err, bound) & ~(ratio > 1.0), np.inf, ratio)   # NaN, or err > 0 = bound
    worst = ratio.argmax(-1)
    rows = np.arange(err.shape[0])
    return np.stack([np.nan_to_num(err, nan=np.inf).max(-1), ratio[rows, worst], bound[rows, worst],
                     bound.max(-1), signal], -1)


class Tally:
    """Running verdict over the prompts of a check."""

    def __init__(self):
        self.worst, self.worst_ratio, self.tol_at_worst = 0.0, -1.0, 0.0
        self.undecidable, self.worst_bound_over_signal, self.undecidable_example = 0, 0.0, None
        self.failed = False

    def add(self, stats: np.ndarray):
        """Add one frame (``stats``: ``B x 5``).  Returns ``(fail, undecided)``:
        the prompt index to report as a counterexample (the frame's worst, the
        first failing frame only) and the prompt index of a new worst
        undecidable prompt (or None)."""
        if stats.shape[0] == 0:
            return None, None
        fail = None
        b = int(stats[:, RATIO].argmax())
        self.worst = max(self.worst, float(stats[:, ERR].max()))
        if stats[b, RATIO] > self.worst_ratio:
            self.worst_ratio, self.tol_at_worst = float(stats[b, RATIO]), float(stats[b, BOUND_AT_WORST])
        if T.exceeds(stats[b, RATIO], 1.0) and not self.failed:
            self.failed, fail = True, b
        with np.errstate(divide="ignore", invalid="ignore"):
            bs = np.where(stats[:, BOUND_MAX] == 0.0, 0.0, stats[:, BOUND_MAX] / stats[:, SIGNAL])
        undecided = ~T.decidable(stats[:, BOUND_MAX], stats[:, SIGNAL])
        self.undecidable += int(undecided.sum())
        new = None
        if undecided.any():
            u = int(np.where(undecided, bs, -1.0).argmax())
            if bs[u] > self.worst_bound_over_signal or self.undecidable_example is None:
                self.worst_bound_over_signal = float(bs[u])
                new = u
        return fail, new

    def example(self, stats_row, **where) -> None:
        """Record the worst undecidable prompt (``where``: its MDP and frame)."""
        self.undecidable_example = dict(where, bound=float(stats_row[BOUND_MAX]), signal=float(stats_row[SIGNAL]),
                                        bound_over_signal=self.worst_bound_over_signal,
                                        abs_error=float(stats_row[ERR]), decidable_rtol=T.DECIDABLE_RTOL,
                                        suggestion=SUGGESTION)

    def verdict(self) -> str:
        return T.verdict(failed=self.failed, undecidable=self.undecidable > 0)

    def worst_ratio_or_zero(self) -> float:
        return 0.0 if self.worst_ratio < 0 else (self.worst_ratio if math.isfinite(self.worst_ratio) else math.inf)
