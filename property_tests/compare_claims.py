"""Compare ``icrl-verify claims`` numbers between two versions of the code.

    python property_tests/compare_claims.py [--base REV] [--new REV] [--mode quick|full] [--json]

Runs ``claims --MODE`` once on a temporary ``git worktree`` of ``--base``
(default: the commit before the core redesign, the reference of issue 10)
and once on the working tree (or on a worktree of ``--new REV``, e.g. the
commit that finished the redesign, before later issues added claims), both
on this machine, then compares every
number in the two ``claims.json`` files except timings (keys ``seconds``,
``total_seconds``, ``train_seconds``, ``elapsed_s``, ``frames_per_s``,
``mdp_frames_per_s``, ``runtime``, ``steps_per_s``) to ``|a - b| <= RTOL * max(1, |b|)`` and
every verdict for equality.  Free text (summaries quote timings) is not
compared.  Prints each difference; exit 0 when there is none, 1 otherwise,
2 when a run fails.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The last commit before the core redesign (issue 10).
PRE_REDESIGN = "aa96dab1e2a0d0b0ba533cc5176686bb50805ca6"
#: ``--base`` commits older than the redesign had their command line here.
ENTRY = {"numerics/commands/cli.py": "numerics.commands.cli", "numerics/cli.py": "numerics.cli"}
TIMING_KEYS = {"seconds", "total_seconds", "train_seconds", "elapsed_s", "frames_per_s", "mdp_frames_per_s", "runtime", "steps_per_s"}
RTOL = 1e-12


def run_claims(repo: str, mode: str, out: str) -> dict:
    entry = next(mod for path, mod in ENTRY.items() if os.path.exists(os.path.join(repo, path)))
    env = dict(os.environ, PYTHONPATH=repo)
    code = f"import sys; from {entry} import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "claims", f"--{mode}", "--out", out], cwd=repo, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"claims failed in {repo} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(os.path.join(out, "claims.json")) as fh:
        return json.load(fh)


def differences(a, b, path="") -> list[str]:
    """Every number (outside timing keys) and verdict that differs."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in TIMING_KEYS:
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: present in only one run")
                continue
            out += differences(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} and {len(b)}"]
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{i}]")
    elif isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        if a != b:
            out.append(f"{path}: {a!r} != {b!r}")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not (abs(a - b) <= RTOL * max(1.0, abs(b)) or (a != a and b != b)):
            out.append(f"{path}: {a!r} != {b!r} (difference {abs(a - b):.3e})")
    elif path.endswith("/verdict") and a != b:
        out.append(f"{path}: {a!r} != {b!r}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=PRE_REDESIGN, help="the reference commit (default: before the core redesign)")
    p.add_argument("--new", default=None, help="compare this commit instead of the working tree")
    p.add_argument("--mode", choices=("quick", "full"), default="quick")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"base": args.base} | ({"new": args.new} if args.new else {})
        for name, rev in trees.items():
            subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", os.path.join(tmp, name), rev],
                           check=True)
        try:
            old = run_claims(os.path.join(tmp, "base"), args.mode, os.path.join(tmp, "out-base"))
            new = run_claims(os.path.join(tmp, "new") if args.new else ROOT, args.mode, os.path.join(tmp, "out-new"))
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 2
        finally:
            for name in trees:
                subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", os.path.join(tmp, name)],
                               check=False)
    diffs = differences(new, old)
    numbers = sum(1 for _ in _numbers(new))
    for d in diffs:
        print(d)
    print(f"{numbers} numbers compared (timings excluded) against {args.base[:12]}"
          + (f" ({args.new[:12]} against it)" if args.new else "") + ": "
          + ("all equal to 1e-12" if not diffs else f"{len(diffs)} differ"))
    if args.json:
        print(json.dumps({"base": args.base, "numbers": numbers, "differences": diffs, "equal": not diffs}))
    return 0 if not diffs else 1


def _numbers(x, key=""):
    if isinstance(x, dict):
        for k, v in x.items():
            if k not in TIMING_KEYS:
                yield from _numbers(v, k)
    elif isinstance(x, list):
        for v in x:
            yield from _numbers(v, key)
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield x


if __name__ == "__main__":
    sys.exit(main())
