"""``mutmut_summary.py`` (the per-module counts of a mutmut run) and the list
of equivalent mutants it reads: a survivor not listed fails the summary, an
unfinished run fails it, no run is a usage error."""
from __future__ import annotations

import json
import os
import tomllib

from property_tests import mutmut_summary as ms

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(tmp_path, codes: dict, equivalent: str, capsys):
    meta = tmp_path / "mutants" / "numerics" / "core" / "block.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    eq = tmp_path / "eq.txt"
    eq.write_text(equivalent)
    rc = ms.main(["--mutants", str(tmp_path / "mutants"), "--equivalent", str(eq)])
    return rc, capsys.readouterr().out


def test_a_survivor_not_listed_fails_and_is_named(tmp_path, capsys):
    codes = {"numerics.core.block.x_f__mutmut_1": 1, "numerics.core.block.x_f__mutmut_2": 0}
    rc, out = _run(tmp_path, codes, "", capsys)
    assert rc == 1 and "survivor not listed as equivalent: numerics.core.block.x_f__mutmut_2" in out


def test_a_listed_survivor_counts_as_equivalent_and_the_score_leaves_it_out(tmp_path, capsys):
    codes = {"numerics.core.block.x_f__mutmut_1": 1, "numerics.core.block.x_f__mutmut_2": 0,
             "numerics.core.block.x_f__mutmut_3": 36}
    rc, out = _run(tmp_path, codes, "# comment\nnumerics.core.block.x_f__mutmut_2 the same contraction\n", capsys)
    total = [line for line in out.splitlines() if line.startswith("total")][0].split()
    assert rc == 0 and total[1:8] == ["3", "1", "1", "1", "1", "0", "0"] and total[8] == "50.0%"


def test_an_unfinished_run_fails_and_a_killed_listed_mutant_is_named(tmp_path, capsys):
    codes = {"numerics.core.block.x_f__mutmut_1": None, "numerics.core.block.x_f__mutmut_2": 1}
    rc, out = _run(tmp_path, codes, "numerics.core.block.x_f__mutmut_2 wrongly listed\n", capsys)
    assert rc == 1 and "listed as equivalent but not a survivor of this run: numerics.core.block.x_f__mutmut_2" in out


def test_no_run_is_a_usage_error(tmp_path, capsys):
    assert ms.main(["--mutants", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("mutmut_summary: error: no mutmut state")


def test_every_listed_equivalent_names_a_mutated_module_and_a_reason():
    with open(os.path.join(os.path.dirname(HERE), "pyproject.toml"), "rb") as fh:
        mutated = tomllib.load(fh)["tool"]["mutmut"]["only_mutate"]
    modules = {m[:-3].replace("/", ".") for m in mutated}
    listed = ms.read_equivalent(os.path.join(HERE, "mutmut_equivalent.txt"))
    assert len(listed) >= 1
    for name, reason in listed.items():
        assert name.split(".x", 1)[0] in modules and "__mutmut_" in name, name
        assert len(reason) > 10, name
