"""Size guards (issue 12): every heavy command estimates its memory before
allocating and, above ``--max-memory``, exits 2 with one line giving the
estimate, the limit and the option that raises it.

* every heavy command asked for a size above its guard exits 2 within a few
  seconds (all cases in one subprocess with a timeout and an address-space
  cap, so a guard that fails can neither hang the suite nor take the
  machine's memory);
* ``--max-memory`` and ``ICRL_MAX_MEMORY`` set the limit; malformed values
  are refused naming the option / variable;
* the estimate is honest: against the peak resident memory a run really
  adds (``VmHWM`` of a subprocess, above its RSS after imports and JIT
  compilation), within a factor 2 either way (docs/limits.md).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from numerics.analysis import budget
from numerics.commands.cli import main
from theory import algorithms
from theory.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SARSA = algorithms.get("sarsa")

#: Seconds one refusal may take in-process (command module import included;
#: the machine is a loaded 2-core box: the refusals themselves take < 0.1 s).
REFUSAL_SECONDS = 10.0

#: Each heavy command asked for a size above its guard at the default limit
#: (half the physical memory; these are above any machine's) or, for
#: ``protocols``, whose sizes come from the model files, a long control run.
ABOVE = {
    "check": ["check", "--states", "1000000", "--actions", "1000"],
    "check-wang2025": ["check", "--algorithm", "td-preconditioned", "--context", "10000000"],
    "richness": ["richness", "--states", "30", "--actions", "10"],
    "richness-full": ["richness", "--states", "30", "--actions", "10", "--parameterization", "full"],
    "flow": ["flow", "--states", "30", "--actions", "10"],
    "train": ["train", "--context", "100000000", "--mdps", "1"],
    "train-paper": ["train", "--protocol", "paper", "--context", "100000000", "--mdps", "1"],
    "train-wang2025": ["train", "--algorithm", "td-preconditioned", "--context", "10000000"],
    "train-seeds": ["train", "--context", "10000000", "--mdps", "2", "--seeds", "2", "--workers", "2"],
    "control": ["control", "--states", "300", "--actions", "100"],
    "ablation": ["ablation", "--states", "30", "--actions", "20"],
    "protocols": ["protocols", "--rounds", "100000000000"],
}

_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_DATA, (CAP, CAP))     # a failed guard cannot take the machine
    from numerics.commands.cli import main
    out = {}
    for name, argv in json.loads(sys.argv[1]).items():
        err = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)
            except BaseException as e:        # reported, not raised: the test names the case
                rc = repr(e)
        out[name] = dict(rc=rc, stderr=err.getvalue(), seconds=time.perf_counter() - t0)
        print(json.dumps({name: out[name]}), flush=True)     # one line a case: a timeout keeps what came
""")


def _tiny_model(tmp_path) -> str:
    """A block trained for two MDPs (the model file ``protocols`` reads)."""
    out = tmp_path / "model"
    rc = main(["train", "--states", "2", "--actions", "2", "--context", "3", "--mdps", "2", "--batch-mdps", "2",
               "--frames", "2", "--eval-mdps", "2", "--no-report", "--out", str(out), "--checkpoint-every", "0"])
    assert rc in (0, 1)
    return str(out / "lsa.npz")


def test_every_heavy_command_exits_2_above_its_guard(tmp_path):
    model = _tiny_model(tmp_path)
    cases = dict(ABOVE)
    cases["protocols"] = ABOVE["protocols"] + ["--exact", model, "--minibatch", model, "--out", str(tmp_path / "p")]
    for name in ("richness", "richness-full", "flow", "control", "ablation"):
        cases[name] = cases[name] + ["--out", str(tmp_path / name)]
    for name in ("train", "train-paper", "train-wang2025", "train-seeds"):
        cases[name] = cases[name] + ["--out", str(tmp_path / name), "--report-dir", str(tmp_path / "reports")]
    script = _SCRIPT.replace("CAP", str(8 * 1024 ** 3))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("ICRL_MAX_MEMORY", None)
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True,
                          timeout=240, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = {}
    for line in proc.stdout.strip().splitlines():
        res.update(json.loads(line))
    for name, r in res.items():
        lines = r["stderr"].strip().splitlines()
        assert r["rc"] == 2, (name, r)
        assert len(lines) == 1, (name, lines)
        line = lines[0]
        assert line.startswith("icrl-verify: error: max-memory:"), (name, line)
        assert "would need about" in line and "above the limit" in line and "--max-memory" in line, (name, line)
        assert r["seconds"] < REFUSAL_SECONDS, (name, r["seconds"])
    assert "beyond a dense Hessian" in res["richness"]["stderr"]
    assert "smaller --states/--actions" in res["richness"]["stderr"]
    assert "reduced parameterisation" in res["richness-full"]["stderr"]
    assert not any(p.name != "model" for p in tmp_path.iterdir() if p.is_dir() and any(p.iterdir())), \
        "a refused command wrote files"


@pytest.mark.parametrize("argv", [
    ["check", "--states", "2", "--actions", "2", "--mdps", "2", "--prompts", "2", "--max-memory", "1K"],
    ["richness", "--states", "2", "--actions", "2", "--max-memory", "10K", "--out", "OUT"],
    ["train", "--states", "2", "--actions", "2", "--mdps", "2", "--max-memory", "100", "--out", "OUT"],
])
def test_a_low_max_memory_refuses_a_small_job(argv, capsys, tmp_path):
    out = tmp_path / "o"
    assert main([str(out) if a == "OUT" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max-memory" in err[0] and "above the limit" in err[0]
    assert not out.exists()


def test_the_environment_variable_sets_the_limit_and_a_flag_overrides_it(monkeypatch, capsys):
    small = ["check", "--states", "2", "--actions", "2", "--mdps", "2", "--prompts", "2"]
    monkeypatch.setenv("ICRL_MAX_MEMORY", "1K")
    assert main(small) == 2
    assert "above the limit 1 KB" in capsys.readouterr().err
    assert main(small + ["--max-memory", "1G"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("ICRL_MAX_MEMORY", "lots")
    assert main(small) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("icrl-verify: error: ICRL_MAX_MEMORY:")


@pytest.mark.parametrize("bad", ["lots", "-1G", "0", "1.5.2G", "8X"])
def test_a_malformed_max_memory_is_refused_naming_the_option(bad, capsys):
    assert main(["check", "--states", "2", "--actions", "2", "--mdps", "2", "--prompts", "2", "--max-memory", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-memory" in err[0]


def test_max_memory_parses_sizes():
    assert budget.max_memory(123) == 123
    from numerics.io.options import Bytes
    assert Bytes()("8G") == 8 * 1024 ** 3 and Bytes()("512M") == 512 * 1024 ** 2 and Bytes()("1000") == 1000


def test_guard_refuses_only_above_the_limit():
    e = budget.Estimate().add("a", 600).add("b", 500)
    assert budget.guard(e, 1100, "job", "shrink it") is e
    with pytest.raises(InputError) as info:
        budget.guard(e, 1099, "job", "shrink it")
    msg = str(info.value)
    assert msg.startswith("max-memory: job would need about 1.07 KB (a 600 B, b 500 B)")
    assert "above the limit 1.07 KB; shrink it, or raise --max-memory" in msg


def test_estimates_grow_with_every_size():
    """Each estimate increases in each size it is given (a guard that
    ignored a size would let that size through)."""
    base = dict(B=4, S=3, A=2, d=6, n=5)
    c0 = budget.check(SARSA, **base).total
    for k in base:
        assert budget.check(SARSA, **dict(base, **{k: base[k] * 2})).total > c0, k
    t0 = budget.train(SARSA, 4, 8, 3, 2, 6, 5).total
    assert budget.train(SARSA, 4, 16, 3, 2, 6, 5).total > t0
    assert budget.train(SARSA, 8, 8, 3, 2, 6, 5).total > t0
    assert budget.hessian(SARSA, 12, 100, 5).total > budget.hessian(SARSA, 6, 100, 5).total
    assert budget.largest_fitting_d(SARSA, 100, 5, int(budget.hessian(SARSA, 20, 100, 5).total)) == 20


# ----------------------------------------------------------- honest estimates

_PEAK = textwrap.dedent("""
    import json, sys
    from numerics.commands.cli import main
    main(json.loads(sys.argv[2]))           # imports and JIT compilation, at a tiny size

    def status(key):                        # this process's own memory (ru_maxrss would carry over
        with open("/proc/self/status") as f:    # the forking parent's peak across exec)
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                    # reset the peak to the current RSS
    except OSError:
        pass
    before = status("VmRSS")
    rc = main(json.loads(sys.argv[1]))
    print(json.dumps(dict(rc=rc, added=status("VmHWM") - before)))
""")

#: Honesty factor: measured / estimated peak memory lies in [1/2, 2].
HONEST = 2.0


def _added_peak(argv, warm, tmp_path) -> int:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _PEAK, json.dumps(argv), json.dumps(warm)], capture_output=True,
                          text=True, timeout=300, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["rc"] in (0, 1)
    return res["added"]


def test_check_estimate_is_within_a_factor_2_of_the_measured_peak(tmp_path):
    S, A, B = 20, 10, 800
    est = budget.check(SARSA, B, S, A, S * A, 20).total
    small = ["check", "--states", "2", "--actions", "2", "--mdps", "2", "--prompts", "2"]
    added = _added_peak(["check", "--states", str(S), "--actions", str(A), "--mdps", str(B), "--prompts", str(B)],
                        small, tmp_path)
    assert 1 / HONEST <= added / est <= HONEST, (added / 2 ** 20, est / 2 ** 20)


@pytest.mark.slow          # ~15 s under load; the check case above keeps the default tier honest
def test_train_estimate_is_within_a_factor_2_of_the_measured_peak(tmp_path):
    n, batch, ev = 3000, 4, 32
    est = budget.train(SARSA, batch, ev, 9, 4, 36, n).total
    tiny = ["train", "--context", "3", "--mdps", "1", "--frames", "1", "--eval-mdps", "1", "--no-report", "--out",
            str(tmp_path / "t0")]
    added = _added_peak(["train", "--context", str(n), "--mdps", str(batch), "--batch-mdps", str(batch), "--frames",
                         "2", "--eval-mdps", str(ev), "--no-report", "--out", str(tmp_path / "t")], tiny, tmp_path)
    assert 1 / HONEST <= added / est <= HONEST, (added / 2 ** 20, est / 2 ** 20)


@pytest.mark.slow
def test_richness_estimate_is_within_a_factor_2_of_the_measured_peak(tmp_path):
    """d = 20 (1,681 reduced parameters, dense route), two bootstrap replicates."""
    est = budget.hessian(SARSA, 20, 20 * 20, 20, bootstrap=2).total
    tiny = ["richness", "--states", "2", "--actions", "2", "--bootstrap", "1", "--out", str(tmp_path / "r0")]
    added = _added_peak(["richness", "--states", "4", "--actions", "5", "--mdps", "20", "--bootstrap", "2", "--out",
                         str(tmp_path / "r")], tiny, tmp_path)
    assert 1 / HONEST <= added / est <= HONEST, (added / 2 ** 20, est / 2 ** 20)
