"""Where a command's MDPs come from, as one value (docs/families.md): the
built-in Section 4.1 options (default), ``--family NAME`` with its
parameters, ``--mdp-batch FILE.npz`` or ``--distribution module:function``;
at most one of the last three.

:func:`source_from_args` turns the options into an :class:`MDPSource` once,
at the command line; everything after it (analysis code, the configuration
of a training run, process pools) receives that value.  The source is
frozen, hashable and picklable; :meth:`MDPSource.distribution` realises it
(once per process: a batch file is read, a generator imported, a family's
first MDP generated), :meth:`MDPSource.describe` says what it is.
"""
from __future__ import annotations

import argparse
import functools
import os
from dataclasses import asdict, dataclass

from numerics.core.distributions import Distribution, MDPDistribution
from numerics.io import families
from numerics.io.config import distribution_from_args
from numerics.io.mdp_batch import BatchDistribution, GeneratorDistribution, load_callable, load_mdp_batch
from numerics.io.options import Choice, Path, Text
from theory import algorithms as registry
from theory.errors import InputError

#: The kinds of source: the Section 4.1 options, a named family, a batch file, a generator.
SOURCE_KINDS = ("section41", "family", "batch", "generator")


@dataclass(frozen=True)
class MDPSource:
    """Where MDPs come from.

    Attributes:
      kind: one of :data:`SOURCE_KINDS`.
      name: ``section41``, the family's name, the batch file's path, or
        ``MODULE:FUNCTION``.
      params: ``(key, value)`` pairs: the :class:`MDPDistribution` fields
        (``section41``), or the family's parameters then ``gamma`` and
        ``gamma_range`` (``family``); empty otherwise.
      family: the family's record (``family``), carried by value so that a
        worker process never looks the name up.
    """

    kind: str
    name: str
    params: tuple[tuple[str, object], ...] = ()
    family: families.Family | None = None

    def __post_init__(self):
        if self.kind not in SOURCE_KINDS:
            raise InputError("source", f"unknown kind {self.kind!r}; expected one of {', '.join(SOURCE_KINDS)}")

    # ------------------------------------------------------------ builders

    @staticmethod
    def section41(dist: MDPDistribution | None = None) -> "MDPSource":
        """The built-in distribution ``dist`` (default: Section 4.1 itself)."""
        return MDPSource("section41", "section41", tuple(asdict(dist or MDPDistribution()).items()))

    @staticmethod
    def of_family(family: str | families.Family, *, gamma: float, gamma_range=None, **params) -> "MDPSource":
        """The family ``family`` (a registered name or a record) with
        ``params`` (the others at their defaults), checked now."""
        fam = families.get(family) if isinstance(family, str) else family
        if not isinstance(fam, families.Family):
            raise InputError("family", f"expected a family name or record, got {type(family).__name__}")
        gr = tuple(float(x) for x in gamma_range) if gamma_range else None
        MDPDistribution(gamma=gamma, gamma_range=gr)            # the discount checked as for Section 4.1
        return MDPSource("family", fam.name, fam.resolve(params) + (("gamma", gamma), ("gamma_range", gr)), fam)

    @staticmethod
    def batch(path: str) -> "MDPSource":
        return MDPSource("batch", path)

    @staticmethod
    def generator(spec: str) -> "MDPSource":
        return MDPSource("generator", spec)

    # ---------------------------------------------------------- reading it

    @property
    def is_default(self) -> bool:
        """Whether this is the Section 4.1 options' own distribution."""
        return self.kind == "section41"

    @property
    def family_params(self) -> dict:
        """A family's own parameters (without the discount)."""
        return {k: v for k, v in self.params if k not in ("gamma", "gamma_range")}

    @property
    def label(self) -> str:
        """A short name for report names: the feature kind, the family, ``batch`` or ``generator``."""
        return dict(self.params)["features"] if self.is_default else self.name if self.kind == "family" else self.kind

    def distribution(self) -> Distribution:
        """The realised distribution (``MDPDistribution``,
        ``GeneratorDistribution`` or ``BatchDistribution``), once per process
        (a batch file again when it has changed on disk)."""
        return _realise(self, _stamp(self))

    def sample(self, num: int, gen, device=None):
        """``num`` MDPs and their features, ``(MDP, F)``, drawn with ``gen``."""
        return self.distribution().sample(num, gen, device=device)

    def describe(self) -> str:
        return self.distribution().describe()

    def sizes(self) -> tuple[int, int, int] | None:
        """``(states, actions, d)`` of one MDP by arithmetic, before anything
        is generated (the size guard); None for a batch file or a generator
        (their sizes are known once they are read)."""
        p = dict(self.params)
        if self.is_default:
            return p["states"], p["actions"], p["states"] * p["actions"]
        if self.kind == "family":
            return tuple(int(x) for x in self.family.sizes(self.family_params))
        return None

    def pair_labels(self, actions: int):
        """``k -> name`` of the feature coordinate ``k`` where the features
        are one-hot per (state, action) in the order ``s A + a``; else None."""
        if self.kind == "family" and self.family.labels is not None:
            return self.family.labels(self.family_params, actions)
        if self.is_default and dict(self.params)["features"] == "onehot":
            return families.onehot_labels({}, actions)
        return None

    def report(self) -> dict:
        """What a report lists for a source other than Section 4.1: its
        file or name, MDP count, states, actions, feature dimension and
        discount(s)."""
        dist = self.distribution()
        src = dict(states=int(dist.states), actions=int(dist.actions), features_dim=int(dist.d))
        if self.kind == "batch":                 # a batch file: what it holds
            g = dist.mdp.gamma
            src |= dict(mdp_batch=self.name, mdps_in_batch=int(dist.mdp.batch), features="batch")
            src |= (dict(gamma=float(g[0])) if bool((g == g[0]).all()) else
                    dict(gamma_range=[float(g.min()), float(g.max())]))
        elif self.kind == "generator":
            src |= dict(distribution=self.name, features="generator")
        elif self.kind == "family":
            p = dict(self.params)
            src |= dict(family=self.name, family_params=self.family_params, gamma=p["gamma"],
                        gamma_range=list(p["gamma_range"]) if p["gamma_range"] else None)
        return src

    def as_dict(self) -> dict | None:
        """Plain data for a configuration file or checkpoint (None for
        Section 4.1, whose options the configuration holds itself)."""
        if self.kind == "batch":
            return {"mdp-batch": self.name}
        if self.kind == "generator":
            return {"distribution": self.name}
        if self.kind == "family":
            p = dict(self.params)
            return {"family": self.name, "params": self.family_params, "gamma": p["gamma"],
                    "gamma_range": list(p["gamma_range"]) if p["gamma_range"] else None}
        return None

    @staticmethod
    def from_dict(d: dict) -> "MDPSource":
        """The source of :meth:`as_dict` (a family by its registered name)."""
        if not isinstance(d, dict):
            raise InputError("source", f"not a source: {d!r}")
        if "mdp-batch" in d:
            return MDPSource.batch(d["mdp-batch"])
        if "distribution" in d:
            return MDPSource.generator(d["distribution"])
        if "family" in d:
            return MDPSource.of_family(d["family"], gamma=d["gamma"], gamma_range=d.get("gamma_range"),
                                       **d.get("params", {}))
        raise InputError("source", f"not a source: {d!r}")


def _stamp(source: MDPSource):
    """What tells one version of a batch file from the next (None otherwise)."""
    if source.kind != "batch":
        return None
    try:
        st = os.stat(source.name)
    except OSError:
        return None                          # the load names the file and the problem
    return st.st_mtime_ns, st.st_size, st.st_ino


@functools.lru_cache(maxsize=8)
def _realise(source: MDPSource, stamp) -> Distribution:
    if source.kind == "section41":
        return MDPDistribution(**dict(source.params))
    if source.kind == "batch":
        mdp, F = load_mdp_batch(source.name)
        return BatchDistribution(mdp, F, source.name)
    if source.kind == "generator":
        return GeneratorDistribution(load_callable(source.name), source.name)
    p = dict(source.params)
    return source.family.distribution(source.family_params, p["gamma"], p["gamma_range"])


# ------------------------------------------------------------ the options

def add_source_options(p: argparse.ArgumentParser):
    """``--family`` with every registered family's parameters as options
    (a flag shared by several families takes the union of their choices,
    default: each family's own), ``--mdp-batch`` and ``--distribution``."""
    g = p.add_argument_group("MDP source (default: the Section 4.1 options above; docs/families.md)")
    fams = [families.get(n) for n in families.names()[1:]]
    g.add_argument("--family", choices=families.names(), default=families.SECTION41,
                   help="named family: section41 (the options above), "
                        + ", ".join(f"{f.name} ({f.summary})" for f in fams) + "; gamma from --gamma / --gamma-range")
    flags: dict[str, list] = {}
    for f in fams:
        for prm in f.params:
            flags.setdefault(prm.option(f.name), []).append((f, prm))
    for flag, users in flags.items():
        f0, p0 = users[0]
        if len(users) == 1:
            kind, default = p0.kind, p0.shown_default
            text = f"{f0.name}: {p0.help} ({default})"
        else:                                          # shared: each family's default and choices
            kind, default = _union(flag, [prm for _, prm in users]), None
            text = "; ".join(f"{f.name}: {' or '.join(prm.kind.choices) if isinstance(prm.kind, Choice) else ''} "
                             f"({prm.shown_default}; {prm.help})" for f, prm in users)
        g.add_argument(flag, type=kind, default=default, help=text,
                       choices=kind.choices if isinstance(kind, Choice) else None)
    g.add_argument("--mdp-batch", type=Path(), metavar="FILE.npz", default=None,
                   help="MDPs from a batch file (T, R, gamma, rho0, features), drawn with replacement")
    g.add_argument("--distribution", type=Text(), metavar="MODULE:FUNCTION", default=None,
                   help="MDPs from your generator FUNCTION(seed: int, batch: int) -> dict of the batch arrays")


def _union(flag: str, params) -> Choice:
    if not all(isinstance(prm.kind, Choice) for prm in params):
        raise InputError("family", f"families share {flag} with different kinds of value; give each its own flag")
    return Choice(sorted({c for prm in params for c in prm.kind.choices}))


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def family_options(args, family: families.Family) -> dict:
    """The options ``args`` gives ``family``'s parameters (None: its default)."""
    return {prm.key: getattr(args, _dest(prm.option(family.name)), None) for prm in family.params}


def source_from_args(args, algorithm=None) -> MDPSource:
    """The source the options name, checked (nothing is generated or read
    yet: :meth:`MDPSource.distribution` does that).  Commands without the
    source options get the Section 4.1 options' distribution."""
    base = distribution_from_args(args, algorithm)
    batch, generator = getattr(args, "mdp_batch", None), getattr(args, "distribution", None)
    family = getattr(args, "family", families.SECTION41)
    chosen = [k for k, v in (("--mdp-batch", batch), ("--distribution", generator),
                             ("--family", family != families.SECTION41)) if v]
    if len(chosen) > 1:
        raise InputError("source", f"{' and '.join(chosen)} both name the MDPs; give one")
    record = registry.get(algorithm or args.algorithm)
    if record.features == "state" and chosen:
        raise InputError("source", f"{record.name} uses state features; {chosen[0]} gives state-action features")
    if batch:
        return MDPSource.batch(batch)
    if generator:
        return MDPSource.generator(generator)
    if family != families.SECTION41:
        fam = families.get(family)
        return MDPSource.of_family(fam, gamma=args.gamma, gamma_range=args.gamma_range, **family_options(args, fam))
    return MDPSource.section41(base)


#: The options that describe the built-in Section 4.1 MDPs; another source
#: decides them itself, so a report lists the source's values instead.
SECTION41_KEYS = ("states", "actions", "gamma", "gamma_range", "features")


def source_config(args, source: MDPSource) -> dict:
    """The report configuration of the options ``args`` with the MDP source
    ``source``: for ``--mdp-batch`` / ``--distribution`` / ``--family`` the
    Section 4.1 options (parsed, but not used) are replaced by what the
    source actually holds (:meth:`MDPSource.report`)."""
    cfg = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    if source.is_default:
        return cfg
    for k in SECTION41_KEYS:
        cfg.pop(k, None)
    cfg["source"] = source.report()
    return cfg
