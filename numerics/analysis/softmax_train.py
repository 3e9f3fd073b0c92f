"""Theorem 3 of Xie et al. (2026) (THEORY.md section 10; docs/xie2026.md,
"Theorem 3"): is the constructed ``(V, A)`` a global minimiser of the
pretraining loss ``J_{L,n}`` on the class the App. F.2 masks leave free?

The paper's definition of ``J_{L,n}`` and the masks could not be read
(xie_notes.md section 7), so the claim is decided under explicit readings:

* ``neu`` (norm of expected update): ``J = E (1/(n+1)) sum_j
  (sum_{k=1..n} delta_k(v_L) K(s_{k-1}, s_j))^2`` with ``v_L`` the block's
  current-memory row after ``L`` layers, ``delta_k(v) = r_k + gamma v(s_k) -
  v(s_{k-1})`` on the window and ``K`` the fixed feature softmax kernel
  ``exp<phi_j, phi_{k-1}> / sum_m exp<phi_j, phi_{m-1}>`` (not the block's
  ``A``): the squared size of weighted softmax TD's update at the block's
  output, zero iff ``v_L`` is the window's fixed point.
* ``value``: ``J = E (v_L(s_n) - v_pi(s_n))^2``, the query's value error
  against the true MRP value.

The masked class (our reading of F.2): ``A`` free on the ``phi x phi``
block, zero elsewhere; ``V`` free on the written row's (reward, target,
current) entries (one-head: the current row; two-head: the current row of
head 1 and the target row of head 2), zero elsewhere; tied layers (one
``(V, A)`` for all ``L``) or untied.  A parameter vector ``theta`` holds, per
layer, ``A[phi, phi]`` row-major (``d^2``), head 1's row (3) and, two-head,
head 2's row (3).

Everything reported is computed through :func:`numerics.core.softmax.forward_layers`
(:func:`block_losses`).  The gradient statistics, the Hessian and the
training use :func:`fast_values`, the same masked block written as a
recursion on the two memory rows (the attention does not change between
layers of the masked class: the ``phi`` rows are never written); it shares no
code with the block, is checked against it in the tests, and every point it
reports is re-evaluated through ``forward_layers`` (losses, gradient and a
Hessian-vector product, the worst disagreement reported).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from numerics.analysis import budget
from numerics.analysis.softmax_bound import margin as margin_of
from numerics.core import softmax as sm
from numerics.core.mdp import MDP
from numerics.core.mrp import mrp_values, random_mrps
from numerics.core.tolerances import DTYPE
from numerics.core.tolerances import SOFTMAX_FLAT_RTOL as FLAT_RTOL
from numerics.core.tolerances import SOFTMAX_ROUNDING_RTOL as ROUNDING_RTOL
from numerics.core.tolerances import SOFTMAX_SIGMAS as SIGMAS
from theory.errors import InputError

#: --full: the sample and budget of the full run (docs/xie2026.md; `claims --full`).
FULL = {"mrps": 512, "steps": 300, "polish": 150}
READINGS = ("neu", "value")
FEATURE_KINDS = ("random", "onehot")

#: Draws of MRPs per rejection round when sampling MRPs that satisfy
#: Assumption 5.1, and the most rounds before giving up.
REJECTION_ROUNDS = 200


@dataclass
class TrainConfig:
    """One Theorem 3 experiment (defaults: the quick run)."""

    readings: tuple = READINGS
    layers: tuple = (3, 10)
    form: str = "one-head"
    tied: bool = True
    n: int = 20
    d: int = 4
    states: int = 5
    mrps: int = 128
    gamma: float = 0.5
    tau: float = 8.0
    features: str = "random"
    seed: int = 0
    inits: int = 10
    steps: int = 80
    polish: int = 40
    lr: float = 0.05

    def __post_init__(self):
        for r in self.readings:
            if r not in READINGS:
                raise InputError("reading", f"unknown {r!r}; expected one of {', '.join(READINGS)}")
        if self.form not in sm.FORMS:
            raise InputError("form", f"unknown {self.form!r}; expected one of {', '.join(sm.FORMS)}")
        if self.features not in FEATURE_KINDS:
            raise InputError("features", f"unknown {self.features!r}; expected one of {', '.join(FEATURE_KINDS)}")
        if not isinstance(self.polish, int) or isinstance(self.polish, bool) or self.polish < 0:
            raise InputError("polish", f"must be a non-negative integer, got {self.polish!r}")
        for name in ("n", "d", "states", "mrps", "inits", "steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError({"n": "context", "d": "features-dim"}.get(name, name),
                                 f"must be a positive integer, got {v!r}")
        if not self.layers or any(not isinstance(L, int) or L < 1 for L in self.layers):
            raise InputError("layers", f"must be positive integers, got {self.layers!r}")
        if not (0.0 <= self.gamma < 1.0):
            raise InputError("gamma", f"must be in [0, 1), got {self.gamma!r}")
        if not (self.tau > 0 and math.isfinite(self.tau)):
            raise InputError("tau", f"must be a positive number, got {self.tau!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError("lr", f"must be a positive number, got {self.lr!r}")
        if self.mrps < 2:
            raise InputError("mrps", f"must be at least 2 (standard errors are over prompts), got {self.mrps}")
        if self.states < 2:
            raise InputError("states", f"must be at least 2, got {self.states}")
        if self.features == "onehot" and self.d != self.states:
            raise InputError("features-dim", f"one-hot features need --features-dim = --states ({self.states}), "
                                             f"got {self.d}")


# =========================================================================== data
@dataclass
class Sample:
    """A fixed sample of windows, one per MRP: the prompt ``Z0``
    (``N x (d+3) x (n+1)``), features ``X`` (``N x (n+1) x d``), rewards ``r``
    (``N x n``), the true value of the query's state ``vpi_q`` (``N``), the
    Assumption 5.1 margins of the MRPs (``N``) and ``gamma``."""

    Z0: torch.Tensor
    X: torch.Tensor
    r: torch.Tensor
    vpi_q: torch.Tensor
    margin: torch.Tensor
    gamma: float
    features: torch.Tensor

    @property
    def N(self) -> int:
        return self.X.shape[0]


def draw_features(kind: str, batch: int, states: int, d: int, tau: float, gen: torch.Generator) -> torch.Tensor:
    """``B x S x d`` features of norm ``sqrt(tau)``: one-hot ``sqrt(tau) e_s``,
    or directions uniform on the sphere (normalised Gaussians)."""
    if kind == "onehot":
        return math.sqrt(tau) * torch.eye(states, dtype=DTYPE).expand(batch, states, states).clone()
    g = torch.randn(batch, states, d, generator=gen, dtype=DTYPE)
    return math.sqrt(tau) * g / g.norm(dim=-1, keepdim=True)


def sample(cfg: TrainConfig, gen: torch.Generator) -> Sample:
    """``cfg.mrps`` random MRPs whose features satisfy Assumption 5.1 (drawn
    in rounds, those with a positive margin kept, in draw order), one window
    of ``cfg.n`` transitions from each (states ``s_0 .. s_n``, the last the query)."""
    kept_T, kept_R, kept_rho, kept_f, kept_m = [], [], [], [], []
    have = 0
    for _ in range(REJECTION_ROUNDS):
        m = random_mrps(cfg.mrps, cfg.states, gen, cfg.gamma)
        f = draw_features(cfg.features, cfg.mrps, cfg.states, cfg.d, cfg.tau, gen)
        margin = margin_of(m, f, cfg.gamma)["C"]         # Assumption 5.1 (our reading of M_pi)
        ok = margin > 0
        kept_T.append(m.T[ok]), kept_R.append(m.R[ok]), kept_rho.append(m.rho0[ok])
        kept_f.append(f[ok]), kept_m.append(margin[ok])
        have += int(ok.sum())
        if have >= cfg.mrps:
            break
    else:
        raise InputError("tau", f"Assumption 5.1 holds for too few MRPs ({have} of {REJECTION_ROUNDS * cfg.mrps} "
                                f"drawn) at tau = {cfg.tau}, gamma = {cfg.gamma}; raise --tau or lower --gamma")
    B = cfg.mrps
    T, R, rho = (torch.cat(x)[:B] for x in (kept_T, kept_R, kept_rho))
    feats, margin = torch.cat(kept_f)[:B], torch.cat(kept_m)[:B]
    mdp = MDP(T, R, cfg.gamma, rho)
    X, r, S = sm.windows(mdp, feats, cfg.n, gen)
    vpi = mrp_values(mdp)
    vpi_q = vpi[torch.arange(B), S[:, -1]]
    return Sample(sm.prompt(X, r), X, r, vpi_q, margin, float(cfg.gamma), feats)


# =========================================================================== parameters
def heads(form: str) -> int:
    return 1 if form == "one-head" else 2


def per_layer(d: int, form: str) -> int:
    """Free entries of one layer's masked ``(V, A)``: ``d^2 + 3`` (one head) or ``d^2 + 6``."""
    return d * d + 3 * heads(form)


def construction_theta(d: int, gamma: float, form: str, layers: int = 1, c: float = 1.0,
                       alpha: float = 1.0) -> torch.Tensor:
    """The construction family in the masked coordinates (``layers x P``):
    ``A[phi, phi] = c I``, head 1's row ``alpha [1, 1, -1]``, head 2's
    (two-head) ``gamma alpha [1, 1, -1]``; ``c = alpha = 1`` is Theorem 1's."""
    t = torch.zeros(per_layer(d, form), dtype=DTYPE)
    t[:d * d] = c * torch.eye(d, dtype=DTYPE).reshape(-1)
    t[d * d:d * d + 3] = alpha * torch.tensor([1.0, 1.0, -1.0], dtype=DTYPE)
    if form == "two-head":
        t[d * d + 3:] = gamma * alpha * torch.tensor([1.0, 1.0, -1.0], dtype=DTYPE)
    return t.expand(layers, -1).clone()


def family_basis(d: int, gamma: float, form: str, layers: int) -> torch.Tensor:
    """The two directions of the construction family (``2 x layers*P``):
    ``d/dc`` and ``d/dalpha`` (tied across the layers)."""
    a = construction_theta(d, gamma, form, layers, c=1.0, alpha=0.0).reshape(-1)
    v = construction_theta(d, gamma, form, layers, c=0.0, alpha=1.0).reshape(-1)
    return torch.stack([a, v])


def unpack(theta: torch.Tensor, d: int, form: str):
    """Full ``(V, A)`` of one layer from its masked parameters (``P``):
    ``A`` ``D x D``, ``V`` ``D x D`` (one-head) or ``2 x D x D``.  Built by
    placing the entries into zeros (differentiable)."""
    R = sm.rows(d)
    D = R["D"]
    A = torch.zeros(D, D, dtype=theta.dtype)
    A = A.index_put((torch.arange(d).repeat_interleave(d), torch.arange(d).repeat(d)), theta[:d * d])
    cols = torch.tensor([R["r"], R["target"], R["current"]])
    V1 = torch.zeros(D, D, dtype=theta.dtype).index_put((torch.full((3,), R["current"]), cols), theta[d * d:d * d + 3])
    if form == "one-head":
        return V1, A
    V2 = torch.zeros(D, D, dtype=theta.dtype).index_put((torch.full((3,), R["target"]), cols), theta[d * d + 3:])
    return torch.stack([V1, V2]), A


# =========================================================================== the block, through forward_layers
def block_values(theta: torch.Tensor, s: Sample, layers: int, form: str, tied: bool = True) -> torch.Tensor:
    """The block's current-memory row after ``layers`` layers (``N x (n+1)``),
    by :func:`numerics.core.softmax.forward_layers` on the full ``(V, A)``
    that ``theta`` (``1 x P`` tied, ``layers x P`` untied) unpacks to."""
    d = s.X.shape[-1]
    if tied:
        V, A = unpack(theta[0], d, form)
    else:
        pairs = [unpack(theta[k], d, form) for k in range(layers)]
        V, A = [p[0] for p in pairs], [p[1] for p in pairs]
    Z = sm.forward_layers(s.Z0, V, A, layers=layers, form=form, gamma=s.gamma, d=d, tied=tied)[-1]
    return sm.values(Z, d)


# =========================================================================== the same block, fast
def _shift(x: torch.Tensor) -> torch.Tensor:
    """``x[..., j + 1]`` in position ``j``, zero in the last."""
    return torch.cat([x[..., 1:], torch.zeros_like(x[..., :1])], dim=-1)


def fast_values(theta: torch.Tensor, X: torch.Tensor, r: torch.Tensor, gamma: float, layers: int, form: str,
                tied: bool = True) -> torch.Tensor:
    """The masked block's current row after ``layers`` layers, written on
    the two memory rows alone: ``theta`` is ``(..., Lp, P)`` (``Lp = 1``
    tied), ``X`` ``N x (n+1) x d``, ``r`` ``N x n``; returns
    ``(..., N, n+1)``.  Per layer, with ``W = softmax_keys(X A X^T)`` (the
    query never a key) and ``u_h = a_h r + b_h t + c_h c`` per head:
    ``c <- c + u_1 W``; one-head ``t <- gamma shift(c)``, two-head
    ``t <- t + shift(u_2 W)``."""
    d = X.shape[-1]
    cols = X.shape[-2]
    rr = torch.cat([r, torch.zeros_like(r[:, :1])], dim=-1)
    keymask = torch.zeros(cols, 1, dtype=X.dtype)
    keymask[-1] = float("-inf")
    batch = theta.shape[:-2]
    c = torch.zeros(*batch, *rr.shape, dtype=X.dtype)
    t = torch.zeros_like(c)
    W = None
    for k in range(layers):
        p = theta[..., 0 if tied else k, :]
        if W is None or not tied:
            A = p[..., :d * d].reshape(*batch, 1, d, d)
            scores = X @ A @ X.transpose(-1, -2) + keymask       # [.., N, key i, query j]
            W = torch.softmax(scores, dim=-2)
        h1 = p[..., d * d:d * d + 3]
        u1 = h1[..., 0, None, None] * rr + h1[..., 1, None, None] * t + h1[..., 2, None, None] * c
        c_new = c + (u1.unsqueeze(-2) @ W).squeeze(-2)
        if form == "one-head":
            t = gamma * _shift(c_new)
        else:
            h2 = p[..., d * d + 3:]
            u2 = h2[..., 0, None, None] * rr + h2[..., 1, None, None] * t + h2[..., 2, None, None] * c
            t = t + _shift((u2.unsqueeze(-2) @ W).squeeze(-2))
        c = c_new
    return c


# =========================================================================== the losses
def feature_kernel(X: torch.Tensor) -> torch.Tensor:
    """``K[i, j] = exp<phi_i, phi_j> / sum_{m < n} exp<phi_m, phi_j>`` over the
    context states ``i = 0..n-1`` (``N x n x (n+1)``): weighted softmax TD's
    kernel ``K(s_{k-1}, s_j)`` with ``i = k - 1``."""
    G = X[:, :-1, :] @ X.transpose(-1, -2)
    return torch.softmax(G, dim=-2)


def prompt_losses(v: torch.Tensor, s: Sample, reading: str, K: torch.Tensor | None = None) -> torch.Tensor:
    """Per-prompt loss (``(..., N)``) of values ``v`` (``(..., N, n+1)``, column
    ``j`` the value of ``s_j``) under ``reading``."""
    if reading == "value":
        return (v[..., -1] - s.vpi_q) ** 2
    if reading != "neu":
        raise InputError("reading", f"unknown {reading!r}; expected one of {', '.join(READINGS)}")
    K = feature_kernel(s.X) if K is None else K
    delta = s.r + s.gamma * v[..., 1:] - v[..., :-1]                  # delta_k, k = 1..n, at i = k - 1
    u = (delta.unsqueeze(-2) @ K).squeeze(-2)                           # (.., N, n+1)
    return (u ** 2).mean(-1)


def block_losses(theta, s: Sample, reading: str, layers: int, form: str, tied: bool = True) -> torch.Tensor:
    """Per-prompt loss through ``forward_layers`` (``N``)."""
    return prompt_losses(block_values(theta, s, layers, form, tied), s, reading)


def fast_losses(theta, s: Sample, reading: str, layers: int, form: str, tied: bool = True, K=None):
    """Per-prompt loss through :func:`fast_values` (``(..., N)``)."""
    return prompt_losses(fast_values(theta, s.X, s.r, s.gamma, layers, form, tied), s, reading, K)


# =========================================================================== symmetries
def softmax_symmetries(features: torch.Tensor, d: int) -> torch.Tensor:
    """Directions ``delta`` of ``A[phi, phi]`` (rows: unit vectors in
    ``R^{d^2}``, row-major) that add a constant to every score of a query
    column, for every feature set of the sample, so that the column softmax,
    hence the block, does not change: ``(phi_a - phi_b)^T delta phi_c = 0``
    for all states ``a, b, c`` of each MRP.  The null space of that linear
    map (dense ``eigh`` of its Gram matrix, eigenvalues below ``FLAT_RTOL``
    of the largest)."""
    F = features.reshape(-1, d)
    Dm = (features[:, 1:, :] - features[:, :1, :]).reshape(-1, d)
    G = torch.kron(Dm.T @ Dm, F.T @ F)          # row-major vec(delta): (u, w) -> u_a w_c
    lam, U = torch.linalg.eigh(G)
    null = lam <= FLAT_RTOL * lam.abs().max().clamp_min(1e-300)
    return U[:, null].T.contiguous()


def symmetry_basis(sym_A: torch.Tensor, d: int, form: str, layers: int) -> torch.Tensor:
    """The symmetry directions in the full parameter vector (``layers x P``
    flattened), one set per layer."""
    P = per_layer(d, form)
    out = []
    for k in range(layers):
        for row in sym_A:
            t = torch.zeros(layers, P, dtype=DTYPE)
            t[k, :d * d] = row
            out.append(t.reshape(-1))
    return torch.stack(out) if out else torch.zeros(0, layers * P, dtype=DTYPE)


def quotient_distance(theta: torch.Tensor, base: torch.Tensor, span: torch.Tensor, free: torch.Tensor):
    """``min |theta - base - x span - y free|`` over ``x`` (coefficients kept,
    e.g. the family's ``c`` and ``alpha``) and ``y`` (symmetries quotiented
    out), by least squares.  Returns ``(distance, x, y)``."""
    M = torch.cat([span, free]).T if (span.numel() + free.numel()) else torch.zeros(theta.numel(), 0, dtype=DTYPE)
    diff = (theta - base).reshape(-1)
    if M.shape[1]:
        coef = torch.linalg.lstsq(M, diff.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)
    else:
        coef = torch.zeros(0, dtype=DTYPE)
    resid = diff - M @ coef
    return float(resid.norm()), coef[:span.shape[0]], coef[span.shape[0]:]


def distances(theta: torch.Tensor, d: int, gamma: float, form: str, layers_p: int, sym: torch.Tensor) -> dict:
    """Distances of ``theta`` (``layers_p x P``), the softmax symmetries
    quotiented out (``sym``: orthonormal rows):

    * ``to_construction``: ``min_y |theta - theta* - y sym| / |theta*|``;
    * ``to_family``: the sine of the angle between ``theta`` (its symmetry
      component removed) and the family's plane ``{c a + alpha v}``:
      ``min |theta - c a - alpha v - y sym| / |theta - y sym|``, 0 on the
      family, 1 orthogonal to it; with the fitted ``c`` and ``alpha``."""
    flat = theta.reshape(-1)
    star = construction_theta(d, gamma, form, layers_p).reshape(-1)
    basis = family_basis(d, gamma, form, layers_p)
    empty = torch.zeros(0, star.numel(), dtype=DTYPE)
    dc, _, _ = quotient_distance(flat, star, empty, sym)
    df, x, _ = quotient_distance(flat, torch.zeros_like(star), basis, sym)
    quotiented = flat - (flat @ sym.T) @ sym if sym.shape[0] else flat
    return {"to_construction": dc / float(star.norm()), "to_family": df / max(float(quotiented.norm()), 1e-300),
            "family_c": float(x[0]), "family_alpha": float(x[1])}


# =========================================================================== derivatives
def _one_prompt_loss(reading: str, layers: int, form: str, tied: bool, gamma: float, Lp: int):
    """The loss of one prompt as a function of ``(theta flat, X, r, vpi_q, K)``
    (the prompt's own tensors, no batch axis): for ``torch.func.vmap`` over
    prompts, so per-prompt derivatives hold one prompt's graph at a time."""
    def f(theta, X, r, vpi_q, K):
        one = Sample(None, X[None], r[None], vpi_q[None], None, gamma, None)
        return fast_losses(theta.reshape(Lp, -1), one, reading, layers, form, tied, K[None])[0]
    return f


def gradient_stats(theta: torch.Tensor, s: Sample, reading: str, layers: int, form: str, tied: bool) -> dict:
    """Mean gradient of the per-prompt losses (fast path; ``theta`` flat),
    its norm and the standard error of that norm under resampling of the
    prompts, ``sqrt(tr Cov / N)``."""
    Lp = 1 if tied else layers
    f = _one_prompt_loss(reading, layers, form, tied, s.gamma, Lp)
    J = torch.func.vmap(torch.func.grad(f), in_dims=(None, 0, 0, 0, 0))(
        theta.reshape(-1), s.X, s.r, s.vpi_q, feature_kernel(s.X))                  # N x p
    g = J.mean(0)
    cov_trace = float(J.var(0, unbiased=True).sum())
    return {"grad": g, "norm": float(g.norm()), "se": math.sqrt(cov_trace / J.shape[0]), "per_prompt": J}


def hessian(theta: torch.Tensor, s: Sample, reading: str, layers: int, form: str, tied: bool) -> torch.Tensor:
    """Hessian of the mean loss in the masked coordinates (fast path; ``p x p``;
    reverse over reverse: torch's forward mode warns at import under the
    tests' warnings-as-errors)."""
    Lp = 1 if tied else layers
    K = feature_kernel(s.X)

    def mean_loss(t):
        return fast_losses(t.reshape(Lp, -1), s, reading, layers, form, tied, K).mean()

    H = torch.func.jacrev(torch.func.jacrev(mean_loss))(theta.reshape(-1))
    return (H + H.T) / 2


def curvature(theta: torch.Tensor, u: torch.Tensor, s: Sample, reading: str, layers: int, form: str,
              tied: bool) -> tuple[float, float]:
    """``u^T H u`` and its standard error under resampling of the prompts,
    from the per-prompt second directional derivatives ``d^2/dx^2
    loss_i(theta + x u)``."""
    Lp = 1 if tied else layers
    f = _one_prompt_loss(reading, layers, form, tied, s.gamma, Lp)
    base = theta.reshape(-1)

    def second(X, r, vpi_q, K):
        along = lambda x: f(base + x * u, X, r, vpi_q, K)              # noqa: E731
        return torch.func.grad(torch.func.grad(along))(torch.zeros((), dtype=DTYPE))

    c = torch.func.vmap(second)(s.X, s.r, s.vpi_q, feature_kernel(s.X))
    return float(c.mean()), float(c.std(unbiased=True) / math.sqrt(c.numel()))


def block_gradient(theta: torch.Tensor, s: Sample, reading: str, layers: int, form: str, tied: bool) -> torch.Tensor:
    """Gradient of the mean loss by autograd through ``forward_layers`` (flat)."""
    Lp = 1 if tied else layers
    t = theta.reshape(-1).detach().clone().requires_grad_(True)
    loss = block_losses(t.reshape(Lp, -1), s, reading, layers, form, tied).mean()
    (g,) = torch.autograd.grad(loss, t)
    return g


def full_gradient(theta: torch.Tensor, s: Sample, reading: str, layers: int, form: str, tied: bool) -> dict:
    """Gradient of the mean loss on the full, unmasked class (every entry of
    ``V`` and ``A``, autograd through ``forward_layers``) at the point
    ``theta`` unpacks to: its norm, the part on the masked entries, the part
    off them and the largest off-mask entry (``(which, layer, row, col)``)."""
    d = s.X.shape[-1]
    Lp = 1 if tied else layers
    pairs = [unpack(theta[k], d, form) for k in range(Lp)]
    Vs = [p[0].detach().clone().requires_grad_(True) for p in pairs]
    As = [p[1].detach().clone().requires_grad_(True) for p in pairs]
    V, A = (Vs[0], As[0]) if tied else (Vs, As)
    Z = sm.forward_layers(s.Z0, V, A, layers=layers, form=form, gamma=s.gamma, d=d, tied=tied)[-1]
    loss = prompt_losses(sm.values(Z, d), s, reading).mean()
    grads = torch.autograd.grad(loss, [*Vs, *As])
    masks = [unpack(torch.ones_like(theta[0]), d, form) for _ in range(Lp)]
    on = off = 0.0
    worst, where = 0.0, None
    for k, (gV, gA) in enumerate(zip(grads[:Lp], grads[Lp:])):
        for name, g, m in (("V", gV, masks[k][0]), ("A", gA, masks[k][1])):
            on += float((g * m).pow(2).sum())
            o = g * (1 - m)
            off += float(o.pow(2).sum())
            i = int(o.abs().argmax())
            if float(o.abs().reshape(-1)[i]) > worst:
                worst = float(o.abs().reshape(-1)[i])
                where = (name, k, *[int(x) for x in torch.unravel_index(torch.tensor(i), o.shape)])
    return {"norm": math.sqrt(on + off), "masked": math.sqrt(on), "off_mask": math.sqrt(off),
            "largest_off_mask": worst, "largest_off_mask_at": where}


def block_hvp(theta: torch.Tensor, u: torch.Tensor, s: Sample, reading: str, layers: int, form: str,
              tied: bool) -> torch.Tensor:
    """``H u`` by double backward through ``forward_layers``."""
    Lp = 1 if tied else layers
    t = theta.reshape(-1).detach().clone().requires_grad_(True)
    loss = block_losses(t.reshape(Lp, -1), s, reading, layers, form, tied).mean()
    (g,) = torch.autograd.grad(loss, t, create_graph=True)
    (hv,) = torch.autograd.grad(g @ u, t)
    return hv


def finite_difference_hessian(f, theta: torch.Tensor, h: float = 1e-4) -> torch.Tensor:
    """Central differences of a scalar function ``f`` (flat ``theta``):
    ``(f(+h e_i +h e_j) - f(+h e_i -h e_j) - f(-h e_i +h e_j) + f(-h e_i -h e_j)) / 4h^2``."""
    p = theta.numel()
    H = torch.zeros(p, p, dtype=DTYPE)
    E = torch.eye(p, dtype=DTYPE) * h
    for i in range(p):
        for j in range(i, p):
            v = (f(theta + E[i] + E[j]) - f(theta + E[i] - E[j]) - f(theta - E[i] + E[j])
                 + f(theta - E[i] - E[j])) / (4 * h * h)
            H[i, j] = H[j, i] = v
    return H


# =========================================================================== training
def random_inits(count: int, d: int, form: str, Lp: int, gen: torch.Generator) -> torch.Tensor:
    """``count x Lp x P`` starting points: ``A[phi, phi] ~ N(0, 1/d)``,
    every written-row entry ``~ N(0, 0.5^2)``."""
    P = per_layer(d, form)
    t = torch.randn(count, Lp, P, generator=gen, dtype=DTYPE)
    t[..., :d * d] /= math.sqrt(d)
    t[..., d * d:] *= 0.5
    return t


def train(inits: torch.Tensor, s: Sample, reading: str, layers: int, form: str, tied: bool, steps: int, lr: float,
          polish_iters: int = 0, progress=None) -> dict:
    """Adam (float64) on the mean loss from every start in ``inits``
    (``I x Lp x P``) side by side (the losses are summed; the starts share
    no parameter, so each follows its own Adam).  The step size decays
    geometrically from ``lr`` to ``lr / 100``.  A start whose loss stops
    being finite is frozen and marked diverged.  Then each start's best
    point is polished by ``polish_iters`` iterations of L-BFGS
    (:func:`polish`).  Returns the final parameters and losses, the Adam loss
    curves (``I x (steps + 1)``), the losses after Adam and the diverged mask."""
    K = feature_kernel(s.X)
    theta = inits.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    decay = 0.01 ** (1.0 / max(1, steps))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, decay)
    curves = torch.empty(inits.shape[0], steps + 1, dtype=DTYPE)
    diverged = torch.zeros(inits.shape[0], dtype=torch.bool)
    best = inits.clone()
    best_loss = torch.full((inits.shape[0],), float("inf"), dtype=DTYPE)
    for k in range(steps + 1):
        losses = fast_losses(theta, s, reading, layers, form, tied, K).mean(-1)      # I
        with torch.no_grad():
            finite = torch.isfinite(losses)
            diverged |= ~finite
            curves[:, k] = losses.detach()
            better = finite & (losses.detach() < best_loss)
            best[better] = theta.detach()[better]
            best_loss[better] = losses.detach()[better]
        if k == steps:
            break
        opt.zero_grad()
        torch.where(finite, losses, torch.zeros_like(losses)).sum().backward()
        with torch.no_grad():
            theta.grad[~torch.isfinite(theta.grad)] = 0.0
            theta.grad[diverged] = 0.0
        opt.step()
        sched.step()
        if progress is not None:
            progress(1)
    adam_loss = best_loss.clone()
    for i in range(inits.shape[0]):
        if torch.isfinite(best_loss[i]):
            out = polish(best[i], s, reading, layers, form, tied, polish_iters)
            best[i], best_loss[i] = out["theta"], out["loss"]
        if progress is not None:
            progress(1)
    return {"theta": best, "loss": best_loss, "curves": curves, "adam_loss": adam_loss, "diverged": diverged}


def polish(theta: torch.Tensor, s: Sample, reading: str, layers: int, form: str, tied: bool, iters: int) -> dict:
    """L-BFGS (strong Wolfe, float64) from one start (``Lp x P``); the point
    of lowest loss seen is returned (a line search never makes it worse)."""
    K = feature_kernel(s.X)
    x = theta.detach().clone().requires_grad_(True)
    start = float(fast_losses(x.detach(), s, reading, layers, form, tied, K).mean())
    if iters == 0 or not math.isfinite(start):
        return {"theta": x.detach(), "loss": start, "evaluations": 0}
    opt = torch.optim.LBFGS([x], max_iter=iters, line_search_fn="strong_wolfe", tolerance_grad=1e-15,
                            tolerance_change=1e-18, history_size=20)
    count = [0]

    def closure():
        opt.zero_grad()
        loss = fast_losses(x, s, reading, layers, form, tied, K).mean()
        if torch.isfinite(loss):
            loss.backward()
        count[0] += 1
        return loss

    opt.step(closure)
    end = float(fast_losses(x.detach(), s, reading, layers, form, tied, K).mean())
    if not (end <= start):
        return {"theta": theta.detach().clone(), "loss": start, "evaluations": count[0]}
    return {"theta": x.detach(), "loss": end, "evaluations": count[0]}


def family_optimum(s: Sample, reading: str, layers: int, form: str, tied: bool, steps: int = 60) -> dict:
    """The best member of the construction family (``c``, ``alpha``) from
    ``c = alpha = 1``: L-BFGS (strong Wolfe, float64) on the two coordinates."""
    d = s.X.shape[-1]
    Lp = 1 if tied else layers
    K = feature_kernel(s.X)
    basis = family_basis(d, s.gamma, form, Lp)
    x = torch.ones(2, dtype=DTYPE, requires_grad=True)
    opt = torch.optim.LBFGS([x], max_iter=steps, line_search_fn="strong_wolfe", tolerance_grad=1e-14,
                            tolerance_change=1e-16)

    def closure():
        opt.zero_grad()
        loss = fast_losses((x @ basis).reshape(Lp, -1), s, reading, layers, form, tied, K).mean()
        loss.backward()
        return loss

    opt.step(closure)
    x = x.detach()
    return {"c": float(x[0]), "alpha": float(x[1]), "theta": (x @ basis).reshape(Lp, -1)}


# =========================================================================== the verdict
def verdict(*, grad_norm: float, grad_se: float, grad_scale: float, lam_min: float, lam_min_se: float,
            lam_max: float, loss_star: float, candidates: list[dict]) -> dict:
    """The rule (docs/xie2026.md, "Theorem 3"): the construction is a
    minimiser on the sample when (1) the gradient is zero within ``SIGMAS``
    standard errors plus ``ROUNDING_RTOL grad_scale``, (2) the smallest
    Hessian eigenvalue is above ``-(SIGMAS se + ROUNDING_RTOL lambda_max)``
    and (3) no candidate (a trained start, the family's best member) has a
    held-out loss below ``J*`` by more than ``SIGMAS`` paired standard errors
    plus ``ROUNDING_RTOL J*`` (a candidate whose loss is not finite is
    skipped; a gradient or eigenvalue that is not finite fails).  ``candidates``: dicts with ``name``,
    ``heldout_loss``, ``heldout_star`` (the construction's on the same
    prompts) and ``diff_se``.  ``holds`` iff all three; else ``fails`` with
    the reasons and the witness (the candidate furthest below)."""
    grad_tol = SIGMAS * grad_se + ROUNDING_RTOL * grad_scale
    grad_ok = grad_norm <= grad_tol
    hess_tol = SIGMAS * lam_min_se + ROUNDING_RTOL * abs(lam_max)
    hess_ok = lam_min >= -hess_tol
    witness, worst = None, 0.0
    for cnd in candidates:
        if not math.isfinite(cnd["heldout_loss"]):                     # a diverged start is no witness
            continue
        gap = cnd["heldout_star"] - cnd["heldout_loss"]                 # > 0: the candidate is lower
        tol = SIGMAS * cnd["diff_se"] + ROUNDING_RTOL * abs(cnd["heldout_star"])
        if not (gap <= tol) and (witness is None or gap > worst):
            witness, worst = cnd, gap
    reasons = []
    if not grad_ok:
        reasons.append(f"gradient norm {grad_norm:.3e} above its tolerance {grad_tol:.3e}")
    if not hess_ok:
        reasons.append(f"smallest Hessian eigenvalue {lam_min:.3e} below -{hess_tol:.3e}")
    if witness is not None:
        reasons.append(f"{witness['name']} reaches held-out loss {witness['heldout_loss']:.6e} < the construction's "
                       f"{witness['heldout_star']:.6e} (by {worst:.3e})")
    return {"verdict": "holds" if not reasons else "fails", "gradient_zero": grad_ok, "gradient_tolerance": grad_tol,
            "hessian_psd": hess_ok, "hessian_tolerance": hess_tol, "no_lower_loss": witness is None,
            "witness": None if witness is None else witness["name"], "reasons": reasons}


# =========================================================================== time guard
def work(cfg: TrainConfig) -> budget.Work:
    """Multiply-adds of :func:`experiment` (kind ``layers``): per reading and
    depth, prompt-layers (each ``~(n+1)^2`` for the attention's row products)
    of the Adam steps (starts side by side), the L-BFGS iterations (~1.5
    evaluations each, every start and the descent), the gradient and Hessian
    at the construction (~4 p forward passes) and the held-out evaluations;
    one multiply-add per prompt-layer and ``(n+1)^2`` matched the quick run
    (29 CPU s measured, 31 s estimated, 2026-12-08, this 2-core machine)."""
    cols2 = float(cfg.n + 1) ** 2
    w = budget.Work().add("MRPs and features (2 samples x mrps x states^2 (states + d))",
                          2.0 * cfg.mrps * cfg.states ** 2 * (cfg.states + cfg.d), "layers")
    for L in cfg.layers:
        p = per_layer(cfg.d, cfg.form) * (1 if cfg.tied else L)
        per = float(cfg.mrps) * L * cols2 * max(1.0, cfg.d / 8.0)
        w.add("Adam (steps x starts x MRPs x layers x (n+1)^2)", 1.0 * cfg.steps * cfg.inits * per, "layers")
        w.add("L-BFGS (iterations x starts x MRPs x layers x (n+1)^2)", 1.5 * cfg.polish * (cfg.inits + 1) * per,
              "layers")
        w.add("gradient and Hessian (p x MRPs x layers x (n+1)^2)", 4.0 * p * per + 3.0 * cfg.inits * per, "layers")
    return w.scaled(len(cfg.readings))


def memory(cfg: TrainConfig) -> budget.Estimate:
    """Bytes of the largest tensors held at once: the Adam step's graph
    (starts x MRPs x (n+1)^2 attention weights and scores per distinct
    attention, the memory rows per layer), the Hessian's reverse-over-reverse
    graph (p copies of one mean-loss graph) and the two samples."""
    F = 8.0
    cols = cfg.n + 1
    out = budget.Estimate().add("samples (2 x mrps x (n+1) x (d + 4))", 2 * F * cfg.mrps * cols * (cfg.d + 4))
    worst_train = worst_hess = 0.0
    for L in cfg.layers:
        attn = 1 if cfg.tied else L
        graph = F * cfg.mrps * (3.0 * attn * cols * cols + 8.0 * L * cols)
        p = per_layer(cfg.d, cfg.form) * (1 if cfg.tied else L)
        worst_train = max(worst_train, cfg.inits * graph)
        worst_hess = max(worst_hess, (p + 2) * graph)
    return out.add("Adam graph (starts x MRPs x (n+1)^2 per attention)", worst_train) \
              .add("Hessian graph (p x MRPs x (n+1)^2 per attention)", worst_hess)


# =========================================================================== one experiment
def paired(a: torch.Tensor, b: torch.Tensor) -> float:
    """Standard error of ``mean(a - b)`` (paired per prompt)."""
    diff = a - b
    return float(diff.std(unbiased=True) / math.sqrt(diff.numel())) if diff.numel() > 1 else float("inf")


def run_case(cfg: TrainConfig, reading: str, layers: int, train_s: Sample, held: Sample, sym_A: torch.Tensor,
             gen: torch.Generator, progress=None, star: torch.Tensor | None = None) -> dict:
    """Gradient, Hessian, training and verdict for one reading and depth, at
    the construction (or at ``star``, ``Lp x P``: the point tested, e.g. a
    planted fault)."""
    d, form, tied = cfg.d, cfg.form, cfg.tied
    Lp = 1 if tied else layers
    star = construction_theta(d, cfg.gamma, form, Lp) if star is None else star
    sym = symmetry_basis(sym_A, d, form, Lp)
    # the construction, through forward_layers (reported) and the fast path (checked against it)
    block_star = block_losses(star, train_s, reading, layers, form, tied)
    fast_star = fast_losses(star, train_s, reading, layers, form, tied)
    J_star = float(block_star.mean())
    gs = gradient_stats(star, train_s, reading, layers, form, tied)
    g_block = block_gradient(star, train_s, reading, layers, form, tied)
    full = full_gradient(star, train_s, reading, layers, form, tied)
    H = hessian(star, train_s, reading, layers, form, tied)
    lam, U = torch.linalg.eigh(H)
    u_min = U[:, 0]
    _, lam_se = curvature(star, u_min, train_s, reading, layers, form, tied)
    hv_block = block_hvp(star, u_min, train_s, reading, layers, form, tied)
    lam_max = float(lam.abs().max())
    flat = (lam.abs() <= FLAT_RTOL * max(lam_max, 1e-300))
    # how much of the flat space the symmetries explain (principal angles' cosines)
    if sym.shape[0] and int(flat.sum()):
        Q = torch.linalg.qr(sym.T).Q
        explained = float(torch.linalg.svdvals(Q.T @ U[:, flat]).min())
    else:
        explained = None
    # symmetric directions must be exactly flat: the loss along each, through forward_layers
    sym_change = 0.0
    for row in sym:
        moved = block_losses(star + 0.5 * row.reshape(Lp, -1), train_s, reading, layers, form, tied).mean()
        sym_change = max(sym_change, abs(float(moved) - J_star))
    # training
    inits = random_inits(cfg.inits, d, form, Lp, gen)
    tr = train(inits, train_s, reading, layers, form, tied, cfg.steps, cfg.lr, cfg.polish, progress)
    local = polish(star, train_s, reading, layers, form, tied, cfg.polish)        # descent from the construction
    fam = family_optimum(train_s, reading, layers, form, tied)
    held_star = block_losses(star, held, reading, layers, form, tied)
    runs, candidates = [], []

    def evaluate(th, label, **extra):
        tl = block_losses(th, train_s, reading, layers, form, tied)
        hl = block_losses(th, held, reading, layers, form, tied)
        run = {**extra, "train_loss": float(tl.mean()), "heldout_loss": float(hl.mean()),
               "diff_se": paired(hl, held_star), **distances(th, d, cfg.gamma, form, Lp, sym), "theta": th}
        candidates.append({"name": label, "heldout_loss": run["heldout_loss"],
                           "heldout_star": float(held_star.mean()), "diff_se": run["diff_se"]})
        return run

    for i in range(cfg.inits):
        if not torch.isfinite(tr["loss"][i]):
            runs.append({"init": i, "diverged": True})
            continue
        run = evaluate(tr["theta"][i], f"init {i}", init=i, diverged=bool(tr["diverged"][i]),
                       adam_loss=float(tr["adam_loss"][i]))
        run["fast_vs_block"] = abs(float(tr["loss"][i]) - run["train_loss"])
        runs.append(run)
    descent = evaluate(local["theta"], "descent from the construction", evaluations=local["evaluations"])
    fam_train = block_losses(fam["theta"], train_s, reading, layers, form, tied)
    fam_held = block_losses(fam["theta"], held, reading, layers, form, tied)
    family = {"c": fam["c"], "alpha": fam["alpha"], "train_loss": float(fam_train.mean()),
              "heldout_loss": float(fam_held.mean()), "diff_se": paired(fam_held, held_star), "theta": fam["theta"]}
    candidates.append({"name": f"family member c = {fam['c']:.4g}, alpha = {fam['alpha']:.4g}",
                       "heldout_loss": family["heldout_loss"], "heldout_star": float(held_star.mean()),
                       "diff_se": family["diff_se"]})
    finite_runs = [r for r in runs if "train_loss" in r]
    best = min(finite_runs, key=lambda r: r["train_loss"]) if finite_runs else None
    v = verdict(grad_norm=gs["norm"], grad_se=gs["se"], grad_scale=J_star / float(star.norm()),
                lam_min=float(lam[0]), lam_min_se=lam_se, lam_max=lam_max, loss_star=J_star, candidates=candidates)
    return {
        "reading": reading, "layers": layers, "form": form, "tied": tied, "parameters": star.numel(),
        "loss_star": J_star, "heldout_star": float(held_star.mean()),
        "grad_norm": gs["norm"], "grad_se": gs["se"],
        "grad_relative": gs["norm"] * float(star.norm()) / max(J_star, 1e-300),
        "grad": gs["grad"], "full_gradient": full, "fast_vs_block_loss": float((fast_star - block_star).abs().max()),
        "fast_vs_block_grad": float((gs["grad"] - g_block).abs().max()),
        "hessian_eigenvalues": lam, "lam_min": float(lam[0]), "lam_min_se": lam_se, "lam_max": lam_max,
        "lam_min_vector": u_min, "flat_count": int(flat.sum()), "symmetries": sym.shape[0],
        "symmetries_explain_flat": explained, "symmetry_loss_change": sym_change,
        "fast_vs_block_hvp": float((H @ u_min - hv_block).abs().max()),
        "runs": runs, "curves": tr["curves"], "family": family, "descent": descent,
        "best_init": None if best is None else best["init"],
        "best_loss": None if best is None else best["train_loss"],
        "best_heldout": None if best is None else best["heldout_loss"],
        **v,
    }


def experiment(cfg: TrainConfig, progress=None) -> dict:
    """Every reading x depth of ``cfg`` on one fixed training sample and one
    held-out sample (both from ``cfg.seed``)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    train_s = sample(cfg, gen)
    held = sample(cfg, gen)
    sym_A = softmax_symmetries(torch.cat([train_s.features, held.features]), cfg.d)
    cases = [run_case(cfg, reading, L, train_s, held, sym_A, gen, progress)
             for reading in cfg.readings for L in cfg.layers]
    return {"config": asdict(cfg), "cases": cases, "symmetry_directions": sym_A,
            "margin_min": float(train_s.margin.min()), "margin_median": float(train_s.margin.median()),
            "vpi_scale": float(train_s.vpi_q.abs().mean())}
