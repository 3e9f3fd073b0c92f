"""Counts of a mutmut run per module, from mutmut's own state (``mutants/**/*.py.meta``).

    python property_tests/mutmut_summary.py [--mutants mutants] [--equivalent property_tests/mutmut_equivalent.txt]

Prints, per mutated module: mutants, killed, survived, timeouts, no tests,
not checked, the survivors listed as equivalent (``mutmut_equivalent.txt``:
one ``NAME  reason`` per line), and the score ``killed / (all - equivalent)``;
then every survivor not listed as equivalent.  Exit 0 when the run is
complete and every survivor is listed; 1 otherwise; 2 when there is no run.
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", None: "not checked",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"}


def read_equivalent(path: str) -> dict[str, str]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, reason = line.partition(" ")
                out[name] = reason.strip()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutants", default="mutants", help="mutmut's folder (default: mutants)")
    ap.add_argument("--equivalent", default=os.path.join(HERE, "mutmut_equivalent.txt"),
                    help="the equivalent mutants, one 'NAME reason' per line")
    args = ap.parse_args(argv)
    metas = sorted(glob.glob(os.path.join(args.mutants, "**", "*.py.meta"), recursive=True))
    if not metas:
        print(f"mutmut_summary: error: no mutmut state under {args.mutants!r} (run `mutmut run` first)",
              file=sys.stderr)
        return 2
    equivalent = read_equivalent(args.equivalent) if os.path.exists(args.equivalent) else {}
    rows, unlisted, stale = [], [], []
    total = collections.Counter()
    for meta in metas:
        with open(meta, encoding="utf-8") as fh:
            codes = json.load(fh)["exit_code_by_key"]
        module = os.path.relpath(meta, args.mutants)[:-len(".meta")]
        c = collections.Counter(STATUS.get(code, "suspicious") for code in codes.values())
        c["mutants"] = len(codes)
        for name, code in codes.items():
            if STATUS.get(code) == "survived":
                if name in equivalent:
                    c["equivalent"] += 1
                else:
                    unlisted.append(name)
            elif name in equivalent:
                stale.append(f"{name} ({STATUS.get(code, code)})")
        total.update(c)
        rows.append((module, c))
    rows.append(("total", total))
    cols = ["mutants", "killed", "survived", "equivalent", "timeout", "no tests", "not checked"]
    print(f"{'module':<36}" + "".join(f"{k:>12}" for k in cols) + f"{'score':>9}")
    for module, c in rows:
        denom = c["mutants"] - c["equivalent"]
        score = f"{100 * c['killed'] / denom:.1f}%" if denom else "-"
        print(f"{module:<36}" + "".join(f"{c[k]:>12}" for k in cols) + f"{score:>9}")
    for name in unlisted:
        print(f"survivor not listed as equivalent: {name}")
    for name in stale:
        print(f"listed as equivalent but not a survivor of this run: {name}")
    return 0 if not unlisted and not total["not checked"] else 1


if __name__ == "__main__":
    sys.exit(main())
