"""Construction records and their one registry: everything that
distinguishes one in-context algorithm (a construction of the block and the
update it must compute) from another, resolved once by name.

Liang & Lai's five (one layer, parameter column, MDP control) and Wang et
al.'s (ICLR 2025) four (``L`` masked layers, MRP evaluation) are records of
this one class, in this one registry; a user adds one with :func:`register`
or writes it in a file (:mod:`theory.construction_file`).

A record is data plus one teacher rule (:mod:`theory.rules`):

* ``spec``: the block specification (layout with its rows and which rows a
  layer may write, layer kind, depth, tied or untied, mask, heads);
* ``construction``: the weight tables of ``P`` and each head's ``V``
  (:mod:`theory.constructions`), exact SymPy formulas of the step sizes and
  ``gamma`` (preconditioned: ``coef * C^T`` blocks);
* ``data``: what it runs on: ``mdp`` (control or evaluation in an MDP, with
  the fields below) or ``mrp`` (policy evaluation on MRP windows: the block's
  layers are compared one by one with the teacher applied once per layer);
* ``context``: how each context block is filled, ``(block, coefficient,
  quantity)`` with the quantity one of :data:`QUANTITIES` and the
  coefficient a SymPy expression in ``gamma`` (``gphi_next = gamma phi_next``);
* ``next_rule``: what ``phi+`` is (:data:`NEXT_RULES`: the next action taken,
  the epsilon-greedy expectation in ``Q_w``, or the greedy action);
* ``behaviour``: the policy that acts (:data:`BEHAVIOURS`);
* ``features``: ``state-action`` or ``state`` (TD(0): ``psi(s)`` broadcast
  over actions);
* ``acts_with``: the read-out block whose greedy policy is scored in control
  (None: the algorithm evaluates and does not control);
* ``rule``: the per-transition update the block must compute; it reads the
  step sizes and the record's ``constants`` from its ``hp`` argument (exact
  SymPy numbers in proofs, floats in the numerics); for ``mrp`` records it is
  applied once per layer, with the layer's preconditioner as the step;
* ``theorem``, ``title``, ``statement``: what the paper claims, for reports.

Everything below the command line takes a record; :func:`get` is the only
place a name is resolved, and nothing else branches on the name.  A user
adds an algorithm with :func:`register` (see docs/algorithms.md).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable

import sympy as sp

from theory import constructions as C
from theory import rules
from theory.errors import InputError
from theory.layout import WANG_AVG_LAYOUT, WANG_LAYOUT, XIE_LAYOUT
from theory.spec import ACTOR_CRITIC_SPEC, VALUE_SPEC, BlockSpec
from theory.symbols import STEP_SIZES, alpha, gamma, lam

#: What a context block may hold (``zero``: a row that starts at 0, written by the layers).
QUANTITIES = ("phi", "phi_next", "r", "g", "one", "zero")
DATA = ("mdp", "mrp")
NEXT_RULES = ("taken", "expected", "greedy")
BEHAVIOURS = ("epsilon-greedy", "softmax", "uniform")
FEATURES = ("state-action", "state")


@dataclass(frozen=True)
class Algorithm:
    """One construction record (see the module docstring)."""

    name: str
    spec: BlockSpec
    construction: C.Construction
    context: tuple[tuple[str, sp.Expr, str], ...]
    rule: Callable
    next_rule: str = "taken"
    behaviour: str = "epsilon-greedy"
    features: str = "state-action"
    acts_with: str | None = "w"
    theorem: str = ""
    statement: str = ""
    steps: tuple[str, ...] = ("alpha",)
    constants: tuple[tuple[str, sp.Expr], ...] = ()
    notes: tuple[str, ...] = field(default=())
    data: str = "mdp"
    title: str = ""

    def __post_init__(self):
        lay = self.spec.layout
        if self.data not in DATA:
            raise ValueError(f"algorithm {self.name!r}: data {self.data!r} not in {DATA}")
        self.construction.check_blocks(lay, f"algorithm {self.name!r}")
        if self.data == "mdp":   # Lemma C.1 reads P12 (context rows x parameter columns) and Vbar21 (read-out rows x context)
            ctx = {b for b, _ in lay.context}
            par = {b for b, _ in lay.params}
            for (rb, cb), _ in self.construction.p:
                if rb not in ctx or cb not in par:
                    raise ValueError(f"algorithm {self.name!r}: P entry ({rb}, {cb}) must join a context row block "
                                     f"to a parameter column block (Lemma C.1 reads P12 only)")
            for table in self.construction.v:
                for (rb, cb), _ in table:
                    if rb not in par - {"one"} or cb not in ctx:
                        raise ValueError(f"algorithm {self.name!r}: V entry ({rb}, {cb}) must join a read-out row "
                                         f"block to a context column block (Lemma C.1 reads Vbar21 only)")
        if len(self.construction.v) != len(self.spec.heads):
            raise ValueError(f"algorithm {self.name!r}: {len(self.construction.v)} V tables for "
                             f"{len(self.spec.heads)} heads")
        ctx_blocks = [b for b, _ in lay.context]
        filled = [b for b, _, _ in self.context]
        if sorted(filled) != sorted(ctx_blocks):
            raise ValueError(f"algorithm {self.name!r}: context recipe fills {filled}, layout has {ctx_blocks}")
        for b, coef, q in self.context:
            if sp.sympify(coef, strict=True).free_symbols - {gamma}:   # strict: never parses a string
                raise ValueError(f"algorithm {self.name!r}: block {b!r}'s coefficient {coef} may depend on gamma only")
            if q not in QUANTITIES:
                raise ValueError(f"algorithm {self.name!r}: block {b!r} holds unknown quantity {q!r}; "
                                 f"expected one of {', '.join(QUANTITIES)}")
        for name, value, allowed in (("next_rule", self.next_rule, NEXT_RULES),
                                     ("behaviour", self.behaviour, BEHAVIOURS),
                                     ("features", self.features, FEATURES)):
            if value not in allowed:
                raise ValueError(f"algorithm {self.name!r}: {name} {value!r} not in {allowed}")
        if self.acts_with is not None and self.acts_with not in lay.readout_blocks:
            raise ValueError(f"algorithm {self.name!r}: acts_with {self.acts_with!r} is not a read-out block")
        if self.data == "mrp":
            self._check_mrp()
        elif not self.spec.lemma_c1 or self.construction.preconditioned:
            # what the mdp machinery (check's read-out, the Hessian, training) evaluates is Lemma C.1's
            raise ValueError(f"algorithm {self.name!r}: an mdp record is one unmasked layer with a parameter column "
                             f"and step-size tables (Lemma C.1); a multi-layer or masked construction is data 'mrp'")

    def _check_mrp(self):
        lay = self.spec.layout
        if self.acts_with is not None:
            raise ValueError(f"algorithm {self.name!r}: an mrp record evaluates; acts_with must be None")
        if self.spec.kind == "softmax":
            self._check_softmax()
            return
        if self.rule not in rules.BATCH_TD:
            raise ValueError(f"algorithm {self.name!r}: an mrp record's teacher must be one of "
                             f"{', '.join(rules.rule_name(r) for r in rules.BATCH_TD)}")
        if len(lay.readout) != 1 or lay.has_parameter_column:
            raise ValueError(f"algorithm {self.name!r}: an mrp record reads one signed entry of the last column")
        blocks = [b for b, _ in lay.context]
        if self.carried not in blocks or (self.spec.writes is not None and self.carried not in self.spec.writes):
            raise ValueError(f"algorithm {self.name!r}: carried row {self.carried!r} must be a written block")
        if not self.construction.preconditioned:
            raise ValueError(f"algorithm {self.name!r}: an mrp record's P is preconditioned (coef * C^T blocks)")
        sizes = dict(lay.context)
        for (rb, cb), _ in self.construction.p:
            if sizes.get(rb) != "d" or sizes.get(cb) != "d":
                raise ValueError(f"algorithm {self.name!r}: P entry ({rb}, {cb}) must join two d-blocks")
        for table in self.construction.v:
            for (rb, cb), _ in table:
                if sizes.get(rb) != 1 or sizes.get(cb) != 1:
                    raise ValueError(f"algorithm {self.name!r}: V entry ({rb}, {cb}) must join two 1-blocks")

    def _check_softmax(self):
        """A softmax record (Xie et al. 2026): its teacher is a kernel-weighted
        TD rule (:data:`theory.rules.KERNEL_TD`), its weights ``(A, V)`` sit in
        the ``(P, V)`` tables (plain entries, no preconditioner: the step is
        ``alpha``), it reads one entry of the last column, and that entry's
        row is a context row that starts at zero (the values ``v_0 = 0``)."""
        lay = self.spec.layout
        if self.rule not in rules.KERNEL_TD:
            raise ValueError(f"algorithm {self.name!r}: a softmax record's teacher must be one of "
                             f"{', '.join(rules.rule_name(r) for r in rules.KERNEL_TD)}")
        if len(lay.readout) != 1 or lay.has_parameter_column or lay.params:
            raise ValueError(f"algorithm {self.name!r}: a softmax record reads one signed entry of the last column "
                             f"of a prompt without parameter rows")
        holds = {b: q for b, _, q in self.context}
        if holds.get(self.carried) != "zero":
            raise ValueError(f"algorithm {self.name!r}: the read-out row {self.carried!r} must start at zero "
                             f"(quantity 'zero': the values v_0 = 0)")
        if self.construction.preconditioned:
            raise ValueError(f"algorithm {self.name!r}: a softmax record's A and V are plain tables "
                             f"(preconditioned = false)")
        sizes = dict(lay.context)
        for table in self.construction.v:
            for (rb, cb), _ in table:
                if sizes.get(rb) != 1 or sizes.get(cb) != 1:
                    raise ValueError(f"algorithm {self.name!r}: V entry ({rb}, {cb}) must join two 1-blocks")
        if self.steps != ("alpha",):
            raise ValueError(f"algorithm {self.name!r}: a softmax record's step is alpha, got {self.steps}")

    @property
    def layout(self):
        return self.spec.layout

    @property
    def form(self) -> str | None:
        """A softmax record's form (Xie et al.'s Theorem 1): ``two-head`` (a
        second head whose attention is shifted to the successor column),
        ``one-head`` (one head and the token shift of Lemma 1), ``other``;
        None for the linear kind."""
        if self.spec.kind != "softmax":
            return None
        if self.spec.heads == (None, "successor") and self.spec.post is None:
            return "two-head"
        if self.spec.heads == (None,) and self.spec.post == "token-shift":
            return "one-head"
        return "other"

    def exact_hp(self, steps: dict | None = None) -> dict:
        """``hp`` for the rule in exact arithmetic: the step sizes (symbols
        unless given) and the constants."""
        hp = dict(STEP_SIZES)
        hp.update(steps or {})
        hp.update(dict(self.constants))
        return hp

    def numeric_hp(self, steps: dict) -> dict:
        """``hp`` for the rule in floating point: the step sizes and the constants."""
        return {**steps, **{k: float(v) for k, v in self.constants}}

    @property
    def controls(self) -> bool:
        return self.acts_with is not None

    @property
    def quantities(self) -> tuple[str, ...]:
        """The per-transition quantities the prompt needs."""
        return tuple(dict.fromkeys(q for _, _, q in self.context))

    def d_of(self, states: int, actions: int) -> int:
        """Feature dimension when features are one-hot or Section 4.1's dense ones."""
        return states if self.features == "state" else states * actions

    # ---- layer-by-layer (mrp) records --------------------------------------
    @property
    def direction(self) -> str:
        """What ``delta_j`` multiplies in the batch step (``phi``, ``trace``,
        ``residual``; ``kernel`` for a softmax record: the kernel weight)."""
        if self.rule in rules.KERNEL_TD:
            return "kernel"
        return rules.BATCH_TD[self.rule][0]

    @property
    def centered(self) -> bool:
        """True when ``delta_j`` uses ``r_j - rbar_j`` (average-reward TD)."""
        if self.rule in rules.KERNEL_TD:
            return False
        return rules.BATCH_TD[self.rule][1]

    @property
    def carried(self) -> str:
        """The row that carries the state from layer to layer: the read-out's."""
        return self.layout.readout[0][0]

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

    def spec_at(self, layers: int | None = None, tied: bool | None = None, lam_value=None,
                mask: str | None = None) -> BlockSpec:
        """The specification with ``layers`` layers, tied or untied (the
        record's own when None); the decay symbol replaced by ``lam_value``
        when given; ``mask`` overrides the mask (``"none"``: the planted
        missing-mask fault)."""
        spec = replace(self.spec, depth=self.spec.depth if layers is None else layers,
                       tied=self.spec.tied if tied is None else tied)
        if lam_value is not None and spec.has_decay:
            spec = replace(spec, decay=lam_value)
        if mask is not None:
            spec = replace(spec, mask=mask, decay=spec.decay if mask == "context" else 0)
        return spec


def _value(name, next_rule, statement, **kw):
    return Algorithm(name=name, spec=VALUE_SPEC, construction=C.SARSA,
                     context=(("phi", sp.Integer(1), "phi"), ("gphi_next", gamma, "phi_next"), ("r", sp.Integer(1), "r")),
                     rule=rules.semi_gradient, next_rule=next_rule, theorem="Theorem 3.1", statement=statement, **kw)


def _sarsa() -> Algorithm:
    return _value("sarsa", "taken", "w + (alpha/n) sum_i (r_{i+1} + gamma w.phi+_i - w.phi_i) phi_i")


def _expected_sarsa() -> Algorithm:
    return _value("expected-sarsa", "expected",
                  "SARSA with phi+_i = sum_b pi(b|s_{i+1}) phi(s_{i+1}, b) (epsilon-greedy pi in Q_w)")


def _q_learning() -> Algorithm:
    return _value("q-learning", "greedy",
                  "SARSA with phi+_i = phi(s_{i+1}, argmax_b Q_w(s_{i+1}, b)) (argmax taken when the prompt is built)")


def _td() -> Algorithm:
    return _value("td", "taken", "TD(0) policy evaluation with state features: "
                  "w + (alpha/n) sum_i (r + gamma w.psi(s_{i+1}) - w.psi(s_i)) psi(s_i)",
                  behaviour="uniform", features="state", acts_with=None)


def _actor_critic() -> Algorithm:
    return Algorithm(
        name="actor-critic", spec=ACTOR_CRITIC_SPEC, construction=C.ACTOR_CRITIC,
        context=(("phi", sp.Integer(1), "phi"), ("gphi_next", gamma, "phi_next"), ("r", sp.Integer(1), "r"),
                 ("g", sp.Integer(1), "g")),
        rule=rules.actor_critic, behaviour="softmax", acts_with="lam", theorem="Theorem 3.3", steps=("alpha", "beta"),
        notes=("Theorem 3.3's layout and update are reconstructed (THEORY.md section 4); the proof is of that "
               "reconstruction.",),
        statement="(w + (alpha/n) sum_i delta_i phi_i, lam + (beta/n) sum_i delta_i g_i), "
                  "g_i = phi(s_i,a_i) - sum_b pi_lam(b|s_i) phi(s_i,b)")


def _evaluation_spec(decay=0):
    # three layers by default (their L = 3; --layers and spec_at choose another depth); their layer writes every row (their P, our V, is a full matrix); the constructions' V happens to write
    # only the carried row, and the check verifies that every other entry stays untouched
    return BlockSpec(WANG_LAYOUT, depth=3, mask="context", decay=decay)


_TD_CONTEXT = (("phi", sp.Integer(1), "phi"), ("gphi_next", gamma, "phi_next"), ("r", sp.Integer(1), "r"))


def _evaluation(name, title, rule, construction, statement, spec=None, context=_TD_CONTEXT, **kw):
    return Algorithm(name=name, title=title, spec=spec or _evaluation_spec(), construction=construction,
                     context=context, rule=rule, data="mrp", features="state", behaviour="uniform", acts_with=None,
                     steps=("C",), theorem="Wang et al. (ICLR 2025)", statement=statement, **kw)


def _td_preconditioned() -> Algorithm:
    return _evaluation("td-preconditioned", "TD(0) with a preconditioner", rules.semi_gradient,
                       C.TD_PRECONDITIONED,
                       "w_{l+1} = w_l + (1/n) C_l sum_j (r_j + gamma w_l.phi'_j - w_l.phi_j) phi_j")


def _td_lambda() -> Algorithm:
    return _evaluation("td-lambda", "TD(lambda)", rules.td_lambda, C.TD_PRECONDITIONED,
                       "w_{l+1} = w_l + (1/n) C_l sum_i delta_i(w_l) e_i, e_i = lambda e_{i-1} + phi_i, e_{-1} = 0",
                       spec=_evaluation_spec(lam))


def _rg() -> Algorithm:
    return _evaluation("rg", "residual gradient", rules.residual_gradient, C.RESIDUAL_GRADIENT,
                       "w_{l+1} = w_l + (1/n) C_l sum_j delta_j(w_l) (phi_j - gamma phi'_j)")


def _avg_reward() -> Algorithm:
    return _evaluation(
        "avg-reward", "average-reward TD", rules.average_reward, C.AVERAGE_REWARD,
        "w_{l+1} = w_l + (1/n) C_l sum_j (r_j - rbar_j + w_l.phi'_j - w_l.phi_j) phi_j, rbar_j = mean(r_0..r_j)",
        spec=BlockSpec(WANG_AVG_LAYOUT, depth=3, mask="context", heads=("running-mean", None)),
        context=(("phi", sp.Integer(1), "phi"), ("phi_next", sp.Integer(1), "phi_next"), ("r", sp.Integer(1), "r"),
                 ("y", sp.Integer(1), "zero")),
        notes=("Two heads share P: head 1 reads the reward row through the running-mean operator R on the value "
               "side ((Z R)[:, j] = mean of columns 0..j minus column j), head 2 reads row y; both write row y. "
               "This is their AVGREWTDLayer; it equals the one-head TD(0) construction with gamma = 1 on a prompt "
               "whose reward row already holds r_j - rbar_j (checked numerically).",))


#: Xie et al. (2026)'s prompt Z_0 = [X; R; 0; 0]: features, rewards, and the two value-memory rows at zero.
_XIE_CONTEXT = (("phi", sp.Integer(1), "phi"), ("r", sp.Integer(1), "r"), ("target", sp.Integer(1), "zero"),
                ("current", sp.Integer(1), "zero"))
#: Theorem 1's row alpha [1, 1, -1] on (reward, target, current): the TD error r + gamma v(s') - v(s), times alpha.
_TD_ERROR_ROW = (("r", sp.Integer(1)), ("target", sp.Integer(1)), ("current", sp.Integer(-1)))
#: Theorem 1's A = diag(I_d, 0, 0, 0): the attention scores are the feature inner products g(s_j, s_i).
SOFTMAX_A = ((("phi", "phi"), sp.Integer(1)),)
SOFTMAX_STATEMENT = "v_{l+1}(s_j) = v_l(s_j) + alpha sum_k delta_k K(s_{k-1}, s_j)"
SOFTMAX_CITATION = "Xie, Liu, Chen, Liu, Chandra, Zhang (2026), arXiv 2605.07333"


def softmax_construction(form: str) -> C.Construction:
    """Theorem 1's ``(A, V)`` as tables: ``A = diag(I, 0)``; the current row
    of head 1 is ``alpha [1, 1, -1]`` on (reward, target, current); with two
    heads, head 2 (attention shifted to the successor) writes ``gamma alpha
    [1, 1, -1]`` into the target row, keeping ``target_j = gamma
    current_{j+1}``.  ``form``: ``one-head`` or ``two-head``."""
    head1 = tuple((("current", cb), alpha * c) for cb, c in _TD_ERROR_ROW)
    if form == "one-head":
        return C.Construction(p=SOFTMAX_A, v=(head1,))
    head2 = tuple((("target", cb), gamma * alpha * c) for cb, c in _TD_ERROR_ROW)
    return C.Construction(p=SOFTMAX_A, v=(head1, head2))


def softmax_spec(form: str, depth: int = 3) -> BlockSpec:
    """The block of Theorem 1: softmax layers with the additive query mask;
    ``two-head`` (the second head's attention times ``Pi``) or ``one-head``
    plus Lemma 1's token shift."""
    heads, post = ((None, "successor"), None) if form == "two-head" else ((None,), "token-shift")
    return BlockSpec(XIE_LAYOUT, depth=depth, mask="context", kind="softmax", heads=heads, post=post)


def _softmax(name, form, theorem, title, notes):
    return Algorithm(name=name, title=title, spec=softmax_spec(form), construction=softmax_construction(form),
                     context=_XIE_CONTEXT, rule=rules.weighted_softmax_td, data="mrp", features="state",
                     behaviour="uniform", acts_with=None, steps=("alpha",), theorem=f"{theorem}, {SOFTMAX_CITATION}",
                     statement=SOFTMAX_STATEMENT, notes=notes)


def _softmax_td() -> Algorithm:
    return _softmax("softmax-td", "two-head", "Theorem 1", "weighted softmax TD (two heads)",
                    ("Two heads share A; head 2's attention is right-multiplied by the shift Pi ((S Pi)[:, j] = "
                     "S[:, j+1]), so the target row holds gamma v(s_{j+1}) after every layer (our reading of Theorem "
                     "1; docs/xie2026.md).",))


def _softmax_td_shift() -> Algorithm:
    return _softmax("softmax-td-shift", "one-head", "Lemma 1", "weighted softmax TD (one head, token shift)",
                    ("One head, then Lemma 1's parameter-free token shift U Z + W Z Pi: the target row becomes gamma "
                     "times the successor's current value (our reading; docs/xie2026.md).",))


#: The built-in records by name, in report order: each record is built when
#: it is asked for (a few microseconds), never at import, so that nothing about
#: a record is fixed before the code that builds it runs (mutation testing
#: switches that code per test process; property_tests/README.md).
_BUILTIN = {"sarsa": _sarsa, "expected-sarsa": _expected_sarsa, "q-learning": _q_learning,
                   "actor-critic": _actor_critic, "td": _td,
                   "td-preconditioned": _td_preconditioned, "td-lambda": _td_lambda, "rg": _rg,
                   "avg-reward": _avg_reward, "softmax-td": _softmax_td, "softmax-td-shift": _softmax_td_shift}

#: Names accepted for one release under ``--layout wang2025`` (deprecated): the old name of Wang et al.'s TD(0)
#: record, which now is ``td-preconditioned`` (``td`` names Liang & Lai's TD(0)).
LAYOUT_ALIASES = {"wang2025": {"td": "td-preconditioned"}}

#: Records added with :func:`register` (a paper name here replaces the paper's record).
_REGISTRY: dict[str, Algorithm] = {}


def builtin(data: str | None = None) -> tuple[Algorithm, ...]:
    """The built-in records, in report order (fresh records, equal on every
    call); only those running on ``data`` when given."""
    out = tuple(build() for build in _BUILTIN.values())
    return out if data is None else tuple(r for r in out if r.data == data)


def paper() -> tuple[Algorithm, ...]:
    """Liang & Lai's algorithms (the built-in ``mdp`` records), in report order."""
    return builtin("mdp")


def evaluation() -> tuple[Algorithm, ...]:
    """Wang et al.'s algorithms (the built-in ``mrp`` records of the linear kind), in report order."""
    return tuple(r for r in builtin("mrp") if r.spec.kind == "linear")


def softmax() -> tuple[Algorithm, ...]:
    """Xie et al.'s (2026) algorithms (the built-in records of the softmax kind), in report order."""
    return tuple(r for r in builtin("mrp") if r.spec.kind == "softmax")


def register(record: Algorithm, replace: bool = False) -> Algorithm:
    """Add ``record`` to the registry (the command line's ``--algorithm``
    choices are read from it when a parser is built)."""
    if not isinstance(record, Algorithm):
        raise TypeError(f"register: expected an Algorithm record, got {type(record).__name__}")
    if record.name in names() and not replace:
        raise ValueError(f"register: algorithm {record.name!r} exists; pass replace=True to redefine it")
    _REGISTRY[record.name] = record
    return record


def unregister(name: str) -> None:
    if name in _BUILTIN:
        raise ValueError(f"unregister: {name!r} is one of the paper's algorithms")
    _REGISTRY.pop(name, None)


def names(data: str | None = None) -> tuple[str, ...]:
    """Every registered name: the built-in ones, then the user's (only those
    running on ``data`` when given)."""
    every = tuple(dict.fromkeys([*_BUILTIN, *_REGISTRY]))
    return every if data is None else tuple(a for a in every if get(a).data == data)


def get(algorithm) -> Algorithm:
    """The record for a name (or the record itself); :class:`InputError`
    naming the field for an unknown name."""
    if isinstance(algorithm, Algorithm):
        return algorithm
    try:
        if algorithm in _REGISTRY:
            return _REGISTRY[algorithm]
        return _BUILTIN[algorithm]()
    except (KeyError, TypeError):
        raise InputError("algorithm", f"unknown {algorithm!r}; expected one of {', '.join(names())}") from None


@contextmanager
def using(records):
    """Inside the block, each of ``records`` is what its name resolves to
    (the parser's ``--algorithm`` choices included); the registry is
    restored after.  For a worker process handed records by value
    (``numerics.io.records``), whose fresh registry lacks the user's; one
    task at a time per process (the sweep's workers are single-threaded)."""
    saved = dict(_REGISTRY)
    _REGISTRY.update({r.name: r for r in records})
    try:
        yield
    finally:
        _REGISTRY.clear()
        _REGISTRY.update(saved)


def with_p_sign_flipped(record: Algorithm, entry=("phi", "phi")) -> Algorithm:
    """The record with one ``P`` table entry negated (a planted fault)."""
    return replace(record, construction=record.construction.flipped(entry))
