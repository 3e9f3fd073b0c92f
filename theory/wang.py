"""Wang et al. (ICLR 2025), *Transformers Can Learn Temporal Difference
Methods for In-Context Reinforcement Learning*: an L-layer masked linear
self-attention block runs L steps of batch TD in context.  Their algorithms
as records, their constructions as block tables (single source).

Notation (ours; docs/wang2025.md maps it to their code).  One layer is the
block specification's

    Z  <-  Z + (1/n) (V Z) M (Z^T P Z)                                  (W1)

(``theory.spec.BlockSpec`` with the ``wang2025`` layout and mask ``context``;
every row may be written, as in their layer): their ``P`` is our ``V`` (it
picks and writes rows of the values), their ``Q`` is our ``P`` (the bilinear
key-query form).
Context column ``j`` is ``[phi_j; gamma phi'_j; r_j]``, the query column
``[phi_q; 0; 0]``; the read-out is ``-Z[-1, -1]``.

A record (:class:`WangAlgorithm`) holds everything that distinguishes one of
their algorithms from another, as data:

* ``spec``: layout, mask (decay ``lambda`` for TD(lambda)), heads, written
  rows; the depth ``L`` and tied / untied are chosen by the caller
  (:meth:`WangAlgorithm.spec_at`);
* ``p_table``: ``((row block, col block), coef)`` entries of our ``P``, each
  ``coef * C^T`` for the preconditioner ``C`` of the layer (a ``d x d``
  block); every other block zero;
* ``v_tables``: one table per head, entries of ``V`` on ``1 x 1`` blocks;
* ``context``: how each context block is filled, ``(block, coefficient,
  quantity)`` with the quantity one of :data:`QUANTITIES`;
* the teacher, as data: ``direction`` (what ``delta_j`` multiplies: ``phi``
  (TD(0)), ``trace`` (``e_i = sum_{j<=i} lambda^(i-j) phi_j``, TD(lambda)),
  ``residual`` (``phi_j - gamma phi'_j``, residual gradient)),
  ``centered`` (``delta_j`` uses ``r_j - rbar_j``, ``rbar_j`` the running mean
  of ``r_0..r_j``, average-reward TD) and ``carried`` (the row that carries
  the state: ``r`` holds ``delta_j(w)``, ``y`` holds ``w.(phi_j - phi'_j)``).

Nothing below the command line branches on an algorithm's name; :func:`get`
is the only place a name is resolved.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from theory.errors import InputError
from theory.layout import WANG_AVG_LAYOUT, WANG_LAYOUT
from theory.spec import BlockSpec
from theory.symbols import gamma

#: TD(lambda)'s lambda (the decay of the mask).
lam = sp.Symbol("lambda", real=True)

#: What a context block may hold (``zero``: a row that starts at 0).
QUANTITIES = ("phi", "phi_next", "r", "zero")
DIRECTIONS = ("phi", "trace", "residual")


@dataclass(frozen=True)
class WangAlgorithm:
    """One algorithm of Wang et al. (see the module docstring)."""

    name: str
    title: str
    spec: BlockSpec
    p_table: tuple
    v_tables: tuple
    context: tuple
    direction: str = "phi"
    centered: bool = False
    carried: str = "r"
    statement: str = ""
    notes: tuple = ()

    def __post_init__(self):
        lay = self.spec.layout
        blocks = [b for b, _ in lay.context]
        if sorted(b for b, _, _ in self.context) != sorted(blocks):
            raise ValueError(f"wang algorithm {self.name!r}: context recipe does not fill {blocks}")
        if any(q not in QUANTITIES for _, _, q in self.context):
            raise ValueError(f"wang algorithm {self.name!r}: unknown quantity in {self.context}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"wang algorithm {self.name!r}: direction {self.direction!r} not in {DIRECTIONS}")
        if len(self.v_tables) != len(self.spec.heads):
            raise ValueError(f"wang algorithm {self.name!r}: {len(self.v_tables)} V tables for "
                             f"{len(self.spec.heads)} heads")
        if self.carried not in blocks or (self.spec.writes is not None and self.carried not in self.spec.writes):
            raise ValueError(f"wang algorithm {self.name!r}: carried row {self.carried!r} must be a written block")
        sizes = dict(lay.context)
        for (rb, cb), _ in self.p_table:
            if sizes[rb] != "d" or sizes[cb] != "d":
                raise ValueError(f"wang algorithm {self.name!r}: P entry ({rb}, {cb}) must join two d-blocks")
        for table in self.v_tables:
            for (rb, cb), _ in table:
                if sizes[rb] != 1 or sizes[cb] != 1:
                    raise ValueError(f"wang algorithm {self.name!r}: V entry ({rb}, {cb}) must join two 1-blocks")

    @property
    def layout(self):
        return self.spec.layout

    @property
    def readout_sign(self) -> int:
        return self.layout.readout[0][1]

    @property
    def discounted(self) -> bool:
        """True when the next features enter the prompt times gamma."""
        return any(q == "phi_next" and coef != 1 for _, coef, q in self.context)

    @property
    def uses_lambda(self) -> bool:
        return self.spec.has_decay

    def spec_at(self, layers: int, tied: bool = True, lam_value=None, mask: str | None = None) -> BlockSpec:
        """The specification with ``layers`` layers, tied or untied; the
        decay symbol replaced by ``lam_value`` when given; ``mask`` overrides
        the mask (``"none"``: the planted missing-mask fault)."""
        spec = replace(self.spec, depth=layers, tied=tied)
        if lam_value is not None and spec.has_decay:
            spec = replace(spec, decay=lam_value)
        if mask is not None:
            spec = replace(spec, mask=mask, decay=spec.decay if mask == "context" else 0)
        return spec


_TD_P = ((("phi", "phi"), sp.Integer(-1)), (("phi", "gphi_next"), sp.Integer(1)))
_TD_V = (((("r", "r"), sp.Integer(1)),),)
_TD_CONTEXT = (("phi", sp.Integer(1), "phi"), ("gphi_next", gamma, "phi_next"), ("r", sp.Integer(1), "r"))


def _spec(decay=0):
    # their layer writes every row (their P, our V, is a full matrix); the constructions' V happens to write
    # only the carried row, and the check verifies that every other entry stays untouched
    return BlockSpec(WANG_LAYOUT, mask="context", decay=decay)


TD = WangAlgorithm(
    name="td", title="TD(0) with a preconditioner", spec=_spec(), p_table=_TD_P, v_tables=_TD_V,
    context=_TD_CONTEXT, direction="phi",
    statement="w_{l+1} = w_l + (1/n) C_l sum_j (r_j + gamma w_l.phi'_j - w_l.phi_j) phi_j")
TD_LAMBDA = WangAlgorithm(
    name="td-lambda", title="TD(lambda)", spec=_spec(lam), p_table=_TD_P, v_tables=_TD_V,
    context=_TD_CONTEXT, direction="trace",
    statement="w_{l+1} = w_l + (1/n) C_l sum_i delta_i(w_l) e_i, e_i = lambda e_{i-1} + phi_i, e_{-1} = 0")
RG = WangAlgorithm(
    name="rg", title="residual gradient", spec=_spec(),
    p_table=_TD_P + ((("gphi_next", "phi"), sp.Integer(1)), (("gphi_next", "gphi_next"), sp.Integer(-1))),
    v_tables=_TD_V, context=_TD_CONTEXT, direction="residual",
    statement="w_{l+1} = w_l + (1/n) C_l sum_j delta_j(w_l) (phi_j - gamma phi'_j)")
AVG_REWARD = WangAlgorithm(
    name="avg-reward", title="average-reward TD",
    spec=BlockSpec(WANG_AVG_LAYOUT, mask="context", heads=("running-mean", None)),
    p_table=((("phi", "phi"), sp.Integer(-1)), (("phi", "phi_next"), sp.Integer(1))),
    v_tables=(((("y", "r"), sp.Integer(1)),), ((("y", "y"), sp.Integer(1)),)),
    context=(("phi", sp.Integer(1), "phi"), ("phi_next", sp.Integer(1), "phi_next"), ("r", sp.Integer(1), "r"),
             ("y", sp.Integer(1), "zero")),
    direction="phi", centered=True, carried="y",
    statement="w_{l+1} = w_l + (1/n) C_l sum_j (r_j - rbar_j + w_l.phi'_j - w_l.phi_j) phi_j, "
              "rbar_j = mean(r_0..r_j)",
    notes=("Two heads share P: head 1 reads the reward row through the running-mean operator R on the value "
           "side ((Z R)[:, j] = mean of columns 0..j minus column j), head 2 reads row y; both write row y. "
           "This is their AVGREWTDLayer; it equals the one-head TD(0) construction with gamma = 1 on a prompt whose "
           "reward row already holds r_j - rbar_j (checked numerically).",))

#: Their algorithms, in report order.
ALGORITHMS = (TD, TD_LAMBDA, RG, AVG_REWARD)
_REGISTRY = {a.name: a for a in ALGORITHMS}


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(algorithm) -> WangAlgorithm:
    """The record for a name (or the record itself); :class:`InputError`
    naming the field for an unknown name."""
    if isinstance(algorithm, WangAlgorithm):
        return algorithm
    try:
        return _REGISTRY[algorithm]
    except (KeyError, TypeError):
        raise InputError("algorithm", f"unknown {algorithm!r} for --layout wang2025; expected one of "
                                      f"{', '.join(_REGISTRY)}") from None


def with_p_sign_flipped(record: WangAlgorithm, entry=("phi", "phi")) -> WangAlgorithm:
    """The record with one ``P`` table entry negated (a planted fault)."""
    return replace(record, p_table=tuple(((k, -v) if k == entry else (k, v)) for k, v in record.p_table))


def numeric_tables(record: WangAlgorithm, d: int):
    """``(P entries, [V entries per head], D)`` at feature dimension ``d``:
    ``P`` as ``[(r0, c0, coef)]`` (the top-left corner of a ``d x d`` block
    that holds ``coef * C^T``), each ``V`` as ``[(row, col, coef)]``; the
    offsets read from the layout.  This is how ``numerics`` realises a
    construction without re-typing it."""
    off = record.layout.offsets("rows", d)
    P = [(off[rb][0], off[cb][0], float(coef)) for (rb, cb), coef in record.p_table]
    Vs = [[(off[rb][0], off[cb][0], float(coef)) for (rb, cb), coef in table] for table in record.v_tables]
    return P, Vs, int(record.layout.D(d))
