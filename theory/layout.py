"""Prompt layouts as data (THEORY.md sections 3 and 9, paper eq. 4).

A layout names the row blocks of a prompt ``H in R^{D x (n+1)}`` and says
what each column holds:

* ``context``: the row blocks filled in the ``n`` context columns (the
  ``x_i``, ``m`` rows, at the top of ``H``);
* ``params``: the row blocks below them, filled only in the last column
  (the parameter column ``w~``; when present its first block is the
  constant ``one``);
* ``query``: context blocks that the last column fills as well (Wang et
  al.'s query column ``[phi_q; 0; 0]``);
* ``readout``: ``(block, sign)`` pairs read from the last column of the
  block's output (Liang & Lai: ``w`` (and ``lam``); Wang et al.: ``-r``).

Sizes are ``"d"`` (the feature dimension) or ``1``.  A different layout is a
new :class:`Layout` value, not new code: prompt builders, constructions,
proofs and Hessians read the block offsets from here.
"""
from __future__ import annotations

from dataclasses import dataclass

SIZES = (1, "d")


@dataclass(frozen=True)
class Layout:
    """Named row blocks of the prompt ``H in R^{D x (n+1)}``.

    Attributes:
      name: identifier, e.g. ``"value"``.
      context: ``((block, size), ...)`` stacked into ``x_i`` (``m`` rows).
      params: ``((block, size), ...)`` stacked into the last column below the
        context rows (``p`` rows; first ``("one", 1)`` when not empty).
      readout: ``((block, sign), ...)`` read from the last column of the
        output; default: every parameter block after ``one``, sign ``+1``.
      query: context blocks also filled in the last column.
    """

    name: str
    context: tuple[tuple[str, object], ...]
    params: tuple[tuple[str, object], ...] = ()
    readout: tuple[tuple[str, int], ...] | None = None
    query: tuple[str, ...] = ()

    def __post_init__(self):
        if self.params and self.params[0] != ("one", 1):
            raise ValueError("layout: the first parameter block must be ('one', 1)")
        names = [b for b, _ in self.context] + [b for b, _ in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"layout: block names must be unique, got {names}")
        for b, s in self.context + self.params:
            if s not in SIZES:
                raise ValueError(f"layout: block {b!r} has size {s!r}; expected 1 or 'd'")
        if self.readout is None:
            object.__setattr__(self, "readout", tuple((b, 1) for b, _ in self.params[1:]))
        for b, sign in self.readout:
            if b not in names or sign not in (1, -1):
                raise ValueError(f"layout: read-out entry ({b!r}, {sign!r}) must name a block and a sign +-1")
        for b in self.query:
            if b not in [c for c, _ in self.context]:
                raise ValueError(f"layout: query block {b!r} is not a context block")

    # ---- sizes -------------------------------------------------------------
    @staticmethod
    def _size(s, d):
        return d if s == "d" else 1

    def block_sizes(self, part: str, d):
        blocks = {"context": self.context, "params": self.params, "rows": self.context + self.params}[part]
        return [(b, self._size(s, d)) for b, s in blocks]

    def offsets(self, part: str, d) -> dict[str, tuple[object, object]]:
        """``{block: (start, stop)}`` within the part (``context``, ``params``
        or ``rows``: every row of ``H``)."""
        out, start = {}, 0
        for b, size in self.block_sizes(part, d):
            out[b] = (start, start + size)
            start = start + size
        return out

    def m(self, d):
        """Context dimension ``m = dim x_i``."""
        return sum(size for _, size in self.block_sizes("context", d))

    def p(self, d):
        """Parameter-column dimension ``p = dim w~`` (0 without parameter rows)."""
        return sum(size for _, size in self.block_sizes("params", d))

    def q(self, d):
        """Read-out dimension."""
        return sum(self.size_of(b, d) for b, _ in self.readout)

    def D(self, d):
        """Prompt height ``D = m + p``."""
        return self.m(d) + self.p(d)

    @property
    def readout_blocks(self) -> tuple[str, ...]:
        return tuple(b for b, _ in self.readout)

    @property
    def has_parameter_column(self) -> bool:
        """The Liang & Lai form: the last column is ``[0; w~]`` and the
        read-out is ``w~`` after ``one`` (Lemma C.1 applies to one layer)."""
        return bool(self.params) and self.readout == tuple((b, 1) for b, _ in self.params[1:]) and not self.query

    def size_of(self, block: str, d):
        for b, s in self.context + self.params:
            if b == block:
                return self._size(s, d)
        raise KeyError(block)

    def feature_dim(self, D: int) -> int | None:
        """The ``d`` with ``self.D(d) == D``, or None."""
        a, b = self.D(0), self.D(1) - self.D(0)
        if b <= 0 or (D - a) % b or (D - a) // b < 1:
            return None
        return (D - a) // b


#: SARSA, expected SARSA, Q-learning, TD(0) (paper eq. 4): x_i = [phi_i; gamma phi+_i; r_{i+1}], w~ = [1; w].
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

#: Wang et al. (ICLR 2025), THEORY.md section 9: context column j = [phi(s_j); gamma phi(s_{j+1}); r_j], query
#: column [phi_q; 0; 0]; the read-out is -Z[-1, -1] (the value prediction w^T phi_q).
WANG_LAYOUT = Layout(
    name="wang2025",
    context=(("phi", "d"), ("gphi_next", "d"), ("r", 1)),
    readout=(("r", -1),),
    query=("phi",),
)

#: Wang et al.'s average-reward TD (THEORY.md section 9; docs/wang2025.md section 3): context column
#: j = [phi(s_j); phi(s_{j+1}); r_j; y_j] (undiscounted, y starting at 0), query column [phi_q; 0; 0; 0];
#: the read-out is +Z[-1, -1].
WANG_AVG_LAYOUT = Layout(
    name="wang2025-avg-reward",
    context=(("phi", "d"), ("phi_next", "d"), ("r", 1), ("y", 1)),
    readout=(("y", 1),),
    query=("phi",),
)

#: Xie et al. (2026), THEORY.md section 10: Z_0 = [X; R; 0; 0], column j = [phi(s_j); r_{j+1}; target; current]
#: (the two value-memory rows start at zero and are rewritten by every layer), query column [phi(s_n); 0; 0; 0];
#: the read-out is the current value of the last column (v(s_n)).
XIE_LAYOUT = Layout(
    name="xie2026",
    context=(("phi", "d"), ("r", 1), ("target", 1), ("current", 1)),
    readout=(("current", 1),),
    query=("phi",),
)
