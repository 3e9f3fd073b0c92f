"""The option schema (issue 12): every option of every command has a
:class:`~numerics.io.options.Kind`, and a flag and a configuration key go
through the same kind, so they accept and refuse the same values.

The command parsers are walked, not listed: an option added later without
a kind fails :func:`test_every_option_of_every_command_has_a_kind`.
"""
from __future__ import annotations

import argparse
import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numerics.commands.cli import COMMANDS, build_parser
from numerics.io.options import (
    STEP,
    Bytes,
    Choice,
    Exact,
    Folder,
    Integer,
    Kind,
    Name,
    Path,
    Real,
    config_defaults,
    config_keys,
    takes_value,
    type_choices,
    untyped_options,
)
from theory.errors import InputError


def command_parser(command: str) -> argparse.ArgumentParser:
    """The subcommand's parser exactly as ``icrl-verify`` builds it."""
    top = build_parser(command)
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


PARSERS = {c: command_parser(c) for c in COMMANDS}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_of_every_command_has_a_kind(command):
    assert untyped_options(PARSERS[command]) == []


def test_an_option_without_a_kind_is_reported():
    """Control for the test above: a planted option without a kind is found,
    one with choices gets :class:`Choice`, switches need none."""
    p = argparse.ArgumentParser()
    p.add_argument("--typed", type=Integer(minimum=1))
    p.add_argument("--untyped", default=None)
    p.add_argument("--plain-int", type=int)
    p.add_argument("--pick", choices=("a", "b"))
    p.add_argument("--flag", action="store_true")
    type_choices(p)
    assert untyped_options(p) == ["--untyped", "--plain-int"]
    assert isinstance(p._option_string_actions["--pick"].type, Choice)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_reads_a_config_file(command):
    assert "--config" in PARSERS[command]._option_string_actions


@pytest.mark.parametrize("command", list(COMMANDS))
def test_config_keys_are_the_long_option_names(command):
    p = PARSERS[command]
    keys = {k for k in config_keys(p) if "_" not in k}
    longs = {f[2:] for a in p._actions for f in a.option_strings
             if f.startswith("--") and f not in ("--help", "--config")}
    assert keys == longs


# ---- the kinds: one refusal per wrong kind of value ---------------------------------------

KIND_TABLE = [
    # id, kind, configuration value, words the message must contain
    ("bool-is-not-an-integer", Integer(minimum=0), True, "got a boolean"),
    ("float-is-not-an-integer", Integer(minimum=1), 2.5, "got a float"),
    ("integral-float-is-not-an-integer", Integer(minimum=1), 3.0, "got a float"),
    ("string-is-not-an-integer", Integer(minimum=1), "2.5", "got a string"),
    ("integer-below-minimum", Integer(minimum=1), 0, "at least 1"),
    ("integer-above-maximum", Integer(minimum=0, maximum=9), 10, "at most 9"),
    ("table-is-not-an-integer", Integer(), {"a": 1}, "got a table"),
    ("list-is-not-an-integer", Integer(), [1], "got a list"),
    ("bool-is-not-a-number", Real(), False, "got a boolean"),
    ("string-is-not-a-number", Real(), "0.5", "got a string"),
    ("nan-is-not-finite", Real(), float("nan"), "finite"),
    ("inf-is-not-finite", Real(), float("inf"), "finite"),
    ("number-below-minimum", Real(minimum=0.0), -0.5, "at least 0"),
    ("number-at-open-maximum", Real(minimum=0.0, maximum=1.0, open_max=True), 1.0, "below 1"),
    ("number-is-not-a-path", Path(), 3, "got an integer"),
    ("table-is-not-a-path", Path(), {"states": 5}, "got a table"),
    ("list-is-not-a-path", Path(), ["a"], "got a list"),
    ("empty-path", Path(), "", "expected a path"),
    ("date-is-not-a-path", Path(), datetime.date(2026, 1, 1), "got a date/time"),
    ("file-is-not-a-folder", Folder(), __file__, "is an existing file"),
    ("folder-under-a-file", Folder(), __file__ + "/sub", "is an existing file"),
    ("zero-step-size", STEP, 0.0, "must be positive"),
    ("folder-in-a-name", Name(), "a/b", "plain file name"),
    ("hidden-name", Name(), ".x", "plain file name"),
    ("nul-in-a-name", Name(), "a\0b", "plain file name"),
    ("name-too-long", Name(), "x" * 300, "plain file name"),
    ("unknown-choice", Choice(("a", "b")), "c", "one of a, b"),
    ("number-is-not-a-choice", Choice(("a", "b")), 1, "got an integer"),
    ("float-is-not-exact-text", Exact(), 0.2, "got a float"),
    ("blank-exact", Exact(), " ", "exact number"),
    ("bytes-zero", Bytes(), 0, "positive"),
    ("bytes-unit", Bytes(), "4X", "memory size"),
    ("bytes-bool", Bytes(), True, "got a boolean"),
]


@pytest.mark.parametrize("kind,value,words", [r[1:] for r in KIND_TABLE], ids=[r[0] for r in KIND_TABLE])
def test_kind_refuses_with_one_line_naming_the_key(kind, value, words):
    with pytest.raises(InputError) as info:
        kind.from_config("some-key", value)
    msg = str(info.value)
    assert msg.startswith("config key 'some-key': ") and words in msg and "\n" not in msg, msg


def test_kinds_accept_their_values():
    """Control for the table: each kind's valid neighbour is accepted."""
    assert Integer(minimum=1).from_config("k", 3) == 3
    assert Real(minimum=0.0, maximum=1.0, open_max=True).from_config("k", 0) == 0.0
    assert Path().from_config("k", "a/b.npz") == "a/b.npz"
    assert Folder().from_config("k", "no/such/folder") == "no/such/folder"
    assert Name().from_config("k", "run-1") == "run-1"
    assert Choice(("a", "b")).from_config("k", "b") == "b"
    assert Exact().from_config("k", 3) == "3" and Exact().from_config("k", "1/5") == "1/5"
    assert Bytes().from_config("k", "4G") == 4 * 1024 ** 3 and Bytes()("512M") == 512 * 1024 ** 2


CONFIG_TABLE = [
    # id, document (parsed TOML), words the message must contain
    ("unknown-key", {"gama": 0.5}, "unknown key 'gama'"),
    ("unknown-key-suggests", {"gama": 0.5}, "did you mean 'gamma'"),
    ("unknown-table", {"foo": {"x": 1}}, "unknown table 'foo'"),
    ("table-for-a-path", {"mdp": {"states": 5}}, "config key 'mdp': expected a path"),
    ("config-names-config", {"config": "other.toml"}, "config key 'config'"),
    ("same-option-twice", {"gamma-range": [0.1, 0.2], "gamma_range": [0.1, 0.2]}, "same option"),
    ("switch-not-bool", {"json": 1}, "true or false"),
    ("scalar-for-a-list", {"gamma-range": 0.5}, "expected a list"),
    ("list-too-short", {"gamma-range": [0.5]}, "expected 2 values"),
    ("list-of-wrong-items", {"gamma-range": [0.5, "x"]}, "got a string"),
    ("list-for-a-scalar", {"states": [3]}, "got a list"),
]


@pytest.mark.parametrize("doc,words", [r[1:] for r in CONFIG_TABLE], ids=[r[0] for r in CONFIG_TABLE])
def test_config_defaults_refuse(doc, words):
    with pytest.raises(InputError) as info:
        config_defaults(PARSERS["check"], doc, "c.toml")
    assert words in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_config_defaults_accept_every_spelling():
    """Control: long names with dashes or underscores, lists, switches and
    ``store_const`` switches (``quick = true``) are accepted."""
    got = config_defaults(PARSERS["check"], {"gamma-range": [0.1, 0.2], "prompts": 5, "json": True,
                                             "features_dim": 2}, "c.toml")
    assert got == {"gamma_range": [0.1, 0.2], "prompts": 5, "json": True, "features_dim": 2}
    assert config_defaults(PARSERS["claims"], {"quick": True}, "c.toml") == {"mode": "quick"}


# ---- one schema: a flag and a configuration key agree --------------------------------------

def _typed(command):
    return [a for a in PARSERS[command]._actions if takes_value(a)]


ACTIONS = [(c, a) for c in COMMANDS for a in _typed(c)]
SCALARS = st.one_of(st.integers(-10 ** 12, 10 ** 12), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=8), st.sampled_from(["1/5", "0.5", "2", "sarsa", "paper", "4G", "x.npz"]))


@given(st.sampled_from(ACTIONS), SCALARS)
def test_flag_and_config_key_accept_the_same_values(command_action, value):
    """For a TOML scalar of the option's own native type, the flag given its
    text and the configuration key given the value agree: both accept (the
    same value) or both refuse."""
    _, action = command_action
    kind: Kind = action.type
    try:
        from_config, config_ok = kind.from_config("k", value), True
    except InputError:
        config_ok = False
    native_text = isinstance(value, str) or (isinstance(value, int) and isinstance(kind, (Integer, Real, Bytes)))
    native_text = native_text or (isinstance(value, float) and isinstance(kind, Real))
    if not native_text:
        return          # a value of a type the kind refuses in a file (e.g. 2.5 for an integer); covered above
    if isinstance(value, str) and isinstance(kind, (Integer, Real)):
        assert not config_ok    # numbers are not strings in a file
        return
    try:
        from_flag, flag_ok = kind(str(value) if not isinstance(value, float) else repr(value)), True
    except argparse.ArgumentTypeError:
        flag_ok = False
    assert flag_ok == config_ok, (action.option_strings, value)
    if flag_ok:
        assert from_flag == from_config
