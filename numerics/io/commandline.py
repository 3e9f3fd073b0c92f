"""The one builder of reproduce commands: ``icrl-verify COMMAND`` with every
option whose value differs from its default (values read from ``--config``
included, so the command needs no configuration file)."""
from __future__ import annotations

import argparse
import shlex

SKIP = ("help", "config", "json", "func", "command")


def reproduce_command(command: str, args: argparse.Namespace, add_arguments, always: tuple[str, ...] = ()) -> str:
    """The command line that reproduces ``args`` for ``icrl-verify command``
    (``add_arguments`` builds the command's parser, to read its defaults);
    the options named in ``always`` are written even at their default."""
    p = argparse.ArgumentParser(prog="icrl-verify " + command, add_help=False)
    add_arguments(p)
    parts = ["icrl-verify", command]
    for action in p._actions:
        k = action.dest
        if k in SKIP or k not in vars(args) or not action.option_strings:
            continue
        v = getattr(args, k)
        if (v == action.default and k not in always) or v is None:
            continue
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if isinstance(action, argparse._StoreConstAction):
            if v == action.const:
                parts.append(flag)
            continue
        if isinstance(v, bool):
            parts.append(flag)
        elif isinstance(v, (list, tuple)):
            parts += [flag] + [str(x) for x in v]
        else:
            parts += [flag, str(v)]
    return shlex.join(parts)
