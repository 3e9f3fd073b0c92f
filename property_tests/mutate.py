"""Mutation check: plant known faults one at a time and show the suite catches each.

    python property_tests/mutate.py [--suite all|properties] [--json] [--no-baseline]

For every fault below, the repository is copied to a temporary directory,
one textual patch is applied to the copy (the script fails loudly, exit 2,
if the patch's target text is not found exactly once), and the fast tier
of the test suite runs against the copy (``pytest -x -m 'not slow' -p
no:cacheprovider``, ``PYTHONPATH`` pointing at the copy, the ``ci``
Hypothesis profile).  A fault is *caught* when pytest reports at least one
failed test (exit status 1); a collection error or a crash is not a catch.
First the unpatched copy is run (the baseline): it must pass, or the
catches would mean nothing.

A fault with an algorithm named (``cli``: the faults planted in the prompt
path, the constructions and the reference teacher) must also be refused by
the command line itself: ``python -m numerics.commands.cli check
--algorithm ALGORITHM --prompts 200 --mdps 20 --json`` run in the copy must
exit 1 with a counterexample, or the fault counts as not caught.

Prints a table (fault, file, caught, check's exit, first failing test, seconds) and, with
``--json``, one JSON object as the last line: ``baseline`` (``{passed,
seconds}``), ``faults`` (list of ``{name, file, caught, caught_by, rc,
seconds, cli_algorithm, cli_rc, cli_refused}``) and ``all_caught``.  Exit 0 only when the baseline passed and
every fault was caught; 1 when a fault survived or the baseline failed; 2
when a patch target is missing or the copy cannot be set up.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Fault:
    name: str
    file: str          # relative to the repository root
    old: str           # exact text, must occur exactly once
    new: str
    why: str
    cli: str | None = None   # algorithm whose `icrl-verify check --json` must exit 1 with a counterexample


FAULTS = (
    Fault("flipped sign in P12*", "theory/constructions.py",
          '(("phi", "w"), sp.Integer(-1)),',
          '(("phi", "w"), sp.Integer(1)),',
          "Theorem 3.1's P12* w~ = (+w, w, 1) instead of (-w, w, 1)", cli="sarsa"),
    Fault("wrong alpha", "theory/constructions.py",
          'v=((("w", "phi"), alpha),),',
          'v=((("w", "phi"), alpha / 2),),',
          "Vbar21* = [alpha/2 I, 0, 0] in the SARSA-family construction", cli="expected-sarsa"),
    Fault("dropped gamma (prompt)", "numerics/core/prompts.py",
          "            v = gamma[:, None, None] * v",
          "            v = v",
          "the prompt writes phi+ instead of gamma phi+", cli="q-learning"),
    Fault("dropped gamma (teacher)", "numerics/core/teachers.py",
          "gamma=gamma[:, None]",
          "gamma=torch.ones_like(gamma)[:, None]",
          "the teacher's TD error is undiscounted"),
    Fault("per-pair average in the teacher", "numerics/core/teachers.py",
          "parts[b] + out[b][0] * out[b][1].mean(1)",
          "parts[b] + out[b][0] * (out[b][1] / (q['phi'].unsqueeze(2) == q['phi'].unsqueeze(1)).all(-1)"
          ".to(q['phi'].dtype).sum(-1, keepdim=True)).sum(1)",
          "the teacher averages per state-action pair (visits of each (s, a)) instead of the global (1/n) sum"),
    # issue 11: faults in the routine the prompt and the old teacher shared, and in the reference teacher
    Fault("score sign flipped (prompt)", "numerics/core/prompts.py",
          'out["g"] = phi - (pi.unsqueeze(-1) * Fs).sum(-2)',
          'out["g"] = (pi.unsqueeze(-1) * Fs).sum(-2) - phi',
          "the actor-critic score written as sum_b pi phi(s, b) - phi(s, a)", cli="actor-critic"),
    Fault("expected SARSA under the greedy policy (prompt)", "numerics/core/prompts.py",
          "pi = behaviour_probs(record, Fn, theta, epsilon)",
          "pi = behaviour_probs(record, Fn, theta, 0.0)",
          "expected SARSA's phi+ the expectation under the greedy (epsilon = 0) policy", cli="expected-sarsa"),
    Fault("Q-learning argmax at s (prompt)", "numerics/core/prompts.py",
          "Q = (Fn @ w[:, None, :, None]).squeeze(-1)",
          "Q = (gather(F, s[:, :-1]) @ w[:, None, :, None]).squeeze(-1)",
          "Q-learning's greedy next action chosen by Q_w at s_i instead of s_{i+1}", cli="q-learning"),
    Fault("score sign flipped (reference teacher)", "numerics/reference.py",
          'return F_s[np.arange(F_s.shape[0]), a] - np.einsum("ba,bak->bk", pi, F_s)',
          'return np.einsum("ba,bak->bk", pi, F_s) - F_s[np.arange(F_s.shape[0]), a]',
          "the reference teacher's own score flipped", cli="actor-critic"),
    Fault("expected SARSA under the greedy policy (reference teacher)", "numerics/reference.py",
          'return np.einsum("ba,bak->bk", epsilon_greedy(q, epsilon), F_next)',
          'return np.einsum("ba,bak->bk", epsilon_greedy(q, 0.0), F_next)',
          "the reference teacher's expected SARSA under the greedy policy", cli="expected-sarsa"),
)

#: ``icrl-verify check`` options of the per-fault CLI run (small: a fault is refused within 200 prompts).
CLI_ARGS = ["--prompts", "200", "--mdps", "20", "--json"]

_FIRST = ["property_tests/test_properties.py", "property_tests/test_check_cli.py"]

#: suite -> pytest runs in order (each a list of arguments); the runs stop at
#: the first one with a failure.  The claims' properties and the check's
#: acceptance tests go first so that a catch stops early (pytest collects a
#: directory argument in directory order, whatever files precede it).
SUITES = {
    "all": [_FIRST, ["property_tests", *(f"--ignore={f}" for f in _FIRST)]],
    "properties": [_FIRST],
}

IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".hypothesis", ".pytest_cache",
                                ".venv", "runs", "build", "dist", ".benchmarks")


class SetupError(Exception):
    pass


def check_targets(root: str = ROOT) -> list[str]:
    """Problems with the patch targets (empty when every target occurs exactly once)."""
    problems = []
    for f in FAULTS:
        path = os.path.join(root, f.file)
        if not os.path.exists(path):
            problems.append(f"{f.name}: file {f.file} does not exist")
            continue
        with open(path, encoding="utf-8") as fh:
            count = fh.read().count(f.old)
        if count != 1:
            problems.append(f"{f.name}: target text found {count} times in {f.file} (expected exactly once): {f.old!r}")
    return problems


def make_copy(dest: str, fault: Fault | None) -> str:
    repo = os.path.join(dest, "repo")
    shutil.copytree(ROOT, repo, ignore=IGNORE)
    if fault is not None:
        path = os.path.join(repo, fault.file)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if text.count(fault.old) != 1:
            raise SetupError(f"{fault.name}: target text not found exactly once in {fault.file}: {fault.old!r}")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text.replace(fault.old, fault.new))
    return repo


def _env(repo: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["CI"] = "true"
    env["ICRL_HYPOTHESIS_PROFILE"] = "ci"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def verify_imports(repo: str):
    """The copy's modules, not the installed ones, must be the ones imported."""
    code = ("import numerics, theory, numerics.analysis.check, numerics.core.teachers, numerics.core.prompts, "
            "theory.constructions;"
            "print(numerics.__file__); print(theory.__file__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, env=_env(repo), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"the copy does not import: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    for line in proc.stdout.split():
        if not os.path.realpath(line).startswith(os.path.realpath(repo)):
            raise SetupError(f"imports resolve outside the copy ({line}); PYTHONPATH does not take precedence")


def run_suite(repo: str, runs: list[list[str]], timeout: float, keep_going: bool = False):
    """Run the pytest ``runs`` in order, stopping at the first that does not pass
    (and, unless ``keep_going``, at the first failing test: ``-x``)."""
    t0 = time.perf_counter()
    rc, out, failed = 0, "", []
    for targets in runs:
        cmd = [sys.executable, "-m", "pytest", *([] if keep_going else ["-x"]), "-q", "-p", "no:cacheprovider",
               "-m", "not slow", "-rfE", "--no-header", *targets]
        try:
            proc = subprocess.run(cmd, cwd=repo, env=_env(repo), capture_output=True, text=True, timeout=timeout)
            rc, out = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            rc, out = -1, f"timed out after {timeout:.0f} s\n{e.stdout or ''}"
        failed = re.findall(r"^FAILED (\S+)", out, flags=re.M)
        if rc != 0:
            break
    return rc, failed, time.perf_counter() - t0, out


def run_cli(repo: str, algorithm: str, timeout: float) -> dict:
    """``icrl-verify check --algorithm ALGORITHM --json`` in the copy: ``{rc,
    refused, counterexample}``; refused when it exits 1 with a counterexample."""
    cmd = [sys.executable, "-m", "numerics.commands.cli", "check", "--algorithm", algorithm, *CLI_ARGS]
    try:
        proc = subprocess.run(cmd, cwd=repo, env=_env(repo), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(rc=-1, refused=False, counterexample=None)
    try:
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {}
    cex = res.get("counterexample")
    return dict(rc=proc.returncode, refused=proc.returncode == 1 and cex is not None, counterexample=cex)


def run_one(fault: Fault | None, targets, timeout, keep_going=False):
    with tempfile.TemporaryDirectory(prefix="icrl-mutant-") as tmp:
        repo = make_copy(tmp, fault)
        verify_imports(repo)
        cli = run_cli(repo, fault.cli, timeout) if fault is not None and fault.cli else None
        return (*run_suite(repo, targets, timeout, keep_going), cli)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--suite", choices=sorted(SUITES), default="all",
                    help="all: the whole fast tier, the claims' properties first (default); "
                         "properties: test_properties.py and test_check_cli.py only (quicker)")
    ap.add_argument("--json", action="store_true", help="print one JSON object with the results as the last line")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unpatched run (its result is then unknown)")
    ap.add_argument("--keep-going", action="store_true",
                    help="run every test against each fault (no -x) and list all that catch it (slower)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per suite run (900)")
    args = ap.parse_args(argv)

    problems = check_targets()
    if problems:
        for p in problems:
            print(f"mutate: error: {p}", file=sys.stderr)
        return 2
    targets = SUITES[args.suite]
    try:
        baseline = None
        if not args.no_baseline:
            rc, failed, secs, out, _ = run_one(None, targets, args.timeout)
            baseline = dict(passed=(rc == 0), rc=rc, seconds=round(secs, 1), failed=failed)
            if rc != 0:
                print(out[-4000:], file=sys.stderr)
            print(f"baseline (no fault): {'passes' if rc == 0 else 'FAILS'} in {secs:.1f} s")
        rows = []
        for f in FAULTS:
            rc, failed, secs, _, cli = run_one(f, targets, args.timeout, args.keep_going)
            caught = rc == 1 and bool(failed) and (cli is None or cli["refused"])
            rows.append(dict(name=f.name, file=f.file, why=f.why, caught=caught, caught_by=failed[0] if failed else None,
                             failed_tests=failed, rc=rc, seconds=round(secs, 1), cli_algorithm=f.cli,
                             cli_rc=None if cli is None else cli["rc"],
                             cli_refused=None if cli is None else cli["refused"]))
    except SetupError as e:
        print(f"mutate: error: {e}", file=sys.stderr)
        return 2

    w = max(len(r["name"]) for r in rows)
    print(f"{'fault':<{w}}  {'file':<24}  caught  {'check':<14}  {'seconds':>7}  first failing test")
    for r in rows:
        cli = "-" if r["cli_algorithm"] is None else f"{'exit' if r['cli_refused'] else 'NOT'} {r['cli_rc']}"
        print(f"{r['name']:<{w}}  {r['file']:<24}  {'yes' if r['caught'] else 'NO':<6}  {cli:<14}  "
              f"{r['seconds']:>7.1f}  {r['caught_by'] or ('(rc %d)' % r['rc'])}")
        if args.keep_going:
            names = sorted({t.split("::")[-1].split("[")[0] for t in r["failed_tests"]})
            print(f"{'':<{w}}  {'':<24}  {'':<6}  {'':>7}  all {len(r['failed_tests'])} failing: {', '.join(names)}")
    all_caught = all(r["caught"] for r in rows)
    ok = all_caught and (baseline is None or baseline["passed"])
    print(f"{sum(r['caught'] for r in rows)}/{len(rows)} faults caught"
          + ("" if baseline is None else f"; baseline {'passes' if baseline['passed'] else 'FAILS'}"))
    if args.json:
        print(json.dumps(dict(baseline=baseline, faults=rows, all_caught=all_caught, suite=args.suite)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
