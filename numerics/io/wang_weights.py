"""Weight and preconditioner files for Wang et al.'s layout (never pickled;
read through :func:`numerics.io.files.load_npz` and validated).

* Weights: ``.npz`` with arrays ``P`` and ``V`` in our notation (their ``Q``
  is our ``P``, their ``P`` our ``V``): ``P`` of shape ``(D, D)`` (tied
  layers) or ``(L, D, D)`` (untied), ``V`` the same, with a head axis before
  the last two for a record with several heads (average-reward TD:
  ``(2, D, D)`` or ``(L, 2, D, D)``); ``D`` the layout's height (``2d+1``,
  ``2d+2`` for average reward).
* Preconditioners: ``.npz`` with an array ``C`` of shape ``(d, d)`` (one for
  every layer) or ``(L, d, d)``.
"""
from __future__ import annotations

import numpy as np
import torch

from numerics.core.tolerances import DTYPE
from numerics.io.files import atomic_files, load_npz, npz_bytes
from theory.errors import InputError


def _finite(a, field):
    if not np.isfinite(a).all():
        raise InputError(field, "contains NaN or infinity")
    return torch.as_tensor(a, dtype=DTYPE)


def load_wang_weights(path: str, record, d: int, layers: int):
    """``(P, V, tied)`` from ``path``; ``tied`` read from ``P``'s shape."""
    arrays = load_npz(path, "weights")
    missing = [k for k in ("P", "V") if k not in arrays]
    if missing:
        raise InputError("weights", f"{path} lacks array(s) {', '.join(missing)}; expected P and V")
    P = arrays["P"]
    if P.ndim not in (2, 3):
        raise InputError("weights.P", f"expected shape (D, D) (tied) or (L, D, D) (untied), got {P.shape}")
    tied = P.ndim == 2
    spec = record.spec_at(layers, tied)
    for k, shape in (("P", spec.weight_shape(d)), ("V", spec.value_shape(d))):
        if arrays[k].shape != tuple(shape):
            kind = "tied" if tied else f"untied, L = {layers}"
            raise InputError(f"weights.{k}", f"expected shape {tuple(shape)} ({kind}, d = {d}, layout "
                                             f"{record.layout.name}), got {arrays[k].shape}")
    return _finite(arrays["P"], "weights.P"), _finite(arrays["V"], "weights.V"), tied


def save_wang_weights(path: str, P: torch.Tensor, V: torch.Tensor, **extra):
    arrays = {"P": P.detach().cpu().numpy(), "V": V.detach().cpu().numpy()}
    arrays.update({k: np.asarray(v) for k, v in extra.items()})
    atomic_files({path: npz_bytes(arrays)})


def load_preconditioner(path: str, d: int, layers: int):
    """``(C, tied)``: ``C`` of shape ``(L, d, d)``; ``tied`` when the file holds one matrix."""
    arrays = load_npz(path, "preconditioner")
    if "C" not in arrays:
        raise InputError("preconditioner", f"{path} lacks array C")
    C = arrays["C"]
    if C.shape == (d, d):
        return _finite(C, "preconditioner.C").expand(layers, d, d).clone(), True
    if C.shape == (layers, d, d):
        return _finite(C, "preconditioner.C"), False
    raise InputError("preconditioner.C", f"expected shape ({d}, {d}) or ({layers}, {d}, {d}), got {C.shape}")
