"""Weight and model files (never pickled; read with ``allow_pickle=False``
through :func:`numerics.io.files.load_npz` and validated).

* Weight files: ``.npz`` with arrays ``P`` and ``V`` of the block
  specification's weight shape (``D x D`` for tied layers, ``L x D x D``
  untied), the layout of THEORY.md; ``icrl-verify check --weights`` reads them.
* Layer-by-layer records' weights (:func:`load_layer_weights`): ``P`` of
  shape ``(D, D)`` or ``(L, D, D)``, ``V`` the same with a head axis for
  several heads; preconditioner files (:func:`load_preconditioner`): array
  ``C`` of shape ``(d, d)`` or ``(L, d, d)``.
* Model files (:func:`save_model`): ``path`` (``.npz``) and ``path + ".json"``
  (metadata: the constructor config under ``"model"``, plus the caller's
  training config, seed, versions, loss curve).  For ``lsa`` the ``.npz``
  holds ``P`` and ``V`` (zeros outside the reduced blocks in the reduced
  parameterisation), so it is also a weight file; for ``mlp``/``lstm`` the
  ``state_dict`` arrays.
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch import nn

from numerics.core.models import MODEL_KINDS, build_model, model_config
from numerics.core.tolerances import DTYPE
from numerics.io.files import atomic_files, json_text, load_npz, npz_bytes
from theory import algorithms
from theory.errors import InputError


def _pv_arrays(path: str) -> dict:
    arrays = load_npz(path, "weights")
    missing = [k for k in ("P", "V") if k not in arrays]
    if missing:
        raise InputError("weights", f"{path} lacks array(s) {', '.join(missing)}; expected P and V")
    return arrays


def load_weights(path: str, shape: tuple[int, ...], dtype=DTYPE, device=None):
    """``(P, V)`` of ``shape`` from ``path``; raises :class:`InputError` naming the problem."""
    arrays = _pv_arrays(path)
    out = []
    for k in ("P", "V"):
        a = arrays[k]
        if a.shape != tuple(shape):
            raise InputError(f"weights.{k}", f"expected shape {tuple(shape)} for this layout, got {a.shape}")
        if not np.isfinite(a).all():
            raise InputError(f"weights.{k}", "contains NaN or infinity")
        out.append(torch.as_tensor(a, dtype=dtype, device=device))
    return tuple(out)


def save_weights(path: str, P: torch.Tensor, V: torch.Tensor, **extra):
    """Write ``P``, ``V`` (and extra arrays) atomically as ``.npz``."""
    arrays = {"P": P.detach().cpu().numpy(), "V": V.detach().cpu().numpy()}
    arrays.update({k: np.asarray(v) for k, v in extra.items()})
    atomic_files({path: npz_bytes(arrays)})


def model_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """What :func:`save_model` writes: ``P``, ``V`` for ``lsa``; the
    ``state_dict`` arrays otherwise."""
    if model_config(model)["kind"] == "lsa":
        P, V = model.full_weights()
        return {"P": P.detach().cpu().numpy(), "V": V.detach().cpu().numpy()}
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def save_model(path: str, model: nn.Module, meta: dict | None = None) -> str:
    """Write ``path`` (``.npz``) and ``path + ".json"`` atomically as one set;
    returns ``path``.  ``meta["model"]`` is set to the constructor config."""
    meta = dict(meta or {})
    meta["model"] = model_config(model)
    atomic_files({path: npz_bytes(model_arrays(model)), path + ".json": json_text(meta)})
    return path


def read_meta(path: str) -> dict:
    """The metadata JSON beside ``path``; :class:`InputError` if missing or malformed."""
    mpath = path + ".json"
    try:
        with open(mpath) as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise InputError("model", f"no metadata file {mpath} beside {path} (written by save_model)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError("model", f"{mpath} is not readable JSON ({e})") from None
    cfg = meta.get("model") if isinstance(meta, dict) else None
    if not isinstance(cfg, dict) or cfg.get("kind") not in MODEL_KINDS:
        raise InputError("model", f"{mpath} lacks a 'model' entry with kind in {MODEL_KINDS}")
    for key in ("algorithm", "d", "n"):
        if key not in cfg:
            raise InputError("model", f"{mpath}: 'model' lacks {key!r}")
    return meta


def load_model(path: str, device=None, dtype=DTYPE) -> tuple[nn.Module, dict]:
    """``(model, meta)`` from files written by :func:`save_model`.

    Shapes, names and finiteness are validated, every problem raised as
    :class:`InputError`.
    """
    meta = read_meta(path)
    cfg = meta["model"]
    kw = {"hidden": cfg["hidden"]} if "hidden" in cfg else {}
    model = build_model(cfg["kind"], cfg["algorithm"], cfg["d"], cfg["n"], cfg.get("parameterization", "reduced"),
                        device=device, dtype=dtype, init=False, **kw)
    if cfg["kind"] == "lsa":
        P, V = load_weights(path, model.spec.weight_shape(cfg["d"]), dtype=dtype, device=device)
        model.set_weights(P, V)
        return model, meta
    want = model.state_dict()
    arrays = load_npz(path, "model")
    missing = sorted(set(want) - set(arrays))
    extra = sorted(set(arrays) - set(want))
    if missing or extra:
        raise InputError("model", f"{path}: arrays do not match a {cfg['kind']} model (missing {missing}, unexpected {extra})")
    state = {}
    for k, ref in want.items():
        a = arrays[k]
        if tuple(a.shape) != tuple(ref.shape) or not np.isfinite(a).all():
            raise InputError(f"model.{k}", f"expected a finite numeric array of shape {tuple(ref.shape)}, got {a.dtype} {a.shape}")
        state[k] = torch.as_tensor(a, dtype=ref.dtype, device=ref.device)
    model.load_state_dict(state)
    return model, meta


def load_lsa(path: str, algorithm, device=None):
    """An LSA block from ``path``: a :func:`save_model` file (with its
    ``.json``), or a bare weight file of ``P`` and ``V`` (``check --weights``
    format; ``d`` inferred from the shape, full parameterisation)."""
    record = algorithms.get(algorithm)
    if os.path.exists(path + ".json"):
        model, meta = load_model(path, device=device)
        if meta["model"]["kind"] != "lsa":
            raise InputError("weights", f"{path} holds a {meta['model']['kind']} model, not an LSA block")
        return model
    arrays = load_npz(path, "weights")
    shape = arrays["P"].shape if "P" in arrays else None
    if shape is None or len(shape) < 2:
        raise InputError("weights", f"{path} lacks an array P of at least 2 dimensions")
    d = record.layout.feature_dim(shape[-1])
    if d is None:
        raise InputError("weights", f"{path}: P is {' x '.join(map(str, shape))}, not D x D for any d of the "
                                    f"{record.name} layout")
    P, V = load_weights(path, record.spec.weight_shape(d), device=device)
    model = build_model("lsa", record, d, 1, "full", device=device, init=False)
    return model.set_weights(P, V)


def _finite(a, field):
    if not np.isfinite(a).all():
        raise InputError(field, "contains NaN or infinity")
    return torch.as_tensor(a, dtype=DTYPE)


def _layered(arrays: dict, record, d: int, layers: int, first: str):
    """``(first, V, tied)`` of a layer-by-layer record's arrays: ``first`` (``P``
    or ``A``) of shape ``(D, D)`` (tied layers) or ``(L, D, D)`` (untied), ``V``
    the same with a head axis before the last two for several heads; ``tied``
    read from ``first``'s shape; a wrong shape names its array."""
    W = arrays[first]
    if W.ndim not in (2, 3):
        raise InputError(f"weights.{first}", f"expected shape (D, D) (tied) or (L, D, D) (untied), got {W.shape}")
    tied = W.ndim == 2
    spec = record.spec_at(layers, tied)
    for k, shape in ((first, spec.weight_shape(d)), ("V", spec.value_shape(d))):
        if arrays[k].shape != tuple(shape):
            kind = "tied" if tied else f"untied, L = {layers}"
            raise InputError(f"weights.{k}", f"expected shape {tuple(shape)} ({kind}, d = {d}, layout "
                                             f"{record.layout.name}), got {arrays[k].shape}")
    return _finite(W, f"weights.{first}"), _finite(arrays["V"], "weights.V"), tied


def load_layer_weights(path: str, record, d: int, layers: int):
    """``(P, V, tied)`` of a layer-by-layer record from ``path`` (arrays ``P``
    and ``V`` in our notation: ``P`` of shape ``(D, D)`` (tied layers) or
    ``(L, D, D)`` (untied), ``V`` the same with a head axis before the last
    two for a record with several heads); ``tied`` read from ``P``'s shape."""
    return _layered(_pv_arrays(path), record, d, layers, "P")


def load_softmax_weights(path: str, record, d: int, layers: int):
    """``(A, V, tied)`` of a softmax record from ``path`` (arrays ``A`` and
    ``V``, Xie et al.'s names: ``A`` of shape ``(D, D)`` (tied layers) or ``(L,
    D, D)`` (untied), ``V`` the same with a head axis before the last two for
    the two-head form); ``tied`` read from ``A``'s shape."""
    arrays = load_npz(path, "weights")
    missing = [k for k in ("A", "V") if k not in arrays]
    if missing:
        raise InputError("weights", f"{path} lacks array(s) {', '.join(missing)}; a softmax record's weights are "
                                    f"A and V")
    return _layered(arrays, record, d, layers, "A")


def load_preconditioner(path: str, d: int, layers: int):
    """``(C, tied)`` from an ``.npz`` with array ``C`` of shape ``(d, d)`` (one
    for every layer) or ``(L, d, d)``; ``C`` returned as ``(L, d, d)``."""
    arrays = load_npz(path, "preconditioner")
    if "C" not in arrays:
        raise InputError("preconditioner", f"{path} lacks array C")
    C = arrays["C"]
    if C.shape == (d, d):
        return _finite(C, "preconditioner.C").expand(layers, d, d).clone(), True
    if C.shape == (layers, d, d):
        return _finite(C, "preconditioner.C"), False
    raise InputError("preconditioner.C", f"expected shape ({d}, {d}) or ({layers}, {d}, {d}), got {C.shape}")
