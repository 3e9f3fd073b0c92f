"""Every tolerance of the project, in one place (STYLE.md practice 4).

Tolerances are multiples of machine epsilon for the dtype, scaled by the size
of the numbers involved.  Each loosening states its reason.
"""
from __future__ import annotations

import torch


def eps(dtype=torch.float64) -> float:
    return torch.finfo(dtype).eps


#: Block read-out vs teacher: the read-out sums n products of three factors
#: (x_i, x_i^T P12 w~, Vbar21), each accumulating ~m rounding errors, so
#: the error is bounded by ~(n + m) * eps * scale; 8 is headroom for the
#: different summation orders of the two computations.
READOUT_FACTOR = 8.0


def readout_tolerance(scale: float, m: int, n: int, dtype=torch.float64) -> float:
    """Absolute tolerance for comparing a block read-out with a teacher update.

    ``scale`` bounds the size of the terms summed (see
    :func:`numerics.check.term_scale`).
    """
    return READOUT_FACTOR * (m + n) * eps(dtype) * max(1.0, scale)


#: Value iteration vs an independent LP solver: HiGHS solves to ~1e-9
#: primal feasibility, so the comparison is at 1e-7 relative to the value scale.
LP_VALUE_RTOL = 1e-7

#: Value-iteration stopping threshold (sup-norm of the Bellman residual);
#: the value error is then at most VI_TOL * gamma / (1 - gamma).
VI_TOL = 1e-12

#: Transition rows must sum to 1 within this (float64 data from files or
#: Dirichlet draws accumulates ~S * eps).
ROW_SUM_ATOL = 1e-9

#: Two float64 computations of the same closed loop (constructed block vs
#: teacher) must agree to this (issue 5: 1e-12).
CLOSED_LOOP_ATOL = 1e-12

#: Structured Hessian vs autograd Hessian, relative to the largest entry.
HESSIAN_RTOL = 1e-9

#: Rank decisions on a PSD Hessian: an eigenvalue is zero when below
#: KERNEL_RTOL * lambda_max.  The gap actually observed is reported.
KERNEL_RTOL = 1e-9

#: Symbolic vs numeric read-out (float64 evaluation of an exact expression).
SYMBOLIC_NUMERIC_RTOL = 1e-12


def close(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    return bool(torch.all(torch.abs(a - b) <= atol))
