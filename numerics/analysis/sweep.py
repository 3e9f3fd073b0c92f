"""Sweeps: a grid of runs of one command on a Dask cluster, resumable, with
aggregation over seeds (``icrl-verify sweep``, docs/sweep.md).

A sweep file (TOML) names a command, fixed ``[options]`` and a ``[grid]`` of
lists of values; the cells are the product of the grid.  Each cell is one
task: the command's own function run in a worker process (never a
subprocess of the CLI).  Its result (JSON) and files are written under
``OUT/<name>/<key>/`` by the client, ``result.json`` renamed into place last,
so a directory without a valid ``result.json`` is never taken as done; the
key is a hash of the command, the cell's fully resolved options and the
package version.  A rerun skips every cell whose ``result.json`` parses and
carries its key.

Engine: ``dask.distributed``.  Default an embedded ``LocalCluster`` with one
single-threaded worker process per core; ``scheduler`` connects to a running
cluster instead.  A worker that dies mid-task loses only that task, which
the scheduler runs again elsewhere (up to ``ALLOWED_FAILURES`` worker deaths
per task); a task that raises is retried ``retries`` times, then reported
as failed with its message while the others finish.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import shutil
from collections.abc import Callable
from importlib import metadata

import dask
import numpy as np
from distributed import Client, LocalCluster, as_completed
from scipy import stats

from numerics.io.config import read_toml
from numerics.io.files import atomic_files, json_text
from theory.errors import InputError

#: Worker deaths a task may see before the scheduler gives up on it
#: (``distributed.scheduler.allowed-failures``; Dask's default is 3 too).
ALLOWED_FAILURES = 3

#: Default retries of a task that raises (each is a fresh run).
DEFAULT_RETRIES = 1

#: The keys of a sweep file.
FILE_KEYS = ("name", "command", "options", "grid", "retries")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file: ``options`` fixed, ``grid`` option -> values."""

    name: str
    command: str
    options: dict
    grid: dict
    retries: int = DEFAULT_RETRIES

    def cells(self) -> list[dict]:
        """The options of every cell: ``options`` updated by one point of the
        grid's product, in the grid's order (last key fastest)."""
        keys = list(self.grid)
        return [dict(self.options, **dict(zip(keys, values)))
                for values in itertools.product(*(self.grid[k] for k in keys))]


def load_sweep_file(path: str) -> SweepSpec:
    """Read and check a sweep file's structure (the options themselves are
    checked by the command's own parser, in ``numerics.commands.cells``)."""
    data = read_toml(path, "sweep file")
    unknown = [k for k in data if k not in FILE_KEYS]
    if unknown:
        raise InputError(unknown[0], f"unknown key in {path}; expected some of {', '.join(FILE_KEYS)}")
    for key in ("name", "command"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise InputError(key, f"{path} needs {key} = \"...\" (a non-empty string)")
    name = data["name"]
    if "/" in name or os.sep in name or name.startswith("."):
        raise InputError("name", f"must be a plain file name, got {name!r}")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise InputError("options", f"expected a table [options], got {options!r}")
    grid = data.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise InputError("grid", f"{path} needs a non-empty [grid] table of lists")
    for k, v in grid.items():
        if not isinstance(v, list):
            raise InputError(f"grid.{k}", f"expected a list of values, got {v!r}")
        if not v:
            raise InputError(f"grid.{k}", "the list of values is empty")
        if k in options:
            raise InputError(f"grid.{k}", "is also a fixed option in [options]; give it in one place")
    retries = data.get("retries", DEFAULT_RETRIES)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InputError("retries", f"expected an integer >= 0, got {retries!r}")
    return SweepSpec(name, data["command"], dict(options), dict(grid), retries)


def package_version() -> str:
    try:
        return metadata.version("icrl-verify")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def cell_key(command: str, resolved: dict, version: str | None = None) -> str:
    """Short sha256 of the command, the cell's fully resolved options and
    the package version: the cell's directory name."""
    text = json.dumps(dict(command=command, options=resolved, version=version or package_version()),
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Cell:
    """One task: ``argv`` for the command's parser, its key and options;
    ``records``: the algorithm records the cell names, by value
    (:func:`numerics.io.records.dumps`; empty: none), so a worker resolves
    the names to the client's records, never to its own registry's."""

    key: str
    options: dict
    resolved: dict
    argv: list
    command_line: str
    records: bytes = b""


def read_done(directory: str, key: str) -> dict | None:
    """The stored result of cell ``key``, or None if absent or not valid
    (unparsable, or written for another key)."""
    path = os.path.join(directory, key, "result.json")
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or "result" not in doc:
        return None
    return doc


def write_cell(directory: str, cell: Cell, command: str, out: dict) -> dict:
    """Store one finished cell: its files first, ``result.json`` last, all
    through temporary files renamed into place (a crash leaves no
    ``result.json``, so the cell is run again)."""
    folder = os.path.join(directory, cell.key)
    if os.path.isdir(folder) and read_done(directory, cell.key) is None:
        shutil.rmtree(folder)              # a stale, incomplete cell
    doc = dict(key=cell.key, command=command, options=cell.resolved, reproduce=cell.command_line,
               version=package_version(), result=out["result"], files=sorted(out.get("files", {})),
               timing=out.get("timing", {}))
    files = {os.path.join(folder, name): data for name, data in out.get("files", {}).items()}
    files[os.path.join(folder, "result.json")] = json_text(doc)
    atomic_files(files)
    return doc


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_serial(cells: list[Cell], fn: Callable, command: str) -> list[dict]:
    """Every cell in this process, one after the other (the reference a
    distributed run must equal; also the benchmark's baseline)."""
    return [fn(command, c.argv, c.records) for c in cells]


def run_cells(cells: list[Cell], fn: Callable, command: str, directory: str, *, scheduler: str | None = None,
              workers: int | None = None, retries: int = DEFAULT_RETRIES, progress=None,
              client: Client | None = None) -> dict:
    """Run the cells not yet done on Dask and store each as it finishes.

    ``fn(command, argv, records) -> {"result", "files", "timing"}`` is the
    task (it must be importable by the workers; ``records`` is the cell's
    :attr:`Cell.records`).  ``progress(k)`` is told of each
    finished or skipped cell.  Returns ``{"done": {key: doc}, "failed":
    {key: message}, "skipped": [keys], "computed": [keys], "workers": n}``.
    """
    done, skipped, computed = {}, [], []
    todo = {}
    for c in cells:
        doc = read_done(directory, c.key)
        if doc is not None:
            done[c.key] = doc
            skipped.append(c.key)
            if progress:
                progress(1)
        else:
            todo[c.key] = c

    def store(key, out):
        done[key] = write_cell(directory, todo[key], command, out)
        computed.append(key)

    tasks = {key: (fn, (command, c.argv, c.records)) for key, c in todo.items()}
    failed, n_workers = map_tasks(tasks, scheduler=scheduler, workers=workers, retries=retries, progress=progress,
                                  client=client, on_result=store, prefix=command) if todo else ({}, 0)
    return {"done": done, "failed": failed, "skipped": skipped, "computed": computed, "workers": n_workers}


def map_tasks(tasks: dict, *, scheduler: str | None = None, workers: int | None = None,
              retries: int = DEFAULT_RETRIES, progress=None, client: Client | None = None, on_result=None,
              prefix: str = "task") -> tuple[dict, int]:
    """Run ``{name: (fn, args)}`` on Dask: ``client`` if given (left open),
    else a running cluster at ``scheduler``, else an embedded LocalCluster
    of ``workers`` single-threaded processes (default one per core, at most
    one per task).  ``on_result(name, value)`` is called here, in this
    process, as each task finishes; ``progress(1)`` after each task.  A task
    that raises is retried ``retries`` times; a worker's death reruns its
    task elsewhere (up to ``ALLOWED_FAILURES`` deaths).  Returns ``({name:
    error message} of the failed tasks, number of workers)``."""
    failed: dict = {}
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        own, cluster = client is None, None
        if own and scheduler:
            try:
                client = Client(scheduler, set_as_default=False)
            except (OSError, ValueError, TypeError) as e:    # refused, timed out, not an address
                raise InputError("scheduler", f"cannot connect to a Dask scheduler at {scheduler!r}: "
                                              f"{' '.join(str(e).split())}") from None
        elif own:
            n = workers or min(default_workers(), len(tasks))
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=50)
            client = Client(cluster, set_as_default=False)
        try:
            n_workers = len(client.scheduler_info().get("workers", {}))
            futures = {client.submit(fn, *args, key=f"{prefix}-{name}", retries=retries, pure=False): name
                       for name, (fn, args) in tasks.items()}
            for fut in as_completed(list(futures), loop=client.loop):
                name = futures[fut]
                if fut.status == "finished":
                    if on_result is not None:
                        on_result(name, fut.result())
                else:
                    failed[name] = _message(fut.exception())
                if progress:
                    progress(1)
        finally:
            if own:
                client.close()
            if cluster is not None:
                cluster.close()
    return failed, n_workers


def _message(exc) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


# ---------------------------------------------------------------- aggregation

def numeric_metrics(result: dict, prefix: str = "") -> dict:
    """Every numeric scalar of ``result`` (nested dicts flattened with dots;
    booleans as 0/1), in a stable order."""
    out = {}
    for k, v in result.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(numeric_metrics(v, name + "."))
        elif isinstance(v, bool):
            out[name] = float(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[name] = float(v)
    return out


def t_interval(values) -> tuple[float, float, float]:
    """Mean and the 95% Student-t interval of the mean (NaN bounds for one
    value; non-finite values make every number NaN)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if x.size < 2 or not np.all(np.isfinite(x)):
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def aggregate(cells: list[Cell], done: dict, failed: dict, grid: dict, seed_key: str = "seed") -> list[dict]:
    """One row per grid point (cells that differ only in ``seed_key``):
    its grid values, seeds, and per metric the mean and 95% interval over
    the cells that finished."""
    varying = [k for k in grid if k != seed_key]
    groups: dict = {}
    for c in cells:
        point = tuple((k, json.dumps(c.options.get(k), default=str)) for k in varying)
        groups.setdefault(point, []).append(c)
    rows = []
    for members in groups.values():
        ok = [c for c in members if c.key in done]
        metrics = [numeric_metrics(done[c.key]["result"]) for c in ok]
        names = list(dict.fromkeys(k for m in metrics for k in m))
        summary = {}
        for name in names:
            vals = [m[name] for m in metrics if name in m]
            mean, lo, hi = t_interval(vals)
            summary[name] = dict(mean=mean, ci95=[lo, hi], n=len(vals))
        rows.append(dict(point={k: members[0].options.get(k) for k in varying},
                         seeds=[c.resolved.get(seed_key) for c in members],
                         cells=[dict(key=c.key, seed=c.resolved.get(seed_key), command=c.command_line,
                                     status="done" if c.key in done else "failed",
                                     error=failed.get(c.key)) for c in members],
                         metrics=summary))
    return rows
