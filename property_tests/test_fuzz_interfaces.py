"""Fuzzing the interfaces (issue 12): random argument vectors for every
command and random configuration documents, run in-process through
``cli.main`` with nothing mocked.

Every case must end with exit status 0, 1 or 2; with 2, exactly one line on
stderr and no file left behind in the (fresh, empty) working folder, where
every output option points; never an exception (a traceback).

Cost.  Each case runs the real command, so the valid cases are tiny: every
command line starts from :data:`TINY`, which gives every size option of the
command a tiny value (:func:`test_tiny_command_lines_bound_every_size`
checks that no size option is missed, so one added later must be added
there), and values drawn for integer options are tiny too.  Until the size
guards of issue 12 (``--max-memory``, the other half) are merged, a large
valid size is not drawn: it would run, not fail.  Under the ``ci`` profile
the whole file takes about a minute on a loaded 2-core machine; under
``ICRL_HYPOTHESIS_PROFILE=thorough`` ten times the examples.

Paths drawn are relative and never contain ``..`` or start with ``/`` or
``~``: a case cannot write outside its folder.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import math
import os
import re
import tempfile
import warnings

import pytest
import tomllib
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from numerics.analysis.ablation import DISTRIBUTIONS
from numerics.commands import check as check_command
from numerics.commands.cli import COMMANDS, main
from numerics.io import families
from numerics.io.options import (
    Bytes,
    Choice,
    Exact,
    Integer,
    Name,
    Path,
    Real,
    config_keys,
    takes_value,
)
from property_tests.test_options import PARSERS
from theory.errors import InputError

#: cases per command and interface: 8 under the ``ci`` profile, 10x under ``thorough``
#: (each case runs a real command, so the profile's own max_examples would cost too much)
PER_COMMAND = 8 * (10 if settings.get_current_profile_name() == "thorough" else 1)
FUZZ = settings(max_examples=PER_COMMAND, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.filter_too_much])

S = ["--states", "2", "--actions", "2", "--context", "2", "--mdps", "2"]
WANG = ["--layers", "1", "--features-dim", "2"]
#: the sizes of the named families (their integer parameters, read from the registry
#: numerics/io/families/), each at max(its minimum, 2)
FAM = [x for name in families.names()[1:] for prm in families.get(name).params if isinstance(prm.kind, Integer)
       for x in (prm.option(name), str(max(prm.kind.minimum or 1, 2)))]
#: a valid, tiny command line per command: every size option is given
TINY = {
    "check": [*S, "--prompts", "4", *WANG, *FAM],
    "prove": [],
    "richness": [*S, "--frames", "12", "--prompts", "24", "--bootstrap", "1", "--max-prompts", "48", *FAM],
    "train": [*S, "--frames", "2", "--batch-mdps", "1", "--eval-mdps", "1", "--seeds", "1", "--workers", "1",
              "--hidden", "2", "--lr-every", "1", "--checkpoint-every", "1", "--threads", "1", *WANG,
              "--minibatches", "1", "--window-steps", "2", "--log-every", "1", *FAM],
    "ablation": ["--states", "2", "--actions", "2", "--context", "2", "--mdps", "2", "--frames", "2",
                 "--batch-mdps", "1", "--seeds", "1", "--lr-every", "1", "--threads", "1",
                 "--distributions", "section-4.1"],
    "flow": [*S, "--frames", "12", "--trials", "1", "--max-steps", "2", "--radii", "0.1"],
    "control": [*S, "--seeds", "2", "--rounds", "2", "--feature-dim", "4", *FAM],
    # --write-batch first in run(): a fuzzed --compare never starts the comparison
    "families": [*S, "--batch", "2", "--frames", "2", "--darkroom-grid", "2", "--bootstrap", "0", "--benchmark-timeout", "60", *FAM,
                 "--write-batch", "x.npz"],
    "protocols": ["--seeds", "1", "--mdps", "1", "--rounds", "2", "--eval-mdps", "1", "--eval-frames", "2",
                  "--threads", "1"],
    "claims": ["--only", "lemma-c1", "--workers", "1"],
    "softmax-train": ["--mrps", "4", "--layers", "1", "--context", "2", "--features-dim", "2", "--states", "2",
                      "--inits", "1", "--steps", "1", "--polish", "0", "--out", "out"],
    "softmax-bound": ["--family", "onehot", "--mrps", "4", "--layers", "2", "--contexts", "5", "--states", "2",
                      "--features-dim", "2", "--rate-mrps", "2", "--out", "out"],
    # A valid sweep starts a Dask cluster (seconds per case): the fuzzer feeds
    # it a broken sweep file, so its flags and values are fuzzed while every
    # case ends at validation; valid sweeps run in test_sweep.py.
    "sweep": ["junk.toml", "--workers", "1"],
}
#: commands whose fuzzed cases all end in exit 2 (no model files for
#: protocols; a broken sweep file for sweep, above)
ALWAYS_REFUSED = {"protocols", "sweep"}

#: files present in every case's folder before the run (read by path options)
JUNK = {"junk.npz": b"not an npz file", "junk.toml": b"states = = 3\n", "empty.toml": b"",
        "junk.json": b"{\"P\": [[1, 2]]", "dir/keep": b""}
SAFE_PATHS = ["out", "out/sub", "missing.npz", "missing.toml", "dir", "junk.npz", "junk.toml", "empty.toml",
              "junk.json", "x.npz", "3"]
#: valid values of text options whose kind cannot say what is valid
TEXT_VALUES = {
    "device": ["cpu", "cuda", "tpu", "cpu:0", ""],
    "env": ["random", "FrozenLake-v1", "NoSuchEnv-v0"],
    "preconditioner": ["identity", "random", "missing.npz", "junk.npz"],
    "distributions": [d[0] for d in DISTRIBUTIONS] + ["nope"],
    "only": ["lemma-c1", "nope"],
}
#: integer options whose valid values must stay put (more would spawn processes or threads)
INT_VALUES = {"workers": [1], "threads": [1]}


def _safe(text: str) -> bool:
    return not text.startswith(("/", "~")) and ".." not in text


SAFE_TEXT = st.text(max_size=8).filter(_safe)
BAD_TEXT = st.one_of(SAFE_TEXT, st.sampled_from(["", "-1", "0", "2.5", "1e400", "nan", "-inf", "true", "[1]",
                                                 "0x10", "1_000", " 3 ", "\x00", "x" * 300, "1/0"]))


def _long(action) -> str:
    return next(f for f in action.option_strings if f.startswith("--"))


def valid_value(action) -> st.SearchStrategy[str]:
    """Text the option's kind accepts (tiny where it is a size)."""
    name, kind = _long(action)[2:], action.type
    if name in TEXT_VALUES:
        return st.sampled_from(TEXT_VALUES[name])
    if name in INT_VALUES:
        return st.sampled_from(INT_VALUES[name]).map(str)
    if isinstance(kind, Choice):
        return st.sampled_from(kind.choices).map(str)
    if isinstance(kind, Integer):
        lo = 0 if kind.minimum is None else kind.minimum
        if kind.maximum is not None:        # a seed: any value is as cheap as another
            return st.integers(lo, kind.maximum).map(str)
        return st.integers(lo, lo + 2).map(str)
    if isinstance(kind, Real):
        return st.floats(0.0, 0.95).map(repr)
    if isinstance(kind, Name):
        return st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
    if isinstance(kind, Path):
        return st.sampled_from(SAFE_PATHS)
    if isinstance(kind, Exact):
        return st.sampled_from(["1/5", "1", "alpha", "0.25", "-alpha/3"])
    if isinstance(kind, Bytes):
        return st.sampled_from(["1G", "512M", "100"])
    return SAFE_TEXT


def _nvalues(action) -> st.SearchStrategy[int]:
    if action.nargs is None:
        return st.just(1)
    if isinstance(action.nargs, int):
        return st.just(action.nargs)
    return st.integers(1, 2)


@st.composite
def option(draw, action, valid: bool):
    """One option as argv words: the flag (sometimes ``--flag=value``) and its values."""
    flag = _long(action)
    if not takes_value(action):
        return [flag]
    n = draw(_nvalues(action)) if valid else draw(st.integers(0, 3))
    values = [draw(valid_value(action) if valid else st.one_of(valid_value(action), BAD_TEXT)) for _ in range(n)]
    if n == 1 and draw(st.booleans()) and not values[0].startswith("-"):
        return [f"{flag}={values[0]}"]
    return [flag, *values]


def _actions(command):
    return [a for a in PARSERS[command]._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction)]


ALL_ACTIONS = [a for c in COMMANDS for a in _actions(c)]


@st.composite
def argv_for(draw, command):
    """A command line: the tiny base, then options of the command with valid
    values (a valid case), or any mix of the command's options with valid or
    bad values, options of other commands, unknown flags and stray words."""
    own = _actions(command)
    words = [command, *TINY[command]]
    if draw(st.booleans()):                                     # valid case
        for action in draw(st.lists(st.sampled_from(own), max_size=3)):
            words += draw(option(action, True))
        return words
    junk = st.one_of(
        st.sampled_from(own).flatmap(lambda a: option(a, False)),
        st.sampled_from(ALL_ACTIONS).flatmap(lambda a: option(a, draw(st.booleans()))),
        st.from_regex(r"--[a-z][a-z-]{0,10}", fullmatch=True).map(lambda f: [f]),
        BAD_TEXT.map(lambda w: [w]),
    )
    for item in draw(st.lists(junk, min_size=1, max_size=3)):
        words += item
    return words


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def run_case(argv, config_text: str | None = None):
    """Run ``icrl-verify ARGV`` in a fresh folder; check the exit contract."""
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as root:
        for name, data in JUNK.items():
            os.makedirs(os.path.dirname(os.path.join(root, name)) or root, exist_ok=True)
            with open(os.path.join(root, name), "wb") as fh:
                fh.write(data)
        if config_text is not None:
            with open(os.path.join(root, "fuzz.toml"), "w", encoding="utf-8") as fh:
                fh.write(config_text)
            argv = [*argv, "--config", "fuzz.toml"]
        before = _files(root)
        out, err = io.StringIO(), io.StringIO()
        os.chdir(root)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
                warnings.simplefilter("error")
                try:
                    rc = main(list(argv))
                except SystemExit as e:         # --help (or an abbreviation such as --h): usage, exit 0
                    rc = e.code
        finally:
            os.chdir(here)
            torch.set_num_threads(threads)
            torch.set_default_dtype(dtype)
        after = _files(root)
    stderr = err.getvalue()
    assert rc in (0, 1, 2), (argv, rc, stderr)
    assert "Traceback" not in stderr, (argv, stderr)
    if rc == 2:
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("icrl-verify: error: "), (argv, stderr)
        assert after == before, (argv, sorted(set(after) - set(before)))
    return rc, stderr


def test_tiny_command_lines_bound_every_size():
    """Every unbounded integer option (a size) of every command is given in
    :data:`TINY` (that each tiny line is valid shows in the fuzzing: every
    command but protocols has cases that exit 0 or 1)."""
    assert set(TINY) == set(COMMANDS), "give every command (a new one too) a tiny valid command line in TINY"
    for command in COMMANDS:
        flags = {w.split("=")[0] for w in TINY[command] if w.startswith("--")}
        sizes = {_long(a) for a in _actions(command)
                 if isinstance(a.type, Integer) and a.type.maximum is None}
        assert sizes <= flags, (command, sorted(sizes - flags))


def _assert_both_outcomes(command, seen):
    """The fuzzing is not vacuous: some cases ran (exit 0 or 1; the commands
    of :data:`ALWAYS_REFUSED` excepted) and some were refused."""
    assert 2 in seen, (command, seen)
    if command not in ALWAYS_REFUSED:
        assert seen & {0, 1}, (command, seen)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_fuzz_command_line(command):
    seen = set()

    @FUZZ
    @given(argv_for(command))
    def prop(argv):
        rc, err = run_case(argv)
        seen.add(rc)
        event(f"exit {rc}")
    prop()
    _assert_both_outcomes(command, seen)


# ---- configuration documents -----------------------------------------------------------------

ALL_KEYS = sorted({k for c in COMMANDS for k in config_keys(PARSERS[c])})
_BARE = r"[A-Za-z0-9_-]+"


def toml_key(key: str) -> str:
    return key if re.fullmatch(_BARE, key) else '"' + _escape(key) + '"'


def _escape(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + _escape(v) + '"'
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_document(doc: dict) -> str:
    """TOML text of ``doc``: scalars and inline values first, then ``[tables]``."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{toml_key(k)}]")
            lines += [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


KEYS = st.one_of(st.sampled_from(ALL_KEYS), st.sampled_from(["config", "help", "func", "command", "mode"]),
                 st.text(min_size=1, max_size=6))
SCALAR = st.one_of(
    st.booleans(),
    st.integers(-(2 ** 63), 3), st.sampled_from([2 ** 40, 2 ** 63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6).filter(_safe), st.sampled_from(SAFE_PATHS),
    st.datetimes(timezones=st.just(datetime.timezone.utc)).map(lambda d: d.replace(microsecond=0)),
    st.dates(), st.times().map(lambda t: t.replace(microsecond=0)),
)
_TABLE_KEY = st.text(min_size=1, max_size=4)
#: any TOML value: scalars, lists (of scalars or lists), tables nested two deep (inline or ``[table]``)
ANY_VALUE = st.one_of(
    SCALAR,
    st.lists(st.one_of(SCALAR, st.lists(SCALAR, max_size=2)), max_size=3),
    st.dictionaries(_TABLE_KEY, st.one_of(SCALAR, st.lists(SCALAR, max_size=2),
                                          st.dictionaries(_TABLE_KEY, SCALAR, max_size=2)), max_size=2),
)


def _native(action) -> st.SearchStrategy:
    """A native TOML value the option accepts (tiny where it is a size)."""
    if not takes_value(action):
        return st.booleans()
    text = valid_value(action)
    kind = action.type
    if isinstance(kind, Integer):
        one = text.map(int)
    elif isinstance(kind, Real):
        one = text.map(float)
    else:
        one = text
    if action.nargs is None:
        return one
    return _nvalues(action).flatmap(lambda n: st.lists(one, min_size=n, max_size=n))


@st.composite
def document(draw, command):
    """A configuration document: known keys with accepted values, or any key
    with any TOML value (nested tables, lists, dates, NaN, huge integers)."""
    keys = config_keys(PARSERS[command])
    doc = {}
    for key in draw(st.lists(KEYS, max_size=4, unique=True)):
        if key in keys and draw(st.booleans()):
            doc[key] = draw(_native(keys[key]))
        else:
            doc[key] = draw(ANY_VALUE)
    return doc


def _unbounded_int(keys, key):
    a = keys.get(key)
    return a is not None and isinstance(a.type, Integer) and a.type.maximum is None


@pytest.mark.parametrize("command", list(COMMANDS))
def test_fuzz_config_document(command):
    keys = config_keys(PARSERS[command])

    seen = set()

    @FUZZ
    @given(document(command))
    def prop(doc):
        # Sizes given in a file are validated, then overridden by TINY's flags
        # (flags win), so a large size cannot make a case slow.
        assert all(_native(keys[k]) is not None for k in doc if _unbounded_int(keys, k))
        rc, err = run_case([command, *TINY[command]], toml_document(doc))
        seen.add(rc)
        event(f"exit {rc}")
    prop()
    _assert_both_outcomes(command, seen)


def test_toml_writer_round_trips():
    """Control for the fuzzer's writer: what it writes parses back to the document."""
    doc = {"a": 1, "b-c": [1.5, "x\"y"], "t": {"k": True, "d": datetime.date(2026, 1, 2)}, "é": float("inf")}
    assert tomllib.loads(toml_document(doc)) == doc


def test_run_case_catches_a_file_left_behind(monkeypatch):
    """Control for the harness: a command that writes a file and then exits 2
    is caught, and so is a traceback (an exception out of ``main``)."""
    def leaky(args):
        with open("partial.md", "w") as fh:
            fh.write("half")
        raise InputError("x", "late refusal")

    monkeypatch.setattr(check_command, "run", leaky)
    with pytest.raises(AssertionError, match="partial.md"):
        run_case(["check", *TINY["check"]])

    def crash(args):
        raise TypeError("unexpected")

    monkeypatch.setattr(check_command, "run", crash)
    with pytest.raises(TypeError):
        run_case(["check", *TINY["check"]])
