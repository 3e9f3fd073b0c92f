"""Checkpoints of the exact (compiled) Algorithm 1 run
(``numerics.analysis.exact``): one ``.npz`` written atomically, never
pickled, holding the named state arrays (flat parameters, Adam's moments,
the initial full weights, the data generator's state, the loss curve) and a
JSON header (the run's config, the next MDP, Adam's step count, elapsed
seconds) stored as a byte array.  Everything a run carries from one MDP to
the next is in it, so a resumed run continues to the same bits as an
uninterrupted one."""
from __future__ import annotations

import json
import os

import numpy as np

from numerics.io.files import atomic_files, load_npz, npz_bytes
from theory.errors import InputError

#: The ``kind`` written in the header (a minibatch checkpoint is refused by name).
KIND = "exact-algorithm-1"


def save_exact_checkpoint(path: str, config: dict, arrays: dict[str, np.ndarray], header: dict):
    """Write ``arrays`` and ``header`` (with ``config`` and the kind added) atomically."""
    out = {f"state/{k}": np.asarray(v) for k, v in arrays.items()}
    head = dict(header, kind=KIND, config=config)
    out["header"] = np.frombuffer(json.dumps(head).encode(), dtype=np.uint8)
    atomic_files({path: npz_bytes(out)})


def load_exact_checkpoint(path: str, config: dict, names: tuple[str, ...]) -> tuple[dict, dict]:
    """``(arrays, header)`` of a checkpoint written by
    :func:`save_exact_checkpoint` for the same ``config``.  ``names``: the
    arrays it must hold.  A missing or foreign file, another config (the
    first differing key is named) or a missing array raise
    :class:`InputError` on the field ``resume``."""
    if not os.path.exists(path):
        raise InputError("resume", f"no checkpoint {path}")
    try:
        raw = load_npz(path, "resume")
    except InputError as e:
        raise InputError("resume", f"{path} is not a readable checkpoint ({str(e).split(': ', 1)[-1]})") from None
    try:
        header = json.loads(raw["header"].tobytes().decode()) if "header" in raw else None
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("kind") != KIND:
        raise InputError("resume", f"{path} is not a checkpoint of the exact protocol (--protocol paper)")
    saved = header.get("config") or {}
    diff = [k for k in config if saved.get(k) != config[k]]
    if diff:
        k = diff[0]
        raise InputError("resume", f"checkpoint {path} was written with {k} = {saved.get(k)!r}, this run has {config[k]!r}")
    arrays = {k[len("state/"):]: v for k, v in raw.items() if k.startswith("state/")}
    missing = [k for k in names if k not in arrays]
    if missing:
        raise InputError("resume", f"{path} lacks state array(s) {', '.join(missing)}")
    return arrays, header
