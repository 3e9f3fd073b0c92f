"""Shared helpers of the benchmark scripts: timing and the JSON last line."""
from __future__ import annotations

import argparse
import json
import time


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def timed(fn, *args, repeat: int = 1, **kw):
    """``(best seconds over repeat, result of the last call)``."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        best = min(best, time.perf_counter() - t0)
    return best, out


def report(result: dict, lines: list[str], as_json: bool):
    for line in lines:
        print(line)
    if as_json:
        print(json.dumps(result))
