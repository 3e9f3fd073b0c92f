"""Which construction record a command runs: ``--algorithm NAME`` (any
registered record), ``--construction FILE.toml|.json`` (a record written as
data, ``theory.construction_file``), and the deprecated ``--layout`` alias
(argparse and resolution only; the records are in ``theory.algorithms``).

``--layout paper|wang2025`` is accepted for one release: ``wang2025`` picks
the layer-by-layer (``mrp``) record of the same name, with ``td`` meaning
``td-preconditioned`` (``--algorithm td`` alone names Liang & Lai's TD(0));
without ``--algorithm`` it picks ``td-preconditioned``.  ``paper`` changes
nothing.  (The alias prints nothing: a bad-input error stays one line.)

Options whose defaults differ between the MDP records (Section 4.1) and the
MRP records (Wang et al.'s settings) keep a marked default (:func:`mark_defaults`):
:func:`pick` returns the given value, or the record's value when the option
was not given.
"""
from __future__ import annotations

from numerics.io.options import Path
from theory import algorithms, construction_file
from theory.errors import InputError

LAYOUTS = ("paper", "wang2025")


class _Default:
    """Marks a parser default, so that a command can tell it from a given value."""


class _DefaultInt(int, _Default):
    pass


class _DefaultFloat(float, _Default):
    pass


class _DefaultStr(str, _Default):
    pass


def mark_defaults(p, dests):
    """Replace the defaults of ``dests`` by equal values that remember they are defaults."""
    for action in p._actions:
        v = action.default
        if action.dest in dests and not isinstance(v, bool):
            kind = _DefaultInt if isinstance(v, int) else _DefaultFloat if isinstance(v, float) else \
                _DefaultStr if isinstance(v, str) else None
            if kind is not None:
                action.default = kind(v)


def given(args, dest: str) -> bool:
    """True when ``dest`` was given (on the command line or in ``--config``)."""
    v = getattr(args, dest, None)
    return v is not None and not isinstance(v, _Default)


def pick(args, dest: str, ours):
    """The given value of ``dest``, or ``ours`` when it was not given (a marked
    default, or None for options whose default depends on another option)."""
    v = getattr(args, dest)
    return ours if v is None or isinstance(v, _Default) else v


def add_record_arguments(p, choices=None):
    """``--construction`` and the deprecated ``--layout`` (``--algorithm`` is
    added by the command, its choices read from the one registry)."""
    p.add_argument("--construction", type=Path(), metavar="FILE.toml", default=None,
                   help="run the construction described in this TOML or JSON file instead of a registered one "
                        "(layout, depth, mask, heads, weights as exact expressions, teacher rule; "
                        "docs/architecture.md, How to add a construction)")
    p.add_argument("--layout", choices=LAYOUTS, default="paper",
                   help="DEPRECATED alias, accepted for one release: wang2025 = Wang et al.'s record of the same "
                        "--algorithm name (td means td-preconditioned); the record itself says its layout (paper)")
    mark_defaults(p, ("algorithm",))


def record_from_args(args, kinds=algorithms.DATA) -> algorithms.Algorithm:
    """The record the options name (module docstring); ``kinds``: the
    ``data`` values the command runs."""
    path = getattr(args, "construction", None)
    layout = getattr(args, "layout", "paper")
    if path:
        if given(args, "algorithm"):
            raise InputError("construction", "--construction and --algorithm both name the construction; give one")
        if layout != "paper":
            raise InputError("layout", "--layout does not combine with --construction (the file gives the layout)")
        record = construction_file.load(str(path))
    elif layout == "wang2025":
        name = str(args.algorithm) if given(args, "algorithm") else "td-preconditioned"
        name = algorithms.LAYOUT_ALIASES["wang2025"].get(name, name)
        record = algorithms.get(name)
        if record.data != "mrp":
            raise InputError("algorithm", f"--layout wang2025 takes one of {', '.join(algorithms.names('mrp'))}, "
                                          f"got {name!r}")
    else:
        record = algorithms.get(str(args.algorithm))
    if record.data not in kinds:
        raise InputError("algorithm", f"{record.name!r} runs on {record.data} data; this command takes "
                                      f"{' or '.join(kinds)} records")
    return record

