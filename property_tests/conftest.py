"""Shared test configuration: Hypothesis profiles and seeded generators.

Hypothesis profiles (selected by ``ICRL_HYPOTHESIS_PROFILE``):

* ``ci`` (the default, whether or not ``CI=true`` is set): derandomised,
  so every run draws the same examples; bounded (``max_examples`` 25, no
  per-example deadline, no example database written to disk).  The whole
  default run stays within the project's 10-minute budget on 2 cores.
* ``thorough``: random exploration with ``max_examples`` 1000 and the
  example database on, for long fuzzing runs:
  ``ICRL_HYPOTHESIS_PROFILE=thorough pytest property_tests/``.

The interface fuzzing (``test_fuzz_interfaces.py``) runs whole commands per
example, so it sets its own count from the profile: 8 cases per command and
interface under ``ci`` (about a minute for the file), 10x under ``thorough``.

An unknown profile name is a usage error (never silently the default).

Torch runs single-threaded in tests (``ICRL_TEST_THREADS`` overrides; see
the measurement below).

The ``rng`` fixture hands out a seeded ``torch.Generator`` and
``numpy.random.Generator`` pair.  Its seed is derived from the test's node
id (so it is stable across runs and differs between tests) unless
``ICRL_TEST_SEED`` is set; on failure the seed is printed in the report
(section "rng seed"), with the command line that reproduces it.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

# Make ``import strategies`` work as well as ``from property_tests import
# strategies`` (the package import), whichever a test module uses.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

PROFILES = ("ci", "thorough")

# When a property fails, Hypothesis's pytest plugin imports its patch
# writer, which imports libcst, which triggers a DeprecationWarning from
# mypy_extensions at import time.  Under the project's filterwarnings=error
# that turns every falsifying example into a pytest INTERNALERROR instead of
# a shrunk counterexample.  Import it once here, that warning ignored (it is
# a third-party import-time warning, not ours); without libcst the plugin
# never imports it.
if importlib.util.find_spec("libcst") is not None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import hypothesis.extra._patching  # noqa: F401

# Torch intra-op threads.  The tests run thousands of tiny float64 ops
# (softmax over 4 actions, 20 x 73 matmuls); on the project's 2-core
# machine, with other processes on the cores, every parallel op pays an
# OpenMP hand-off, and 2 threads made this area's default tests 5-7x slower
# than 1 (measured: 85-114 s vs 16 s; `check` at 10,000 prompts, actor-critic:
# 4.3-11 s vs 1.05 s).  ICRL_TEST_THREADS overrides (e.g. on a quiet machine).
def _test_threads() -> int:
    text = os.environ.get("ICRL_TEST_THREADS", "").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise pytest.UsageError(f"ICRL_TEST_THREADS: expected a positive integer, got {text!r}")
    return int(text)


torch.set_num_threads(_test_threads())

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    derandomize=False,
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def selected_profile() -> str:
    """The profile named by ``ICRL_HYPOTHESIS_PROFILE``; ``ci`` when unset."""
    name = os.environ.get("ICRL_HYPOTHESIS_PROFILE", "").strip() or "ci"
    if name not in PROFILES:
        raise pytest.UsageError(
            f"ICRL_HYPOTHESIS_PROFILE: unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    return name


settings.load_profile(selected_profile())


def pytest_report_header(config):
    return (f"hypothesis profile: {settings.get_current_profile_name()}; torch threads: {torch.get_num_threads()}; "
            f"ICRL_TEST_SEED={os.environ.get('ICRL_TEST_SEED', '(per-test)')}")


# ---- seeded generators ------------------------------------------------------

_SEED_KEY = pytest.StashKey[int]()


@dataclass
class Seeded:
    """A seed and the generators made from it (float64 work on CPU)."""

    seed: int
    torch: torch.Generator = field(init=False)
    numpy: np.random.Generator = field(init=False)

    def __post_init__(self):
        self.torch = torch.Generator().manual_seed(self.seed)
        self.numpy = np.random.default_rng(self.seed)

    def fresh(self, offset: int) -> "Seeded":
        """An independent pair for sub-draws (seed ``seed + offset``)."""
        return Seeded(self.seed + offset)


def seed_for(nodeid: str) -> int:
    env = os.environ.get("ICRL_TEST_SEED")
    if env is not None and env.strip():
        try:
            return int(env)
        except ValueError:
            raise pytest.UsageError(f"ICRL_TEST_SEED: expected an integer, got {env!r}") from None
    return zlib.crc32(nodeid.encode())


@pytest.fixture
def rng(request) -> Seeded:
    """Seeded torch/numpy generators; the seed is printed if the test fails."""
    seed = seed_for(request.node.nodeid)
    request.node.stash[_SEED_KEY] = seed
    return Seeded(seed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _SEED_KEY in item.stash:
        seed = item.stash[_SEED_KEY]
        report.sections.append(
            ("rng seed", f"seed = {seed}; reproduce with: ICRL_TEST_SEED={seed} pytest '{item.nodeid}'"))
    return report
