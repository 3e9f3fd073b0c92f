"""The commands a sweep can run, each as a pure function of its options.

:func:`parse_cell` checks one cell's options with the command's own parser
(and the command's own checks of the distribution and configuration) on the
client, before anything is submitted; :func:`run_cell` is the task a Dask
worker runs: it parses the same argv again, runs the command's computation
in-process with one torch thread and returns ``{"result": JSON-able
numbers, "files": {name: bytes}, "timing": {...}}``.  The record a cell's
``--algorithm`` names travels with it by value (:func:`cell_records`), so a
record the user registered on the client (unknown to a fresh worker) runs
there as it would here.  Timing is kept apart
from the result, so a cell's result is the same whichever worker ran it.

Sweepable: ``check``, ``train`` (both protocols), ``richness``, ``control``.
Output, resume and parallelism options belong to the sweep, not the cell,
and are refused.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile

import torch

from numerics.analysis import budget
from numerics.analysis.check import run_check
from numerics.analysis.control import run_control
from numerics.analysis.exact import check_exact_config
from numerics.analysis.richness import BIG_BOOTSTRAP, richness
from numerics.analysis.seeds import train_one
from numerics.analysis.spectrum import DENSE_EIGH_LIMIT
from numerics.commands import check as check_cmd
from numerics.commands import control as control_cmd
from numerics.commands import richness as richness_cmd
from numerics.commands import train as train_cmd
from numerics.core.tolerances import STRUCTURE_RECOVERY_RTOL
from numerics.io.commandline import reproduce_command
from numerics.io import records as by_value
from numerics.io.config import ArgumentParser, device_from_args
from numerics.io.models import load_weights
from numerics.io.sources import source_from_args
from theory import algorithms
from theory.errors import InputError

#: Options that belong to the sweep (output, resume, parallelism), not a cell.
NOT_CELL_OPTIONS = ("help", "json", "config", "out", "name", "report_dir", "no_report", "checkpoint_every", "resume",
                    "workers", "threads", "max_memory", "max_time")

#: command -> its module (``add_arguments``), for the parser and reproduce commands.
MODULES = {"check": check_cmd, "train": train_cmd, "richness": richness_cmd, "control": control_cmd}


class CellError(Exception):
    """A cell's failure as one line (plain, so it crosses process boundaries)."""


def parser_for(command: str) -> ArgumentParser:
    if command not in MODULES:
        raise InputError("command", f"unknown or not sweepable {command!r}; expected one of {', '.join(MODULES)}")
    p = ArgumentParser(prog=f"icrl-verify {command}", add_help=False)
    MODULES[command].add_arguments(p)
    return p


def _argv(command: str, options: dict, parser) -> list[str]:
    kinds = {a.dest: a for a in parser._actions}
    argv = []
    for key, value in options.items():
        dest = key.replace("-", "_")
        if dest not in kinds or dest in NOT_CELL_OPTIONS:
            why = "belongs to the sweep, not a cell" if dest in kinds else f"is not an option of {command}"
            raise InputError(f"option {key!r}", why)
        flag = "--" + dest.replace("_", "-")
        action = kinds[dest]
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise InputError(f"option {key!r}", f"expected true or false, got {value!r}")
            argv += [flag] if value else []
        elif isinstance(value, list):
            argv += [flag] + [str(v) for v in value]
        elif isinstance(value, (dict, bool)):
            raise InputError(f"option {key!r}", f"expected a value of {command} --{key}, got {value!r}")
        else:
            argv += [flag, str(value)]
    return argv


def parse_cell(command: str, options: dict) -> tuple[list[str], argparse.Namespace]:
    """The argv of one cell and its parsed options, checked as the command
    checks them; :class:`InputError` naming the option otherwise."""
    parser = parser_for(command)
    argv = _argv(command, options, parser)
    args = parser.parse_args(argv)
    VALIDATE[command](args)
    return argv, args


def resolved(args: argparse.Namespace) -> dict:
    """The cell's full configuration (defaults included): what its key hashes."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in NOT_CELL_OPTIONS}


def command_line(command: str, args: argparse.Namespace) -> str:
    return reproduce_command(command, args, MODULES[command].add_arguments)


def cell_records(args: argparse.Namespace) -> bytes:
    """The record the cell's ``--algorithm`` names, by value (resolved here,
    on the client; empty for a command without one)."""
    name = getattr(args, "algorithm", None)
    if name is None:
        return b""
    record = algorithms.get(name)
    return by_value.dumps((record,), [record])


def run_cell(command: str, argv: list[str], records: bytes = b"") -> dict:
    """The Dask task: one cell of ``command`` computed in this process, its
    algorithm names resolved to ``records`` (:func:`cell_records`)."""
    torch.set_num_threads(1)
    try:
        with algorithms.using(by_value.loads(records) if records else ()):
            args = parser_for(command).parse_args(argv)
            VALIDATE[command](args)
            return COMPUTE[command](args)
    except Exception as e:     # InputError's constructor does not survive pickling: send one line
        raise CellError(str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}") from None


# ------------------------------------------------------------------ check

def _validate_check(args):
    if args.layout != "paper":
        raise InputError("layout", "sweeps run the mdp records; --layout wang2025 is not sweepable")
    check_cmd.check_inputs(args)


def _check(args) -> dict:
    record, dist, device, mdp, F, d = check_cmd.check_inputs(args)
    weights = load_weights(args.weights, record.spec.weight_shape(d), device=device) if args.weights else None
    res = run_check(record, dist, prompts=args.prompts, mdps=args.mdps, n=args.context, epsilon=args.epsilon,
                    alpha=args.alpha, beta=args.beta, seed=args.seed, weights=weights, device=device, mdp=mdp,
                    features=F)
    return dict(result=res.as_dict(), files={}, timing={})


# ------------------------------------------------------------------ train

def _validate_train(args):
    if args.layout != "paper":
        raise InputError("layout", "sweeps run the mdp records; --layout wang2025 is not sweepable")
    if args.seeds != 1:
        raise InputError("option 'seeds'", "put the seeds in the grid (seed = [0, 1, ...]); each is one cell")
    cfg = train_cmd.config_from_args(args)
    device = device_from_args(args)
    if args.protocol == "paper":
        check_exact_config(cfg, device)


def _train(args) -> dict:
    cfg = train_cmd.config_from_args(args)
    with tempfile.TemporaryDirectory(prefix="icrl-cell-") as tmp:
        res = train_one(args.protocol, cfg, device=device_from_args(args), out_dir=tmp, checkpoint_every=0, threads=1)
        files = {}
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), "rb") as fh:
                files[name] = fh.read()
    result = dict(final_loss=res["final_loss"], identity_loss=res["identity_loss"], protocol=args.protocol,
                  curve=res["curve"])
    if cfg.model == "lsa":
        result.update(distance_to_manifold=res["distance_to_manifold"], scale_c=res["scale_c"],
                      recovered=bool(res["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL))
    return dict(result=result, files=files,
                timing=dict(seconds=res["total_seconds"], frames_per_s=res["frames_per_s"]))


# --------------------------------------------------------------- richness

def _guarded(source, args):
    """The cell's MDP source, size-guarded before anything is generated."""
    budget.guard_source(source, args)
    return source


def _validate_richness(args):
    _guarded(source_from_args(args), args).distribution()
    if args.bootstrap is not None and args.bootstrap < 0:
        raise InputError("bootstrap", f"must be >= 0, got {args.bootstrap}")


def _richness(args) -> dict:
    dist = source_from_args(args).distribution()
    record = algorithms.get(args.algorithm)
    frames = math.ceil(args.prompts / args.mdps) if args.prompts else args.frames
    bootstrap = args.bootstrap
    if bootstrap is None:
        bootstrap = BIG_BOOTSTRAP if record.spec.index(dist.d).reduced_count() > DENSE_EIGH_LIMIT else 20
    res = richness(dist, record, args.parameterization, mdps=args.mdps, frames=frames, n=args.context,
                   epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed, bootstrap=bootstrap)
    keys = ("parameterization", "parameters", "kernel_dim", "symmetry_dim", "data_invariance_dim", "nonflat_dim",
            "mu", "mu_ci95", "predicted_rate", "verdict")
    return dict(result={k: res[k] for k in keys}, files={}, timing=dict(seconds=res["details"].get("seconds")))


# ---------------------------------------------------------------- control

def _validate_control(args):
    if args.constructed and (args.weights or args.mlp or args.lstm):
        raise InputError("constructed", "--constructed runs no trained model; drop --weights/--mlp/--lstm")
    if args.env == "random":
        _guarded(control_cmd.control_source(replace_gamma(args)), args).distribution()
    elif args.gamma_range:
        raise InputError("gamma-range", "Gymnasium environments take one --gamma")
    if args.seed < 0:
        raise InputError("seed", f"must be a non-negative integer, got {args.seed}")


def replace_gamma(args):
    """``control``'s random environment: gamma 0.5 unless given."""
    return argparse.Namespace(**dict(vars(args), gamma=0.5 if args.gamma is None else args.gamma))


def _control(args) -> dict:
    device = device_from_args(args)
    if args.env == "random":
        a = replace_gamma(args)
        dist, gamma = control_cmd.control_source(a).distribution(), None
    else:
        dist, gamma = control_cmd._gym_dist(args), args.gamma
    models = {} if args.constructed else control_cmd.load_models(args, device)
    res = run_control(args.env, args.algorithm, dist=dist, gamma=gamma, features=args.features,
                      feature_dim=args.feature_dim, seeds=args.seeds, mdps=args.mdps, rounds=args.rounds,
                      n=args.context, epsilon=args.epsilon, alpha=args.alpha, beta=args.beta, seed=args.seed,
                      models=models, device=device)
    methods = {m: dict(final_normalized_return=v["final_normalized_return"], ci95=v["ci95"])
               for m, v in res["methods"].items()}
    result = dict(methods=methods, reproduces_teacher=res["reproduces_teacher"],
                  max_abs_weight_diff_constructed_vs_teacher=res["max_abs_weight_diff_constructed_vs_teacher"],
                  actions_identical=res["actions_identical"], feature_dim=res["feature_dim"], gamma=res["gamma"])
    return dict(result=result, files={}, timing=dict(seconds=res["seconds"]))


VALIDATE = {"check": _validate_check, "train": _validate_train, "richness": _validate_richness,
            "control": _validate_control}
COMPUTE = {"check": _check, "train": _train, "richness": _richness, "control": _control}
