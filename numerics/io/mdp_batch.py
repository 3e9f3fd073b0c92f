"""A distribution of MDPs given as data or as code (docs/families.md).

``--mdp-batch FILE.npz``: a sample of MDPs with their features, arrays
(loaded with ``allow_pickle=False``, float64 after loading):

  ``T``        transitions ``B x S x A x S`` (rows sum to 1)
  ``R``        rewards ``B x S x A`` or ``B x S x A x S``
  ``gamma``    one discount per MDP, ``B`` (``0 <= gamma < 1``)
  ``rho0``     start distributions ``B x S``
  ``features`` ``B x S x A x d`` (per MDP) or ``S x A x d`` (shared)

Every array is required; an unknown array, a missing one, a wrong shape,
NaN / infinity, a row not summing to 1 or ``gamma >= 1`` is an
:class:`InputError` naming the file and the array.  The batch replaces the
built-in sampler: a command that needs ``num`` MDPs draws ``num`` indices
uniformly WITH replacement from the ``B`` MDPs with its own seeded generator
(same seed, same MDPs); the parametric bootstrap of ``richness`` becomes a
bootstrap over the batch.

``--distribution module:function``: ``function(seed: int, batch: int) ->
dict`` returning those arrays for ``batch`` fresh MDPs (the same keys,
``B = batch``); it is imported and called only when named, and whatever it
raises or returns wrong is an :class:`InputError` naming it.
"""
from __future__ import annotations

import importlib
import re

import numpy as np
import torch

from numerics.core.mdp import MDP
from numerics.core.tolerances import DTYPE
from numerics.io.files import atomic_savez, load_npz
from theory.errors import InputError

BATCH_KEYS = ("T", "R", "gamma", "rho0", "features")
_MDP_FIELDS = {"transitions": "T", "rewards": "R", "gamma": "gamma", "rho0": "rho0"}


def mdp_from_arrays(arr: dict, source: str, field: str = "mdp-batch", device=None):
    """``(MDP, F)`` from a dict of the :data:`BATCH_KEYS` arrays, validated;
    errors name ``field``, ``source`` and the array."""
    if not isinstance(arr, dict):
        raise InputError(field, f"{source}: expected a dict of arrays {', '.join(BATCH_KEYS)}, got {type(arr).__name__}")
    unknown = [k for k in arr if k not in BATCH_KEYS]
    if unknown:
        raise InputError(field, f"{source}: unknown array {unknown[0]!r}; expected {', '.join(BATCH_KEYS)}")
    missing = [k for k in BATCH_KEYS if k not in arr]
    if missing:
        raise InputError(field, f"{source}: lacks array {missing[0]!r} (needs {', '.join(BATCH_KEYS)})")
    a = {}
    for k in BATCH_KEYS:
        v = arr[k]
        x = np.asarray(v)
        if x.dtype.kind not in "fiub":
            raise InputError(field, f"{source}: array {k!r} must be numeric, got dtype {x.dtype}")
        a[k] = torch.as_tensor(x.astype(np.float64), dtype=DTYPE, device=device)
    _same_batch(a, source, field)
    T = a["T"]
    if T.ndim != 4 or T.shape[1] != T.shape[3] or min(T.shape) == 0:
        raise InputError(field, f"{source}: array 'T' must have shape (B, S, A, S), got {tuple(T.shape)}")
    B, S, A, _ = T.shape
    if tuple(a["R"].shape) not in ((B, S, A), (B, S, A, S)):
        raise InputError(field, f"{source}: array 'R' must have shape {(B, S, A)} or {(B, S, A, S)}, "
                                f"got {tuple(a['R'].shape)}")
    if tuple(a["gamma"].shape) != (B,):
        raise InputError(field, f"{source}: array 'gamma' must have shape ({B},), got {tuple(a['gamma'].shape)}")
    if tuple(a["rho0"].shape) != (B, S):
        raise InputError(field, f"{source}: array 'rho0' must have shape {(B, S)}, got {tuple(a['rho0'].shape)}")
    F = a["features"]
    if F.ndim == 3 and tuple(F.shape[:2]) == (S, A):
        F = F.unsqueeze(0).expand(B, *F.shape)
    if F.ndim != 4 or tuple(F.shape[:3]) != (B, S, A) or F.shape[3] == 0:
        raise InputError(field, f"{source}: array 'features' must have shape (B, S, A, d) or (S, A, d) with "
                                f"B={B}, S={S}, A={A}, got {tuple(a['features'].shape)}")
    if not torch.isfinite(F).all():
        raise InputError(field, f"{source}: array 'features' contains NaN or infinity")
    try:
        mdp = MDP(T, a["R"], a["gamma"], a["rho0"])
    except InputError as e:
        name = _MDP_FIELDS.get(e.field, e.field)
        raise InputError(field, f"{source}: array {name!r}: {str(e).split(': ', 1)[1]}") from None
    return mdp, F.contiguous()


def _same_batch(a: dict, source: str, field: str):
    """Every per-MDP array holds the same number of MDPs (its leading
    axis; ``features`` only when it is per MDP, 4-D).  When they disagree
    the array(s) outside the majority are blamed, with both counts; with no
    majority (a tie), the arrays that disagree with ``T``."""
    counts = {k: int(v.shape[0]) for k, v in a.items() if v.ndim >= 1 and (k != "features" or v.ndim == 4)}
    if len(set(counts.values())) <= 1:
        return
    tally = {}
    for c in counts.values():
        tally[c] = tally.get(c, 0) + 1
    top = max(tally.values())
    leaders = [c for c, k in tally.items() if k == top]
    ref = leaders[0] if len(leaders) == 1 else counts.get("T", leaders[0])
    agree = [k for k, c in counts.items() if c == ref]
    odd = next(k for k in BATCH_KEYS if k in counts and counts[k] != ref)
    raise InputError(field, f"{source}: array {odd!r} holds {counts[odd]} MDPs (leading axis) but "
                            f"{', '.join(repr(k) for k in agree)} hold{'s' if len(agree) == 1 else ''} {ref}: "
                            "every array needs the same number of MDPs")


def load_mdp_batch(path: str, device=None):
    """``(MDP, F)`` of the batch file ``path`` (see the module docstring)."""
    return mdp_from_arrays(load_npz(path, "mdp-batch"), path, device=device)


def write_mdp_batch(path: str, mdp: MDP, F: torch.Tensor):
    """Write ``(mdp, F)`` as a batch file (atomically); rewards per
    ``(s, a, s')``, features per MDP."""
    atomic_savez(path, T=mdp.T.cpu().numpy(), R=mdp.R.contiguous().cpu().numpy(), gamma=mdp.gamma.cpu().numpy(),
                 rho0=mdp.rho0.contiguous().cpu().numpy(), features=F.contiguous().cpu().numpy())


def _first_gamma(mdp: MDP) -> float | None:
    g = torch.unique(mdp.gamma)
    return float(g[0]) if g.numel() == 1 else None


class BatchDistribution:
    """The empirical distribution of a fixed batch: ``sample(num, gen)``
    draws ``num`` MDPs uniformly with replacement (indices from ``gen``)."""

    def __init__(self, mdp: MDP, F: torch.Tensor, source: str):
        self.mdp, self.F, self.source = mdp, F, source
        self.states, self.actions, self.d = mdp.states, mdp.actions, int(F.shape[-1])
        self.gamma = _first_gamma(mdp)
        self.gamma_range = None
        self.state_features, self.features, self.feature_seed = False, "batch", 0

    def describe(self) -> str:
        g = f"gamma = {self.gamma}" if self.gamma is not None else (
            f"gamma in [{float(self.mdp.gamma.min()):.3g}, {float(self.mdp.gamma.max()):.3g}]")
        return (f"{self.mdp.batch} MDPs from {self.source} (drawn with replacement), {self.states} states, "
                f"{self.actions} actions, {g}, d = {self.d}")

    def sample(self, num: int, gen: torch.Generator, device=None):
        if not isinstance(num, int) or num < 1:
            raise InputError("mdps", f"must be a positive integer, got {num!r}")
        idx = torch.randint(self.mdp.batch, (num,), generator=gen, device=gen.device).cpu()
        mdp = self.mdp[idx]
        F = self.F[idx]
        if device is not None:
            mdp, F = mdp.to(device), F.to(device)
        return mdp, F


class GeneratorDistribution:
    """MDPs from a generator ``fn(seed, batch) -> dict`` (the
    :data:`BATCH_KEYS` arrays): ``sample(num, gen)`` draws one seed from
    ``gen`` and asks ``fn`` for ``num`` fresh MDPs, validated."""

    def __init__(self, fn, name: str, field: str = "distribution", description: str | None = None):
        self.fn, self.name, self.field = fn, name, field
        mdp, F = self._call(0, 1)
        self.states, self.actions, self.d = mdp.states, mdp.actions, int(F.shape[-1])
        self.gamma = _first_gamma(mdp)
        self.gamma_range = None
        self.state_features, self.features, self.feature_seed = False, "generator", 0
        self.description = description

    def _call(self, seed: int, batch: int):
        try:
            arr = self.fn(seed, batch)
        except InputError:
            raise
        except Exception as e:  # a user's code: any failure is bad input naming it
            raise InputError(self.field, f"{self.name}({seed}, {batch}) raised {type(e).__name__}: {e}") from None
        mdp, F = mdp_from_arrays(arr, f"{self.name}({seed}, {batch})", field=self.field)
        if mdp.batch != batch:
            raise InputError(self.field, f"{self.name}({seed}, {batch}) returned {mdp.batch} MDPs, expected {batch}")
        return mdp, F

    def describe(self) -> str:
        return self.description or f"MDPs from {self.name}(seed, batch), {self.states} states, {self.actions} actions, d = {self.d}"

    def sample(self, num: int, gen: torch.Generator, device=None):
        if not isinstance(num, int) or num < 1:
            raise InputError("mdps", f"must be a positive integer, got {num!r}")
        seed = int(torch.randint(2 ** 31 - 1, (1,), generator=gen, device=gen.device))
        mdp, F = self._call(seed, num)
        if mdp.states != self.states or mdp.actions != self.actions or F.shape[-1] != self.d:
            raise InputError(self.field, f"{self.name}: sizes changed between calls (S, A, d) = "
                                         f"{(mdp.states, mdp.actions, int(F.shape[-1]))}, first {(self.states, self.actions, self.d)}")
        if device is not None:
            mdp, F = mdp.to(device), F.to(device)
        return mdp, F


_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def load_callable(spec: str, field: str = "distribution"):
    """``module:function`` imported now (only when named by the user)."""
    if not isinstance(spec, str) or not _CALLABLE.match(spec):
        raise InputError(field, f"expected MODULE:FUNCTION, got {spec!r}")
    mod, fn = spec.split(":")
    try:
        module = importlib.import_module(mod)
    except Exception as e:
        raise InputError(field, f"cannot import {mod!r}: {type(e).__name__}: {e}") from None
    f = getattr(module, fn, None)
    if not callable(f):
        raise InputError(field, f"{mod!r} has no callable {fn!r}")
    return f
