"""Weight files: ``.npz`` with arrays ``P`` and ``V``, each ``D x D`` in the
THEORY.md layout, loaded with ``allow_pickle=False`` and validated."""
from __future__ import annotations

import numpy as np
import torch

from numerics import DTYPE
from numerics.errors import InputError


def load_weights(path: str, D: int, dtype=DTYPE, device=None):
    """``(P, V)`` from ``path``; raises :class:`InputError` naming the problem."""
    from numerics.io import load_npz
    arrays = load_npz(path, "weights")
    missing = [k for k in ("P", "V") if k not in arrays]
    if missing:
        raise InputError("weights", f"{path} lacks array(s) {', '.join(missing)}; expected P and V")
    out = []
    for k in ("P", "V"):
        a = arrays[k]
        if a.shape != (D, D):
            raise InputError(f"weights.{k}", f"expected shape ({D}, {D}) for this layout, got {a.shape}")
        if not np.isfinite(a).all():
            raise InputError(f"weights.{k}", "contains NaN or infinity")
        out.append(torch.as_tensor(a, dtype=dtype, device=device))
    return tuple(out)


def save_weights(path: str, P: torch.Tensor, V: torch.Tensor, **extra):
    """Write ``P``, ``V`` (and extra arrays) atomically as ``.npz``."""
    from numerics.io import atomic_savez
    arrays = {"P": P.detach().cpu().numpy(), "V": V.detach().cpu().numpy()}
    arrays.update({k: np.asarray(v) for k, v in extra.items()})
    atomic_savez(path, **arrays)
