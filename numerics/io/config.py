"""Command-line conventions shared by every ``icrl-verify`` command.

Common options (defaults: Section 4.1 of the paper, THEORY.md section 6),
``--config FILE.toml`` whose keys are the long option names, each checked by
the option's kind (``numerics.io.options``; flags override; an unknown key,
a wrong type or a value out of range is an error naming the key), and the
conversion of parsed options into an
:class:`~numerics.distributions.MDPDistribution`.
"""
from __future__ import annotations

import argparse
import sys

import torch

from numerics.core.distributions import FEATURE_KINDS, MDPDistribution
from numerics.io.options import FINITE, POSITIVE, SEED, STEP, Path, Text, config_defaults
from theory import algorithms as registry
from theory.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTION_4_1 = dict(algorithm="sarsa", states=9, actions=4, gamma=0.5, features="dense", context=20,
                   epsilon=0.1, alpha=0.2, beta=0.2, seed=0)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit 2."""

    def error(self, message):
        raise InputError("usage", f"{self.prog}: {message}")


#: the kinds of the common options (``numerics.io.options``); commands import them from here
finite_float = FINITE
positive_int = POSITIVE


def add_common(p: argparse.ArgumentParser, mdps: int = 100, algorithms=None):
    """The options every numeric command shares; ``algorithms`` restricts
    the choices (default: every registered algorithm, read now)."""
    algorithms = registry.names("mdp") if algorithms is None else algorithms
    g = p.add_argument_group("MDP distribution and algorithm (defaults: Section 4.1)")
    g.add_argument("--algorithm", choices=algorithms, default=SECTION_4_1["algorithm"], help="teacher (default sarsa)")
    g.add_argument("--states", type=positive_int, default=SECTION_4_1["states"], help="number of states (9)")
    g.add_argument("--actions", type=positive_int, default=SECTION_4_1["actions"], help="number of actions (4)")
    g.add_argument("--gamma", type=finite_float, default=SECTION_4_1["gamma"], help="fixed discount (0.5)")
    g.add_argument("--gamma-range", type=finite_float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="draw gamma ~ Unif(LO, HI) per MDP instead of a fixed gamma")
    g.add_argument("--features", choices=FEATURE_KINDS, default=SECTION_4_1["features"],
                   help="dense: fresh Unif(-1,1) per MDP (default); dense-shared: one draw for all; onehot")
    g.add_argument("--context", type=positive_int, default=SECTION_4_1["context"], help="window length n (20)")
    g.add_argument("--epsilon", type=finite_float, default=SECTION_4_1["epsilon"], help="epsilon-greedy exploration (0.1)")
    g.add_argument("--alpha", type=STEP, default=SECTION_4_1["alpha"], help="critic step size (0.2)")
    g.add_argument("--beta", type=STEP, default=SECTION_4_1["beta"], help="actor step size (0.2; actor-critic only)")
    g.add_argument("--mdps", type=positive_int, default=mdps, help=f"number of MDPs ({mdps})")
    g.add_argument("--seed", type=SEED, default=SECTION_4_1["seed"], help="random seed (0)")
    g.add_argument("--config", type=Path(), metavar="FILE.toml", default=None,
                   help="read options from a TOML file (keys: the long option names; flags override; "
                        "docs/configuration.md)")
    g.add_argument("--device", type=Text(), default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result as the last line")


def read_toml(path: str, field: str) -> dict:
    """The TOML document at ``path``; an unreadable or invalid file is
    :class:`InputError` naming ``field``."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as e:
        raise InputError(field, f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(field, f"{path} is not valid TOML: {e}") from None


def parse_with_config(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse ``argv``; values from ``--config`` become defaults that flags override."""
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    if not path:
        return args
    data = read_toml(path, "config")
    # The options live on the chosen subcommand's parser, not the top level.
    target = parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction) and getattr(args, a.dest, None) in a.choices:
            target = a.choices[getattr(args, a.dest)]
    defaults = config_defaults(target, data, path)
    target.set_defaults(**defaults)
    return parser.parse_args(argv)


def distribution_from_args(args, algorithm=None) -> MDPDistribution:
    record = registry.get(algorithm or args.algorithm)
    gr = tuple(args.gamma_range) if args.gamma_range else None
    if not (0 <= args.epsilon <= 1):
        raise InputError("epsilon", f"must be in [0, 1], got {args.epsilon}")
    return MDPDistribution(states=args.states, actions=args.actions, gamma=args.gamma, gamma_range=gr,
                           features=args.features, state_features=(record.features == "state"),
                           feature_seed=args.seed)


def device_from_args(args):
    dev = getattr(args, "device", "cpu")
    try:
        device = torch.device(dev)
    except RuntimeError:
        raise InputError("device", f"unknown device {dev!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device", "cuda requested but no CUDA device is available")
    return device
