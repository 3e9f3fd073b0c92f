"""Where the dense richness spectrum stops paying: the dense route
(closed-form E[J^T J] formed, then ``scipy.linalg.eigh``) against the
matrix-free route (``numerics.analysis.matrix_free``: closed-form
invariances deflated, block LOBPCG on J^T J v) on the same prompts, in this
process; prints the time ratio, the two kernel dimensions and the relative
difference of mu, and the dense matrix's size.

``--states S --actions A`` (SARSA, dense features, d = S A).  Run it at a
few sizes (e.g. 2x2, 3x3, 9x4) to see the crossing; ``--solver auto`` of
``icrl-verify richness`` switches at ``MATRIX_FREE_ABOVE`` reduced parameters.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import scipy.linalg  # noqa: E402,F401

from benchmarks._common import parser, report, timed  # noqa: E402
from numerics.analysis.hessian import gauss_newton_reduced, sample_prompts, structure  # noqa: E402
from numerics.analysis.matrix_free import MatrixFreeSpectrum  # noqa: E402
from numerics.analysis.richness import scaling_tangent  # noqa: E402
from numerics.analysis.spectrum import Spectrum  # noqa: E402
from numerics.core.distributions import MDPDistribution  # noqa: E402

def main(argv=None):
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--states", type=int, default=3)
    p.add_argument("--actions", type=int, default=3)
    p.add_argument("--mdps", type=int, default=40)
    p.add_argument("--frames", type=int, default=10)
    args = p.parse_args(argv)
    S = sample_prompts("sarsa", MDPDistribution(states=args.states, actions=args.actions), mdps=args.mdps,
                       frames_per_mdp=args.frames, seed=0)
    st = structure(S)
    P12s, V21s = S.construction()
    vs = scaling_tangent(P12s, V21s)
    t_dense, dense = timed(lambda: Spectrum(gauss_newton_reduced(st)))
    t_free, free = timed(lambda: MatrixFreeSpectrum(st, S.X, vs, V21s))
    rel = abs(free.mu - dense.mu) / dense.mu
    res = dict(name=f"richness-spectrum-d{S.d}", d=S.d, parameters=st.count, dense_s=t_dense, matrix_free_s=t_free,
               ratio=t_dense / t_free, dense_matrix_gb=st.count ** 2 * 8 / 1e9, kernel_dense=int(dense.kernel.shape[1]),
               kernel_matrix_free=int(free.kernel_dim), mu_rel_diff=rel, iterations=free.iterations)
    lines = [f"richness spectrum, d = {S.d} ({st.count} reduced parameters, {S.N} prompts; dense H "
             f"{res['dense_matrix_gb']:.2f} GB)",
             f"dense: {t_dense:.2f} s; matrix-free: {t_free:.2f} s ({free.iterations} LOBPCG iterations); "
             f"dense / matrix-free = {res['ratio']:.2f}",
             f"kernel {res['kernel_dense']} vs {res['kernel_matrix_free']}; mu relative difference {rel:.2e}"]
    report(res, lines, args.json)
    return 0 if res["kernel_dense"] == res["kernel_matrix_free"] and rel <= 1e-6 else 1

if __name__ == "__main__":
    sys.exit(main())
