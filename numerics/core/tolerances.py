"""Every tolerance of the project, in one place (STYLE.md practice 4).

Tolerances are multiples of machine epsilon for the dtype, scaled by the size
of the numbers involved.  Each loosening states its reason.
"""
from __future__ import annotations

import numpy as np
import torch

#: Every check runs in float64 (STYLE.md practice 4).
DTYPE = torch.float64


def eps(dtype=DTYPE) -> float:
    return torch.finfo(dtype).eps


#: The old per-prompt rule (kept for the Lemma C.1 identity checks of
#: ``numerics.analysis.lemma`` and the property tests that compare two
#: evaluations of the *same* block): ``8 (D + n) eps max(1, scale)``.
#: ``check`` judges with the per-quantity rule below (:func:`rounding_bound`).
READOUT_FACTOR = 8.0


def readout_tolerance(scale, D: int, n: int, dtype=DTYPE):
    """Absolute tolerance (per prompt) for comparing a block read-out with
    another evaluation of the same block: ``READOUT_FACTOR (D + n) eps
    max(1, scale)``, ``D`` the prompt's height.

    ``scale`` (a number or a tensor of per-prompt values) bounds the size of
    the terms summed: :func:`numerics.core.block.term_scale`.
    """
    factor = READOUT_FACTOR * (D + n) * eps(dtype)
    if isinstance(scale, torch.Tensor):
        return factor * scale.clamp_min(1.0)
    return factor * max(1.0, scale)


# ---- per-quantity rounding bounds and verdicts (issue 19; docs/check.md) -----
#
# THE RULE (derivation in docs/check.md, "Tolerances"): a quantity computed in
# float64 by a straight-line program of additions and multiplications (a dot
# product, a read-out, a layer, a loop of TD steps) differs from its exact
# value by at most ``gamma_k |f|``, ``gamma_k = k u / (1 - k u)``, ``u =
# eps / 2``, where ``|f|`` is the same program run on the absolute values of
# its inputs with every subtraction made an addition (the sum of the
# magnitudes of the terms that enter the quantity) and ``k`` the number of
# roundings on the longest path to it (Higham, Accuracy and Stability of
# Numerical Algorithms, 2nd ed., section 3.1 and Lemma 3.3).  Two programs
# computing one exact quantity (the block's read-out and the teacher) then
# differ by at most the sum of their two bounds:
#
#     bound = ROUNDING_FACTOR eps sum_parts k_part |f|_part
#
# over the parts that enter the quantity (the parameter carried through, the
# read-out's linear term ``|Vbar21| |Sigma| |P12 w~|`` taken term-wise, the
# cubic term ``|Vbar22 w~| |w~|^T |P22| |w~| / n``, the teacher's ``|w| +
# (alpha/n) sum_i |delta_i| |phi_i|`` with ``|delta_i| = |r| + gamma
# |w|.|phi+| + |w|.|phi|``), each with its own depth ``k``.  Nothing else
# enters: not the norm of a weight matrix, not another prompt, not another
# layer's numbers.
#
# Decidable: the check must see the teacher's update, whose own terms have
# size ``signal`` (the magnitudes of ``(alpha/n) sum_i delta_i phi_i``, the
# increment, not the parameter carried through).  A quantity whose bound
# exceeds ``DECIDABLE_RTOL * signal`` cannot tell a step-size error of one
# part in a million from rounding: float64 cannot decide it, the verdict is
# ``undecidable`` (``prove --weights`` decides in exact arithmetic).
#
# Entries a construction must leave unchanged (feature rows, reward rows, rows
# never written) are compared exactly (:func:`changed`).

#: ``eps = 2u`` already doubles ``gamma_k`` (for ``k u < 1/2``); this factor
#: doubles it again: the magnitudes ``|f|`` are themselves computed in float64
#: (at most ``gamma_k`` low), and the prompt's own inputs (``gamma phi+``, the
#: score ``g``, a scaled construction ``c P``, ``V / c``) carry one to a few
#: roundings each that the depth counts below include only approximately.
ROUNDING_FACTOR = 2.0

#: A quantity is decidable in float64 when its rounding bound is at most this
#: fraction of the size of the teacher update's own terms (issue 19: "say
#: above 1e-6 of the size of the teacher update's own terms").
DECIDABLE_RTOL = 1e-6

#: A multi-layer iteration (an mrp record's ``check``) diverges at the first layer
#: whose compared values (the loop's or the block's carried row and read-out)
#: exceed this multiple of the window's own size (``max |r|, |phi|, |phi'|,
#: |phi_q|``):
#: contracting batch TD stays within ``1 / (1 - gamma)`` (10 at gamma = 0.9)
#: times it.  Beyond this the iteration is reported as diverging, from that
#: layer on, and its verdict is never ``holds``.
DIVERGENCE_RATIO = 1e6

HOLDS, FAILS, UNDECIDABLE, DIVERGES = "holds", "fails", "undecidable", "diverges"


def lemma_c1_depths(m: int, p: int, n: int) -> dict:
    """Roundings on the longest path to each part of a Lemma C.1 read-out
    ``w + Vbar21 Sigma P12 w~ + (1/n) Vbar22 w~ (w~^T P22 w~)``
    (``numerics.core.block.lemma_c1`` and the compiled kernel):

    * ``w``: the two additions that add the other parts (2);
    * linear: ``P12 w~`` (p), ``x_i . (P12 w~)`` (m), ``sum_i`` (n), ``/ n``
      (1), ``Vbar21 .`` (m), two additions (2), and 2 for the prompt's and the
      weights' own roundings (``gamma phi+``; a scaled construction);
    * cubic: ``P22 w~`` (p), ``w~ .`` (p), ``/ n`` (1), times ``Vbar22 w~``
      (1), the last addition (1), inputs (2).
    """
    return {"w": 2, "linear": p + 2 * m + n + 5, "cubic": 2 * p + 5}


def teacher_depth(d: int, n: int, actions: int) -> int:
    """Roundings on the longest path of a teacher increment ``(step/n) sum_i
    delta_i dir_i`` (``numerics.reference``): ``w . phi`` (d), ``delta``
    (3), ``delta dir`` (1), ``sum_i`` (n), ``/ n``, ``step``, ``+ w`` (3),
    and ``2 A + 4`` for ``phi+`` and the score ``g`` (expectations over the
    ``A`` actions, a softmax's exp and normalisation)."""
    return d + n + 2 * actions + 11


def layer_depth(D: int, n: int) -> int:
    """Roundings on the longest path of one layer of the block
    (``numerics.core.block.layer``): ``V H`` (D), the running mean (n + 1),
    the mask, the heads' sum, the scores ``H^T P H`` (2 D), their product
    with the values (n + 1), ``/ n``, the row mask, ``H +``, and 2 for the
    prompt's own entries (``gamma phi'``)."""
    return 3 * D + 2 * (n + 1) + 8


def loop_depth(d: int, n: int) -> int:
    """Roundings of one step of the batch-TD loop
    (``numerics.reference.batch_td_loop``): ``w . phi`` (d), ``delta`` (3), the
    running mean ``rbar`` (n + 1), the trace or residual direction (n + 2),
    ``sum_j`` (n), ``C u`` (d), ``/ n`` and ``w +`` (2); a carried entry or
    value computed from ``w`` (d + 3) is within the same number."""
    return 2 * d + 3 * n + 12


def rounding_bound(parts, dtype=DTYPE):
    """``ROUNDING_FACTOR eps sum_k depth_k |f|_k`` over ``parts``: pairs
    ``(magnitude, depth)``; magnitudes are numbers, NumPy arrays or tensors
    of one shape (one bound per quantity)."""
    c = ROUNDING_FACTOR * eps(dtype)
    total = 0.0
    for magnitude, depth in parts:
        total = total + (c * depth) * magnitude
    return total


def bound_coefficients(parts_depths, dtype=DTYPE):
    """The factors ``ROUNDING_FACTOR eps depth`` of :func:`rounding_bound`,
    one per depth (for the compiled kernel, which forms the same sum)."""
    return [ROUNDING_FACTOR * eps(dtype) * k for k in parts_depths]


def decidable(bound, signal):
    """Whether a bound is small against the size of what the check must detect:
    ``bound <= DECIDABLE_RTOL * signal`` (elementwise)."""
    return bound <= DECIDABLE_RTOL * signal


def exceeds(error, bound):
    """Where ``error`` is above its bound, or not finite (a NaN is never hidden)."""
    if isinstance(error, torch.Tensor):
        return ~(error <= bound)
    return ~(np.asarray(error) <= bound)


def changed(got, want):
    """Entries that must not change, compared exactly: True where ``got`` is
    not the same number as ``want`` (a NaN counts as changed)."""
    if isinstance(got, torch.Tensor):
        return ~(got == want)
    return ~(np.asarray(got) == np.asarray(want))


def layer_ratios(err, residual, bound, scale):
    """Per entry of one layer (NumPy arrays): the relative error ``err /
    scale`` (0 where ``err`` is 0, infinite where it is NaN) and the layer's
    own error over its rounding bound, ``|residual| / bound`` (0 where the
    residual is 0, infinite where :func:`exceeds` says the bound is exceeded
    but the quotient does not show it: a zero or NaN bound)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(err == 0.0, 0.0, err / scale)
        ratio = np.where(np.abs(residual) == 0.0, 0.0, np.abs(residual) / bound)
    rel = np.nan_to_num(rel, nan=np.inf)
    ratio = np.where(exceeds(np.abs(residual), bound) & ~(ratio > 1.0), np.inf, ratio)
    return rel, ratio


def verdict(*, failed: bool, undecidable: bool, diverged: bool = False) -> str:
    """One verdict for a check: ``fails`` (an error above its bound, or an entry
    that had to stay unchanged changed) before ``diverges`` before
    ``undecidable``; ``holds`` only when none applies."""
    if failed:
        return FAILS
    if diverged:
        return DIVERGES
    if undecidable:
        return UNDECIDABLE
    return HOLDS


#: Near tie of an argmax (``check`` of the expected-SARSA and Q-learning
#: records): when the two largest ``Q_w(s', .)`` differ by at most this,
#: relative to ``max(1, |max Q|)``, the greedy action is not fixed by the
#: window in float64 (the prompt and the reference teacher sum ``w.phi`` in
#: different orders, ~d eps apart), so ``check`` leaves the prompt out of the
#: comparison and counts it.  1e-9 is far above that rounding (~1e-14) and
#: far below the gaps of sampled features (Section 4.1: ~1e-2).
ARGMAX_TIE_RTOL = 1e-9


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

# ---- property_tests (issue 6) ----------------------------------------------

#: Exact policy evaluation (a linear solve of ``(I - gamma P_pi) V = r_pi``)
#: against another exact evaluation or the policy improvement inequality:
#: the solve is backward stable, its sup-norm condition number is at most
#: ``(1 + gamma) / (1 - gamma)``, so the error of ``V`` is about
#: ``S * eps * |V|_max * 2 / (1 - gamma)``; 16 is headroom for LU pivoting
#: growth at the small sizes the properties draw.
POLICY_EVAL_FACTOR = 16.0


def policy_value_tolerance(value_scale: float, states: int, gamma_max: float, dtype=torch.float64) -> float:
    """Absolute tolerance on values ``V^pi`` computed by a linear solve.

    ``value_scale`` bounds ``|V|`` (e.g. ``max|r| / (1 - gamma)``)."""
    return POLICY_EVAL_FACTOR * states * eps(dtype) * max(1.0, value_scale) * 2.0 / (1.0 - gamma_max)


#: Gradient of the teacher-mimicking loss on the optimal set: the exact
#: gradient is ``mean_b J_b^T r_b`` with every residual ``|r_b|`` below its
#: read-out tolerance, so ``|grad| <= mean_b |J_b|^T tol_b``; the computed
#: gradient adds its own rounding, at most ``(m + n) eps`` times the same
#: bound.  Factor 2 covers both.
GRADIENT_ON_MANIFOLD_FACTOR = 2.0

#: Primal and dual feasibility tolerance passed to HiGHS (scipy linprog) when
#: it solves the LP for V* as the independent check of value iteration.  The
#: default, 1e-7 absolute, lets a constraint be violated by 1e-7 and so V* be
#: off by 1e-7 / (1 - gamma) (a reward of 1e-7 vanished in a Hypothesis
#: counterexample); 1e-10 makes LP_VALUE_RTOL's premise (~1e-9) true.
LP_FEASIBILITY_TOL = 1e-10

# ---- training and structure recovery (numerics/train.py, recovery.py, ablation.py; issue 5)

#: A trained block "recovers the construction" when its (P12, Vbar21) lies
#: within this relative distance of M* (issue 5 acceptance: below 5%).
STRUCTURE_RECOVERY_RTOL = 0.05

#: The ablation calls a held-out loss "zero" when it is below this fraction
#: of the identity map's loss (w -> w): float64 training stalls around
#: 1e-8..1e-10 of it (Adam noise), so 1e-6 is reached only on the zero set.
ZERO_LOSS_RTOL = 1e-6

#: Checkpoint/resume must reproduce an uninterrupted run exactly: same
#: float64 operations in the same order, so the weights agree bitwise.
RESUME_ATOL = 0.0

# ---- richness and flow (issues 4, 5) ----------------------------------------

#: Shift of the shift-invert Lanczos used for large Hessians: sigma =
#: RICHNESS_SHIFT_RTOL * lambda_max keeps H + sigma I well conditioned
#: (cond <= 1e8) while sitting far below the smallest nonzero eigenvalues
#: seen (>= 1e-6 lambda_max); eigenvalues are then recomputed as Rayleigh
#: quotients with H itself, so the shift does not bias them.
RICHNESS_SHIFT_RTOL = 1e-8

#: Lanczos tolerance for lambda_max of a parametric-bootstrap replicate of H
#: (large sizes only).  lambda_max only sets that replicate's kernel threshold
#: KERNEL_RTOL * lambda_max and the shift above, and the spectral gaps seen
#: are >= 1e6 (1e13 at d = 36), so a relative error of 1e-3 cannot move an
#: eigenvalue across the threshold; it halves the Lanczos cost (measured:
#: 4e-7 actual relative error at d = 36).
RICHNESS_LAMMAX_RTOL = 1e-3

#: Flatness of a kernel direction: the Gram matrix of the second-order term
#: of the read-out (projected off the range of J) has an eigenvalue below
#: FLAT_RTOL * its largest.  The projection applies H^+ (condition up to
#: ~1e6 on the range), so cancellation errors reach ~1e-10 relative; 1e-8
#: leaves headroom.  The gap actually observed is reported.
FLAT_RTOL = 1e-8

#: A finite step along a flat direction leaves the loss "exactly zero": below
#: FLAT_STEP_RTOL times the loss of the zero update (the sample's scale).
#: The residual is a sum of O(m) products of O(1) numbers per prompt, so
#: float64 rounding gives ~1e-30 relative loss; 1e-20 is headroom.
FLAT_STEP_RTOL = 1e-20

#: Distance to M* below which a gradient-flow run counts as having ended on
#: the optimal manifold (relative, numerics.manifold.distance_to_manifold).
FLOW_MANIFOLD_RTOL = 1e-3

#: Issue 5 acceptance: measured loss-decay rate within 20% of 2 mu.
FLOW_RATE_RTOL = 0.20

# ---- comparisons made by the tests (property_tests/) ----------------------
# Each test compares against one of these, never a literal.

#: Two float64 evaluations of one closed-form quantity in different operation
#: orders (up to a few thousand operations on O(1) numbers): ~1e4 eps.
REORDER_RTOL = 1e-12

#: A handful of float64 operations on O(1) numbers: a few eps.
FEW_OPS_ATOL = 1e-15

#: An iterative solver (Lanczos / eigsh at tol 1e-12, a sparse fixed point,
#: value iteration at VI_TOL, HiGHS at LP_FEASIBILITY_TOL) against a dense or
#: closed-form answer, relative to the problem's scale.
ITERATIVE_RTOL = 1e-9

#: Residual |H v - lambda v| of a Lanczos pair relative to lambda_max:
#: ARPACK at tol 1e-12 leaves ~1e-10; 1e-8 is headroom.
EIGEN_RESIDUAL_RTOL = 1e-8

#: Quantities obtained through a projection or least-squares fit (invariance
#: components, fitted scales of synthetic weights): conditioning up to ~1e6
#: on the ~1e-12 rounding above.
FIT_RTOL = 1e-6

#: A difference a test requires to be *visible* (a planted fault, distinct
#: bootstrap replicates, a clearly worse policy): far above every rounding
#: tolerance above, far below the planted effects (>= 1e-2 relative).
VISIBLE_RTOL = 1e-3
VISIBLE_ABS = 1e-6

#: A loss that is zero in float64: squared residuals of size ~1e-14 summed.
ZERO_LOSS_ABS = 1e-28

#: loss / t^4 at t = 1e-3, 1e-2, 1e-1 along a quartic direction: equal up to
#: the cancellation in a loss of size ~1e-12 * scale (relative ~1e-7).
POWER_LAW_RTOL = 1e-6

#: A training run "fitted" the teacher: held-out loss below this fraction of
#: the identity map's (w -> w) loss.
TRAINED_LOSS_RATIO = 1e-3

# ---- decision thresholds of the analyses (moved here from the modules that use them)

#: ``J* - J_unif`` below this: every policy scores alike on that MDP, and the
#: normalised return ``(J - J_unif) / (J* - J_unif)`` would divide by rounding;
#: the denominator is then taken as 1 (the score is J - J_unif, about zero).
NORMALIZE_DENOM_ATOL = 1e-12

#: Implicit-Euler equation of the flow solved to this residual relative to the
#: step's size, or for CHORD_ITERATIONS chord iterations, whichever comes
#: first.  The gradient carries rounding ~1e-16 / |residual| relative (1e-10
#: near theta*), so late in a run the iteration reaches its rounding floor
#: before this target and runs all CHORD_ITERATIONS: either way it stops at
#: the floor, so *where* it stops changes a step only at rounding level (a
#: looser target, 1e-6 before issue 19, let a rounding difference decide
#: between two iterates 1e-6 apart, and the step acceptance amplified that).
CHORD_RTOL = 1e-11
CHORD_ITERATIONS = 12

#: After CHORD_ITERATIONS a run below CHORD_FLOOR_RTOL (its rounding floor
#: is ~1e-12 of the step late in a run) is done, and one above
#: CHORD_HOPELESS_RTOL is not contracting (its step is split, below); a run
#: in between contracts slowly (a preconditioner far from the Hessian where
#: it is, e.g. a wrong mu in a test: ratio 2/3 per iteration, 1e-7 after 40) and goes on,
#: up to CHORD_MAX_ITERATIONS.
CHORD_FLOOR_RTOL = 1e-9
CHORD_HOPELESS_RTOL = 1e-3
CHORD_MAX_ITERATIONS = 40

#: A step whose chord iteration ends above this residual (relative to the
#: step) is not solved: far above the rounding floor (~1e-10) and far below a
#: diverging iteration (>= 1), so rounding cannot flip the decision; the step
#: is then taken as 2, 4, ... equal implicit sub-steps, up to 2**CHORD_SPLITS.
CHORD_FAIL_RTOL = 1e-6
CHORD_SPLITS = 8

#: The flow's step schedule lands on the final time instead of leaving a
#: last step shorter than this fraction of it (a rounding sliver).
FLOW_TIME_RTOL = 1e-9

#: Relative precision of the scalar root finds (brentq) that turn a flow's
#: loss fall into a rate: far below the rate's own sampling error.
ROOT_RTOL = 1e-12

#: A root of the distance-to-manifold quartic counts as real when its
#: imaginary part is below this times max(1, |root|): np.roots leaves
#: ~1e-8 relative on well-separated roots; the real candidates are polished by
#: Newton steps afterwards, so a spurious candidate only costs one evaluation.
QUARTIC_REAL_RTOL = 1e-7

#: Lanczos tolerances of the large-Hessian route (scipy eigsh): the top
#: eigenvalue to 1e-10 relative (it only sets the kernel threshold
#: KERNEL_RTOL * lambda_max), the shift-inverted bottom to 1e-12 (the
#: eigenvalues are then recomputed as Rayleigh quotients with H itself).
LANCZOS_TOP_TOL = 1e-10
LANCZOS_BOTTOM_TOL = 1e-12

#: Invariance sentences: an entry of a null vector, normalised to max 1,
#: is read as 0, 1, gamma or equal to another when within this (the vectors
#: come from an eigendecomposition accurate to ~1e-12; the named values are
#: separated by far more).
DESCRIBE_ATOL = 1e-9

#: Rank decisions on the null vectors that explain invariances (singular
#: values of orthonormal columns with some rows removed, so at most 1; the
#: span test relative to the largest entry): the explanations are exact
#: vectors (0, +-1, gamma entries), so their spectrum has a gap of many orders.
EXPLAIN_RANK_RTOL = 1e-6
EXPLAIN_SPAN_RTOL = 1e-8

#: Rank of the monomials w~_a w~_b and of the parameter columns over the
#: sample (full parameterisation's P22 / Vbar22 analysis), relative to the
#: largest entry times the matrix size (numpy's default rule, scaled).
MONOMIAL_RANK_RTOL = 1e-10

# ---- Wang et al. (ICLR 2025): multi-layer masked TD (issue 13) --------------

#: Issue 13's acceptance for ``check`` of Wang et al.'s records: the read-out and the
#: carried row, after every layer, within 1e-10 relative to their own terms
#: (checked by the tests and the claims; since issue 19 the verdict itself
#: comes from the per-layer rounding bound, :func:`rounding_bound`).  Rounding
#: alone predicts ~L (n + D) eps ~ 1e-12 at L = 40, n = 100; measured 1.6e-15.
WANG_CHECK_RTOL = 1e-10

#: A trained Wang transformer "recovers the construction" when its distance to
#: the construction family (TD(0) with any preconditioner, modulo the scaling
#: symmetry; numerics.analysis.train.family_distance) is below this,
#: judged on the upper end of the 95% interval of the mean over seeds.  Set
#: before training was run: their objective (mean squared TD error) is not
#: teacher mimicking, so exact recovery is not implied; 10% of the weights'
#: norm off the family (1% of its energy) is already a visible departure in
#: their Figure 2 measures.
WANG_RECOVERY_RTOL = 0.10
# ---- the compiled exact Algorithm 1 (numerics/core/compiled.py; issue 14) --

#: Per Adam step, the largest relative error of an update's *direction*
#: between the compiled loop and torch: the two compute the gradient in
#: different summation orders, a relative difference of ``(m + n) eps ~= 2e-14``
#: of the largest gradient entry, so an entry ``1e5`` times smaller than the
#: largest (smaller ones move the weights by less than the bound itself) has a
#: direction error of at most ``~2e-9``; rounded up to 1e-8.
COMPILED_STEP_RTOL = 1e-8

#: Largest size of one Adam step relative to the learning rate:
#: ``|mhat| / sqrt(vhat) <= (1 - b1) / sqrt(1 - b2) ~= 3.2`` (PyTorch's defaults).
ADAM_STEP_BOUND = 3.2


def compiled_run_bound(steps: int, lr: float) -> float:
    """Bound on ``max |theta_compiled - theta_torch|`` after ``steps`` Adam
    steps at learning rate ``<= lr`` from the same start on the same data:
    each step moves an entry by at most ``ADAM_STEP_BOUND lr`` in a direction
    that differs by at most ``COMPILED_STEP_RTOL``; summed over the steps (the
    weights move by ``<= 3.2 steps lr < 1``, so the gradient's dependence on
    them adds no growth at the tested lengths)."""
    return ADAM_STEP_BOUND * steps * lr * COMPILED_STEP_RTOL

#: Two controllers are "as good as each other" when the paired 95% interval
#: (over seeds) of their final normalised-return difference lies inside
#: +-CONTROL_EQUIVALENCE_ATOL: issue 5's control criterion (|trained -
#: teacher| <= 0.02 of the oracle-to-uniform range) made an equivalence
#: test, so noise cannot pass for agreement.
CONTROL_EQUIVALENCE_ATOL = 0.02

#: "Near oracle-level" (the paper's wording, Section 4.1): a normalised
#: return of at least this fraction of the oracle's (which is 1).
NEAR_ORACLE_LEVEL = 0.9

#: Matrix-free spectrum (``richness --solver matrix-free``): LOBPCG stops
#: when every Ritz pair's residual ``|H v - lambda v|`` is below
#: MATRIX_FREE_RTOL * lambda_max.  The Ritz value's error is then about
#: residual^2 / gap (quadratic), far below the 1e-6 relative agreement
#: with the dense mu that the tests ask for; CG for ``H^+`` uses the same
#: relative tolerance.
MATRIX_FREE_RTOL = 1e-8


# ---- softmax records' special cases (issue 21; docs/check.md, "Softmax records") -----------------------------
#: The tabular case (features ``sqrt(tau) e_s``, ``tau = 40``): the block against batch tabular TD, relative to
#: ``max(1, |v|)``.  The kernel of a non-matching state weighs ``exp(-40) = 4e-18``, below float64's resolution;
#: what is left is the rounding of ``L`` layers of sums over ``n <= 100`` terms (measured: 2e-16 at L = 3, n = 100),
#: so 1e-12 leaves room for L = 40 without hiding a kernel off by ``exp(-tau)`` at ``tau <= 25`` (3e-11 and up).
SOFTMAX_TABULAR_RTOL = 1e-12
#: The linear case: the error of the block against linear TD with value features ``[1; eps psi]`` and direction
#: ``[1; eps (psi - psibar)]`` must fall as ``eps^4`` (the kernel's expansion ``1 + eps^2 x + O(eps^4)``); the
#: fitted log-log slope over ``eps = 0.4 .. 0.05`` must be within this of 4 (measured 4.005).
SOFTMAX_LINEAR_SLOPE_ATOL = 0.5

# ---- softmax-train: Theorem 3 of Xie et al. (2026) (docs/xie2026.md) ---------

#: Sampling tolerance of the Theorem 3 verdict: a quantity estimated on the
#: fixed sample of prompts is "zero" (gradient), "non-negative" (Hessian
#: eigenvalue) or "not below" (held-out loss difference) when within this
#: many standard errors over prompts.
SOFTMAX_SIGMAS = 3.0

#: Rounding part of every Theorem 3 verdict tolerance, relative to the
#: quantity's scale (``J*``, ``J* / |theta*|``, ``lambda_max``): far above
#: float64 rounding of these small programs (~1e-14 relative), far below any
#: difference a reading decides on.
SOFTMAX_ROUNDING_RTOL = 1e-9

#: A Hessian eigenvalue at the construction is reported flat when below this
#: relative to ``lambda_max``; a softmax symmetry is a null direction of its
#: constraint Gram matrix below this relative to the largest eigenvalue.
SOFTMAX_FLAT_RTOL = 1e-7

#: A trained Wang seed has "converged" (left its initialisation for the
#: construction's basin; numerics.analysis.distances.split_converged) when its
#: weight distance to the construction family is below this.  Reason: the
#: Xavier initialisation puts about 1/81 of V's squared norm on the written
#: entry (distance sqrt(80/81) = 0.994), and a seed that has not moved stays
#: near it; below 0.9 the written entry holds at least 19% of V's squared norm,
#: 15 times its share at initialisation.  Chosen knowing the 4,000-MRP run of
#: reports/training/wang2025-td.json, whose seeds sit at 0.41-0.70 and
#: 0.945-1.0 (the gap is wide there; at the claims' quick size, 1,000 MRPs,
#: three seeds sit within 0.01 of it, docs/wang2025.md section 12).  It
#: splits the seeds for reporting only; no verdict reads it.
WANG_CONVERGED_DISTANCE = 0.9
