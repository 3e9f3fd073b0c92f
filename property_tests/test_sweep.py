"""icrl-verify sweep (issue 15): a real Dask LocalCluster with 2 worker
processes, one killed mid-sweep; resume; failed cells; bad sweep files.

Cost: one LocalCluster for the module (its start is most of the ~30-60 s
of this file on the loaded 2-core machine); the cells are tiny training
runs (16 MDPs x 40 frames, about half a second each).
"""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time

import dask
import numpy as np
import pytest
from distributed import Client, LocalCluster
from scipy import stats

from numerics.analysis import sweep as engine
from numerics.claims import checks, evidence
from numerics.commands import cells as registry
from numerics.commands import cli
from numerics.commands.sweep import build_cells

TRAIN = """
name = "{name}"
command = "train"
retries = 1
[options]
mdps = 16
frames = 40
batch-mdps = 4
eval-mdps = 8
[grid]
seed = [0, 1, 2, 3, 4, 5, 6, 7]
"""


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as c:
        yield c


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _sweep(tmp_path, file, *extra) -> tuple[int, dict]:
    out, rep = str(tmp_path / "runs"), str(tmp_path / "reports")
    return cli.main(["sweep", file, "--out", out, "--report-dir", rep, "--json", *extra]), dict(out=out, rep=rep)


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _report_bytes(rep: str, name: str) -> dict:
    out = {}
    for ext in (".md", ".json", ".png"):
        with open(os.path.join(rep, name + ext), "rb") as fh:
            out[ext] = fh.read()
    return out


def _kill_a_busy_worker(address: str, record: dict, stop: threading.Event):
    """Wait until a worker is running a task, then SIGKILL that worker's
    process (its nanny starts a fresh one; the scheduler reruns the task)."""
    with Client(address, set_as_default=False) as client:
        pids = client.run(os.getpid)
        while not stop.is_set():
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                time.sleep(0.1)              # well inside a task of about half a second
                busy = [w for w, tasks in client.processing().items() if tasks and w in pids]
                if busy:
                    record.update(worker=busy[0], pid=pids[busy[0]], tasks=list(client.processing()[busy[0]]))
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    return
            time.sleep(0.05)


def test_sweep_survives_a_killed_worker_and_resumes(cluster, tmp_path, capsys):
    file = _write(tmp_path / "seeds.toml", TRAIN.format(name="seeds"))
    record, stop = {}, threading.Event()
    killer = threading.Thread(target=_kill_a_busy_worker, args=(cluster.scheduler_address, record, stop))
    killer.start()
    try:
        rc, paths = _sweep(tmp_path, file, "--scheduler", cluster.scheduler_address)
    finally:
        stop.set()
        killer.join()
    first = _last_json(capsys)
    assert record, "no worker was killed while a task ran"
    assert record["tasks"], "the killed worker was not running a task"
    assert rc == 0 and first["computed"] == 8 and first["failed"] == {}
    # Every result present and equal to a serial run of the same cells in this process.
    spec = engine.load_sweep_file(file)
    cells = build_cells(spec)
    serial = engine.run_serial(cells, registry.run_cell, spec.command)
    for c, ref in zip(cells, serial):
        doc = engine.read_done(os.path.join(paths["out"], "seeds"), c.key)
        assert doc is not None, f"cell {c.key} missing"
        assert doc["result"] == json.loads(json.dumps(ref["result"]))
        assert os.path.exists(os.path.join(paths["out"], "seeds", c.key, "lsa.npz"))
    # The killed worker was replaced by its nanny; the cluster still has 2 workers.
    report = _report_bytes(paths["rep"], "seeds")
    # Rerun: no work, the same report, byte for byte.
    rc2, _ = _sweep(tmp_path, file, "--scheduler", cluster.scheduler_address)
    second = _last_json(capsys)
    assert rc2 == 0 and second["computed"] == 0 and second["skipped"] == 8
    assert _report_bytes(paths["rep"], "seeds") == report
    # A half-written result (a crash mid-write) is not taken as done: that cell alone runs again.
    victim = os.path.join(paths["out"], "seeds", cells[3].key, "result.json")
    text = _read(victim)
    with open(victim, "w") as fh:
        fh.write(text[: len(text) // 2])
    rc3, _ = _sweep(tmp_path, file, "--scheduler", cluster.scheduler_address)
    third = _last_json(capsys)
    assert rc3 == 0 and third["computed"] == 1 and third["skipped"] == 7
    assert _report_bytes(paths["rep"], "seeds") == report


def test_a_cell_that_raises_is_reported_failed_and_the_rest_finish(cluster, tmp_path, capsys):
    # mdps = 1, frames = 1: one prompt cannot determine the Hessian (richness raises at run time).
    file = _write(tmp_path / "rich.toml", """
name = "rich"
command = "richness"
retries = 2
[options]
states = 3
actions = 2
frames = 5
bootstrap = 0
[grid]
mdps = [1, 10]
seed = [0, 1]
""")
    rc, paths = _sweep(tmp_path, file, "--scheduler", cluster.scheduler_address)
    res = _last_json(capsys)
    assert rc == 1
    assert res["computed"] == 2 and len(res["failed"]) == 2
    assert all("prompts:" in msg and "cannot determine the Hessian" in msg for msg in res["failed"].values())
    md = _read(os.path.join(paths["rep"], "rich.md"))
    assert "## Failed cells" in md and "cannot determine the Hessian" in md
    data = json.loads(_read(os.path.join(paths["rep"], "rich.json")))
    assert data["failed"] == 2
    ok = [p for p in data["points"] if p["point"] == {"mdps": 10}][0]
    assert [c["status"] for c in ok["cells"]] == ["done", "done"] and ok["metrics"]["mu"]["n"] == 2
    # A failed cell stored nothing: a rerun tries it again (and only it).
    rc2, _ = _sweep(tmp_path, file, "--scheduler", cluster.scheduler_address)
    again = _last_json(capsys)
    assert rc2 == 1 and again["skipped"] == 2 and len(again["failed"]) == 2


BAD = {
    "unknown command": ('name = "x"\ncommand = "bake"\n[grid]\nseed = [0]\n', "command"),
    "not sweepable": ('name = "x"\ncommand = "claims"\n[grid]\nseed = [0]\n', "command"),
    "unknown option": ('name = "x"\ncommand = "train"\n[grid]\nsed = [0]\n', "option 'sed'"),
    "sweep option in a cell": ('name = "x"\ncommand = "train"\n[options]\nout = "d"\n[grid]\nseed = [0]\n',
                               "option 'out'"),
    "empty grid": ('name = "x"\ncommand = "train"\n[grid]\n', "grid"),
    "no grid": ('name = "x"\ncommand = "train"\n', "grid"),
    "empty list": ('name = "x"\ncommand = "train"\n[grid]\nseed = []\n', "grid.seed"),
    "grid value not a list": ('name = "x"\ncommand = "train"\n[grid]\nseed = 3\n', "grid.seed"),
    "gamma >= 1": ('name = "x"\ncommand = "train"\n[grid]\ngamma = [0.5, 1.0]\n', "gamma"),
    "nan": ('name = "x"\ncommand = "richness"\n[grid]\nalpha = [nan]\n', "usage"),
    "wrong type": ('name = "x"\ncommand = "train"\n[grid]\nmdps = ["many"]\n', "usage"),
    "unknown key": ('name = "x"\ncommand = "train"\nworkers = 3\n[grid]\nseed = [0]\n', "workers"),
    "bad name": ('name = "../x"\ncommand = "train"\n[grid]\nseed = [0]\n', "name"),
    "negative retries": ('name = "x"\ncommand = "train"\nretries = -1\n[grid]\nseed = [0]\n', "retries"),
    "not toml": ('name = "x\n', "sweep file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweep_file_exits_2_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    text, field = BAD[case]
    file = _write(tmp_path / "bad.toml", text)
    rc, paths = _sweep(tmp_path, file)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(f"icrl-verify: error: {field}"), err
    assert not os.path.exists(paths["out"]) and not os.path.exists(paths["rep"])


def test_missing_sweep_file_exits_2(tmp_path, capsys):
    rc, _ = _sweep(tmp_path, str(tmp_path / "none.toml"))
    assert rc == 2 and capsys.readouterr().err.startswith("icrl-verify: error: sweep file: cannot read")


def test_cell_key_follows_every_resolved_option_and_the_version():
    spec = engine.SweepSpec("k", "train", {"mdps": 4}, {"seed": [0, 1], "lr": [0.01]})
    a, b = build_cells(spec)
    assert a.key != b.key                                        # the seed
    assert engine.cell_key("train", a.resolved) == a.key
    assert engine.cell_key("train", a.resolved, version="0.0.0") != a.key
    # A default spelled out gives the same cell as the default left out.
    same = build_cells(engine.SweepSpec("k", "train", {"mdps": 4, "gamma": 0.5}, {"seed": [0], "lr": [0.01]}))[0]
    assert same.key == a.key


def test_read_done_rejects_truncated_or_foreign_results(tmp_path):
    folder = tmp_path / "abc"
    folder.mkdir()
    (folder / "result.json").write_text('{"key": "abc", "result": {"x": 1}}')
    assert engine.read_done(str(tmp_path), "abc") is not None
    (folder / "result.json").write_text('{"key": "abc", "resu')
    assert engine.read_done(str(tmp_path), "abc") is None
    (folder / "result.json").write_text('{"key": "other", "result": {"x": 1}}')
    assert engine.read_done(str(tmp_path), "abc") is None


def test_t_interval_against_scipy_and_on_bad_values():
    x = [1.0, 2.0, 4.0, 7.0]
    mean, lo, hi = engine.t_interval(x)
    ref = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert mean == pytest.approx(3.5, abs=0) and (lo, hi) == pytest.approx(ref, rel=1e-12)
    assert all(math.isnan(v) for v in engine.t_interval([1.0])[1:])
    assert all(math.isnan(v) for v in engine.t_interval([1.0, math.nan, 2.0]))


def test_aggregate_groups_cells_that_differ_only_in_seed():
    spec = engine.SweepSpec("g", "richness", {}, {"mdps": [10, 20], "seed": [0, 1, 2]})
    cells = build_cells(spec)
    done = {c.key: dict(result=dict(mu=float(c.options["mdps"] + c.options["seed"]), verdict="x",
                                    holds=True)) for c in cells[:5]}
    rows = engine.aggregate(cells, done, {cells[5].key: "boom"}, spec.grid)
    assert [r["point"] for r in rows] == [{"mdps": 10}, {"mdps": 20}]
    assert rows[0]["metrics"]["mu"]["mean"] == 11.0 and rows[0]["metrics"]["mu"]["n"] == 3
    assert rows[1]["metrics"]["mu"]["mean"] == 20.5 and rows[1]["metrics"]["mu"]["n"] == 2
    assert rows[0]["metrics"]["holds"]["mean"] == 1.0 and "verdict" not in rows[0]["metrics"]
    assert rows[1]["cells"][2] == dict(key=cells[5].key, seed=2, command=cells[5].command_line, status="failed",
                                      error="boom")


_STORED: dict = {}


def _fake_experiment(s):
    """A stand-in experiment (importable by the workers): seeded numbers."""
    return {"x": np.random.default_rng(s.seed).standard_normal(4).tolist(), "pid": os.getpid()}


def test_claims_experiments_run_on_the_workers_and_are_stored_here(cluster):
    fake = evidence.Experiment("fake", _fake_experiment, lambda s, data: _STORED.__setitem__(s, data))
    reads = evidence.Check("fake-check", "experiment", lambda s: None, (fake,))
    other = evidence.Check("other-check", "numeric", lambda s: None)
    s = evidence.Settings(mode="quick", seed=5, out="unused")
    assert evidence.run_experiments([other], s, scheduler=cluster.scheduler_address) == {}
    assert s not in _STORED                                    # not read by these checks: not run
    assert evidence.run_experiments([other, reads], s, scheduler=cluster.scheduler_address) == {}
    assert _STORED[s]["x"] == _fake_experiment(s)["x"] and _STORED[s]["pid"] != os.getpid()


@pytest.mark.slow
def test_claims_experiments_on_the_engine_equal_the_in_process_ones(cluster):
    """``claims --full`` (or ``--scheduler``) runs the shared experiments as
    Dask tasks and stores them where the checks look: the same numbers as
    computing them here."""
    s = evidence.Settings(mode="quick", seed=3, out="unused")
    wanted = [checks.richness_onehot_fixed_gamma, checks.richness_onehot_gamma_range]
    try:
        failed = evidence.run_experiments(wanted, s, scheduler=cluster.scheduler_address)
        assert failed == {}
        assert [e.name for e in evidence.experiments_of(wanted)] == [c.name for c in wanted]
        for name in ("onehot-fixed-gamma", "onehot-gamma-range"):
            remote = checks._RICH[(name, s)]
            here = checks._richness_fresh(name, s)
            for k in ("kernel_dim", "symmetry_dim", "data_invariance_dim", "nonflat_dim", "mu", "mu_ci95", "verdict"):
                assert remote[k] == here[k], (name, k)
            assert remote["details"]["bootstrap_mus"] == here["details"]["bootstrap_mus"]
    finally:
        for name in ("onehot-fixed-gamma", "onehot-gamma-range"):
            checks._RICH.pop((name, s), None)


def test_unreachable_scheduler_exits_2_with_one_line(tmp_path, capsys):
    file = _write(tmp_path / "s.toml", TRAIN.format(name="s"))
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        rc, paths = _sweep(tmp_path, file, "--scheduler", "tcp://127.0.0.1:9")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("icrl-verify: error: scheduler: cannot connect"), err
    assert not os.path.exists(paths["out"])
