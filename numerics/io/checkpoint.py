"""Training checkpoints: one ``.npz`` (written atomically, never pickled)
holding the model's arrays, Adam's moments and step counts, the data
generator's state and a JSON header (config, next batch, loss curve, elapsed
time), so that a resumed run reproduces an uninterrupted one bitwise."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from numerics.core.models import model_config
from numerics.io.files import atomic_files, load_npz, npz_bytes
from numerics.io.models import model_arrays
from theory.errors import InputError


def save_checkpoint(path: str, config: dict, model, opt: torch.optim.Optimizer, gen: torch.Generator,
                    next_batch: int, curve: list, elapsed: float):
    """One ``.npz`` (written atomically): model arrays, Adam moments and
    step counts, the generator state, and a JSON header as a byte array."""
    arrays = {f"model/{k}": v for k, v in model_arrays(model).items()}
    params = list(model.parameters())
    for i, p in enumerate(params):
        st = opt.state.get(p)
        if st:
            arrays[f"opt/{i}/exp_avg"] = st["exp_avg"].detach().cpu().numpy()
            arrays[f"opt/{i}/exp_avg_sq"] = st["exp_avg_sq"].detach().cpu().numpy()
            arrays[f"opt/{i}/step"] = np.asarray(st["step"].detach().cpu().numpy())
    arrays["gen_state"] = gen.get_state().cpu().numpy()
    header = dict(config=config, next_batch=next_batch, curve=curve, elapsed_s=elapsed,
                  lr=opt.param_groups[0]["lr"])
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    atomic_files({path: npz_bytes(arrays)})


def load_checkpoint(path: str, config: dict, model, opt: torch.optim.Optimizer, gen: torch.Generator):
    """Restore a checkpoint into ``model``, ``opt`` and ``gen``; returns
    ``(next_batch, curve, elapsed)``.  The run's config must equal the
    checkpoint's (else :class:`InputError` naming the first difference)."""
    if not os.path.exists(path):
        raise InputError("resume", f"no checkpoint {path}")
    try:
        arrays = load_npz(path, "resume")
    except InputError as e:
        raise InputError("resume", f"{path} is not a readable checkpoint ({str(e).split(': ', 1)[-1]})") from None
    if "header" not in arrays or "gen_state" not in arrays:
        raise InputError("resume", f"{path} is not a training checkpoint (no header)")
    try:
        header = json.loads(arrays["header"].tobytes().decode())
        saved = header["config"]
        return _restore(path, header, saved, arrays, config, model, opt, gen)
    except (KeyError, ValueError, TypeError, RuntimeError, UnicodeDecodeError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError("resume", f"{path} is not a valid checkpoint for this run ({type(e).__name__}: {e})") from None


def _restore(path, header, saved, arrays, now, model, opt, gen):
    diff = [k for k in now if saved.get(k) != now[k]]
    if diff:
        k = diff[0]
        raise InputError("resume", f"checkpoint {path} was written with {k} = {saved.get(k)!r}, this run has {now[k]!r}")
    dev = next(model.parameters()).device
    with torch.no_grad():
        if model_config(model)["kind"] == "lsa":
            P = torch.as_tensor(arrays["model/P"], device=dev)
            V = torch.as_tensor(arrays["model/V"], device=dev)
            model.set_weights(P, V)
        else:
            model.load_state_dict({k[len("model/"):]: torch.as_tensor(v, device=dev)
                                   for k, v in arrays.items() if k.startswith("model/")})
    params = list(model.parameters())
    state = {}
    for i, p in enumerate(params):
        if f"opt/{i}/exp_avg" in arrays:
            state[i] = {"step": torch.as_tensor(arrays[f"opt/{i}/step"]),
                        "exp_avg": torch.as_tensor(arrays[f"opt/{i}/exp_avg"], device=dev),
                        "exp_avg_sq": torch.as_tensor(arrays[f"opt/{i}/exp_avg_sq"], device=dev)}
    sd = opt.state_dict()
    sd["state"] = state
    sd["param_groups"][0]["lr"] = header["lr"]
    opt.load_state_dict(sd)
    gen.set_state(torch.as_tensor(arrays["gen_state"], dtype=torch.uint8))
    return header["next_batch"], header["curve"], header["elapsed_s"]
