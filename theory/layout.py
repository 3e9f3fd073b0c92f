"""Prompt layouts as data (THEORY.md section 3, paper eq. 4).

A layout names the row blocks of a prompt column.  The context part (the
first ``n`` columns) holds ``x_i`` stacked from the *context blocks*; the
parameter part (the last column) holds ``w~`` stacked from the *parameter
blocks*, the first of which is always the constant ``one``.  The read-out is
every parameter block after ``one``.

Sizes are ``"d"`` (the feature dimension) or ``1``.  A different layout is a
new :class:`Layout` value, not new code: prompt builders, constructions,
proofs and Hessians all read the block offsets from here.
"""
from __future__ import annotations

from dataclasses import dataclass

Size = "int | str"  # 1 or "d"


@dataclass(frozen=True)
class Layout:
    """Named row blocks of the prompt ``H in R^{D x (n+1)}``.

    Attributes:
      name: identifier, e.g. ``"sarsa"``.
      context: ``((block, size), ...)`` stacked into ``x_i`` (``m`` rows).
      params: ``((block, size), ...)`` stacked into ``w~``; first is ``one``.
    """

    name: str
    context: tuple[tuple[str, object], ...]
    params: tuple[tuple[str, object], ...]

    def __post_init__(self):
        if not self.params or self.params[0] != ("one", 1):
            raise ValueError("layout: the first parameter block must be ('one', 1)")
        names = [b for b, _ in self.context] + [b for b, _ in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"layout: block names must be unique, got {names}")
        for b, s in self.context + self.params:
            if s not in (1, "d"):
                raise ValueError(f"layout: block {b!r} has size {s!r}; expected 1 or 'd'")

    # ---- sizes -------------------------------------------------------------
    @staticmethod
    def _size(s, d):
        return d if s == "d" else 1

    def block_sizes(self, part: str, d):
        blocks = self.context if part == "context" else self.params
        return [(b, self._size(s, d)) for b, s in blocks]

    def offsets(self, part: str, d) -> dict[str, tuple[object, object]]:
        """``{block: (start, stop)}`` within the part (context or params)."""
        out, start = {}, 0
        for b, size in self.block_sizes(part, d):
            out[b] = (start, start + size)
            start = start + size
        return out

    def m(self, d):
        """Context dimension ``m = dim x_i``."""
        return sum(size for _, size in self.block_sizes("context", d))

    def p(self, d):
        """Parameter-column dimension ``p = dim w~``."""
        return sum(size for _, size in self.block_sizes("params", d))

    def q(self, d):
        """Read-out dimension ``q = p - 1``."""
        return self.p(d) - 1

    def D(self, d):
        """Prompt height ``D = m + p``."""
        return self.m(d) + self.p(d)

    @property
    def readout_blocks(self) -> tuple[str, ...]:
        return tuple(b for b, _ in self.params[1:])

    def size_of(self, block: str, d):
        for b, s in self.context + self.params:
            if b == block:
                return self._size(s, d)
        raise KeyError(block)


#: SARSA, expected SARSA, Q-learning (paper eq. 4): x_i = [phi_i; gamma phi+_i; r_{i+1}], w~ = [1; w].
VALUE_LAYOUT = Layout(
    name="value",
    context=(("phi", "d"), ("gphi_next", "d"), ("r", 1)),
    params=(("one", 1), ("w", "d")),
)

#: Actor-critic (Theorem 3.3, reconstructed): x_i = [phi_i; gamma phi+_i; r_{i+1}; g_i], w~ = [1; w; lam].
ACTOR_CRITIC_LAYOUT = Layout(
    name="actor-critic",
    context=(("phi", "d"), ("gphi_next", "d"), ("r", 1), ("g", "d")),
    params=(("one", 1), ("w", "d"), ("lam", "d")),
)
