"""Richness of the benchmark families at their own size, each in a child
process so that its wall time and peak memory are its own (``icrl-verify
families --benchmark``, docs/families.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

#: (label, richness options): the benchmark families at the size people train on.
BENCHMARK = (
    ("Darkroom 5x5 (one-hot, d = 125)", ["--family", "darkroom", "--grid", "5"]),
    ("Darkroom 9x9 (one-hot, d = 405)", ["--family", "darkroom", "--grid", "9"]),
    ("FrozenLake 8x8 (slippery, one-hot, d = 260)", ["--family", "frozenlake", "--lake-size", "8"]),
    ("Boyan chain (13 states, Boyan features, d = 4)", ["--family", "boyan"]),
    ("Section 4.1 (9 states, 4 actions, fresh dense features, d = 36)", []),
)


def run_child(argv: list[str], timeout: float) -> dict:
    """``icrl-verify richness ARGV --json`` in a child process under
    ``/usr/bin/time``: its exit status, JSON result (or last stderr line),
    wall time, peak RSS of that child alone, and the load average before and
    after."""
    code = "import sys; from numerics.commands.cli import main; sys.exit(main(sys.argv[1:]))"
    timer = ["/usr/bin/time", "-f", "BENCHTIME %e %M %U %S"] if os.path.exists("/usr/bin/time") else []
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen([*timer, sys.executable, "-c", code, "richness", *argv, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    wall = time.perf_counter() - t0
    peak = None
    lines = err.strip().splitlines()
    cpu = None
    if lines and lines[-1].startswith("BENCHTIME"):
        f = lines[-1].split()
        peak, cpu = int(f[2]) * 1024, float(f[3]) + float(f[4])
        lines = lines[:-1]
    res = None
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            res = json.loads(line)
            break
    rc = proc.returncode
    if timer and lines and lines[-1].startswith("Command exited with non-zero status"):
        lines = lines[:-1]
    return dict(argv=argv, rc=rc, timed_out=timed_out, result=res, stderr=lines[-1] if lines else "",
                seconds=wall, cpu_seconds=cpu, peak_rss=peak, load_before=list(load0), load_after=list(os.getloadavg()))


def benchmark(out_dir: str, *, timeout: float, extra: list[str], progress=None, only=None) -> dict:
    rows = []
    for label, argv in BENCHMARK:
        if only and not any(o in label for o in only):
            continue
        name = label.split(" (")[0].lower().replace(" ", "-").replace(".", "")
        r = run_child([*argv, *extra, "--out", out_dir, "--name", f"bench-{name}"], timeout)
        r["label"] = label
        rows.append(r)
        if progress:
            progress(1)
    return dict(rows=rows)
