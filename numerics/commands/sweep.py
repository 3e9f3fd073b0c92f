"""icrl-verify sweep: run a grid of one command on a Dask cluster,
resumable, and report every metric per grid point over seeds.

FILE.toml names the command (check, train, richness, control), fixed
[options] and a [grid] of lists of values for any of its options, seeds
included (docs/sweep.md).  Every cell is checked by the command's own parser
before anything runs; each becomes a task that runs the command's own
function in a worker process and stores result.json (+ files, e.g. the
trained weights) under OUT/NAME/KEY/, the key a hash of the cell's full
configuration and the package version.  A rerun skips every cell already
done.  Default engine: an embedded LocalCluster, one single-threaded worker
process per core (--workers N); --scheduler ADDRESS uses a running Dask
cluster (its workers must see the same filesystem only to read input files
such as --weights; results travel back to this process, which writes them).
A worker that dies mid-task loses only that task (it runs again
elsewhere); a task that raises is retried as often as the sweep file's
retries says (default 1), then reported failed with its message.  Report: REPORT_DIR/NAME.md (+ .json,
.png).  Exit 0 when every cell finished, 1 when some failed, 2 on a bad
sweep file.
"""
from __future__ import annotations

import os
import time

from numerics.analysis.sweep import Cell, aggregate, cell_key, load_sweep_file, run_cells
from numerics.commands import cells as registry
from numerics.commands.cli import at_boundary, emit, progress_bar
from numerics.io.config import positive_int
from numerics.io.options import Folder, Path, Text
from numerics.render import sweep as render


def add_arguments(p):
    p.add_argument("file", type=Path(), metavar="FILE.toml", help="the sweep file: name, command, [options], [grid], retries")
    p.add_argument("--scheduler", type=Text(), metavar="ADDRESS", default=None,
                   help="address of a running Dask scheduler, e.g. tcp://10.0.0.1:8786 (default: an embedded "
                        "LocalCluster on this machine)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="worker processes of the embedded cluster (one per core, at most one per cell to run)")
    p.add_argument("--out", type=Folder(), metavar="DIR", default=os.path.join("runs", "sweeps"),
                   help="where each cell's result goes: DIR/NAME/KEY/result.json (runs/sweeps)")
    p.add_argument("--report-dir", type=Folder(), metavar="DIR", default=os.path.join("reports", "sweeps"),
                   help="where NAME.md, .json and .png go (reports/sweeps)")
    p.add_argument("--config", type=Path(), metavar="FILE.toml", default=None,
                   help="read these options (scheduler, workers, out, report-dir) from a TOML file; flags override")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result as the last line")


def build_cells(spec) -> list[Cell]:
    """Every cell checked by the command's own parser (nothing runs before
    all of them pass)."""
    cells = []
    for options in spec.cells():
        argv, args = registry.parse_cell(spec.command, options)
        resolved = registry.resolved(args)
        cells.append(Cell(cell_key(spec.command, resolved), options, resolved, argv,
                          registry.command_line(spec.command, args), registry.cell_records(args)))
    return cells


def run(args) -> int:
    spec = load_sweep_file(args.file)
    registry.parser_for(spec.command)
    cells = build_cells(spec)
    directory = os.path.join(args.out, spec.name)
    t0 = time.perf_counter()
    with progress_bar(total=len(cells), desc=f"sweep {spec.name}", disable=args.json, unit="cell") as bar:
        res = run_cells(cells, registry.run_cell, spec.command, directory, scheduler=args.scheduler,
                        workers=args.workers, retries=spec.retries, progress=at_boundary(bar.update))
    seconds = time.perf_counter() - t0
    rows = aggregate(cells, res["done"], res["failed"], spec.grid)
    command = f"icrl-verify sweep {args.file} --out {args.out}"
    paths = render.write(rows, spec, args.report_dir, command, dict(results=directory))
    n_fail = len(res["failed"])
    lines = [f"sweep {spec.name}: {len(cells)} cells of {spec.command}, {len(res['computed'])} computed"
             + (f" on {res['workers']} workers" if res["computed"] or n_fail else "")
             + f", {len(res['skipped'])} skipped (already done), {n_fail} failed ({seconds:.1f} s)"]
    if cells and len(res["skipped"]) == len(cells):
        lines.append("nothing to do: every cell was already done")
    for key, msg in res["failed"].items():
        lines.append(f"  FAILED {key}: {msg}")
    lines.append(f"results: {directory}; report: {paths['md']}")
    emit(lines, dict(name=spec.name, cells=len(cells), computed=len(res["computed"]), skipped=len(res["skipped"]),
                     failed=res["failed"], results=directory, report=paths["md"], seconds=seconds), args.json)
    return 1 if n_fail else 0
