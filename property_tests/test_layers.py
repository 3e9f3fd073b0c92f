"""The package's layer rules (issue 10): import-linter contracts declared in
``pyproject.toml`` hold, a planted upward import breaks them, and every import
sits at module top (no hidden dependencies inside functions)."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lint_imports(repo: str) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or os.path.join(os.path.dirname(sys.executable), "lint-imports")
    env = dict(os.environ, PYTHONPATH=repo)
    return subprocess.run([exe, "--no-cache"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def test_import_contracts_hold():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module, planted, contract", [
    ("numerics/core/mdp.py", "import numerics.commands.cli", "numerics layers"),
    ("numerics/io/files.py", "from numerics.analysis import check", "numerics layers"),
    ("theory/layout.py", "import numerics.core.tolerances", "theory is standalone"),
    ("numerics/analysis/check.py", "import hypothesis", "only the testing support imports hypothesis"),
    ("numerics/reference.py", "from numerics.core import prompts", "the reference teacher imports nothing"),
    ("numerics/reference.py", "import torch", "the reference teacher imports nothing"),
])
def test_a_planted_upward_import_breaks_a_contract(tmp_path, module, planted, contract):
    for pkg in ("theory", "numerics"):
        shutil.copytree(os.path.join(ROOT, pkg), tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a") as fh:
        fh.write(f"\n{planted}  # planted upward import\n")
    proc = lint_imports(str(tmp_path))
    assert proc.returncode != 0
    broken = [line for line in proc.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), proc.stdout[-3000:]


def _function_imports(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} (in {fn.name})")
    return found


def test_imports_sit_at_module_top():
    found = []
    for pkg in ("theory", "numerics"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, pkg)):
            found += [x for f in files if f.endswith(".py") for x in _function_imports(os.path.join(dirpath, f))]
    assert found == [], "imports inside functions: " + ", ".join(found)
