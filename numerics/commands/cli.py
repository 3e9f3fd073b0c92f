"""icrl-verify: check what one linear self-attention block can do as an in-context
reinforcement learner (Liang & Lai, 2026): proofs, numerics, richness, training,
control and a claim-by-claim verdict.

Exit status: 0 the claim holds / the job succeeded; 1 it does not hold (a
counterexample is printed); 2 bad input or usage (one line on stderr naming
the field, no traceback), or a job above its memory guard (--max-memory) or
its time guard (--max-time);
130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM (train checkpoints first;
resume with --resume).  With ``--json`` the last line of stdout is one
JSON object with the result.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys

from tqdm import tqdm

from numerics.core.runtime import EXIT_SIGNAL_BASE, Interrupted, check_interrupt, interrupted, interruptible
from numerics.io.config import ArgumentParser, parse_with_config
from numerics.io.files import jsonable
from numerics.io.options import Bytes, Duration, type_choices
from theory.errors import InputError

#: subcommand -> (module, one-line help).  Each module defines
#: ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = {
    "check": ("numerics.commands.check", "compare the block's read-out with the teacher update on sampled prompts"),
    "prove": ("numerics.commands.prove", "prove symbolically that weights implement the update (every d and n)"),
    "richness": ("numerics.commands.richness", "Hessian spectrum on the optimal set: is the MDP distribution rich?"),
    "train": ("numerics.commands.train", "train a block (or an MLP / LSTM baseline) by teacher mimicking (Algorithm 1)"),
    "ablation": ("numerics.commands.ablation", "richness ablation: train on narrow and rich distributions, compare with verdicts"),
    "flow": ("numerics.commands.flow", "gradient flow near the optimal set: measured vs predicted rate, basin"),
    "control": ("numerics.commands.control", "in-context control on unseen MDPs and Gymnasium tabular environments"),
    "protocols": ("numerics.commands.protocols", "the paper's exact Algorithm 1 beside the minibatch variant: structure, loss, control"),
    "sweep": ("numerics.commands.sweep", "run a grid of one command (seeds, distributions, sizes) on Dask, resumable"),
    "families": ("numerics.commands.families", "write an MDP batch file; compare richness across MDP families (Boyan, Darkroom, yours)"),
    "softmax-train": ("numerics.commands.softmax_train", "Theorem 3 of Xie et al. (2026): is the softmax construction a global minimiser? (readings, Hessian, training)"),
    "claims": ("numerics.commands.claims", "claim-by-claim verdict on the paper with evidence (the main job)"),
    "softmax-bound": ("numerics.commands.softmax_bound", "Theorem 2 of Xie et al. (2026): Assumption 5.1's margin, error vs depth and context beside the bound"),
}


#: Commands that stop cleanly on SIGINT / SIGTERM (a flag checked at step
#: boundaries, ``numerics.core.runtime``): exit 130 / 143, one line on
#: stderr, no partly written file; ``train`` checkpoints first.
INTERRUPTIBLE = ("train", "flow", "control", "richness", "claims", "ablation", "protocols", "families", "sweep",
                 "softmax-bound", "softmax-train")


def add_max_memory(p):
    """``--max-memory BYTES`` and ``--max-time DURATION``: the limits of the
    command's size and time guards (``numerics.analysis.budget``; exit 2
    above either, before the work starts)."""
    p.add_argument("--max-memory", type=Bytes(), default=None, metavar="BYTES",
                   help="refuse a job whose estimated memory is above this, before allocating anything (8G, 512M or "
                        "bytes; default: half the physical memory, or the ICRL_MAX_MEMORY environment variable)")
    add_max_time(p)


def add_max_time(p):
    """``--max-time DURATION``: the limit of the command's time guard."""
    p.add_argument("--max-time", type=Duration(), default=None, metavar="DURATION",
                   help="refuse a job whose estimated run time is above this, before it starts (3600, 90s, 30m, "
                        "24h, 2d; default 24h, or the ICRL_MAX_TIME environment variable)")


def emit(lines, result: dict, as_json: bool):
    """Print the human-readable lines, then (``--json``) one JSON line last."""
    for line in lines:
        print(line)
    if as_json:
        print(json.dumps(result, default=jsonable))


def config_of(args: argparse.Namespace) -> dict:
    """The parsed options, for report headers."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "command")}


def plain_name(name: str, field: str = "name") -> str:
    """A report name usable as a file name in the output folder."""
    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise InputError(field, f"must be a plain file name, got {name!r}")
    return name


@contextlib.contextmanager
def progress_bar(total=None, desc="", disable=False, unit="it", unit_scale=False):
    """A tqdm progress bar on stderr (rate and time left); quiet with
    ``--json`` and when stderr is not a terminal (set ICRL_PROGRESS=1 to
    force it on)."""
    quiet = disable or not (sys.stderr.isatty() or os.environ.get("ICRL_PROGRESS") == "1")
    bar = tqdm(total=total, desc=desc, disable=quiet, unit=unit, unit_scale=unit_scale, file=sys.stderr, leave=False,
               dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


def at_boundary(update):
    """``update`` (a progress callback), then stop if SIGINT / SIGTERM
    arrived (:func:`numerics.core.runtime.check_interrupt`): the analyses
    call their progress callback at their step boundaries."""
    def step(*a, **kw):
        update(*a, **kw)
        check_interrupt()
    return step


def build_parser(command: str | None = None):
    """The parser; only the chosen command's module is imported (a command
    with heavy imports costs nothing to the others)."""
    parser = ArgumentParser(prog="icrl-verify", description=__doc__.split("\n\n")[0],
                            epilog="Run 'icrl-verify COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name, (module, help_) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=help_)
            continue
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        type_choices(p)            # options with choices get the kind Choice (numerics.io.options)
        p.set_defaults(func=mod.run)
    return parser


def one_line(text: str) -> str:
    """``text`` with every unprintable character (a newline, a form feed, a
    NUL a user typed into a value) escaped, so an error is one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        command = next((a for a in argv if not a.startswith("-")), None)
        parser = build_parser(command if command in COMMANDS else None)
        args = parse_with_config(parser, argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        if args.command not in INTERRUPTIBLE:
            return int(args.func(args))
        with interruptible():
            status = int(args.func(args))
            signum = interrupted()
            if signum is not None:        # the signal came after the last boundary: the files are complete
                raise Interrupted(signum)
            return status
    except InputError as e:
        print(f"icrl-verify: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:
        # A path the user gave that the file system refuses (a folder that is a
        # file, no permission, a full disk): bad input, not a failed claim.
        where = e.filename if e.filename is not None else "file"
        print(f"icrl-verify: error: {one_line(str(where))}: {one_line(e.strerror or str(e))}", file=sys.stderr)
        return 2
    except Interrupted as e:
        where = (f"checkpoint written to {e.checkpoint}; resume with --resume" if e.checkpoint else
                 "no file partly written")
        print(f"icrl-verify: interrupted by {e.name}: {where}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        print("icrl-verify: interrupted", file=sys.stderr)
        return EXIT_SIGNAL_BASE + 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
