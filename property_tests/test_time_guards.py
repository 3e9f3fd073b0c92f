"""Time guards (issue 19): every heavy command estimates its run time from
its sizes before it starts and, above ``--max-time`` (default 24 h,
``ICRL_MAX_TIME``), exits 2 with one line giving the estimate, the limit
and what shrinks the job.

* ``check --prompts 1000000000000`` exits 2 within seconds naming the
  estimate and ``--max-time``;
* the table: every integer option of every command (the parsers are
  walked, as in ``test_options.py``) given 10^12 exits 2 within seconds
  through the memory or the time guard, whichever applies; an option that
  is not a size is listed in :data:`NOT_SIZES` with the reason, so a size
  option added later without a guard fails here;
* ``--max-time`` / ``ICRL_MAX_TIME`` parse ``3600``, ``90s``, ``30m``,
  ``24h``; malformed values are refused naming the option / variable;
* the estimate is honest: within a factor 10 of the CPU time a small run
  really takes (the calibration itself: ``benchmarks/time_guards.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import pytest

from numerics.analysis import budget
from numerics.commands.cli import COMMANDS, build_parser, main
from numerics.io import families
from numerics.io.options import Duration, Integer
from property_tests.test_size_guards import _SCRIPT, _tiny_model
from theory import algorithms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUGE = "1000000000000"

#: Seconds one refusal may take in-process (the command module's import
#: included; a loaded 2-core machine).
REFUSAL_SECONDS = 10.0

#: Integer options that do not size a job, with the reason; every other
#: integer option must be refused at 10^12 by a guard.
NOT_SIZES = {
    "--seed": "a seed (its kind refuses values above 2^32 - 1)",
    "--threads": "torch's intra-op thread count, not an amount of work",
    "--workers": "worker processes (at most one per seed / experiment / core); train's memory guard counts them",
    "--checkpoint-every": "a checkpoint period; 0 or anything above the run means no checkpoint",
    "--log-every": "a logging period",
    "--lr-every": "a learning-rate decay period",
    "--batch-mdps": "MDPs per Adam step, capped at --mdps: the work is --mdps x --frames either way",
    "--rate-mrps": "softmax-bound: a cap, at most --mrps MRPs enter the population-rate loop",
    "--max-steps": "a cap; the flow's fixed schedule has at most numerics.analysis.flow.schedule_length_bound steps",
    "--benchmark-timeout": "families --benchmark: seconds each family may run before it is stopped (a limit, not work)",
}

#: Options that act only with another one: the companion flags that make
#: the option count (a family's size needs its family, a layer count the
#: Wang layout, ...).
COMPANIONS = {
    **{prm.option(name): ["--family", name] for name in families.names()[1:]     # every family's sizes
       for prm in families.get(name).params if isinstance(prm.kind, Integer)},
    "--hidden": ["--model", "mlp"],
    "--max-prompts": ["--family", "darkroom", "--solver", "structured"],
}
WANG = {"--layers", "--features-dim", "--minibatches", "--window-steps"}
FAMILIES_COMPARE = {"--mdps", "--frames", "--bootstrap", "--darkroom-grid", "--states", "--actions", "--context"}


def command_parser(command: str) -> argparse.ArgumentParser:
    top = build_parser(command)
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def integer_options(command: str) -> list[str]:
    return [a.option_strings[-1] for a in command_parser(command)._actions
            if isinstance(a.type, Integer) and a.option_strings]


def takes_algorithm(command: str) -> bool:
    return any("--algorithm" in a.option_strings for a in command_parser(command)._actions)


def cases(tmp: str, model: str) -> dict[str, list[str]]:
    """``command option`` -> argv with that option at 10^12."""
    out = {}
    for command in COMMANDS:
        for opt in integer_options(command):
            if opt in NOT_SIZES:
                continue
            argv = [command]
            if opt in WANG and takes_algorithm(command):     # the layered records' sizes (softmax-*: their own)
                argv += ["--algorithm", "td-preconditioned"]
            argv += COMPANIONS.get(opt, [])
            if command == "families":
                argv += (["--compare", "--out", os.path.join(tmp, "fam")] if opt in FAMILIES_COMPARE else
                         ["--write-batch", os.path.join(tmp, "b.npz")])
            if command == "protocols":
                argv += ["--exact", model, "--minibatch", model, "--out", os.path.join(tmp, "p")]
            if command in ("richness", "flow", "control", "ablation"):
                argv += ["--out", os.path.join(tmp, command)]
            if command == "train":
                argv += ["--out", os.path.join(tmp, "t"), "--report-dir", os.path.join(tmp, "r")]
            out[f"{command} {opt}"] = argv + [opt, HUGE]
    return out


def _run(argvs: dict, cwd: str, timeout: float = 300) -> dict:
    """Each argv through ``main`` in one subprocess (a timeout and an
    address-space cap, so a guard that fails can neither hang the suite nor
    take the machine's memory); the results printed as they come."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("ICRL_MAX_MEMORY", None), env.pop("ICRL_MAX_TIME", None)
    try:
        proc = subprocess.run([sys.executable, "-c", _SCRIPT.replace("CAP", str(8 * 1024 ** 3)), json.dumps(argvs)],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
        stdout = proc.stdout
    except subprocess.TimeoutExpired as e:
        stdout = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    res = {}
    for line in stdout.strip().splitlines():
        res.update(json.loads(line))
    missing = [k for k in argvs if k not in res]
    assert not missing, f"no answer within {timeout} s (a guard that does not refuse?) from: {missing[:3]}"
    return res


def test_check_with_a_trillion_prompts_exits_2_naming_the_estimate(capsys):
    t0 = time.perf_counter()
    assert main(["check", "--prompts", HUGE]) == 2
    assert time.perf_counter() - t0 < REFUSAL_SECONDS
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("icrl-verify: error: max-time:"), line
    assert "would take about" in line and "days" in line and "above the limit 24 h" in line, line
    assert "--max-time" in line and "ICRL_MAX_TIME" in line and "fewer --prompts" in line, line


def test_every_size_option_of_every_command_is_guarded(tmp_path):
    """10^12 in each integer option that sizes a job: exit 2 within seconds,
    one line from the memory or the time guard."""
    argvs = cases(str(tmp_path), _tiny_model(tmp_path))
    assert len(argvs) > 40
    res = _run(argvs, str(tmp_path))
    bad = {}
    for name, r in res.items():
        lines = r["stderr"].strip().splitlines()
        ok = (r["rc"] == 2 and len(lines) == 1 and r["seconds"] < REFUSAL_SECONDS and
              (lines[0].startswith("icrl-verify: error: max-time:") and "would take about" in lines[0]
               and "--max-time" in lines[0]
               or lines[0].startswith("icrl-verify: error: max-memory:") and "would need about" in lines[0]
               and "--max-memory" in lines[0]))
        if not ok:
            bad[name] = r
    assert not bad, json.dumps(bad, indent=1)[:4000]
    assert not any(p.name != "model" for p in tmp_path.iterdir() if p.is_dir() and any(p.iterdir())), \
        "a refused command wrote files"


def test_not_sizes_are_real_options_and_a_new_option_is_walked():
    """Every exemption names an option some command has (no stale entry);
    the walk sees every integer option (one planted on a parser shows up)."""
    seen = {o for c in COMMANDS for o in integer_options(c)}
    assert set(NOT_SIZES) <= seen, set(NOT_SIZES) - seen
    p = command_parser("check")
    p.add_argument("--new-size", type=Integer(minimum=1), default=1)
    assert "--new-size" in [a.option_strings[-1] for a in p._actions if isinstance(a.type, Integer)]


@pytest.mark.parametrize("text,seconds", [("3600", 3600), ("90s", 90), ("30m", 1800), ("24h", 86400), ("2d", 172800),
                                          ("1.5h", 5400), (" 10 M ", 600)])
def test_durations_parse(text, seconds):
    assert Duration()(text) == seconds and Duration().from_config("max-time", text) == seconds
    assert Duration().from_config("max-time", 60) == 60


@pytest.mark.parametrize("bad", ["lots", "-1h", "0", "1.5.2h", "8x", "inf", "nan"])
def test_a_malformed_max_time_is_refused_naming_the_option(bad, capsys):
    assert main(["check", "--states", "2", "--actions", "2", "--mdps", "2", "--prompts", "2", "--max-time", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-time" in err[0], err


def test_max_time_limits_a_small_job_and_the_environment_sets_it(monkeypatch, capsys):
    job = ["check", "--states", "2", "--actions", "2", "--mdps", "2", "--prompts", "200000"]
    assert main(job + ["--max-time", "1s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max-time" in err[0] and "above the limit 1 s" in err[0], err
    monkeypatch.setenv("ICRL_MAX_TIME", "1s")
    assert main(job) == 2
    assert "above the limit 1 s" in capsys.readouterr().err
    monkeypatch.setenv("ICRL_MAX_TIME", "soon")
    assert main(job) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("icrl-verify: error: ICRL_MAX_TIME:"), err
    monkeypatch.setenv("ICRL_MAX_TIME", "1h")
    assert main(["check", "--states", "2", "--actions", "2", "--mdps", "2", "--prompts", "20"]) == 0
    assert budget.max_time(None) == 3600 and budget.max_time(5.0) == 5.0


def test_max_time_from_a_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('max-time = "1s"\nprompts = 200000\nstates = 2\nactions = 2\nmdps = 2\n')
    assert main(["check", "--config", str(cfg)]) == 2
    assert "above the limit 1 s" in capsys.readouterr().err


def test_the_estimate_is_within_an_order_of_magnitude_of_a_real_run(capsys):
    """``check`` at a size that runs ~2 CPU seconds: the guard's estimate
    (start-up aside) against the CPU time it really takes, within 10x."""
    record = algorithms.get("sarsa")
    t0 = time.process_time()
    assert main(["check", "--prompts", "4000", "--mdps", "100"]) == 0
    cpu = time.process_time() - t0
    capsys.readouterr()
    est = budget.check_work(record, 4000, 100, 9, 4, 36, 20).seconds - budget.STARTUP_SECONDS
    assert 0.1 <= est / cpu <= 10, (est, cpu)
