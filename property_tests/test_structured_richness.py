"""Issue 22: richness for one-hot families at the benchmark's size: the
structured spectrum (exact inertia counts, shift-invert mu) against the dense
route on the same samples, the family's closed-form invariances, and sample
adequacy ('undersampled' is never a verdict) (docs/richness.md)."""
import json

import numpy as np
import pytest
import scipy.linalg

from numerics.analysis import structured as st
from numerics.analysis import tabular as tb
from numerics.analysis.hessian import gauss_newton_reduced, sample_prompts, structure
from numerics.commands.cli import main
from numerics.core.distributions import MDPDistribution
from numerics.core.tolerances import KERNEL_RTOL
from numerics.io.families import family_distribution
from numerics.io.families.darkroom import darkroom_table
from theory import algorithms
from theory.errors import InputError

SARSA = algorithms.get("sarsa")


def _darkroom(grid, **kw):
    return family_distribution("darkroom", gamma=kw.pop("gamma", 0.5), grid=grid, features="onehot",
                               goals="uniform", **kw)


def _both(dist, mdps, frames):
    """The dense spectrum and the structured Hessian of the same sample."""
    sample = sample_prompts(SARSA, dist, mdps=mdps, frames_per_mdp=frames, seed=3)
    vals = scipy.linalg.eigvalsh(gauss_newton_reduced(structure(sample)))
    P12s, _ = st.check_structured(SARSA, "reduced", sample.d, sample.alpha, sample.beta)
    H = st.StructuredHessian(st.compress(sample), P12s).build()
    return vals, H


def _agree(vals, H):
    lam = H.lam_max()
    assert abs(lam - vals[-1]) <= 1e-9 * vals[-1]
    thr = KERNEL_RTOL * lam
    kernel = H.count_below(thr)
    assert kernel == int((vals < thr).sum())
    mu_dense = float(vals[vals >= thr][0])
    r = st.mu_shift_invert(H, lam, kernel)
    assert abs(r["mu"] - mu_dense) <= 1e-6 * mu_dense
    assert r["certified"]
    return kernel, r


@pytest.mark.parametrize("dist", [MDPDistribution(states=4, actions=4, gamma=0.5, features="onehot"), _darkroom(2)],
                         ids=["section41-onehot-d16", "darkroom-2x2-d20"])
def test_structured_route_agrees_with_dense_on_the_same_sample(dist):
    """Kernel dimension equal, mu to 1e-6 relative (d = 16: one component;
    Darkroom 2x2: four components and the reward border)."""
    vals, H = _both(dist, mdps=40, frames=10)
    if dist.d == 20:
        assert len(H.components) == 4
    _agree(vals, H)
    # every count, not only the kernel: shifts across the spectrum
    lam = vals[-1]
    for x in (1e-14 * lam, 0.5 * vals[vals > KERNEL_RTOL * lam][0], 1e-3 * lam, 0.3 * lam):
        assert H.count_below(x) == int((vals < x).sum())


@pytest.mark.slow
def test_structured_route_agrees_with_dense_at_d36():
    vals, H = _both(MDPDistribution(states=9, actions=4, gamma=0.5, features="onehot"), mdps=100, frames=10)
    _agree(vals, H)


def test_structured_solve_is_the_inverse_and_a_wrong_mu_is_not_certified():
    vals, H = _both(_darkroom(2), mdps=30, frames=10)
    lam = vals[-1]
    x = 1e-6 * lam
    F = H.factor(x)
    assert F.below == int((vals < x).sum())
    rng = np.random.default_rng(0)
    b = rng.standard_normal((H.count, 2))
    y = F.solve(b)
    # (H - x) y = b through the structured product (independent of the factorisation)
    assert np.abs(H.matmat(y) - x * y - b).max() <= 1e-6 * np.abs(b).max()
    kernel, r = _agree(vals, H)
    wrong = r["mu"] * 1.01
    assert H.count_below(wrong * (1 - 1e-9)) > kernel       # a mu 1% too high: an eigenvalue below it


def test_ldl_inertia_matches_eigenvalues_with_two_by_two_pivots():
    rng = np.random.default_rng(1)
    for n in (2, 7, 60):
        A = rng.standard_normal((n, n))
        A = A + A.T
        A[np.diag_indices(n)] = 1e-6          # small diagonal: Bunch-Kaufman takes 2 x 2 pivots
        f = st._LDL(A.copy())
        assert (f.piv.numpy() < 0).any() or n == 2
        assert f.negatives == int((np.linalg.eigvalsh(A) < 0).sum())


def test_structured_route_refuses_dense_features():
    sample = sample_prompts(SARSA, MDPDistribution(states=2, actions=2, features="dense"), mdps=4,
                            frames_per_mdp=2, seed=0)
    with pytest.raises(InputError, match="one-hot"):
        st.compress(sample)
    with pytest.raises(InputError, match="solver"):
        st.check_structured(algorithms.get("actor-critic"), "reduced", 4, 0.2, 0.2)


def test_darkroom_closed_form_invariances_one_per_cell_and_in_the_dense_kernel():
    """n_c = G^2 context null vectors (one per next cell: the pairs that move
    into it and the pairs that leave it), none with a gamma range; each lies in
    the kernel of the dense H of a sample."""
    dist = _darkroom(2)
    inv = tb.support_invariances(dist, 0.1)
    nxt = darkroom_table(2)
    assert inv["count"] == 4 == inv["named"] == inv["named_rank"]
    for g in inv["groups"]:                    # independent: the room's move table
        cell = g["next_pairs"][0] // 5
        assert sorted(g["pairs"]) == sorted(int(s * 5 + a) for s in range(4) for a in range(5) if nxt[s, a] == cell)
    assert tb.support_invariances(_darkroom(2, gamma_range=(0.3, 0.9)), 0.1)["count"] == 0
    sample = sample_prompts(SARSA, dist, mdps=20, frames_per_mdp=5, seed=0)
    H = gauss_newton_reduced(structure(sample))
    d, m, p = 20, 41, 21
    for g in inv["groups"]:
        c = np.zeros(m)
        c[g["pairs"]] = 1.0
        c[[d + k for k in g["next_pairs"]]] = -2.0
        v = np.concatenate([np.outer(c, np.arange(1.0, p + 1)).ravel(), np.zeros(d * m)])
        assert np.linalg.norm(H @ v) <= 1e-12 * np.abs(H).max() * np.linalg.norm(v)
    # a wrong group (one pair missing) is not an invariance: the check says so
    c[g["pairs"][0]] = 0.0
    v = np.concatenate([np.outer(c, np.ones(p)).ravel(), np.zeros(d * m)])
    assert np.linalg.norm(H @ v) > 1e-6 * np.abs(H).max()


def test_verdict_and_kernel_same_at_two_sample_sizes_a_factor_4_apart():
    """Darkroom 2x2: adequate samples of 1,600 and 6,400 prompts give the same
    verdict and kernel (closed form + scaling); 800 prompts are not adequate
    (its half, 400 prompts, has kernel 168): undersampled, no verdict."""
    dist = _darkroom(2)
    kw = dict(mdps=40, frames=10, n=20, epsilon=0.1, alpha=0.2, beta=0.2, seed=0, bootstrap=1)
    a = tb.tabular_richness(dist, SARSA, prompts=1600, **kw)
    b = tb.tabular_richness(dist, SARSA, prompts=6400, **kw)
    assert a["verdict"] == b["verdict"] == "morse-bott"
    assert a["kernel_dim"] == b["kernel_dim"] == a["closed_form_kernel"] == 4 * 41 + 1
    assert a["details"]["adequacy"]["adequate"] and b["details"]["adequacy"]["adequate"]
    c = tb.tabular_richness(dist, SARSA, prompts=800, **kw)
    assert c["verdict"] == "undersampled" and c["data_invariance_dim"] is None
    assert [s["kernel"] for s in c["details"]["ladder"]] == [168, 165]


@pytest.mark.slow
def test_darkroom_5x5_verdict_same_at_two_sample_sizes_a_factor_4_apart():
    """32,000 prompts (compared with its 16,000) and 128,000 (with its 64,000):
    the same verdict and kernel, and the kernels at 16,000 and 64,000 (a factor
    4 apart) equal too.  (16,000 alone is 'undersampled': its half, 8,000, has
    pairs seen by fewer than d + 1 MDPs.)"""
    dist = _darkroom(5)
    kw = dict(mdps=100, frames=20, n=20, epsilon=0.1, alpha=0.2, beta=0.2, seed=0, bootstrap=1)
    a = tb.tabular_richness(dist, SARSA, prompts=32000, **kw)
    b = tb.tabular_richness(dist, SARSA, prompts=128000, **kw)
    assert a["verdict"] == b["verdict"] == "morse-bott"
    assert a["kernel_dim"] == b["kernel_dim"] == a["closed_form_kernel"] == 25 * 251 + 1
    assert a["details"]["ladder"][0]["kernel"] == b["details"]["ladder"][0]["kernel"] == a["kernel_dim"]


def test_too_few_prompts_says_undersampled_with_the_counts_never_a_verdict(tmp_path, capsys):
    rc = main(["richness", "--family", "darkroom", "--grid", "2", "--solver", "structured", "--prompts", "40",
               "--mdps", "4", "--frames", "10", "--bootstrap", "1", "--json", "--out", str(tmp_path)])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 3
    assert out["verdict"] == "undersampled"
    assert out["prompts"] == 40 and out["closed_form_kernel"] == 165
    assert out["data_invariance_dim"] is None and out["kernel_dim"] > out["closed_form_kernel"]
    with open(out["report"]) as fh:
        md = fh.read()
    assert "No verdict: undersampled" in md and "Verdict:" not in md.replace("No verdict", "")
    assert "165" in md and "40 prompts" in md
    # the growing sample, stopped by --max-prompts: also undersampled, with the numbers on stdout
    rc = main(["richness", "--family", "darkroom", "--grid", "2", "--solver", "structured", "--mdps", "4",
               "--frames", "5", "--max-prompts", "40", "--bootstrap", "1", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert rc == 3 and "undersampled" in text and "needed 21" in text and "verdict: undersampled" in text


def test_auto_picks_structured_for_onehot_above_the_dense_eigh_limit():
    from types import SimpleNamespace

    from numerics.commands.richness import resolve_solver
    args = SimpleNamespace(solver="auto", parameterization="reduced")
    assert resolve_solver(args, SARSA, _darkroom(5)) == "structured"
    assert resolve_solver(args, SARSA, _darkroom(2)) == "dense"                  # 1,681 parameters: dense
    assert resolve_solver(args, SARSA, MDPDistribution(states=9, actions=4)) != "structured"


def test_structured_memory_guard_refuses_with_one_line(tmp_path, capsys):
    """An adequately covered sample whose factorisation exceeds --max-memory:
    exit 2, one line naming max-memory, no report.  (A sample too thin to
    cover its pairs says 'undersampled' instead, with the estimate.)"""
    rc = main(["richness", "--family", "darkroom", "--grid", "2", "--solver", "structured", "--prompts", "1600",
               "--mdps", "160", "--frames", "10", "--max-memory", "1M", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "max-memory" in err[0] and "GB" in err[0]
    assert not list(tmp_path.iterdir())
    rc = main(["richness", "--family", "darkroom", "--grid", "2", "--solver", "structured", "--prompts", "200",
               "--mdps", "20", "--frames", "10", "--max-memory", "1M", "--out", str(tmp_path)])
    assert rc == 3 and "undersampled" in capsys.readouterr().out


def test_decade_counts_filled_by_monotonicity_equal_the_counted_ones():
    """Counts settled by monotonicity (equal at both ends of a run of decades)
    equal the counts computed at every decade; and they save factorisations."""
    vals, H = _both(_darkroom(2), mdps=30, frames=10)
    lam = vals[-1]
    calls = []
    real = H.count_below

    def counting(x):
        calls.append(x)
        return real(x)
    H.count_below = counting
    got = tb.decade_fill(H, lam, {9: real(1e-9 * lam), 12: real(1e-12 * lam)})
    assert got == {e: int((vals < 10.0 ** -e * lam).sum()) for e in tb.DECADES}
    assert len(calls) < len(tb.DECADES) - 2
