"""Safe parsing of exact weight files and exact step sizes for ``prove``.

A weight file is JSON ``{"P": [[...]], "V": [[...]]}``, each a ``D x D``
list of rows.  An entry is exact:

* a JSON integer (``3``), or a JSON decimal (``0.2``, read from its text as
  the exact rational ``1/5``, never through a binary float);
* a string in a small grammar of exact arithmetic::

      expr   := term (("+" | "-") term)*
      term   := unary (("*" | "/") unary)*
      unary  := ("+" | "-") unary | atom
      atom   := INTEGER | DECIMAL | SYMBOL | "(" expr ")"

  with ``SYMBOL`` one of ``alpha``, ``beta``, ``gamma``; e.g. ``"1/5"``,
  ``"-alpha/3"``, ``"2*beta"``.

User text is never passed to ``sympify``/``eval``: the parser below builds
the SymPy expression from tokens itself.  Every problem raises
:class:`theory.errors.InputError` with one line naming the entry.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation

import sympy as sp

from theory.errors import InputError
from theory.symbols import alpha, beta, gamma

#: The only names an entry may use (the construction's step sizes and the discount).
SYMBOLS = {"alpha": alpha, "beta": beta, "gamma": gamma}

#: Longest entry text and deepest parenthesis nesting accepted (keeps the parser's work bounded).
MAX_ENTRY_CHARS = 200
MAX_DEPTH = 20
#: Largest D accepted: exact expansion at D = 182 (actor-critic, d = 36) takes ~10 s; far larger is not feasible.
MAX_D = 400

_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|([A-Za-z_]\w*)|(.))")


def _tokens(text: str, field: str):
    out, pos = [], 0
    while pos < len(text):
        mt = _TOKEN.match(text, pos)
        if mt is None:          # only trailing whitespace is left
            break
        pos = mt.end()
        num, name, op = mt.groups()
        if num is not None:
            out.append(("num", num))
        elif name is not None:
            if name not in SYMBOLS:
                raise InputError(field, f"unknown symbol {name!r} in {text!r}; allowed: {', '.join(SYMBOLS)}")
            out.append(("sym", name))
        elif op is not None and op.strip():
            if op not in "+-*/()":
                raise InputError(field, f"unexpected character {op!r} in {text!r}")
            out.append(("op", op))
    return out


class _Parser:
    def __init__(self, tokens, text, field):
        self.t, self.i, self.text, self.field, self.depth = tokens, 0, text, field, 0

    def fail(self, why):
        raise InputError(self.field, f"{why} in {self.text!r}; expected exact arithmetic like 3, \"1/5\", \"-alpha/3\"")

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else (None, None)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def expr(self):
        v = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            rhs = self.term()
            v = v + rhs if op == "+" else v - rhs
        return v

    def term(self):
        v = self.unary()
        while self.peek() in (("op", "*"), ("op", "/")):
            op = self.take()[1]
            rhs = self.unary()
            if op == "*":
                v = v * rhs
            else:
                if rhs == 0:
                    self.fail("division by zero")
                v = v / rhs
        return v

    def unary(self):
        if self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            self.enter()
            v = self.unary()
            self.depth -= 1
            return -v if op == "-" else v
        return self.atom()

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nesting deeper than {MAX_DEPTH}")

    def atom(self):
        kind, val = self.take()
        if kind == "num":
            return sp.Rational(val) if "." in val else sp.Integer(int(val))
        if kind == "sym":
            return SYMBOLS[val]
        if (kind, val) == ("op", "("):
            self.enter()
            v = self.expr()
            self.depth -= 1
            if self.take() != ("op", ")"):
                self.fail("missing ')'")
            return v
        self.fail("unexpected end" if kind is None else f"unexpected {val!r}")

    def parse(self):
        if not self.t:
            self.fail("empty entry")
        v = self.expr()
        if self.i != len(self.t):
            self.fail(f"unexpected {self.t[self.i][1]!r}")
        return v


def parse_exact(text: str, field: str) -> sp.Expr:
    """The exact SymPy value of one entry's text (see the module grammar)."""
    if not isinstance(text, str):
        raise InputError(field, f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_ENTRY_CHARS:
        raise InputError(field, f"entry longer than {MAX_ENTRY_CHARS} characters")
    return _Parser(_tokens(text, field), text, field).parse()


class _Decimal(str):
    """A JSON decimal kept as its text (so ``0.2`` is exactly 1/5)."""


def _entry(value, field: str) -> sp.Expr:
    if isinstance(value, bool):
        raise InputError(field, f"expected an exact number or expression, got {str(value).lower()}")
    if isinstance(value, int):
        return sp.Integer(value)
    if isinstance(value, _Decimal):
        try:
            Decimal(value)
        except InvalidOperation:  # pragma: no cover - json only hands over valid decimals
            raise InputError(field, f"bad number {value!r}") from None
        return sp.Rational(str(value))
    if isinstance(value, str):
        return parse_exact(value, field)
    raise InputError(field, f"expected an integer, a decimal or a string, got {type(value).__name__}")


def _reject_constant(name):
    raise InputError("weights", f"{name} is not an exact number")


def parse_weights(text: str, source: str = "weights") -> tuple[sp.Matrix, sp.Matrix]:
    """``(P, V)`` as exact SymPy matrices from the JSON text of a weight file.

    Checks: valid JSON, an object with exactly the keys ``P`` and ``V``, each a
    non-empty square list of rows of equal length, both of one size, every
    entry exact.  The size is checked against a layout by
    :func:`check_size`.
    """
    try:
        data = json.loads(text, parse_float=_Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise InputError("weights", f"{source} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise InputError("weights", f"{source} is nested too deeply") from None
    if not isinstance(data, dict):
        raise InputError("weights", f"{source}: expected an object {{\"P\": [[...]], \"V\": [[...]]}}, got {type(data).__name__}")
    missing = [k for k in ("P", "V") if k not in data]
    if missing:
        raise InputError("weights", f"{source} lacks key(s) {', '.join(missing)}; expected P and V")
    extra = sorted(set(data) - {"P", "V"})
    if extra:
        raise InputError("weights", f"{source} has unknown key(s) {', '.join(map(repr, extra))}; expected only P and V")
    out = []
    for key in ("P", "V"):
        rows = data[key]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
            raise InputError(f"weights.{key}", "expected a non-empty list of rows (lists)")
        D = len(rows)
        if D > MAX_D:
            raise InputError(f"weights.{key}", f"{D} x {D} is larger than the {MAX_D} x {MAX_D} an exact proof can expand")
        for i, r in enumerate(rows):
            if len(r) != D:
                raise InputError(f"weights.{key}", f"row {i} has {len(r)} entries; expected {D} (a square matrix)")
        out.append(sp.Matrix(D, D, lambda i, j, rows=rows, key=key: _entry(rows[i][j], f"weights.{key}[{i}][{j}]")))
    if out[0].shape != out[1].shape:
        raise InputError("weights", f"P is {out[0].shape[0]} x {out[0].shape[0]} but V is {out[1].shape[0]} x {out[1].shape[0]}")
    return out[0], out[1]


def load_weights_json(path: str) -> tuple[sp.Matrix, sp.Matrix]:
    """:func:`parse_weights` on the file at ``path``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(50_000_000)
    except FileNotFoundError:
        raise InputError("weights", f"no such file {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError("weights", f"cannot read {path} ({e})") from None
    return parse_weights(text, path)


def feature_dim(layout, D: int) -> int:
    """The ``d`` with ``layout.D(d) == D``, or :class:`InputError` naming the sizes allowed."""
    d = layout.feature_dim(D)
    if d is None:
        D1, slope = layout.D(1), layout.D(2) - layout.D(1)
        raise InputError("weights", f"P and V are {D} x {D}; the {layout.name} layout needs D = {slope}d+{D1 - slope} "
                                    f"(d = 1, 2, ...: {D1}, {D1 + slope}, {D1 + 2 * slope}, ...)")
    return d


def parse_step(text: str | None, field: str, default: sp.Expr | None) -> sp.Expr | None:
    """A step size from the command line: exact text (``1/5``), or the symbol
    itself (``alpha``) to keep it symbolic; ``None`` gives ``default``."""
    if text is None:
        return default
    return parse_exact(str(text), field)


def weights_to_json(P: sp.Matrix, V: sp.Matrix) -> str:
    """The JSON text of exact weights (entries as strings of the grammar above);
    :func:`parse_weights` reads it back exactly."""
    def rows(M):
        return [[int(e) if e.is_Integer else str(e) for e in M.row(i)] for i in range(M.rows)]
    return json.dumps({"P": rows(P), "V": rows(V)})
