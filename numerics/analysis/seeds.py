"""Training runs of several seeds, in parallel processes (``icrl-verify train
--seeds K``).

Each seed is an independent run (its own data generator, initial weights,
checkpoints and weight file), so running them side by side changes no
number: a seed trained in a worker process equals the same seed trained
alone (tested).  Workers are started with ``spawn`` (no state inherited from
the parent's threads); each runs torch with one intra-op thread and reports
its progress through a queue that the parent drains into its progress bar.
A worker is handed its configuration with the algorithm's record in it, by
value (:mod:`numerics.io.records`): a fresh process's registry lacks the
records a user registered, so nothing is looked up by name there.
The protocols: ``minibatch`` (``numerics.analysis.train.train_block``) and
``paper`` (``numerics.analysis.exact.train_exact_block``).
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import numpy as np
import torch

from numerics.analysis.exact import train_exact_block
from numerics.analysis.train import TrainConfig, train_block
from numerics.core.models import build_model, model_config
from numerics.core.runtime import Interrupted, install_for_worker, interrupted
from numerics.io import records
from theory.errors import InputError

PROTOCOLS = ("minibatch", "paper")

#: The progress queue of a worker process (set by :func:`_init_worker`).
_QUEUE = None


def seed_configs(cfg: TrainConfig, seeds: int) -> list[TrainConfig]:
    """``seeds`` configurations: ``cfg.seed``, ``cfg.seed + 1``, ...; each as
    ``train --seed S`` would build it (the feature seed follows the seed)."""
    return [dataclasses.replace(cfg, seed=cfg.seed + k, feature_seed=cfg.feature_seed + k) for k in range(seeds)]


def default_workers(seeds: int) -> int:
    """One process per seed, at most one per available core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(seeds, cores))


def train_one(protocol: str, cfg: TrainConfig, *, device="cpu", out_dir: str | None = None,
              checkpoint_every: int = 0, resume: bool = False, progress=None, threads: int | None = 1) -> dict:
    """One seed of ``protocol``: the result dict of ``train_block`` /
    ``train_exact_block`` (``protocol`` added)."""
    if protocol not in PROTOCOLS:
        raise InputError("protocol", f"unknown {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    kw = dict(out_dir=out_dir, checkpoint_every=checkpoint_every, resume=resume, progress=progress, threads=threads)
    if protocol == "paper":
        return train_exact_block(cfg, **kw)
    return dict(train_block(cfg, device=device, **kw), protocol="minibatch")


def run_seeds(protocol: str, cfgs: list[TrainConfig], *, out_dirs: list[str | None], workers: int = 1,
              device="cpu", checkpoint_every: int = 0, resume: bool = False, progress=None,
              threads: int | None = 1) -> list[dict]:
    """Train every configuration of ``cfgs`` (``out_dirs[i]`` for the
    ``i``-th), ``workers`` at a time in separate processes (1: here, one
    after the other).  ``progress(k)`` receives the units each run reports
    (Adam steps for ``paper``, MDPs for ``minibatch``).  Returns the result
    dicts in the order of ``cfgs``."""
    kw = dict(device=device, checkpoint_every=checkpoint_every, resume=resume, threads=threads)
    if workers <= 1 or len(cfgs) == 1:
        return [train_one(protocol, c, out_dir=o, progress=progress, **kw) for c, o in zip(cfgs, out_dirs)]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    results: list[dict | None] = [None] * len(cfgs)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(q,)) as pool:
        futures = {pool.submit(_worker, protocol, records.dumps(c.with_record(), [c.record]), o, kw): i
                   for i, (c, o) in enumerate(zip(cfgs, out_dirs))}
        pending = set(futures)
        forwarded, stopped = False, []
        try:
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                if interrupted() is not None and not forwarded:     # let each worker checkpoint and stop
                    forwarded = True
                    _forward(pool, interrupted())
                _drain(q, progress)
                for f in done:
                    try:
                        results[futures[f]] = _rebuild(f.result(), cfgs[futures[f]].record)
                    except Interrupted as e:      # this seed checkpointed; wait for the others to do the same
                        stopped.append(e)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        _drain(q, progress)
    if stopped:
        paths = [e.checkpoint for e in stopped if e.checkpoint]
        raise Interrupted(stopped[0].signum, ", ".join(sorted(paths)) or None)
    return results


def _forward(pool, signum: int):
    """Send ``signum`` to the pool's worker processes (each stops at its next
    batch boundary and checkpoints; ``numerics.core.runtime``)."""
    for proc in list(getattr(pool, "_processes", {}).values()):   # the executor keeps no public list
        try:
            os.kill(proc.pid, signum)
        except (ProcessLookupError, AttributeError):
            pass


def _drain(q, progress):
    while True:
        try:
            k = q.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(k)


def _init_worker(q):
    global _QUEUE
    _QUEUE = q
    torch.set_num_threads(1)
    install_for_worker()


def _worker(protocol: str, cfg: bytes, out_dir, kw: dict) -> dict:
    """A worker's run of the configuration ``cfg`` (:func:`records.dumps`
    of a :class:`TrainConfig` holding its record and its MDP source by value:
    neither the algorithm nor a user's family is looked up by name here):
    the result with the model replaced by its constructor config and arrays
    (plain data across the process boundary)."""
    try:
        res = train_one(protocol, records.loads(cfg), out_dir=out_dir, progress=_QUEUE.put, **kw)
    except InputError as e:        # its (field, message) constructor does not survive pickling: send the parts
        return {"input_error": (e.field, str(e).split(": ", 1)[-1])}
    model = res.pop("model")
    res["model_config"] = model_config(model)
    res["model_state"] = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    return res


def _rebuild(res: dict, record) -> dict:
    """The parent's result of a worker's ``res``, the model rebuilt for ``record``."""
    if "input_error" in res:
        raise InputError(*res["input_error"])
    cfg, state = res.pop("model_config"), res.pop("model_state")
    kw = {"hidden": cfg["hidden"]} if "hidden" in cfg else {}
    model = build_model(cfg["kind"], record, cfg["d"], cfg["n"], cfg.get("parameterization", "reduced"),
                        init=False, **kw)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    res["model"] = model
    return res
