"""The mutation check (``property_tests/mutate.py``) stays meaningful.

Fast: every planted fault's patch target still occurs exactly once in the
source (otherwise a refactor would silently turn a mutant into the original
code).  Slow: the mutation check itself, whose every fault must be caught.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from property_tests import mutate


def test_mutation_patch_targets_exist():
    assert mutate.check_targets() == []
    assert len(mutate.FAULTS) >= 4
    assert all(f.old != f.new for f in mutate.FAULTS)


def test_mutation_check_reports_missing_target(tmp_path):
    """Control: a target that is not in the source is reported, not skipped."""
    (tmp_path / "theory").mkdir()
    (tmp_path / "theory" / "constructions.py").write_text("# nothing to patch here\n")
    problems = mutate.check_targets(str(tmp_path))
    assert any("flipped sign in P12*" in p and "found 0 times" in p for p in problems), problems
    assert any("does not exist" in p for p in problems), problems


def test_issue_11_faults_are_planted_in_the_prompt_path_and_the_reference_and_run_the_cli():
    names = {f.name: f for f in mutate.FAULTS}
    for name, file, algorithm in (("score sign flipped (prompt)", "numerics/core/prompts.py", "actor-critic"),
                                  ("expected SARSA under the greedy policy (prompt)", "numerics/core/prompts.py",
                                   "expected-sarsa"),
                                  ("Q-learning argmax at s (prompt)", "numerics/core/prompts.py", "q-learning"),
                                  ("score sign flipped (reference teacher)", "numerics/reference.py", "actor-critic")):
        assert names[name].file == file and names[name].cli == algorithm


@pytest.mark.slow
@pytest.mark.parametrize("fault", [f for f in mutate.FAULTS if f.cli], ids=lambda f: f.name)
def test_cli_check_refuses_each_planted_fault(fault, tmp_path):
    """``icrl-verify check --algorithm X --json`` in a copy with the fault exits 1 with a counterexample."""
    repo = mutate.make_copy(str(tmp_path), fault)
    res = mutate.run_cli(repo, fault.cli, 600)
    assert res["rc"] == 1 and res["refused"] and res["counterexample"]["abs_error"] > 0, res


@pytest.mark.slow
def test_mutation_check_catches_every_fault():
    """``python property_tests/mutate.py --json`` (the whole fast tier per
    fault, plus the baseline: several minutes on 2 cores)."""
    script = os.path.join(os.path.dirname(os.path.abspath(mutate.__file__)), "mutate.py")
    proc = subprocess.run([sys.executable, script, "--json"], capture_output=True, text=True, timeout=3600)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["baseline"]["passed"], proc.stderr[-4000:]
    missed = [f["name"] for f in res["faults"] if not f["caught"]]
    assert not missed and res["all_caught"] and proc.returncode == 0, f"faults not caught: {missed}"
