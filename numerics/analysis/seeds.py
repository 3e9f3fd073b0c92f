"""Training runs of several seeds, in parallel processes (``icrl-verify train
--seeds K``).

Each seed is an independent run (its own data generator, initial weights,
checkpoints and weight file), so running them side by side changes no
number: a seed trained in a worker process equals the same seed trained
alone (tested).  The seeds run as tasks of the sweep engine
(``numerics.analysis.sweep.map_tasks``): an embedded Dask LocalCluster of
``workers`` single-threaded worker processes (fresh processes, no state
inherited from the parent's threads), torch with one intra-op thread; the
progress bar advances by a seed's units as each seed finishes.
The protocols: ``minibatch`` (``numerics.analysis.train.train_block``) and
``paper`` (``numerics.analysis.exact.train_exact_block``).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from numerics.analysis.exact import train_exact_block
from numerics.analysis.sweep import map_tasks
from numerics.analysis.train import TrainConfig, train_block
from numerics.core.models import build_model, model_config
from theory.errors import InputError

PROTOCOLS = ("minibatch", "paper")

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
    per_seed = [c.mdps * (c.frames if protocol == "paper" else 1) for c in cfgs]
    results: list[dict | None] = [None] * len(cfgs)

    def store(name, res):
        results[int(name)] = _rebuild(res)
        if progress is not None:
            progress(per_seed[int(name)])

    tasks = {str(i): (_worker, (protocol, c.as_dict(), o, kw)) for i, (c, o) in enumerate(zip(cfgs, out_dirs))}
    failed, _ = map_tasks(tasks, workers=workers, retries=0, on_result=store, prefix=f"train-{protocol}-seed")
    if failed:
        i, msg = next(iter(failed.items()))
        raise RuntimeError(f"seed {cfgs[int(i)].seed} failed in its worker: {msg}")
    return results


def _worker(protocol: str, cfg: dict, out_dir, kw: dict) -> dict:
    """A worker's run: the result with the model replaced by its
    constructor config and arrays (plain data across the process boundary)."""
    torch.set_num_threads(1)
    try:
        res = train_one(protocol, TrainConfig.from_dict(cfg), out_dir=out_dir, **kw)
    except InputError as e:        # its (field, message) constructor does not survive pickling: send the parts
        return {"input_error": (e.field, str(e).split(": ", 1)[-1])}
    model = res.pop("model")
    res["model_config"] = model_config(model)
    res["model_state"] = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    return res


def _rebuild(res: dict) -> dict:
    if "input_error" in res:
        raise InputError(*res["input_error"])
    cfg, state = res.pop("model_config"), res.pop("model_state")
    kw = {"hidden": cfg["hidden"]} if "hidden" in cfg else {}
    model = build_model(cfg["kind"], cfg["algorithm"], cfg["d"], cfg["n"], cfg.get("parameterization", "reduced"),
                        init=False, **kw)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    res["model"] = model
    return res
