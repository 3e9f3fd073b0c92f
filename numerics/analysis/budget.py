"""Size guards: what a command would allocate, estimated before it allocates.

Each estimate adds up the largest float64 tensors the command holds at once
(MDP batches, features, windows, prompts, Hessians), named, so that a refusal
can say what is large and which option shrinks it.  :func:`guard` raises
:class:`InputError` (exit 2 at the command line) with the estimate, the limit
and the option that raises the limit (``--max-memory``) before anything is
allocated.  The estimates are upper bounds of the dominant terms, not exact
accounting: Python, torch and the libraries add a few hundred MB.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from numerics.analysis.spectrum import DENSE_EIGH_LIMIT
from theory.errors import InputError

F64 = 8
#: Default limit: this fraction of the machine's physical memory.
DEFAULT_MEMORY_FRACTION = 0.5


def physical_memory() -> int:
    """Bytes of physical memory (``sysconf``), or 8 GB where it is unknown."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 1024 ** 3


def default_max_memory() -> int:
    return int(DEFAULT_MEMORY_FRACTION * physical_memory())


def human(nbytes: float) -> str:
    for unit, size in (("TB", 1024 ** 4), ("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes:.0f} B"


@dataclass
class Estimate:
    """Named byte counts of the largest tensors held at once."""

    parts: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, nbytes: float) -> "Estimate":
        self.parts[name] = self.parts.get(name, 0.0) + float(nbytes)
        return self

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def describe(self, most: int = 3) -> str:
        top = sorted(self.parts.items(), key=lambda kv: -kv[1])[:most]
        return ", ".join(f"{name} {human(b)}" for name, b in top)


def guard(estimate: Estimate, limit: int, what: str, shrink: str) -> Estimate:
    """Refuse (``InputError`` on ``max-memory``) when the estimate exceeds the limit."""
    if estimate.total > limit:
        raise InputError("max-memory", f"{what} would need about {human(estimate.total)} ({estimate.describe()}), "
                                       f"above the limit {human(limit)}; {shrink}, or raise --max-memory")
    return estimate


def mdp_batch(B: int, S: int, A: int, d: int) -> Estimate:
    """A batch of ``B`` MDPs and features as ``MDPDistribution.sample`` and the
    stream hold them: Dirichlet draws, ``T``, ``R``, the transition CDFs (each
    ``B x S x A x S``) and ``F`` (``B x S x A x d``)."""
    return Estimate().add("transitions and rewards (mdps x states x actions x states)", 4 * B * S * A * S * F64) \
                     .add("features (mdps x states x actions x d)", B * S * A * d * F64)


def frame(record, B: int, n: int, A: int, d: int) -> Estimate:
    """One frame of the stream for ``B`` MDPs: the per-transition quantities,
    the context ``X`` and, for the expected / greedy ``phi+`` and the score,
    the features of every action at each visited state."""
    m = record.layout.m(d)
    e = Estimate().add("window quantities (mdps x context x d)", 2 * B * n * d * F64) \
                  .add("prompts (mdps x context x m)", B * n * m * F64)
    if record.next_rule != "taken" or "g" in record.quantities:
        e.add("features of every action along the window", B * n * A * d * F64)
    return e


def check(record, B: int, S: int, A: int, d: int, n: int) -> Estimate:
    e = mdp_batch(B, S, A, d)
    for k, v in frame(record, B, n, A, d).parts.items():
        e.add(k, v)
    return e


def hessian(record, d: int, prompts: int, n: int, dense: bool | None = None) -> Estimate:
    """The richness analysis: the prompt sample, the Jacobian factors and the
    Gauss-Newton matrix with its factorisation (dense route) on ``p`` reduced
    parameters; above :data:`numerics.analysis.spectrum.DENSE_EIGH_LIMIT` the
    shift-invert route still holds ``H``, ``H + sigma I`` and a Cholesky factor."""
    idx = record.spec.index(d)
    p = idx.reduced_count()
    e = Estimate().add("prompt sample (prompts x context x m)", prompts * n * idx.m * F64) \
                  .add("Jacobian factors (prompts x q x m)", prompts * idx.q * idx.m * F64)
    large = p > DENSE_EIGH_LIMIT if dense is None else not dense
    copies = 4 if large else 3          # H, eigenvectors, workspace | H, eye, H + sigma I, Cholesky factor
    e.add(f"Gauss-Newton matrix ({p} x {p} reduced parameters) and its factorisation", copies * p * p * F64)
    return e


def train(record, batch: int, eval_mdps: int, S: int, A: int, d: int, n: int, hidden: int = 0) -> Estimate:
    """Training: one MDP batch and its frame (with autograd's saved tensors,
    about twice the prompt), the held-out evaluation batch."""
    e = Estimate()
    for B, tag in ((batch, "training"), (eval_mdps, "evaluation")):
        for k, v in check(record, B, S, A, d, n).parts.items():
            e.add(f"{tag}: {k}", v)
    m = record.layout.m(d)
    e.add("autograd's saved tensors", batch * n * m * F64)
    if hidden:
        e.add("baseline model", (n * m + d + 2) * hidden * F64 * 4)
    return e
