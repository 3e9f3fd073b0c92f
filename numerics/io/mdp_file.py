"""User MDPs from ``.npz`` files (``--mdp FILE.npz``).

Arrays (loaded with ``allow_pickle=False``):
  ``T``: transitions, ``S x A x S`` or ``B x S x A x S`` (rows sum to 1);
  ``R``: rewards, ``S x A x S``, ``S x A`` or with a leading ``B``;
  ``gamma``: a scalar or one per MDP, ``0 <= gamma < 1``;
  ``rho0`` (optional): start distribution, default uniform;
  ``features`` (optional): ``S x A x d`` or ``B x S x A x d``; default:
  the features of the distribution options (``--features``), one draw.
"""
from __future__ import annotations

import numpy as np
import torch

from numerics.core.mdp import MDP
from numerics.core.tolerances import DTYPE
from numerics.io.files import load_npz
from theory.errors import InputError

KEYS = ("T", "R", "gamma", "rho0", "features")


def load_mdp_file(path: str, device=None):
    """``(MDP, features or None)`` from ``path``; InputError names the bad field."""
    arr = load_npz(path, "mdp")
    unknown = [k for k in arr if k not in KEYS]
    if unknown:
        raise InputError("mdp", f"{path}: unknown array {unknown[0]!r}; expected {', '.join(KEYS)}")
    missing = [k for k in ("T", "R", "gamma") if k not in arr]
    if missing:
        raise InputError("mdp", f"{path} lacks array {missing[0]!r}")
    T = torch.as_tensor(arr["T"], dtype=DTYPE, device=device)
    if T.ndim == 3:
        T = T.unsqueeze(0)
    if T.ndim != 4:
        raise InputError("transitions", f"expected shape (S, A, S) or (B, S, A, S), got {tuple(arr['T'].shape)}")
    B, S = T.shape[0], T.shape[1]
    rho0 = arr.get("rho0", np.full(S, 1.0 / max(S, 1)))
    mdp = MDP(T, torch.as_tensor(arr["R"], dtype=DTYPE, device=device),
              torch.as_tensor(arr["gamma"], dtype=DTYPE, device=device),
              torch.as_tensor(rho0, dtype=DTYPE, device=device))
    F = None
    if "features" in arr:
        F = torch.as_tensor(arr["features"], dtype=DTYPE, device=device)
        if F.ndim == 3:
            F = F.unsqueeze(0).expand(B, *F.shape)
        if F.ndim != 4 or tuple(F.shape[:3]) != (B, S, mdp.actions):
            raise InputError("features", f"expected shape (S, A, d) or ({B}, S, A, d) with S={S}, A={mdp.actions}, "
                             f"got {tuple(arr['features'].shape)}")
        if not torch.isfinite(F).all():
            raise InputError("features", "contains NaN or infinity")
    return mdp, F
