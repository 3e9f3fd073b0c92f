"""Constructions as data: a record of :mod:`theory.algorithms` read from a
TOML or JSON file, without Python (``--construction FILE`` of ``check``,
``prove`` and ``train``; docs/architecture.md, "How to add a construction").

A file describes a linear construction completely::

    name = "td-two-layer"                  # the record's name (not registered)
    data = "mrp"                           # mrp (layer-by-layer evaluation) or mdp (control)
    teacher = "semi-gradient"              # a rule of theory.rules.RULES
    title = "..."; statement = "..."       # optional, for reports
    recipe = [["phi", "1", "phi"], ["gphi_next", "gamma", "phi_next"], ["r", "1", "r"]]
                                           # how each context block is filled: [block, coefficient, quantity]

    [layout]                               # the prompt's rows (theory.layout.Layout)
    context = [["phi", "d"], ["gphi_next", "d"], ["r", 1]]
    params = []                            # parameter column blocks (mdp: [["one", 1], ["w", "d"]])
    readout = [["r", -1]]                  # (block, sign) read from the last column
    query = ["phi"]                        # context blocks the last column holds too

    [block]                                # theory.spec.BlockSpec
    kind = "linear"; depth = 2; tied = true; mask = "context"
    decay = 0                              # exact number, or "lambda" (TD(lambda)'s symbol)
    heads = ["identity"]                   # one value-side operator per head: identity | running-mean
    writes = ["r"]                         # rows a layer may write (absent: every row)

    [weights]                              # theory.constructions.Construction
    preconditioned = true                  # d x d entries of P are coef * C^T
    P = [["phi", "phi", "-1"], ["phi", "gphi_next", "1"]]
    V = [[["r", "r", "1"]]]                # one list of entries per head

    [mdp]                                  # data = "mdp" only (defaults as in theory.algorithms)
    next_rule = "taken"; behaviour = "epsilon-greedy"; features = "state-action"; acts_with = "w"

A softmax construction (Xie et al. 2026; examples/construction-softmax-td.toml)::

    name = "my-softmax"
    [block]
    kind = "softmax"                       # the softmax layer kind (theory.spec)
    form = "two-head"                      # two-head (heads identity + successor) | one-head (+ Lemma 1's token shift)
    shift = 1                              # the offset of Pi (1: the successor column)
    mask = "context"                       # additive -inf on the query's key row | none
    depth = 3; tied = true

    [weights]                              # A in the slot of P; one V table per head
    A = [["phi", "phi", "1"]]
    V = [[["current", "r", "alpha"], ["current", "target", "alpha"], ["current", "current", "-alpha"]],
         [["target", "r", "gamma*alpha"], ["target", "target", "gamma*alpha"], ["target", "current", "-gamma*alpha"]]]

For ``kind = "softmax"`` the defaults are Theorem 1's: ``data = "mrp"``,
``teacher = "weighted-softmax-td"``, the layout ``[phi; r; target; current]``
(``theory.layout.XIE_LAYOUT``) and its recipe (features, rewards, two rows at
zero), ``steps = ["alpha"]``; each may still be given.  ``form`` sets
``heads`` and the post map (give one of ``form`` and ``heads``; ``heads``
may name ``successor``, and ``post = "token-shift"`` the map).

Coefficients are exact: integers, or strings in the exact grammar of
:mod:`theory.parse` over ``alpha``, ``beta``, ``gamma`` (never ``eval`` nor
``sympify`` of user text).  Every problem is :class:`InputError` naming the
field (``construction.<field>``), one line.
"""
from __future__ import annotations

import json
import os
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import sympy as sp

from theory import rules
from theory.algorithms import Algorithm
from theory.constructions import Construction
from theory.errors import InputError
from theory.layout import XIE_LAYOUT, Layout
from theory.parse import parse_exact
from theory.spec import BlockSpec
from theory.symbols import lam

TOP = {"name", "data", "teacher", "title", "statement", "theorem", "notes", "steps", "layout", "block", "recipe",
       "weights", "mdp"}
HEADS = {"identity": None, "running-mean": "running-mean", "successor": "successor"}
#: The two forms of Xie et al.'s Theorem 1: (heads, post map).
FORMS = {"two-head": (("identity", "successor"), None), "one-head": (("identity",), "token-shift")}
#: Theorem 1's recipe: features, rewards, the target and current rows at zero.
SOFTMAX_RECIPE = [["phi", "1", "phi"], ["r", "1", "r"], ["target", "1", "zero"], ["current", "1", "zero"]]


def _field(name):
    return f"construction.{name}"


def _need(doc: dict, key: str, kind, where: str = ""):
    path = f"{where}.{key}" if where else key
    if key not in doc:
        raise InputError(_field(path), "missing")
    v = doc[key]
    if kind is not None and (not isinstance(v, kind) or (kind is int and isinstance(v, bool))):
        raise InputError(_field(path), f"expected {getattr(kind, '__name__', kind)}, got {type(v).__name__}")
    return v


def _exact(value, field: str) -> sp.Expr:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(_field(field), f"expected an integer or an exact expression string, got {value!r}")
    return sp.Integer(value) if isinstance(value, int) else parse_exact(value, _field(field))


def _pairs(value, field: str, second) -> tuple:
    if not isinstance(value, list):
        raise InputError(_field(field), f"expected a list of pairs, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise InputError(_field(f"{field}[{i}]"), f"expected [block, {second}], got {item!r}")
        out.append((item[0], item[1]))
    return tuple(out)


def _table(value, field: str) -> tuple:
    if not isinstance(value, list):
        raise InputError(_field(field), f"expected a list of [row block, column block, coefficient], got {value!r}")
    out = []
    for i, item in enumerate(value):
        if not (isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item[:2])):
            raise InputError(_field(f"{field}[{i}]"), f"expected [row block, column block, coefficient], got {item!r}")
        out.append(((item[0], item[1]), _exact(item[2], f"{field}[{i}]")))
    return tuple(out)


def _known(table: dict, keys, where: str):
    unknown = set(table) - set(keys)
    if unknown:
        raise InputError(_field(f"{where}.{sorted(unknown)[0]}"), f"unknown key; expected {', '.join(keys)}")


def _layout(doc: dict, name: str) -> Layout:
    lay = _need(doc, "layout", dict)
    _known(lay, ("name", "context", "params", "readout", "query"), "layout")
    readout = lay.get("readout")
    try:
        return Layout(name=str(lay.get("name", name)), context=_pairs(_need(lay, "context", list, "layout"),
                                                                      "layout.context", "size"),
                      params=_pairs(lay.get("params", []), "layout.params", "size"),
                      readout=None if readout is None else _pairs(readout, "layout.readout", "sign"),
                      query=tuple(lay.get("query", ())))
    except (ValueError, TypeError) as e:
        raise InputError(_field("layout"), str(e)) from None


def _block(doc: dict) -> dict:
    blk = doc.get("block", {})
    if not isinstance(blk, dict):
        raise InputError(_field("block"), "expected a table")
    return blk


def _spec(doc: dict, layout: Layout) -> BlockSpec:
    blk = _block(doc)
    _known(blk, ("kind", "depth", "tied", "mask", "decay", "heads", "writes", "form", "shift", "post"), "block")
    decay = blk.get("decay", 0)
    decay = lam if decay == "lambda" else _exact(decay, "block.decay")
    heads = blk.get("heads", ["identity"])
    post = blk.get("post")
    if "form" in blk:
        if blk["form"] not in FORMS:
            raise InputError(_field("block.form"), f"expected one of {', '.join(FORMS)}, got {blk['form']!r}")
        if "heads" in blk or "post" in blk:
            raise InputError(_field("block.form"), "give form, or heads and post, not both")
        heads, post = list(FORMS[blk["form"]][0]), FORMS[blk["form"]][1]
    shift = blk.get("shift", 1)
    if isinstance(shift, bool) or not isinstance(shift, int):
        raise InputError(_field("block.shift"), f"expected int, got {shift!r}")
    if post is not None and not isinstance(post, str):
        raise InputError(_field("block.post"), f"expected a string, got {post!r}")
    if not isinstance(heads, list) or any(h not in HEADS for h in heads):
        raise InputError(_field("block.heads"), f"expected a list of {', '.join(HEADS)}, got {heads!r}")
    writes = blk.get("writes")
    if writes is not None and not (isinstance(writes, list) and all(isinstance(w, str) for w in writes)):
        raise InputError(_field("block.writes"), f"expected a list of row blocks, got {writes!r}")
    for key, kind in (("depth", int), ("tied", bool), ("mask", str), ("kind", str)):
        if key in blk and (not isinstance(blk[key], kind) or (kind is int and isinstance(blk[key], bool))):
            raise InputError(_field(f"block.{key}"), f"expected {kind.__name__}, got {blk[key]!r}")
    try:
        return BlockSpec(layout, depth=blk.get("depth", 1), tied=blk.get("tied", True), mask=blk.get("mask", "none"),
                         writes=None if writes is None else tuple(writes), decay=0 if decay == 0 else decay,
                         heads=tuple(HEADS[h] for h in heads), kind=blk.get("kind", "linear"), post=post,
                         shift=shift)
    except ValueError as e:
        raise InputError(_field("block"), str(e)) from None


def record_from_dict(doc: dict, source: str = "construction") -> Algorithm:
    """The record a parsed file describes (module docstring)."""
    if not isinstance(doc, dict):
        raise InputError(_field(""), "expected a table / object at the top")
    unknown = set(doc) - TOP
    if unknown:
        raise InputError(_field(sorted(unknown)[0]), f"unknown key; expected {', '.join(sorted(TOP))}")
    name = _need(doc, "name", str)
    softmax = _block(doc).get("kind") == "softmax"
    if softmax:                                   # Theorem 1's defaults (module docstring)
        doc = {"data": "mrp", "teacher": "weighted-softmax-td", "recipe": SOFTMAX_RECIPE, "steps": ["alpha"], **doc}
    data = doc.get("data", "mdp")
    teacher = _need(doc, "teacher", str)
    if teacher not in rules.RULES:
        raise InputError(_field("teacher"), f"unknown rule {teacher!r}; expected one of {', '.join(rules.RULES)}")
    layout = XIE_LAYOUT if softmax and "layout" not in doc else _layout(doc, name)
    spec = _spec(doc, layout)
    recipe = _need(doc, "recipe", list)
    context = []
    for i, item in enumerate(recipe):
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and isinstance(item[2], str)):
            raise InputError(_field(f"recipe[{i}]"), f"expected [block, coefficient, quantity], got {item!r}")
        context.append((item[0], _exact(item[1], f"recipe[{i}]"), item[2]))
    w = _need(doc, "weights", dict)
    first = "A" if softmax else "P"                # a softmax file names its key-query form A (Xie et al.)
    _known(w, ("preconditioned", first, "V"), "weights")
    heads_v = _need(w, "V", list, "weights")
    if not heads_v or not all(isinstance(t, list) for t in heads_v):
        raise InputError(_field("weights.V"), "expected one list of entries per head")
    pre = w.get("preconditioned", False)
    if not isinstance(pre, bool):
        raise InputError(_field("weights.preconditioned"), f"expected true or false, got {pre!r}")
    con = Construction(p=_table(_need(w, first, list, "weights"), f"weights.{first}"),
                       v=tuple(_table(t, f"weights.V[{h}]") for h, t in enumerate(heads_v)), preconditioned=pre)
    mdp = doc.get("mdp", {})
    if not isinstance(mdp, dict) or set(mdp) - {"next_rule", "behaviour", "features", "acts_with"}:
        raise InputError(_field("mdp"), "expected a table with next_rule, behaviour, features, acts_with")
    kw = dict(mdp)
    if data == "mrp":
        kw.update(acts_with=None, features="state", behaviour="uniform")
    steps = doc.get("steps", ["C"] if data == "mrp" else ["alpha", "beta"] if teacher == "actor-critic" else ["alpha"])
    try:
        return Algorithm(name=name, spec=spec, construction=con, context=tuple(context), rule=rules.RULES[teacher],
                         data=data, title=str(doc.get("title", name)), statement=str(doc.get("statement", "")),
                         theorem=str(doc.get("theorem", f"construction file {source}")),
                         notes=tuple(doc.get("notes", ())), steps=tuple(steps), **kw)
    except (ValueError, TypeError) as e:
        raise InputError(_field("record"), str(e).replace("\n", " ")) from None


def load(path: str) -> Algorithm:
    """The record in ``path`` (``.toml`` or ``.json``)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".toml", ".json"):
        raise InputError("construction", f"{path}: expected a .toml or .json file")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise InputError("construction", f"cannot read {path}: {e.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode()) if ext == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError("construction", f"{path} is not valid {ext[1:].upper()}: {e}") from None
    return record_from_dict(doc, os.path.basename(path))
