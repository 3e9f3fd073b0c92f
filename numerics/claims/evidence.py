"""The verdict machinery of ``icrl-verify claims``: evidence, the registry
of checks, claims with their decision rules, the runner.

Every claim names the checks that decide it (symbolic, numeric, property,
experiment) and a rule from evidence to verdict: ``holds``, ``holds with
qualification``, ``fails``, or ``not checked`` (a check did not run; never
reported as ``holds``).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from numerics.analysis.sweep import map_tasks
from theory.errors import InputError

HOLDS, QUALIFIED, FAILS, NOT_CHECKED = "holds", "holds with qualification", "fails", "not checked"


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
class Check:
    name: str
    kind: str
    run: Callable[[Settings], Evidence]


CHECKS: dict[str, Check] = {}


def check(name: str, kind: str):
    """Register a check: ``fn(settings) -> Evidence`` (``check``/``kind`` filled in)."""
    def deco(fn):
        CHECKS[name] = Check(name, kind, fn)
        return fn
    return deco


@dataclass(frozen=True)
class Experiment:
    """A computation some checks share (a training run, a richness sample):
    ``compute(settings)`` (a module-level function, so a Dask worker can run
    it) returns data that ``store(settings, data)`` puts into the checks'
    cache here; the checks then find it done.  ``checks``: who uses it."""

    name: str
    checks: tuple[str, ...]
    compute: Callable[[Settings], object]
    store: Callable[[Settings, object], None]


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, checks: tuple[str, ...], store: Callable[[Settings, object], None]):
    """Register ``fn(settings) -> data`` as the experiment ``name``."""
    def deco(fn):
        EXPERIMENTS[name] = Experiment(name, tuple(checks), fn, store)
        return fn
    return deco


def _run_experiment(compute, settings: Settings):
    """The Dask task of one experiment: one torch thread, as every worker."""
    torch.set_num_threads(1)
    return compute(settings)


def run_experiments(names, settings: Settings, *, scheduler: str | None = None, workers: int | None = None,
                    progress=None) -> dict[str, str]:
    """The experiments the checks ``names`` use, as tasks on the sweep
    engine (``numerics.analysis.sweep.map_tasks``: an embedded LocalCluster,
    or the Dask cluster at ``scheduler``), each stored into its checks' cache
    as it finishes.  Returns ``{experiment: error}`` of those that failed
    (their checks then compute them in this process, or record that they
    could not run)."""
    wanted = {e.name: e for e in EXPERIMENTS.values() if set(e.checks) & set(names)}
    if not wanted:
        return {}
    tasks = {n: (_run_experiment, (e.compute, settings)) for n, e in wanted.items()}
    failed, _ = map_tasks(tasks, scheduler=scheduler, workers=workers, retries=1, progress=progress,
                          on_result=lambda n, data: wanted[n].store(settings, data), prefix="claims")
    return failed


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    source: str
    statement: str
    checks: tuple[str, ...]
    decide: Callable[[dict[str, Evidence]], tuple[str, str]]


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
def run_checks(names, settings: Settings, progress=None) -> dict[str, Evidence]:
    out = {}
    for name in names:
        c = CHECKS[name]
        t0 = time.perf_counter()
        try:
            ev = c.run(settings)
            ev.check, ev.kind = name, c.kind
        except InputError:
            raise
        except Exception as e:  # a check that cannot run is recorded, never counted as passing
            ev = Evidence(name, c.kind, None, f"could not run: {type(e).__name__}: {e}", command="",
                          error=traceback.format_exc(limit=4))
        ev.seconds = time.perf_counter() - t0
        out[name] = ev
        if progress is not None:
            progress(name, ev)
    return out


def evaluate(claims, evidence: dict[str, Evidence]):
    rows = []
    for c in claims:
        ev = {k: evidence[k] for k in c.checks}
        verdict, reasoning = c.decide(ev)
        rows.append(dict(id=c.id, title=c.title, source=c.source, statement=c.statement, verdict=verdict,
                         reasoning=reasoning, evidence=[_ev_json(e) for e in ev.values()],
                         command=" && ".join(dict.fromkeys(e.command for e in ev.values() if e.command))))
    return rows


def _ev_json(e: Evidence) -> dict:
    d = asdict(e)
    d.pop("error", None) if e.error is None else None
    return d
