"""The Hessian of the teacher-mimicking loss on the optimal set, in closed
form (THEORY.md section 5, Lemma C.1).

The empirical loss over a fixed sample of ``N`` prompts ``(X_j, w~_j)``
(Algorithm 1) is ``L = 1/2 mean_j |TF(H_j) - teacher_j|^2``.  At the
construction ``theta*`` the residual is zero on every prompt, so the Hessian
is the Gauss-Newton matrix ``E[J^T J]`` (mean over the sample).

Reduced parameters ``theta = (vec P12, vec Vbar21)`` (row-major).  With
``Sigma_j = X_j^T X_j / n``, ``G_j = Vbar21* Sigma_j`` (``q x m``) and
``s_j = Sigma_j P12* w~_j`` (``m``), the read-out's Jacobian is

* ``d y_k / d P12[a, b] = G_j[k, a] w~_j[b]``       (a Kronecker product),
* ``d y_k / d Vbar21[k', a] = delta_{k k'} s_j[a]``,

so the three blocks of ``E[J^T J]`` are ``E[G^T G (x) w~ w~^T]``,
``E[G (x) w~ s^T]`` and ``I_q (x) E[s s^T]``; each is one
``(a x N) @ (N x b)`` matrix product.

Full parameters ``(vec P, vec V)`` (each ``D x D``): at ``theta*`` the
Jacobian with respect to ``P22`` is ``Vbar22 w~ w~^T (.) w~ / n = 0`` and
with respect to ``Vbar22`` is ``(.) w~ w~^T P22 w~ / n = 0`` (each multiplies
the other, both zero), and the never-read entries of Prop 3.1 have zero
Jacobian everywhere; so the full Hessian is the reduced one plus zero rows
and columns (:func:`full_index` gives the embedding).

The read-out is bilinear in ``(P, V)``, so along ``theta* + t v`` it is
``y* + t J v + t^2 B(v, v)`` exactly; :func:`bilinear_reduced` gives ``B``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

from numerics.core.block import lemma_c1, mimic_loss
from numerics.core.constructions import constructed_blocks
from numerics.core.distributions import MDPDistribution
from numerics.core.stream import Stream
from theory import algorithms
from theory.errors import InputError


@dataclass(frozen=True)
class PromptSample:
    """A fixed sample of prompts drawn as in Algorithm 1.

    ``X``: ``N x n x m`` context rows; ``wt``: ``N x p`` parameter columns;
    ``target``: ``N x q`` teacher outputs; ``mdp``: ``N`` index of the MDP
    each prompt came from (for the bootstrap over MDPs); ``gamma``: ``N``.
    """

    record: algorithms.Algorithm
    d: int
    X: torch.Tensor
    wt: torch.Tensor
    target: torch.Tensor
    mdp: torch.Tensor
    gamma: torch.Tensor
    mdps: int
    alpha: float
    beta: float

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def n(self) -> int:
        return self.X.shape[1]

    @property
    def m(self) -> int:
        return self.X.shape[2]

    @property
    def p(self) -> int:
        return self.wt.shape[1]

    @property
    def q(self) -> int:
        return self.wt.shape[1] - 1

    @property
    def index(self):
        return self.record.spec.index(self.d)

    def construction(self):
        """``(P12*, Vbar21*)`` from ``theory`` (the record's construction)."""
        return constructed_blocks(self.record, self.d, {"alpha": self.alpha, "beta": self.beta})

    def subset(self, idx: torch.Tensor) -> "PromptSample":
        return PromptSample(self.record, self.d, self.X[idx], self.wt[idx], self.target[idx], self.mdp[idx],
                            self.gamma[idx], self.mdps, self.alpha, self.beta)


def sample_prompts(algorithm, dist: MDPDistribution, *, mdps: int, frames_per_mdp: int, n: int = 20,
                   epsilon: float = 0.1, alpha: float = 0.2, beta: float = 0.2, seed: int = 0,
                   device=None) -> PromptSample:
    """``mdps x frames_per_mdp`` prompts, drawn exactly as Algorithm 1 does
    (epsilon-greedy windows, ``w <- teacher output``, ``s_0 <- s_n``)."""
    if not isinstance(mdps, int) or mdps < 1:
        raise InputError("mdps", f"must be a positive integer, got {mdps!r}")
    if not isinstance(frames_per_mdp, int) or frames_per_mdp < 1:
        raise InputError("frames", f"must be a positive integer, got {frames_per_mdp!r}")
    record = algorithms.get(algorithm)
    device = torch.device(device or "cpu")
    gen = torch.Generator(device=device).manual_seed(seed)
    mdp, F = dist.sample(mdps, gen, device=device)
    stream = Stream(record, mdp, F, n=n, epsilon=epsilon, steps={"alpha": alpha, "beta": beta}, gen=gen)
    Xs, wts, targets = [], [], []
    for frame in stream.frames(frames_per_mdp):
        Xs.append(frame.X)
        wts.append(frame.wt)
        targets.append(frame.target)
    idx = torch.arange(mdps, device=device).repeat(frames_per_mdp)
    return PromptSample(record, dist.d, torch.cat(Xs), torch.cat(wts), torch.cat(targets), idx,
                        mdp.gamma.repeat(frames_per_mdp), mdps, alpha, beta)


# ---------------------------------------------------------------------------
# Parameter vectors
# ---------------------------------------------------------------------------

def split_reduced(v, m: int, p: int):
    """``(dP12, dVbar21)`` of a reduced parameter vector (or a batch, last axis)."""
    return v[..., :m * p].reshape(*v.shape[:-1], m, p), v[..., m * p:].reshape(*v.shape[:-1], p - 1, m)


def join_reduced(P12, Vbar21):
    return torch.cat([P12.reshape(*P12.shape[:-2], -1), Vbar21.reshape(*Vbar21.shape[:-2], -1)], -1)


# ---------------------------------------------------------------------------
# Jacobian structure and the Gauss-Newton matrix
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Structure:
    """Per-prompt factors of the Jacobian at ``theta*``: ``G_j = Vbar21* Sigma_j``
    (``N x q x m``), ``s_j = Sigma_j P12* w~_j`` (``N x m``), ``w~_j``."""

    G: torch.Tensor
    s: torch.Tensor
    wt: torch.Tensor
    m: int
    p: int

    @property
    def q(self):
        return self.p - 1

    @property
    def count(self):
        return self.m * self.p + self.q * self.m


def sigma_apply(X: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """``Sigma_j Z_j`` with ``Sigma_j = X_j^T X_j / n`` without forming it;
    ``X``: ``N x n x m``, ``Z``: ``N x m x k``."""
    return X.transpose(1, 2) @ (X @ Z) / X.shape[1]


def structure(sample: PromptSample, P12s=None, Vbar21s=None) -> Structure:
    if P12s is None or Vbar21s is None:
        P12s, Vbar21s = sample.construction()
    X, wt = sample.X, sample.wt
    s = sigma_apply(X, (wt @ P12s.T).unsqueeze(-1)).squeeze(-1)                # N x m
    G = sigma_apply(X, Vbar21s.T.expand(X.shape[0], *Vbar21s.T.shape)).transpose(1, 2)  # N x q x m
    return Structure(G, s, wt, sample.m, sample.p)


def gauss_newton_reduced(st: Structure, weights: torch.Tensor | None = None) -> np.ndarray:
    """``E[J^T J]`` in the reduced parameters (closed form, no autograd).

    ``weights`` (``N``, summing to 1) replaces the plain mean (bootstrap).
    Returns a symmetric ``(mp + qm) x (mp + qm)`` float64 array.
    """
    G, s, wt, m, p = st.G, st.s, st.wt, st.m, st.p
    q, N = p - 1, G.shape[0]
    w = torch.full((N,), 1.0 / N, dtype=G.dtype, device=G.device) if weights is None else weights
    # H_PP[(a,b),(a',b')] = E[(G^T G)[a,a'] w~_b w~_b']
    GtG = (G.transpose(1, 2) @ G).reshape(N, m * m)
    WW = (wt.unsqueeze(2) * wt.unsqueeze(1)).reshape(N, p * p)
    Hpp = ((GtG * w[:, None]).T @ WW).reshape(m, m, p, p).permute(0, 2, 1, 3).reshape(m * p, m * p)
    # H_PV[(a,b),(k,a')] = E[G[k,a] w~_b s_a']
    Ws = (wt.unsqueeze(2) * s.unsqueeze(1)).reshape(N, p * m)                  # [b, a']
    Hpv = ((G.reshape(N, q * m) * w[:, None]).T @ Ws).reshape(q, m, p, m)      # [k, a, b, a']
    Hpv = Hpv.permute(1, 2, 0, 3).reshape(m * p, q * m)
    # H_VV = I_q (x) E[s s^T]
    Ess = (s * w[:, None]).T @ s
    Hvv = torch.kron(torch.eye(q, dtype=G.dtype, device=G.device), Ess)
    H = torch.cat([torch.cat([Hpp, Hpv], 1), torch.cat([Hpv.T, Hvv], 1)], 0)
    H = 0.5 * (H + H.T)
    return H.cpu().numpy()


def jvp_reduced(st: Structure, V: torch.Tensor) -> torch.Tensor:
    """``J_j v`` for a batch of reduced vectors ``V`` (``k x count``): ``N x k x q``."""
    dP, dV = split_reduced(V, st.m, st.p)
    u = torch.einsum("kap,np->nka", dP, st.wt)                 # dP w~_j
    return torch.einsum("nqa,nka->nkq", st.G, u) + torch.einsum("kqa,na->nkq", dV, st.s)


def vjp_reduced(st: Structure, R: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_j weights_j J_j^T r_j`` for ``R``: ``N x k x q``; returns ``k x count``."""
    Rw = R * weights[:, None, None]
    gP = torch.einsum("nkq,nqa,nb->kab", Rw, st.G, st.wt)
    gV = torch.einsum("nkq,na->kqa", Rw, st.s)
    return join_reduced(gP, gV)


def hessian_operator(st: Structure, weights: torch.Tensor | None = None):
    """Matrix-free ``E[J^T J]`` as a ``scipy.sparse.linalg.LinearOperator``."""
    N = st.G.shape[0]
    w = torch.full((N,), 1.0 / N, dtype=st.G.dtype) if weights is None else weights

    def matmat(Xnp):
        Xt = torch.as_tensor(np.asarray(Xnp).reshape(st.count, -1).T.copy(), dtype=st.G.dtype)
        return vjp_reduced(st, jvp_reduced(st, Xt), w).T.numpy()

    return LinearOperator((st.count, st.count), matvec=lambda x: matmat(x[:, None])[:, 0], matmat=matmat,
                          rmatvec=lambda x: matmat(x[:, None])[:, 0], dtype=np.float64)


def bilinear_reduced(st: Structure, X: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """Second-order term of the read-out, symmetrised:
    ``B_j(u, v) = (dV_u Sigma_j dP_v w~_j + dV_v Sigma_j dP_u w~_j) / 2``.

    ``X``: the sample's contexts; ``U``: ``k x count`` directions.  Returns
    ``N x k x k x q`` with ``[j, a, b] = B_j(U_a, U_b)``.
    """
    dP, dV = split_reduced(U, st.m, st.p)
    z = torch.einsum("kap,np->nak", dP, st.wt)                       # N x m x k : dP_b w~
    y = sigma_apply(X, z)                                            # N x m x k : Sigma dP_b w~
    T = torch.einsum("aqm,nmb->nabq", dV, y)                         # dV_a Sigma dP_b w~
    return 0.5 * (T + T.transpose(1, 2))


# ---------------------------------------------------------------------------
# Losses (for finite steps and for the autograd reference)
# ---------------------------------------------------------------------------

def loss(sample: PromptSample, P12, Vbar21, P22=None, Vbar22=None) -> torch.Tensor:
    """``1/2 mean_j |TF(H_j) - teacher_j|^2`` via the Lemma C.1 read-out
    (a leading axis ``K`` on the weights gives ``K`` losses)."""
    return mimic_loss(lemma_c1(sample.X, sample.wt, P12, Vbar21, P22, Vbar22), sample.target)


def loss_scale(sample: PromptSample) -> float:
    """``1/2 mean |teacher - w|^2``: the loss of the zero update, the scale
    that 'the loss is zero' is measured against."""
    r = sample.target - sample.wt[:, 1:]
    return float(0.5 * (r * r).sum(-1).mean())
