"""Algorithm records passed by value to other processes.

A worker process (``train --seeds K``'s spawned pool, a Dask worker of
``sweep``) starts with a fresh registry: a record a user registered in the
parent (from a test file, a notebook, a script) is not in it.  So records
never travel by name: :func:`dumps` pickles the object holding them with
cloudpickle (Dask's own serialiser), and the module that defines a record's
teacher rule is pickled by value when it lies outside this package, so the
worker needs neither the record's registration nor the user's module on its
import path.  Records of the package (their rules in ``theory.rules``)
travel by reference to the same code.
"""
from __future__ import annotations

import sys

import cloudpickle

#: Top-level packages whose modules every worker imports itself.
_OURS = ("theory", "numerics")


def _user_modules(records) -> list:
    """The modules, outside this package, that define the records' rules."""
    mods = []
    for r in records:
        name = getattr(r.rule, "__module__", None) or "__main__"
        mod = sys.modules.get(name)
        if name == "__main__" or name.split(".")[0] in _OURS or mod is None or mod in mods:
            continue       # __main__ is pickled by value anyway; ours by reference
        mods.append(mod)
    return mods


def dumps(obj, records=()) -> bytes:
    """``obj`` as bytes a fresh process can load, with the rule functions of
    ``records`` (those ``obj`` holds) pickled by value where they are not
    part of this package."""
    mods = [m for m in _user_modules(records) if m.__name__ not in cloudpickle.list_registry_pickle_by_value()]
    for m in mods:
        cloudpickle.register_pickle_by_value(m)
    try:
        return cloudpickle.dumps(obj)
    finally:
        for m in mods:
            cloudpickle.unregister_pickle_by_value(m)


def loads(data: bytes):
    """The object :func:`dumps` wrote."""
    return cloudpickle.loads(data)
