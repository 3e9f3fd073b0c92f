"""Typed options: one schema for every option of every command.

Each option's ``type=`` is a :class:`Kind`: it parses the option's text from
the command line (``kind(text)``) and checks a native value from a
``--config FILE.toml`` (``kind.from_config(key, value)``) with the same
rules, so a flag and a configuration key can never disagree.  Booleans are not
integers, an integer option refuses 2.5, a path option refuses a number, a
table or a list where a scalar belongs is refused; each refusal is one line
naming the option and what was expected.
"""
from __future__ import annotations

import argparse
import datetime
import difflib
import math
import os
import re

from theory.errors import InputError


def _toml_type(value) -> str:
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return "a date/time"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


class Kind:
    """The type of one option: parses command-line text and checks values
    from a configuration file.  ``what`` says what is expected, in words."""

    what = "a value"

    def __call__(self, text: str):
        try:
            return self.check(self.parse_text(text))
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    def parse_text(self, text: str):
        return text

    def check(self, value):
        return value

    def from_config(self, key: str, value):
        """The value of configuration key ``key``, or :class:`InputError`."""
        try:
            return self.check(self.native(value))
        except ValueError as e:
            raise InputError(f"config key {key!r}", str(e)) from None

    def native(self, value):
        """The configuration value before :meth:`check` (kinds narrow this)."""
        if not isinstance(value, str):
            raise self.refuse(value)
        return value

    def refuse(self, value):
        return ValueError(f"expected {self.what}, got {_toml_type(value)} ({value!r})")

    def __repr__(self):            # argparse names the type in some messages
        return self.what

    def __eq__(self, other):       # a value: equal after pickling (a family's parameters carry kinds)
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self), tuple(sorted(vars(self).items()))))


class Integer(Kind):
    def __init__(self, minimum: int | None = None, maximum: int | None = None):
        self.minimum, self.maximum = minimum, maximum
        lo = "" if minimum is None else f" >= {minimum}"
        hi = "" if maximum is None else f" <= {maximum}"
        self.what = f"an integer{lo}{(' and' if lo and hi else '') + hi}"

    def parse_text(self, text):
        if not re.fullmatch(r"\s*[+-]?\d+\s*", str(text)):
            raise ValueError(f"expected {self.what}, got {text!r}")
        return int(text)

    def native(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.refuse(value)
        return value

    def check(self, value):
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {self.maximum}, got {value}")
        return value


class Real(Kind):
    """A finite number, optionally bounded (``lo <= x``, ``x < hi`` when ``open_hi``)."""

    def __init__(self, minimum: float | None = None, maximum: float | None = None, open_max: bool = False,
                 positive: bool = False):
        self.minimum, self.maximum, self.open_max, self.positive = minimum, maximum, open_max, positive
        parts = ["a finite number"]
        if positive:
            parts.append("> 0")
        if minimum is not None:
            parts.append(f">= {minimum:g}")
        if maximum is not None:
            parts.append(f"{'<' if open_max else '<='} {maximum:g}")
        self.what = " ".join(parts)

    def parse_text(self, text):
        try:
            return float(text)
        except (TypeError, ValueError):
            raise ValueError(f"expected {self.what}, got {text!r}") from None

    def native(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.refuse(value)
        return float(value)

    def check(self, value):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value}")
        if self.positive and not value > 0:
            raise ValueError(f"must be positive, got {value:g}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}, got {value:g}")
        if self.maximum is not None and (value >= self.maximum if self.open_max else value > self.maximum):
            raise ValueError(f"must be {'below' if self.open_max else 'at most'} {self.maximum:g}, got {value:g}")
        return value


class Text(Kind):
    what = "a string"


class Name(Text):
    """A plain file name (no folder, not hidden)."""

    what = "a plain file name (no folder, not hidden)"

    def check(self, value):
        if not value or "/" in value or os.sep in value or value.startswith(".") or "\0" in value \
                or len(value.encode("utf-8", "surrogatepass")) > 200:     # room for a suffix under NAME_MAX
            raise ValueError(f"expected {self.what}, got {value!r}")
        return value


class Path(Text):
    """A file or folder path (its existence is checked where it is read)."""

    what = "a path (a string)"

    def check(self, value):
        if not value or "\0" in value:
            raise ValueError(f"expected a path, got {value!r}")
        return value


class Folder(Path):
    """An output folder: it may not exist yet, but neither it nor any folder
    above it may be an existing file (checked when parsed, before any work)."""

    what = "a folder path (a string)"

    def check(self, value):
        value = super().check(value)
        p = os.path.abspath(value)
        while True:
            if os.path.exists(p):
                if not os.path.isdir(p):
                    raise ValueError(f"expected a folder, but {p if p != os.path.abspath(value) else value!r} "
                                     "is an existing file")
                return value
            parent = os.path.dirname(p)
            if parent == p:
                return value
            p = parent


class Choice(Text):
    """One of a fixed set of names (the action's ``choices``)."""

    def __init__(self, choices):
        self.choices = tuple(choices)
        self.what = "one of " + ", ".join(map(str, self.choices))

    def check(self, value):
        if value not in self.choices:
            raise ValueError(f"expected {self.what}, got {value!r}")
        return value


class Exact(Text):
    """An exact rational written as text (``1/5``, ``0.2``, ``3``); a
    configuration file may give an integer."""

    what = "an exact number written as a string, e.g. \"1/5\""

    def native(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return super().native(value)

    def check(self, value):
        if not value.strip():
            raise ValueError(f"expected {self.what}, got {value!r}")
        return value


class Bytes(Kind):
    """A memory size: an integer number of bytes or a number with a suffix
    K, M, G or T (powers of 1024), e.g. ``8G``."""

    what = "a memory size such as 4G, 512M or a number of bytes"
    UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}

    def parse_text(self, text):
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
        if not m:
            raise ValueError(f"expected {self.what}, got {text!r}")
        return int(float(m.group(1)) * self.UNITS[m.group(2).upper()])

    def native(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.refuse(value)
        return self.parse_text(str(value))

    def check(self, value):
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value


class Duration(Kind):
    """A length of time: a number of seconds, or a number with a suffix s,
    m, h or d (seconds, minutes, hours, days), e.g. ``90s``, ``30m``,
    ``24h``.  Returned in seconds (a float)."""

    what = "a duration such as 3600, 90s, 30m, 24h or 2d"
    UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

    def parse_text(self, text):
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+)\s*([smhd]?)\s*", str(text), re.IGNORECASE)
        if not m:
            raise ValueError(f"expected {self.what}, got {text!r}")
        return float(m.group(1)) * self.UNITS[m.group(2).lower()]

    def native(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.refuse(value)
        return self.parse_text(str(value))

    def check(self, value):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"must be a positive, finite duration, got {value}")
        return value


#: kinds shared by many commands
SEED = Integer(minimum=0, maximum=2 ** 32 - 1)
POSITIVE = Integer(minimum=1)
COUNT = Integer(minimum=0)
FINITE = Real()
STEP = Real(positive=True)          # a step size

_SWITCHES = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction)
_NOT_OPTIONS = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def takes_value(action: argparse.Action) -> bool:
    """Whether the option reads a value from the command line (not a switch, not ``--help``)."""
    return bool(action.option_strings) and not isinstance(action, _SWITCHES + _NOT_OPTIONS)


def type_choices(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every option declared with ``choices`` and no ``type`` the kind
    :class:`Choice` of its choices (the choices say all there is to say),
    so such options need nothing more where they are declared."""
    for action in parser._actions:
        if takes_value(action) and action.type is None and action.choices is not None:
            action.type = Choice(action.choices)
    return parser


def untyped_options(parser: argparse.ArgumentParser) -> list[str]:
    """The options of ``parser`` that take a value but have no :class:`Kind`
    (each should get one: the test of the schema asserts this list is empty)."""
    return [action.option_strings[-1] for action in parser._actions
            if takes_value(action) and not isinstance(action.type, Kind)]


def config_keys(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The configuration keys of ``parser``: every long option name without
    its dashes (``gamma-range``; ``gamma_range`` is accepted too), except
    ``help`` and ``config`` itself."""
    keys = {}
    for action in parser._actions:
        if not action.option_strings or isinstance(action, _NOT_OPTIONS):
            continue
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--config":
                keys[flag[2:]] = action
                keys[flag[2:].replace("-", "_")] = action
    return keys


def config_defaults(parser: argparse.ArgumentParser, data: dict, source: str) -> dict:
    """The values of a parsed configuration document ``data`` for the
    options of ``parser``, keyed by destination; every key checked by its
    option's kind (:func:`config_value`).  An unknown key or table, or two
    keys for one option, is an :class:`InputError` naming the key."""
    keys = config_keys(parser)
    out, seen = {}, {}
    for key, value in data.items():
        if key == "config":
            raise InputError(f"config key {key!r}", f"a configuration file cannot name another ({source})")
        action = keys.get(key)
        if action is None:
            what = "table" if isinstance(value, dict) else "key"
            near = difflib.get_close_matches(key, [k for k in keys if "_" not in k], n=1)
            hint = f"; did you mean {near[0]!r}?" if near else "; keys are the command's long option names"
            raise InputError("config", f"unknown {what} {key!r} in {source}{hint}")
        if action.dest in seen:
            raise InputError(f"config key {key!r}", f"sets the same option as key {seen[action.dest]!r}")
        seen[action.dest] = key
        if isinstance(action, argparse._StoreConstAction) and not isinstance(
                action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise InputError(f"config key {key!r}", f"expected true or false, got {_toml_type(value)} ({value!r})")
            if value:
                out[action.dest] = action.const
            continue
        out[action.dest] = config_value(action, key, value)
    return out


def config_value(action: argparse.Action, key: str, value):
    """A configuration file's ``key = value`` checked against the option's
    action: its :class:`Kind`, its choices, its number of values; a flag
    (``store_true``) takes a boolean."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise InputError(f"config key {key!r}", f"expected true or false, got {_toml_type(value)} ({value!r})")
        return value
    if isinstance(action, argparse._StoreConstAction):
        raise InputError(f"config key {key!r}", "is a command-line switch; give it as a flag")
    many = action.nargs not in (None, "?")
    if many:
        if not isinstance(value, list):
            raise InputError(f"config key {key!r}", f"expected a list, got {_toml_type(value)} ({value!r})")
        if isinstance(action.nargs, int) and len(value) != action.nargs:
            raise InputError(f"config key {key!r}", f"expected {action.nargs} values, got {len(value)}")
        if action.nargs == "+" and not value:
            raise InputError(f"config key {key!r}", "expected at least one value")
        return [_one(action, key, v) for v in value]
    return _one(action, key, value)


def _one(action, key, value):
    if not isinstance(action.type, Kind):
        raise InputError(f"config key {key!r}", "this option has no type in the schema (a bug: report it)")
    v = action.type.from_config(key, value)
    if action.choices is not None and v not in action.choices:
        raise InputError(f"config key {key!r}",
                         f"unknown value {v!r}; expected one of {', '.join(map(str, action.choices))}")
    return v
