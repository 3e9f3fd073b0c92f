"""Block specifications: everything about a linear self-attention block that
is not a number (THEORY.md sections 3 and 9).

One layer maps the prompt ``H`` (``D x (n+1)``) to

    H + (1/n) W (V H) M (H^T P H)

with ``M`` the attention mask over columns (``none``: every column is a key
and a value, Liang & Lai eq. 1; ``context``: ``M = diag(1, ..., 1, 0)``, the
last column never is, Wang et al. 2025; with ``decay = lambda != 0`` the
context block of ``M`` is lower triangular, ``M_ij = lambda^(i-j)`` for
``j <= i < n`` (value column ``i``, key column ``j``): Wang et al.'s TD(lambda)
mask) and ``W`` the diagonal projection on the rows the layer writes
(``writes``; every row when None).  ``depth`` layers are applied in turn,
with the same ``(P, V)`` (``tied``) or one pair per layer; the read-out is
the layout's ``(block, sign)`` entries of the last column.

Several heads (``heads``, Wang et al.'s average-reward TD) share the
key-query form ``P`` and each has its own ``V_h`` and a value-side column
operator ``R_h`` (None: the identity; ``running-mean``: ``(H R)[:, j]`` is the
mean of columns ``0..j`` minus column ``j``):
``H + (1/n) W sum_h (V_h H) R_h M (H^T P H)``.

The single-layer, unmasked block of Liang & Lai with a parameter column is
one value of this specification (:attr:`BlockSpec.lemma_c1`); for it the
read-out reduces to Lemma C.1 and only four blocks of ``P`` and ``V`` are
read: ``P12`` (context rows x parameter columns), ``Vbar21`` (read-out rows x
context columns) and the cubic pair ``P22``, ``Vbar22``.  Their index
ranges, the never-read entries of Proposition 3.1 and the position of the
reduced coordinates inside ``(vec P, vec V)`` come from :meth:`BlockSpec.index`,
written once here and used by the numerics, the Hessian and the proofs.
"""
from __future__ import annotations

from dataclasses import dataclass

from theory.layout import ACTOR_CRITIC_LAYOUT, VALUE_LAYOUT, Layout

MASKS = ("none", "context")
#: Layer kinds.  ``linear``: the linear self-attention layer above.
#: ``softmax``: Xie et al.'s (2026) softmax attention layer with an additive
#: mask (THEORY.md section 10; :class:`BlockSpec`, ``kind``), its layer in
#: ``numerics.core.block`` (which calls ``numerics.core.softmax``).  A kind is
#: a new value here plus its layer there; the other fields keep their meaning
#: (a softmax layer reads ``mask`` as additive).
LAYER_KINDS = ("linear", "softmax")
#: Value-side column operators a head may apply (None: the identity).
#: ``running-mean`` (linear kind): ``(H R)[:, j]`` is the mean of columns
#: ``0..j`` minus column ``j``.  ``successor`` (softmax kind): the head's
#: attention is right-multiplied by the shift ``Pi`` (``(X Pi)[:, j] =
#: X[:, j + shift]``, zero past the end), so column ``j`` receives what the
#: head computes for column ``j + shift`` (Xie et al.'s second head).
VALUE_MIXES = (None, "running-mean", "successor")
#: Value mixes each layer kind accepts.
KIND_MIXES = {"linear": (None, "running-mean"), "softmax": (None, "successor")}
#: Parameter-free maps applied after each layer (None: none).  ``token-shift``
#: (softmax kind; Xie et al.'s Lemma 1): ``Z <- U Z + W Z Pi``, the ``target``
#: row becomes ``gamma`` times the ``current`` row of the column ``shift`` to
#: the right (zero past the end), every other row kept; the layout must have
#: row blocks ``target`` and ``current`` of size 1.
POST_MAPS = (None, "token-shift")


def block_equation(H, P, V, cols, mask=None, mixes=(None,)):
    """The block equation, written once for every proof: one layer's output
    ``H + (1/n) sum_h (V_h H) R_h M (H^T P H)`` (``n = cols``; THEORY.md
    sections 3 and 9).

    ``H``, ``P``, ``V`` are SymPy matrices of any kind: explicit
    (``sp.Matrix``, the concrete proofs) or block matrices of symbolic size
    (the general proofs); ``V`` is one matrix or one per head, ``mixes`` the
    heads' value-side operators ``R_h`` (None: the identity), ``mask`` the
    mask ``M`` over columns (None: no mask).  With one head and no mask it is
    paper eq. 1, ``H + (1/n)(V H)(H^T P H)``.  The written rows ``W`` are the
    numerics' concern (``numerics.core.block.layer``): the proofs compare the
    whole output, so a write outside the carried rows shows as a residual.
    """
    S = H.T * P * H
    heads = tuple(V) if isinstance(V, (list, tuple)) else (V,)
    out = H
    for Vh, R in zip(heads, mixes):
        VH = Vh * H if R is None else Vh * H * R
        if mask is not None:
            VH = VH * mask
        out = out + VH * S / cols
    return out


@dataclass(frozen=True)
class Index:
    """Integer index ranges of one specification at one feature dimension.

    ``P12 = P[:m, m:]``, ``P22 = P[m:, m:]``, ``Vbar21 = V[m+1:, :m]``,
    ``Vbar22 = V[m+1:, m:]`` (rows ``m+1..`` are the read-out rows: every
    parameter row after ``one``).
    """

    m: int
    p: int
    q: int
    D: int

    @property
    def p12(self):
        return (slice(0, self.m), slice(self.m, self.D))

    @property
    def p22(self):
        return (slice(self.m, self.D), slice(self.m, self.D))

    @property
    def vbar21(self):
        return (slice(self.m + 1, self.D), slice(0, self.m))

    @property
    def vbar22(self):
        return (slice(self.m + 1, self.D), slice(self.m, self.D))

    def never_read(self):
        """Proposition 3.1's never-read entries as ``(matrix, rows, cols)``:
        ``P11, P21`` (the first ``m`` columns of ``P``), ``V11, V12`` (the
        first ``m`` rows of ``V``) and the first row of ``V21, V22``."""
        D, m = self.D, self.m
        return (("P", slice(0, D), slice(0, m)), ("V", slice(0, m), slice(0, D)), ("V", slice(m, m + 1), slice(0, D)))

    def reduced_count(self) -> int:
        return self.m * self.p + self.q * self.m

    def full_positions(self):
        """Positions of the reduced coordinates ``(vec P12, vec Vbar21)``
        (row-major) inside ``(vec P, vec V)``: ``P12[a, b] = P[a, m + b]``,
        ``Vbar21[k, a] = V[m + 1 + k, a]``.  A list of ints."""
        D, m, p, q = self.D, self.m, self.p, self.q
        ip = [a * D + (m + b) for a in range(m) for b in range(p)]
        iv = [D * D + (m + 1 + k) * D + a for k in range(q) for a in range(m)]
        return ip + iv


@dataclass(frozen=True)
class BlockSpec:
    """A linear self-attention block: layout, depth, tied or untied layers,
    attention mask, written rows.

    Attributes:
      layout: the prompt's row blocks (:class:`theory.layout.Layout`).
      depth: number of layers ``L >= 1``.
      tied: one ``(P, V)`` for every layer (weights ``D x D``), or one per
        layer (weights ``L x D x D``).
      mask: ``"none"`` or ``"context"`` (see the module docstring).
      writes: row blocks a layer may write; None: every row.
      decay: ``lambda`` of the ``context`` mask's lower triangle
        (``M_ij = lambda^(i-j)``, ``j <= i < n``); 0: the diagonal mask.  A
        number or a SymPy symbol (the numerics substitute a value first).
      heads: one value-side column operator per head (:data:`VALUE_MIXES`);
        the heads share ``P``, and ``V`` gets a head axis when there are
        several.
      kind: the layer kind (:data:`LAYER_KINDS`).  ``linear``: the layer of
        the module docstring.  ``softmax`` (Xie et al. 2026, THEORY.md section
        10): ``Z + sum_h V_h Z S R_h`` with ``S = softmax(Z^T P Z + M)`` over
        each column (keys down a column; ``P`` holds their ``A``), ``R_h``
        the head's mix (None or ``successor``), then the ``post`` map; the
        ``context`` mask is read as additive: ``-inf`` on the query's key row
        (the last column is never a source), ``none`` no mask; no decay, no
        ``1/n`` (the softmax normalises).
      post: the parameter-free map after each layer (:data:`POST_MAPS`).
      shift: the offset of the shift ``Pi`` that ``successor`` and
        ``token-shift`` use (1: the successor column; 0 or 2 are planted
        faults).
    """

    layout: Layout
    depth: int = 1
    tied: bool = True
    mask: str = "none"
    writes: tuple[str, ...] | None = None
    decay: object = 0
    heads: tuple = (None,)
    kind: str = "linear"
    post: str | None = None
    shift: int = 1

    def __post_init__(self):
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"spec: unknown layer kind {self.kind!r}; expected one of {', '.join(LAYER_KINDS)}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"spec: depth must be a positive integer, got {self.depth!r}")
        if self.mask not in MASKS:
            raise ValueError(f"spec: unknown mask {self.mask!r}; expected one of {', '.join(MASKS)}")
        if self.writes is not None:
            rows = [b for b, _ in self.layout.context + self.layout.params]
            for b in self.writes:
                if b not in rows:
                    raise ValueError(f"spec: written block {b!r} is not a row block of layout {self.layout.name!r}")
        if not isinstance(self.heads, tuple) or not self.heads or any(h not in VALUE_MIXES for h in self.heads):
            raise ValueError(f"spec: heads must be a non-empty tuple of {VALUE_MIXES}, got {self.heads!r}")
        if self.has_decay and self.mask != "context":
            raise ValueError(f"spec: a mask decay ({self.decay!r}) needs mask 'context', got {self.mask!r}")
        bad = [h for h in self.heads if h not in KIND_MIXES[self.kind]]
        if bad:
            raise ValueError(f"spec: a {self.kind} layer takes head mixes {KIND_MIXES[self.kind]}, got {bad[0]!r}")
        if self.post not in POST_MAPS:
            raise ValueError(f"spec: unknown post map {self.post!r}; expected one of {POST_MAPS}")
        if not isinstance(self.shift, int) or isinstance(self.shift, bool) or self.shift < 0:
            raise ValueError(f"spec: shift must be a non-negative integer, got {self.shift!r}")
        if self.kind == "softmax":
            if self.has_decay:
                raise ValueError(f"spec: a softmax layer has no mask decay, got {self.decay!r}")
            if self.writes is not None:
                raise ValueError("spec: a softmax layer writes what its V writes (writes must be absent)")
        elif self.post is not None or self.shift != 1:
            raise ValueError(f"spec: post map and shift belong to the softmax kind, not {self.kind!r}")
        if self.post == "token-shift":
            sizes = dict(self.layout.context + self.layout.params)
            if sizes.get("target") != 1 or sizes.get("current") != 1:
                raise ValueError("spec: the token shift needs row blocks 'target' and 'current' of size 1")

    @property
    def has_decay(self) -> bool:
        """True unless ``decay`` is the number 0 (a symbol counts as a decay)."""
        try:
            return float(self.decay) != 0.0
        except TypeError:
            return True

    @property
    def lemma_c1(self) -> bool:
        """True for the single-layer, unmasked block with a parameter column
        (Liang & Lai eq. 1): the read-out is Lemma C.1's."""
        return (self.kind == "linear" and self.depth == 1 and self.mask == "none" and self.writes is None
                and self.heads == (None,) and self.layout.has_parameter_column)

    def D(self, d):
        return self.layout.D(d)

    def index(self, d: int) -> Index:
        lay = self.layout
        return Index(int(lay.m(d)), int(lay.p(d)), int(lay.q(d)), int(lay.D(d)))

    def weight_shape(self, d: int) -> tuple[int, ...]:
        """Shape of ``P`` (and of ``V`` with one head)."""
        D = int(self.D(d))
        return (D, D) if self.tied else (self.depth, D, D)

    def value_shape(self, d: int) -> tuple[int, ...]:
        """Shape of ``V``: :meth:`weight_shape`, with a head axis after the
        layer axis when there are several heads."""
        shape = self.weight_shape(d)
        if len(self.heads) == 1:
            return shape
        return shape[:-2] + (len(self.heads),) + shape[-2:]

    def readout_rows(self, d: int) -> list[tuple[int, int, int]]:
        """``(start, stop, sign)`` of the read-out rows of the last column."""
        off = self.layout.offsets("rows", d)
        return [(off[b][0], off[b][1], sign) for b, sign in self.layout.readout]

    def written_rows(self, d: int) -> list[tuple[int, int]] | None:
        if self.writes is None:
            return None
        off = self.layout.offsets("rows", d)
        return [off[b] for b in self.writes]


#: Liang & Lai's blocks (eq. 1): one layer, no mask, every row written.
VALUE_SPEC = BlockSpec(VALUE_LAYOUT)
ACTOR_CRITIC_SPEC = BlockSpec(ACTOR_CRITIC_LAYOUT)
