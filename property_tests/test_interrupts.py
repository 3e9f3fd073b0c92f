"""Interrupts that lose nothing (issue 12).

* ``icrl-verify train --out DIR`` (both protocols) sent SIGINT / SIGTERM
  after its first checkpoint exits 130 / 143 with one line naming the
  checkpoint, leaves only complete files in DIR, and ``--resume`` continues
  to final weights equal (``np.array_equal``) to an uninterrupted run's;
* ``richness``, ``flow``, ``control`` and ``claims`` interrupted mid-run
  (slow tier, like the paper protocol's case: each costs a subprocess)
  exit 130 with the interrupt line last, no traceback, and nothing in their
  output folder (no report, no temporary file);
* the flag handler itself: one signal sets the flag, a second stops at once,
  the previous handlers come back.

The commands run in subprocesses (a real signal to a real process); the
resumed and the reference runs run here, in-process.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from numerics.commands.cli import main
from numerics.core import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Seconds to wait for a subprocess to reach its first checkpoint / progress
#: output (imports on a loaded 2-core machine take a few seconds).
START_TIMEOUT = 120

MINIBATCH = ["train", "--states", "3", "--actions", "2", "--context", "5", "--mdps", "400", "--batch-mdps", "4",
             "--frames", "10", "--eval-mdps", "4", "--checkpoint-every", "1", "--no-report"]
PAPER = ["train", "--protocol", "paper", "--states", "3", "--actions", "2", "--context", "5", "--mdps", "6000",
         "--frames", "50", "--eval-mdps", "4", "--checkpoint-every", "20", "--no-report"]


class _Proc:
    """A command in a subprocess, its stderr collected by a thread."""

    def __init__(self, argv, cwd, progress=False):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if progress:
            env["ICRL_PROGRESS"] = "1"      # the progress bar's first output: the computation has started
        self.p = subprocess.Popen([sys.executable, "-m", "numerics.commands.cli", *argv], cwd=str(cwd), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.chunks: list[bytes] = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for chunk in iter(lambda: os.read(self.p.stderr.fileno(), 4096), b""):
            self.chunks.append(chunk)

    @property
    def stderr(self) -> str:
        return b"".join(self.chunks).decode()

    def wait_for(self, ready, what):
        t0 = time.monotonic()
        while not ready():
            if self.p.poll() is not None:
                self.t.join(timeout=10)
                self.p.stderr.close()
                pytest.fail(f"the command ended (status {self.p.returncode}) before {what}: {self.stderr[-2000:]}")
            if time.monotonic() - t0 > START_TIMEOUT:
                self.p.kill()
                self.p.wait()
                self.t.join(timeout=10)
                self.p.stderr.close()
                pytest.fail(f"no {what} within {START_TIMEOUT} s")
            time.sleep(0.01)

    def stop(self, signum) -> int:
        self.p.send_signal(signum)
        rc = self.p.wait(timeout=START_TIMEOUT)
        self.t.join(timeout=10)
        self.p.stderr.close()
        return rc


def _weights(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("argv,signum,status", [
    (MINIBATCH, signal.SIGINT, 130),
    pytest.param(PAPER, signal.SIGTERM, 143, marks=pytest.mark.slow),    # ~30 s: numba warm-up, 3 runs
], ids=["minibatch-SIGINT", "paper-SIGTERM"])
def test_interrupted_train_resumes_to_the_uninterrupted_weights(argv, signum, status, tmp_path):
    run = tmp_path / "run"
    proc = _Proc(argv + ["--out", str(run)], tmp_path)
    proc.wait_for(lambda: (run / "checkpoint.npz").exists(), "first checkpoint")
    rc = proc.stop(signum)
    lines = proc.stderr.strip().splitlines()
    assert rc == status, proc.stderr
    ckpt = run / "checkpoint.npz"
    assert lines == [f"icrl-verify: interrupted by {signal.Signals(signum).name}: checkpoint written to {ckpt}; "
                     "resume with --resume"]
    assert sorted(os.listdir(run)) == ["checkpoint.npz"]        # no weights, no temporary file
    assert main(argv + ["--out", str(run), "--resume"]) in (0, 1)
    ref = tmp_path / "ref"
    assert main(argv + ["--out", str(ref)]) in (0, 1)
    got, want = _weights(run / "lsa.npz"), _weights(ref / "lsa.npz")
    assert set(got) == set(want) == {"P", "V"}
    for k in want:
        assert np.array_equal(got[k], want[k]), k


@pytest.mark.slow
def test_interrupted_parallel_seeds_each_checkpoint_and_resume(tmp_path):
    """``--seeds 2 --workers 2``: SIGTERM to the parent only; it forwards
    the signal, each worker checkpoints its own seed, and the resumed seeds
    equal uninterrupted ones."""
    argv = MINIBATCH + ["--seeds", "2", "--workers", "2"]
    run = tmp_path / "run"
    proc = _Proc(argv + ["--out", str(run)], tmp_path)
    ckpts = [run / f"seed-{s}" / "checkpoint.npz" for s in (0, 1)]
    proc.wait_for(lambda: all(c.exists() for c in ckpts), "both seeds' first checkpoints")
    rc = proc.stop(signal.SIGTERM)
    lines = proc.stderr.strip().splitlines()
    assert rc == 143 and lines == [f"icrl-verify: interrupted by SIGTERM: checkpoint written to {ckpts[0]}, "
                                   f"{ckpts[1]}; resume with --resume"], proc.stderr
    assert all(sorted(os.listdir(c.parent)) == ["checkpoint.npz"] for c in ckpts)
    assert main(argv + ["--out", str(run), "--resume"]) in (0, 1)
    ref = tmp_path / "ref"
    assert main(argv + ["--out", str(ref)]) in (0, 1)
    for s in (0, 1):
        got, want = _weights(run / f"seed-{s}" / "lsa.npz"), _weights(ref / f"seed-{s}" / "lsa.npz")
        assert all(np.array_equal(got[k], want[k]) for k in ("P", "V")), s


def _no_partial_files(folder):
    """Nothing in ``folder`` (or the folder absent): no report, no temporary file."""
    return not folder.exists() or not any(folder.rglob("*"))


@pytest.mark.slow          # ~10-20 s each (a subprocess's imports)
@pytest.mark.parametrize("name,argv", [
    ("richness", ["richness", "--states", "3", "--actions", "2", "--mdps", "10", "--bootstrap", "100000"]),
    ("flow", ["flow", "--max-steps", "100000", "--trials", "2"]),
    ("control", ["control", "--states", "3", "--actions", "2", "--mdps", "5", "--seeds", "2",
                 "--rounds", "1000000"]),
    ("softmax-bound", ["softmax-bound", "--family", "onehot", "--mrps", "400", "--contexts", "400", "800", "1600",
                       "--max-time", "1d"]),
    ("softmax-train", ["softmax-train", "--steps", "100000", "--max-time", "1d"]),
])
def test_sigint_mid_run_leaves_no_report(name, argv, tmp_path):
    out = tmp_path / "out"
    proc = _Proc(argv + ["--out", str(out), "--name", "r"], tmp_path, progress=True)
    proc.wait_for(lambda: proc.stderr != "", "progress output")      # the bar starts with the computation
    rc = proc.stop(signal.SIGINT)
    err = proc.stderr
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last == "icrl-verify: interrupted by SIGINT: no file partly written", err[-2000:]
    assert _no_partial_files(out), list(out.rglob("*"))


@pytest.mark.slow
def test_sigint_during_claims_leaves_no_report(tmp_path):
    out = tmp_path / "claims"
    proc = _Proc(["claims", "--only", "lemma-c1", "--out", str(out)], tmp_path)
    proc.wait_for(lambda: "checks for" in proc.stderr, "the claims banner")
    rc = proc.stop(signal.SIGINT)
    err = proc.stderr
    assert rc == 130 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == "icrl-verify: interrupted by SIGINT: no file partly written"
    assert not (out / "claims.md").exists() and not (out / "claims.json").exists()
    assert not list(out.rglob(".tmp-*")) if out.exists() else True


# ------------------------------------------------------------ the handler

def test_one_signal_sets_the_flag_a_second_stops_at_once_and_handlers_come_back():
    before = signal.getsignal(signal.SIGINT)
    with runtime.interruptible():
        assert runtime.interrupted() is None
        runtime.check_interrupt()                           # nothing pending: no-op
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert runtime.interrupted() == signal.SIGINT
        with pytest.raises(runtime.Interrupted) as info:
            runtime.check_interrupt()
        assert info.value.exit_status == 130 and info.value.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is before
    assert runtime.interrupted() is None


def test_interrupted_survives_pickling_with_its_signal_and_checkpoint():
    import pickle
    e = pickle.loads(pickle.dumps(runtime.Interrupted(signal.SIGTERM, "DIR/checkpoint.npz")))
    assert (e.signum, e.checkpoint, e.exit_status) == (signal.SIGTERM, "DIR/checkpoint.npz", 143)


def test_train_stops_at_a_batch_boundary_with_a_checkpoint(tmp_path, monkeypatch):
    """The flag raised before the first batch ends: the run stops after it,
    checkpoint at batch 1 (not a partial batch)."""
    from numerics.analysis.train import TrainConfig, train
    cfg = TrainConfig(states=3, actions=2, n=5, mdps=8, batch_mdps=2, frames=3, eval_mdps=2)
    monkeypatch.setattr(runtime, "_pending", [signal.SIGINT])
    with pytest.raises(runtime.Interrupted) as info:
        train(cfg, out_dir=str(tmp_path))
    assert info.value.checkpoint == str(tmp_path / "checkpoint.npz")
    import json
    with np.load(info.value.checkpoint) as z:
        header = json.loads(z["header"].tobytes().decode())
    assert header["next_batch"] == 1 and len(header["curve"]) == 1
