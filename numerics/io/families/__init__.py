"""The registry of named MDP families (``--family NAME``, docs/families.md).

A family is one :class:`Family` record: its name, a generator
``generate(seed, batch, *, gamma, gamma_range, **params) -> dict`` of the
batch arrays of :mod:`numerics.io.mdp_batch` (``T``, ``R``, ``gamma``,
``rho0``, ``features``), its parameters (:class:`Param`: keyword, option
kind, default, help, command-line flag), its sizes by arithmetic (for the
memory guard, before anything is generated) and optionally names for its
feature coordinates.  Every module of this package registers its family
when it is imported, and importing the package imports every module in it
(:func:`_discover`): a new family is one file here plus its paragraph in
docs/families.md.  The parameters become options of every command that
takes an MDP source (``--FLAG`` and the configuration key ``FLAG``,
``numerics.io.sources.add_source_options``) without further code.

A family defined outside the package (a user's file, a test) calls
:func:`register` itself; an :class:`~numerics.io.sources.MDPSource` carries
the record by value, so worker processes never look the name up (its
functions must be module-level, as for any process pool).

``section41`` (the default of ``--family``) is not a record here: it is the
built-in :class:`~numerics.core.distributions.MDPDistribution` with the
common options ``--states --actions --features``.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from numerics.core.tolerances import DTYPE
from numerics.io.mdp_batch import GeneratorDistribution
from numerics.io.options import Kind
from theory.errors import InputError

#: The name of the built-in Section 4.1 distribution among ``--family``'s choices.
SECTION41 = "section41"


@dataclass(frozen=True)
class Param:
    """One parameter of a family.

    Attributes:
      key: the keyword of ``generate`` (and of the source's parameters).
      kind: the option kind (``numerics.io.options``) that parses the flag
        and checks the configuration key.
      default: the value when the option is not given.
      help: one phrase for ``--help`` (the family's name and the default are
        added).
      flag: the command-line option; default ``--FAMILY-KEY``.  Families may
        share a flag (``--family-features``); then its kind is the union of
        their choices and each family checks its own.
      values: option text -> parameter value, for a choice whose value is
        not its text (``--slippery yes`` -> ``True``); None: the text itself.
    """

    key: str
    kind: Kind
    default: object
    help: str
    flag: str = ""
    values: tuple[tuple[str, object], ...] | None = None

    def option(self, family: str) -> str:
        return self.flag or f"--{family}-{self.key.replace('_', '-')}"

    @property
    def shown_default(self):
        """The default as the option writes it."""
        if self.values is not None:
            return next(text for text, v in self.values if v == self.default)
        return self.default

    def value(self, family: str, given):
        """The parameter value of the option value ``given`` (None: the
        default), checked by the kind; :class:`InputError` naming the flag."""
        field = self.option(family)[2:]
        if given is None:
            return self.default
        if self.values is not None:
            table = dict(self.values)
            if given in table:
                return table[given]
            if given in table.values():             # already a parameter value (a program's call)
                return given
            raise InputError(field, f"{family}: expected one of {', '.join(table)}, got {given!r}")
        try:
            return self.kind.check(self.kind.native(given))
        except (ValueError, TypeError) as e:
            raise InputError(field, f"{family}: {e}") from None


@dataclass(frozen=True)
class Family:
    """A named family of MDPs (see the module docstring).

    Attributes:
      name: ``--family NAME``.
      summary: one line for ``--family``'s help (what it is, with its source).
      generate: ``(seed, batch, *, gamma, gamma_range, **params) -> dict``
        of the batch arrays for ``batch`` fresh MDPs.
      sizes: ``params -> (states, actions, d)`` of one MDP, by arithmetic.
      params: the parameters, in the order reports list them.
      check: ``params -> None``, raising :class:`InputError` for a bad
        combination the kinds alone cannot see (optional).
      labels: ``(params, actions) -> (k -> str)`` names of the feature
        coordinates ``k`` (richness reports), or None (optional).
    """

    name: str
    summary: str
    generate: Callable
    sizes: Callable
    params: tuple[Param, ...] = ()
    check: Callable | None = None
    labels: Callable | None = None

    def resolve(self, given: dict) -> tuple[tuple[str, object], ...]:
        """Every parameter's value (``given``, else its default), checked;
        ``(key, value)`` pairs in the declared order."""
        keys = {p.key for p in self.params}
        unknown = [k for k in given if k not in keys]
        if unknown:
            raise InputError("family", f"{self.name} has no parameter {unknown[0]!r}; its parameters: "
                                       f"{', '.join(sorted(keys)) or 'none'}")
        out = tuple((p.key, p.value(self.name, given.get(p.key))) for p in self.params)
        if self.check is not None:
            self.check(dict(out))
        return out

    def distribution(self, params: dict, gamma: float, gamma_range=None) -> GeneratorDistribution:
        """The family's MDPs with ``params`` (resolved) as a distribution."""
        gr = tuple(gamma_range) if gamma_range else None
        shown = ", ".join(f"{k} {v}" for k, v in params.items())
        g = f"gamma ~ Unif{gr}" if gr else f"gamma {gamma}"
        bound = functools.partial(self.generate, gamma=gamma, gamma_range=gr, **params)
        out = GeneratorDistribution(bound, f"family {self.name}", field="family")
        out.description = f"family {self.name} ({shown}, {g}), {out.states} states, {out.actions} actions, d = {out.d}"
        return out


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` under its name (again: no change; another record
    under a taken name: :class:`InputError`)."""
    if not isinstance(family, Family):
        raise InputError("family", f"expected a Family record, got {type(family).__name__}")
    if family.name == SECTION41 or not family.name.replace("-", "").isalnum():
        raise InputError("family", f"a family needs a plain name (letters, digits, '-'), not {family.name!r}")
    old = _REGISTRY.get(family.name)
    if old is not None and _origin(old) != _origin(family):      # the same module imported again is no change
        raise InputError("family", f"{family.name!r} is already registered (by {_origin(old)[0]})")
    _REGISTRY[family.name] = family
    return family


def _origin(family: Family) -> tuple[str, str]:
    return family.generate.__module__, family.generate.__qualname__


def unregister(name: str):
    """Remove the family ``name`` (a test's own family, after the test)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Family:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError("family", f"unknown {name!r}; expected one of {', '.join(names())}") from None


def names() -> tuple[str, ...]:
    """``section41`` and every registered family, in registration order."""
    return (SECTION41, *_REGISTRY)


def family_distribution(name: str, *, gamma: float, gamma_range=None, **params) -> GeneratorDistribution:
    """The distribution of the registered family ``name`` with ``params``
    (the others at their defaults)."""
    fam = get(name)
    return fam.distribution(dict(fam.resolve(params)), gamma, gamma_range)


# ------------------------------------------------------------- shared by families

def gammas(gen: torch.Generator, batch: int, gamma: float, gamma_range) -> np.ndarray:
    """One discount per MDP: ``gamma``, or ``Unif(gamma_range)`` drawn from ``gen``."""
    if gamma_range is None:
        return np.full(batch, float(gamma))
    lo, hi = gamma_range
    return (lo + (hi - lo) * torch.rand(batch, generator=gen, dtype=DTYPE)).numpy()


def onehot_labels(params: dict, actions: int):
    """``'s3 a1'`` for one-hot (state, action) features in the order ``s A + a``."""
    return lambda k: f"s{k // actions} a{k % actions}"


def _discover():
    """Import every module of this package (each registers its family)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}")


_discover()
