"""The verdict machinery of ``icrl-verify claims``: evidence, checks,
experiments, claims with their decision rules, the registry, the runner.

A claim is one record (:class:`Claim`): its statement, its source and
paper, the checks that decide it (:class:`Check` records, each a callable
``settings -> Evidence`` that states its own numbers, sizes and the command
that reproduces it) and a rule from evidence to verdict: ``holds``,
``holds with qualification``, ``fails``, or ``not checked`` (a check did
not run; never reported as ``holds``).  A check names the shared
computations it reads (:class:`Experiment` records), so ``--full`` can run
them first on the sweep engine.  Every link is a Python object, never a
string key; claims are registered with :func:`register` (the paper's from
their section modules, :data:`SECTIONS`), and :func:`claims` lists them in
report order.  docs/architecture.md, "How to add a claim".
"""
from __future__ import annotations

import importlib
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from numerics.analysis.sweep import map_tasks
from theory.errors import InputError

HOLDS, QUALIFIED, FAILS, NOT_CHECKED = "holds", "holds with qualification", "fails", "not checked"

#: The section modules of the papers, in report order: importing one
#: registers its paper's claims.  A new paper adds its module here; a new
#: claim of a paper touches its section module only.
SECTIONS = ("numerics.claims.liang_lai", "numerics.claims.wang2025", "numerics.claims.xie2026")


@dataclass
class Evidence:
    """The outcome of one check."""

    check: str
    kind: str                      # symbolic | numeric | property | experiment
    passed: bool | None            # None: the check could not run
    summary: str
    command: str
    data: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class Settings:
    mode: str = "quick"
    seed: int = 0
    out: str = "reports/claims"

    def pick(self, quick, full):
        return quick if self.mode == "quick" else full


@dataclass(frozen=True)
class Experiment:
    """A computation some checks share (a training run, a richness sample):
    ``compute(settings)`` (a module-level function, so a Dask worker can run
    it) returns data that ``store(settings, data)`` puts into the checks'
    cache here; the checks then find it done."""

    name: str
    compute: Callable[[Settings], object]
    store: Callable[[Settings, object], None]


@dataclass(frozen=True)
class Check:
    """One piece of evidence: ``run(settings) -> Evidence`` (``check`` and
    ``kind`` filled in by the runner); ``experiments``: the shared
    computations it reads."""

    name: str
    kind: str                      # symbolic | numeric | property | experiment
    run: Callable[[Settings], Evidence]
    experiments: tuple[Experiment, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"check {self.name!r}: kind {self.kind!r} not in {KINDS}")
        if not callable(self.run):
            raise TypeError(f"check {self.name!r}: run must be callable, got {type(self.run).__name__}")
        bad = [e for e in self.experiments if not isinstance(e, Experiment)]
        if bad:
            raise TypeError(f"check {self.name!r}: experiments must be Experiment records, got {bad[0]!r}")


KINDS = ("symbolic", "numeric", "property", "experiment")


def check(name: str, kind: str, experiments: tuple[Experiment, ...] = ()):
    """Decorator: ``fn(settings) -> Evidence`` as the :class:`Check` ``name``
    (the decorated name is bound to the record)."""
    def deco(fn) -> Check:
        return Check(name, kind, fn, tuple(experiments))
    return deco


def experiments_of(checks) -> list[Experiment]:
    """The experiments the checks read, each once, in order of first use."""
    out: dict[str, Experiment] = {}
    for c in checks:
        for e in c.experiments:
            if out.setdefault(e.name, e) is not e:
                raise ValueError(f"two experiments are named {e.name!r}")
    return list(out.values())


def _run_experiment(compute, settings: Settings):
    """The Dask task of one experiment: one torch thread, as every worker."""
    torch.set_num_threads(1)
    return compute(settings)


def run_experiments(checks, settings: Settings, *, scheduler: str | None = None, workers: int | None = None,
                    progress=None) -> dict[str, str]:
    """The experiments ``checks`` read, as tasks on the sweep engine
    (``numerics.analysis.sweep.map_tasks``: an embedded LocalCluster, or the
    Dask cluster at ``scheduler``), each stored into its checks' cache as it
    finishes.  Returns ``{experiment: error}`` of those that failed (their
    checks then compute them in this process, or record that they could
    not run)."""
    wanted = {e.name: e for e in experiments_of(checks)}
    if not wanted:
        return {}
    tasks = {n: (_run_experiment, (e.compute, settings)) for n, e in wanted.items()}
    failed, _ = map_tasks(tasks, scheduler=scheduler, workers=workers, retries=1, progress=progress,
                          on_result=lambda n, data: wanted[n].store(settings, data), prefix="claims")
    return failed


@dataclass(frozen=True)
class Claim:
    """One claim: ``statement`` as its ``source`` (in ``paper``) makes it,
    the ``checks`` that decide it, and ``decide(evidence) -> (verdict,
    reasoning)`` with ``evidence`` the checks' :class:`Evidence` by check
    name (default :func:`all_pass`)."""

    id: str
    title: str
    source: str
    statement: str
    checks: tuple[Check, ...]
    decide: Callable[[dict[str, Evidence]], tuple[str, str]] | None = None
    paper: str = ""

    def __post_init__(self):
        if not self.checks:
            raise ValueError(f"claim {self.id!r}: no check decides it")
        bad = [c for c in self.checks if not isinstance(c, Check)]
        if bad:
            raise TypeError(f"claim {self.id!r}: checks must be Check records (numerics.claims.evidence.check), "
                            f"got {bad[0]!r}")
        if self.decide is None:
            object.__setattr__(self, "decide", all_pass)
        _same_names(self.checks)


def _same_names(checks):
    """:class:`ValueError` when two different checks share a name (the
    evidence is keyed by it)."""
    seen: dict[str, Check] = {}
    for c in checks:
        if seen.setdefault(c.name, c) != c:
            raise ValueError(f"two different checks are named {c.name!r}")


# --------------------------------------------------------------------------- registry
_CLAIMS: dict[str, Claim] = {}


def register(claim: Claim, replace: bool = False) -> Claim:
    """Add ``claim`` to the registry (``claims --only ID`` runs it)."""
    if not isinstance(claim, Claim):
        raise TypeError(f"register: expected a Claim record, got {type(claim).__name__}")
    if claim.id in _CLAIMS and not replace:
        raise ValueError(f"register: claim {claim.id!r} exists; pass replace=True to redefine it")
    others = [c for other in _CLAIMS.values() if other.id != claim.id for c in other.checks]
    _same_names([*others, *claim.checks])
    _CLAIMS[claim.id] = claim
    return claim


def unregister(claim_id: str) -> None:
    _CLAIMS.pop(claim_id, None)


def claims() -> list[Claim]:
    """Every registered claim, the papers' sections first (in
    :data:`SECTIONS` order, each in its order of registration), then the
    others in theirs."""
    papers = [importlib.import_module(m).PAPER for m in SECTIONS]
    order = {c.id: k for k, c in enumerate(_CLAIMS.values())}
    rank = lambda c: (papers.index(c.paper) if c.paper in papers else len(papers), order[c.id])
    return sorted(_CLAIMS.values(), key=rank)


def all_pass(ev: dict[str, Evidence], what: str = "every check") -> tuple[str, str]:
    """``holds`` iff every check ran and passed; ``fails`` if one ran and failed."""
    missing = [k for k, e in ev.items() if e.passed is None]
    failed = [k for k, e in ev.items() if e.passed is False]
    if failed:
        return FAILS, f"failed: {', '.join(failed)}" + (f"; not run: {', '.join(missing)}" if missing else "")
    if missing:
        return NOT_CHECKED, f"not run: {', '.join(missing)}"
    return HOLDS, f"{what} passed: {', '.join(ev)}"


# --------------------------------------------------------------------------- runner
def run_checks(checks, settings: Settings, progress=None) -> dict[str, Evidence]:
    """Run every :class:`Check` of ``checks`` (each once); their evidence by name."""
    checks = list(dict.fromkeys(checks))
    _same_names(checks)
    out = {}
    for c in checks:
        t0 = time.perf_counter()
        try:
            ev = c.run(settings)
            ev.check, ev.kind = c.name, c.kind
        except InputError:
            raise
        except Exception as e:  # a check that cannot run is recorded, never counted as passing
            ev = Evidence(c.name, c.kind, None, f"could not run: {type(e).__name__}: {e}", command="",
                          error=traceback.format_exc(limit=4))
        ev.seconds = time.perf_counter() - t0
        out[c.name] = ev
        if progress is not None:
            progress(c.name, ev)
    return out


def evaluate(claims, evidence: dict[str, Evidence]):
    """One report row per claim: its verdict by its rule on its checks' evidence."""
    rows = []
    for c in claims:
        ev = {k.name: evidence[k.name] for k in c.checks}
        verdict, reasoning = c.decide(ev)
        rows.append(dict(id=c.id, title=c.title, source=c.source, statement=c.statement, verdict=verdict,
                         reasoning=reasoning, evidence=[_ev_json(e) for e in ev.values()],
                         command=" && ".join(dict.fromkeys(e.command for e in ev.values() if e.command))))
    return rows


def _ev_json(e: Evidence) -> dict:
    d = asdict(e)
    d.pop("error", None) if e.error is None else None
    return d
