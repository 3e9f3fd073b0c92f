"""The three model kinds trained by teacher mimicking, with one interface.

Every model maps a prompt, given as its context rows ``X`` (``B x n x m``)
and parameter column ``w~`` (``B x p``) from
:func:`numerics.core.prompts.build_context`, to the new parameters
(``B x q``, ``q = p - 1``) through ``model.readout(X, wt)``:

* ``lsa``: the linear self-attention block (paper eq. 1),
  :class:`numerics.core.block.LSABlock`, reduced ``(P12, Vbar21)`` or full
  ``(P, V)`` parameterisation;
* ``mlp``: a baseline that maps the flattened prompt ``[vec X; w~]`` through
  a two-hidden-layer tanh MLP to the *change* of the parameters
  (``w + MLP(...)``, the same residual form as the block's read-out);
* ``lstm``: a baseline that reads the context rows ``x_0..x_{n-1}`` as a
  sequence with an LSTM, then maps ``[h_n; w~]`` through a tanh MLP to the
  change of the parameters.

All three are trained by the same objective and data
(``numerics.analysis.train``); files are read and written by
``numerics.io.models``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from numerics.core.block import PARAMETERIZATIONS, LSABlock, embed_reduced
from numerics.core.tolerances import DTYPE
from theory import algorithms
from theory.errors import InputError

MODEL_KINDS = ("lsa", "mlp", "lstm")

#: Xavier-normal gain of Section 4.1's initialisation of (P12, Vbar21).
INIT_GAIN = 0.1


def xavier_normal(rows: int, cols: int, gen: torch.Generator, gain: float = INIT_GAIN,
                  dtype=DTYPE, device=None) -> torch.Tensor:
    """``rows x cols`` draw of N(0, gain^2 * 2 / (rows + cols)) from ``gen``
    (``torch.nn.init.xavier_normal_`` with an explicit generator)."""
    std = gain * math.sqrt(2.0 / (rows + cols))
    return torch.randn(rows, cols, generator=gen, dtype=dtype, device=device) * std


def init_lsa_(block: LSABlock, gen: torch.Generator, gain: float = INIT_GAIN) -> LSABlock:
    """Section 4.1 initialisation, in place.

    Reduced: ``P12`` then ``Vbar21``, each Xavier-normal with ``gain``.
    Full: the same two draws (so reduced and full runs with one seed start
    from the same read blocks), then ``P22`` and ``Vbar22`` Xavier-normal
    with ``gain`` (nonzero, so the cubic term of Lemma C.1 is live and the
    full parameterisation is not the reduced one in disguise: with both at
    zero their gradients vanish forever, Prop 3.1); every never-read block
    (``P11, P21, V11, V12``, first rows of ``V21, V22``) zero: its gradient
    is identically zero, so it stays at its initial value.
    """
    m, p, q = block.m, block.p, block.q
    dev, dt = next(block.parameters()).device, next(block.parameters()).dtype
    P12 = xavier_normal(m, p, gen, gain, dt, dev)
    Vbar21 = xavier_normal(q, m, gen, gain, dt, dev)
    with torch.no_grad():
        if block.parameterization == "reduced":
            block.P12.copy_(P12)
            block.Vbar21.copy_(Vbar21)
        else:
            P22 = xavier_normal(p, p, gen, gain, dt, dev)
            Vbar22 = xavier_normal(q, p, gen, gain, dt, dev)
            P, V = embed_reduced(block.index, P12, Vbar21, P22, Vbar22)
            block.P.copy_(P)
            block.V.copy_(V)
    return block


def _init_linear_(lin: nn.Linear, gen: torch.Generator, gain: float = 1.0):
    with torch.no_grad():
        lin.weight.copy_(xavier_normal(lin.out_features, lin.in_features, gen, gain,
                                       lin.weight.dtype, lin.weight.device))
        lin.bias.zero_()


class MLPModel(nn.Module):
    """MLP baseline: ``w + MLP([vec X; w~])`` (two tanh hidden layers)."""

    def __init__(self, m: int, p: int, n: int, hidden: int = 128, dtype=DTYPE, device=None):
        super().__init__()
        self.m, self.p, self.q, self.n, self.hidden = m, p, p - 1, n, hidden
        self.net = nn.Sequential(
            nn.Linear(n * m + p, hidden, dtype=dtype, device=device), nn.Tanh(),
            nn.Linear(hidden, hidden, dtype=dtype, device=device), nn.Tanh(),
            nn.Linear(hidden, p - 1, dtype=dtype, device=device))

    def init_(self, gen: torch.Generator):
        lins = [mod for mod in self.net if isinstance(mod, nn.Linear)]
        for lin in lins[:-1]:
            _init_linear_(lin, gen)
        _init_linear_(lins[-1], gen, INIT_GAIN)   # starts near the identity map w -> w
        return self

    def readout(self, X: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        B, n, m = X.shape
        if n != self.n or m != self.m:
            raise InputError("prompt", f"the MLP was built for n = {self.n}, m = {self.m}; got n = {n}, m = {m}")
        return wt[:, 1:] + self.net(torch.cat([X.reshape(B, n * m), wt], -1))


class LSTMModel(nn.Module):
    """LSTM baseline: the context rows as a sequence, then ``w + MLP([h_n; w~])``."""

    def __init__(self, m: int, p: int, n: int, hidden: int = 64, dtype=DTYPE, device=None):
        super().__init__()
        self.m, self.p, self.q, self.n, self.hidden = m, p, p - 1, n, hidden
        self.lstm = nn.LSTM(m, hidden, batch_first=True, dtype=dtype, device=device)
        self.head = nn.Sequential(nn.Linear(hidden + p, hidden, dtype=dtype, device=device), nn.Tanh(),
                                  nn.Linear(hidden, p - 1, dtype=dtype, device=device))

    def init_(self, gen: torch.Generator):
        H = self.hidden
        with torch.no_grad():
            for name, w in self.lstm.named_parameters():
                if name.startswith("weight"):
                    # one Xavier draw per gate, as the four gates are separate maps
                    w.copy_(torch.cat([xavier_normal(H, w.shape[1], gen, 1.0, w.dtype, w.device) for _ in range(4)]))
                else:
                    w.zero_()
        lins = [mod for mod in self.head if isinstance(mod, nn.Linear)]
        _init_linear_(lins[0], gen)
        _init_linear_(lins[1], gen, INIT_GAIN)
        return self

    def readout(self, X: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        if X.shape[-1] != self.m:
            raise InputError("prompt", f"the LSTM was built for m = {self.m}; got m = {X.shape[-1]}")
        _, (h, _) = self.lstm(X)
        return wt[:, 1:] + self.head(torch.cat([h[-1], wt], -1))


def model_config(model: nn.Module) -> dict:
    """The constructor config stored in the metadata (``meta["model"]``)."""
    return dict(model._icrl_config)


def build_model(kind: str, algorithm, d: int, n: int, parameterization: str = "reduced", *,
                gen: torch.Generator | None = None, device=None, dtype=DTYPE, hidden: int | None = None,
                init: bool = True) -> nn.Module:
    """A model of ``kind`` for the algorithm's (name or record) prompt layout at feature
    dimension ``d`` and window length ``n``.

    Initialised from ``gen`` (default: a generator seeded 0 on ``device``)
    unless ``init`` is false (then the LSA block is zero; used when loading).
    ``parameterization`` matters for ``lsa`` only; ``hidden`` for the
    baselines (default 128 for ``mlp``, 64 for ``lstm``).
    """
    if kind not in MODEL_KINDS:
        raise InputError("model", f"unknown {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
    if parameterization not in PARAMETERIZATIONS:
        raise InputError("parameterization", f"unknown {parameterization!r}; expected reduced or full")
    if not isinstance(d, int) or d < 1:
        raise InputError("d", f"must be a positive integer, got {d!r}")
    if not isinstance(n, int) or n < 1:
        raise InputError("context", f"must be a positive integer, got {n!r}")
    record = algorithms.get(algorithm)
    lay = record.layout
    m, p = lay.m(d), lay.p(d)
    device = torch.device(device) if device is not None else torch.device("cpu")
    if gen is None:
        gen = torch.Generator(device=device).manual_seed(0)
    cfg = dict(kind=kind, algorithm=record.name, d=d, n=n, parameterization=parameterization)
    if kind == "lsa":
        model = LSABlock(record.spec, d, parameterization, dtype=dtype, device=device)
        if init:
            init_lsa_(model, gen)
    else:
        if hidden is None:
            hidden = 128 if kind == "mlp" else 64
        if not isinstance(hidden, int) or hidden < 1:
            raise InputError("hidden", f"must be a positive integer, got {hidden!r}")
        cfg["hidden"] = hidden
        cls = MLPModel if kind == "mlp" else LSTMModel
        model = cls(m, p, n, hidden, dtype=dtype, device=device)
        if init:
            model.init_(gen)
    model._icrl_config = cfg
    model.record = record
    return model
