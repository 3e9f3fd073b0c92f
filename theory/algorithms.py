"""Algorithm records and their registry: everything that distinguishes one
in-context algorithm from another, resolved once by name.

A record is data plus one teacher rule (:mod:`theory.rules`):

* ``spec``: the block specification (layout, depth, mask);
* ``construction``: the weight tables (:mod:`theory.constructions`);
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
  SymPy numbers in proofs, floats in the numerics);
* ``theorem``, ``statement``: what the paper claims, for reports.

Everything below the command line takes a record; :func:`get` is the only
place a name is resolved, and nothing else branches on the name.  A user
adds an algorithm with :func:`register` (see docs/algorithms.md).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

from theory import constructions as C
from theory import rules
from theory.errors import InputError
from theory.spec import ACTOR_CRITIC_SPEC, VALUE_SPEC, BlockSpec
from theory.symbols import STEP_SIZES, gamma

QUANTITIES = ("phi", "phi_next", "r", "g", "one")
NEXT_RULES = ("taken", "expected", "greedy")
BEHAVIOURS = ("epsilon-greedy", "softmax", "uniform")
FEATURES = ("state-action", "state")


@dataclass(frozen=True)
class Algorithm:
    """One in-context algorithm (see the module docstring)."""

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

    def __post_init__(self):
        lay = self.spec.layout
        ctx_blocks = [b for b, _ in lay.context]
        filled = [b for b, _, _ in self.context]
        if sorted(filled) != sorted(ctx_blocks):
            raise ValueError(f"algorithm {self.name!r}: context recipe fills {filled}, layout has {ctx_blocks}")
        for b, _, q in self.context:
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

    @property
    def layout(self):
        return self.spec.layout

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


#: The paper's algorithms by name, in report order: each record is built when
#: it is asked for (a few microseconds), never at import, so that nothing about
#: a record is fixed before the code that builds it runs (mutation testing
#: switches that code per test process; property_tests/README.md).
_PAPER_BUILDERS = {"sarsa": _sarsa, "expected-sarsa": _expected_sarsa, "q-learning": _q_learning,
                   "actor-critic": _actor_critic, "td": _td}

#: Records added with :func:`register` (a paper name here replaces the paper's record).
_REGISTRY: dict[str, Algorithm] = {}


def paper() -> tuple[Algorithm, ...]:
    """The paper's algorithms, in report order (fresh records, equal on every call)."""
    return tuple(build() for build in _PAPER_BUILDERS.values())


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
    if name in _PAPER_BUILDERS:
        raise ValueError(f"unregister: {name!r} is one of the paper's algorithms")
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered name: the paper's, then the user's."""
    return tuple(dict.fromkeys([*_PAPER_BUILDERS, *_REGISTRY]))


def get(algorithm) -> Algorithm:
    """The record for a name (or the record itself); :class:`InputError`
    naming the field for an unknown name."""
    if isinstance(algorithm, Algorithm):
        return algorithm
    try:
        if algorithm in _REGISTRY:
            return _REGISTRY[algorithm]
        return _PAPER_BUILDERS[algorithm]()
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
