"""icrl-verify: check what one linear self-attention block can do as an in-context
reinforcement learner (Liang & Lai, 2026): proofs, numerics, richness, training,
control and a claim-by-claim verdict.

Exit status: 0 the claim holds / the job succeeded; 1 it does not hold (a
counterexample is printed); 2 bad input or usage (one line on stderr naming
the field, no traceback).  With ``--json`` the last line of stdout is one
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

from numerics.io.config import ArgumentParser, parse_with_config
from numerics.io.files import jsonable
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
    "families": ("numerics.commands.families", "write an MDP batch file; compare richness across MDP families (Boyan, Darkroom, yours)"),
    "claims": ("numerics.commands.claims", "claim-by-claim verdict on the paper with evidence (the main job)"),
}


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
        p.set_defaults(func=mod.run)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        command = next((a for a in argv if not a.startswith("-")), None)
        parser = build_parser(command if command in COMMANDS else None)
        args = parse_with_config(parser, argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args))
    except InputError as e:
        print(f"icrl-verify: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("icrl-verify: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
