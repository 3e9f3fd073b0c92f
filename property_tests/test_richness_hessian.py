"""Richness (issue 4): the closed-form Gauss-Newton Hessian against autograd,
the iterative spectrum against the dense one, the kernel classification
against the known answers of THEORY.md section 5, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from numerics.analysis import richness as rich_mod
from numerics.analysis import spectrum as spectrum_mod
from numerics.analysis.hessian import (
    gauss_newton_reduced,
    hessian_operator,
    join_reduced,
    loss,
    sample_prompts,
    split_reduced,
    structure,
)
from numerics.analysis.richness import richness
from numerics.analysis.spectrum import Spectrum
from numerics.core.block import block_literal, embed_reduced
from numerics.core.distributions import MDPDistribution
from numerics.core.prompts import assemble_prompt
from numerics.core.tolerances import (
    EIGEN_RESIDUAL_RTOL,
    FEW_OPS_ATOL,
    HESSIAN_RTOL,
    ITERATIVE_RTOL,
    KERNEL_RTOL,
    POWER_LAW_RTOL,
    REORDER_RTOL,
    VISIBLE_ABS,
    VISIBLE_RTOL,
    ZERO_LOSS_ABS,
)
from theory.errors import InputError

# torch.func.hessian goes through torch.jit internally, which warns on torch 2.13;
# that warning is torch's, not ours.
TORCH_JIT = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def small(features="onehot", **kw):
    return MDPDistribution(states=2, actions=2, gamma=0.5, features=features, **kw)


@pytest.fixture(scope="module")
def onehot_sample():
    return sample_prompts("sarsa", small(), mdps=10, frames_per_mdp=10, n=6, seed=3)


@TORCH_JIT
def test_lemma_c1_gauss_newton_equals_autograd_hessian_reduced(onehot_sample):
    S = onehot_sample
    H = gauss_newton_reduced(structure(S))
    P12s, V21s = S.construction()
    f = lambda v: loss(S, *split_reduced(v, S.m, S.p))
    Ha = torch.func.hessian(f)(join_reduced(P12s, V21s)).numpy()
    assert np.abs(H - Ha).max() <= HESSIAN_RTOL * np.abs(Ha).max()


@TORCH_JIT
def test_lemma_c1_gauss_newton_equals_autograd_hessian_full_literal_block():
    """Full (P, V): the closed form (reduced block + zero rows) against the
    Hessian of the loss through the literal block (paper eq. 1)."""
    S = sample_prompts("sarsa", small("dense"), mdps=6, frames_per_mdp=6, n=5, seed=1)
    m, p = S.m, S.p
    D = m + p
    H = gauss_newton_reduced(structure(S))
    Hp = assemble_prompt(S.X, S.wt)
    Ps, Vs = embed_reduced(S.index, *S.construction())

    def f(v):
        r = block_literal(v[:D * D].reshape(D, D), v[D * D:].reshape(D, D), Hp)[..., -(p - 1):, -1] - S.target
        return 0.5 * (r * r).sum(-1).mean()
    Ha = torch.func.hessian(f)(torch.cat([Ps.reshape(-1), Vs.reshape(-1)])).numpy()
    Hc = np.zeros_like(Ha)
    idx = np.asarray(S.index.full_positions())
    Hc[np.ix_(idx, idx)] = H
    assert np.abs(Hc - Ha).max() <= HESSIAN_RTOL * np.abs(Ha).max()


@TORCH_JIT
def test_gauss_newton_detects_a_wrong_construction(onehot_sample):
    """Off the optimal set (flipped sign of Vbar21*) the residual is not zero
    and the autograd Hessian differs from E[J^T J]: the comparison can fail."""
    S = onehot_sample
    P12s, V21s = S.construction()
    H = gauss_newton_reduced(structure(S, P12s, -V21s))
    f = lambda v: loss(S, *split_reduced(v, S.m, S.p))
    Ha = torch.func.hessian(f)(join_reduced(P12s, -V21s)).numpy()
    assert np.abs(H - Ha).max() > 1e3 * HESSIAN_RTOL * np.abs(Ha).max()


def test_matrix_free_operator_and_lanczos_match_dense(onehot_sample, monkeypatch):
    S = onehot_sample
    st = structure(S)
    H = gauss_newton_reduced(st)
    x = np.random.default_rng(0).standard_normal((H.shape[0], 3))
    op = hessian_operator(st)
    assert np.abs(op.matmat(x) - H @ x).max() <= REORDER_RTOL * np.abs(H).max() * np.abs(x).max() * H.shape[0]
    dense = Spectrum(H)
    monkeypatch.setattr(spectrum_mod, "DENSE_EIGH_LIMIT", 10)
    lanczos = Spectrum(H)
    assert not lanczos.dense and dense.dense
    assert lanczos.kernel.shape[1] == dense.kernel.shape[1] == 10
    assert abs(lanczos.mu - dense.mu) <= ITERATIVE_RTOL * dense.lam_max
    # residual of the Lanczos eigenpair with H itself
    v = lanczos.vectors[:, lanczos.values >= lanczos.threshold][:, 0]
    assert np.linalg.norm(H @ v - lanczos.mu * v) <= EIGEN_RESIDUAL_RTOL * dense.lam_max


def test_section_5_onehot_fixed_gamma_is_morse_bott_with_2d_plus_1_invariances(onehot_sample):
    res = richness(None, "sarsa", "reduced", sample=onehot_sample, bootstrap=0)
    d = onehot_sample.d
    assert res["verdict"] == "morse-bott"
    assert res["kernel_dim"] == 10 and res["symmetry_dim"] == 1
    assert res["data_invariance_dim"] == 2 * d + 1 and res["nonflat_dim"] == 0
    dt = res["details"]
    assert dt["finite_step_max_rel_loss"] <= dt["finite_step_rtol"]
    assert dt["straight_flat_dim"] == 2 * d + 1
    inv = dt["invariances"]
    assert inv["explained"] == inv["found"] == 2 * d + 1
    assert any("(gamma 1, -1, 0)" in s for s in inv["sentences"])
    assert dt["spectral_gap"] > 1e6


@pytest.mark.parametrize("dist", [small("onehot", gamma_range=(0.2, 0.8)), small("dense")], ids=["gamma-range", "dense"])
def test_section_5_rich_distributions_are_identifiable(dist):
    res = richness(dist, "sarsa", "reduced", mdps=10, frames=10, n=6, bootstrap=3)
    assert res["verdict"] == "identifiable"
    assert res["kernel_dim"] == 1 and res["data_invariance_dim"] == 0 and res["nonflat_dim"] == 0
    lo, hi = res["mu_ci95"]
    assert 0 < lo <= hi and np.isfinite(res["mu"]) and res["mu"] > 0


def test_parametric_bootstrap_draws_fresh_samples_deterministically():
    """Each replicate is a fresh sample of the same size from the distribution
    (seed + BOOTSTRAP_SEED_OFFSET + k): its mu is recomputed here
    independently (dense eigvalsh of the closed-form H of that sample, its
    own lambda_max); same seed, same numbers; replicate k does not depend on
    how many replicates were asked for."""
    dist = small("dense")
    kw = dict(mdps=10, frames=10, n=6, seed=5)
    res = richness(dist, "sarsa", "reduced", bootstrap=3, **kw)
    dt = res["details"]
    off = rich_mod.BOOTSTRAP_SEED_OFFSET
    assert dt["bootstrap_seeds"] == [5 + off + k for k in range(3)]
    for k, seed in enumerate(dt["bootstrap_seeds"]):
        S = sample_prompts("sarsa", dist, mdps=10, frames_per_mdp=10, n=6, seed=seed)
        vals = np.linalg.eigvalsh(gauss_newton_reduced(structure(S)))
        nz = vals[vals >= KERNEL_RTOL * vals[-1]]
        assert abs(dt["bootstrap_mus"][k] - nz[0]) <= ITERATIVE_RTOL * nz[0]
        assert abs(dt["bootstrap_lambda_max"][k] - vals[-1]) <= REORDER_RTOL * vals[-1]
    again = richness(dist, "sarsa", "reduced", bootstrap=3, **kw)
    assert again["mu_ci95"] == res["mu_ci95"] and again["details"]["bootstrap_mus"] == dt["bootstrap_mus"]
    one = richness(dist, "sarsa", "reduced", bootstrap=1, **kw)
    assert one["details"]["bootstrap_mus"] == dt["bootstrap_mus"][:1]
    other = richness(dist, "sarsa", "reduced", bootstrap=3, **{**kw, "seed": 6})
    assert other["details"]["bootstrap_mus"] != dt["bootstrap_mus"]


def _interval_reflects_sampling_variability(res) -> bool:
    """The checks a main-sample-only interval cannot pass: positive width,
    and replicate mus that are not the main sample's mu."""
    lo, hi = res["mu_ci95"]
    mus = np.array(res["details"]["bootstrap_mus"])
    return bool(hi - lo > VISIBLE_RTOL * res["mu"] and np.all(np.abs(mus - res["mu"]) > VISIBLE_ABS * res["mu"])
                and res["details"]["bootstrap_mu_rel_spread"] > VISIBLE_RTOL)


def test_bootstrap_interval_is_not_computed_from_the_main_sample(monkeypatch):
    dist = small("onehot", gamma_range=(0.2, 0.8))
    kw = dict(mdps=10, frames=10, n=6, seed=2, bootstrap=4)
    res = richness(dist, "sarsa", "reduced", **kw)
    assert _interval_reflects_sampling_variability(res)
    dt = res["details"]
    assert abs(dt["bootstrap_mu_mean"] - np.mean(dt["bootstrap_mus"])) <= FEW_OPS_ATOL * dt["bootstrap_mu_mean"]
    assert dt["mu_in_ci95"] == (res["mu_ci95"][0] <= res["mu"] <= res["mu_ci95"][1])
    # a broken bootstrap that reuses the main sample (every 'fresh' draw
    # replaced by the main seed's sample) gives a zero-width interval: caught
    real = rich_mod.sample_prompts
    monkeypatch.setattr(rich_mod, "sample_prompts", lambda *a, **k: real(*a, **{**k, "seed": 2}))
    broken = richness(dist, "sarsa", "reduced", **kw)
    assert broken["mu_ci95"][1] - broken["mu_ci95"][0] == 0.0
    assert not _interval_reflects_sampling_variability(broken)


def test_bootstrap_needs_the_distribution(onehot_sample):
    with pytest.raises(InputError, match="fresh samples"):
        richness(None, "sarsa", "reduced", sample=onehot_sample, bootstrap=2)


def test_section_5_full_parameterisation_fails_through_p22_and_vbar22():
    res = richness(small("dense"), "sarsa", "full", mdps=10, frames=10, n=6, bootstrap=0)
    p, q = 5, 4
    assert res["verdict"] == "fails"
    assert res["nonflat_dim"] == p * (p + 1) // 2 + q * p
    dt = res["details"]
    assert res["symmetry_dim"] == dt["symmetry_formula"]
    assert dt["full_symmetry_check"]["max_readout_change"] <= REORDER_RTOL * dt["full_symmetry_check"]["readout_scale"]
    qr = dt["quartic_rise_p22_vbar22"]
    # the loss rises as t^4 (constant ratio) and no second-order bend removes it
    assert qr["projected_quartic"] > 0
    assert abs(qr["loss_over_t4"][1] / qr["loss_over_t4"][2] - 1) < POWER_LAW_RTOL
    assert dt["flat_alone"]["p22"] <= ZERO_LOSS_ABS and dt["flat_alone"]["vbar22"] <= ZERO_LOSS_ABS


def test_degenerate_distribution_is_not_identifiable():
    """gamma = 0 with one-hot features: the gphi_next block of every context
    column is zero, so the kernel has d (p + q) extra flat dimensions."""
    res = richness(MDPDistribution(states=2, actions=2, gamma=0.0, features="onehot"), "sarsa", "reduced",
                   mdps=10, frames=10, n=6, bootstrap=0)
    assert res["verdict"] != "identifiable"
    assert res["data_invariance_dim"] >= 4 * (5 + 4)
    assert any("gphi_next is zero" in s for s in res["details"]["invariances"]["sentences"])


def test_bad_input_raises_input_error():
    with pytest.raises(InputError):
        richness(small(), "sarsa", "reduced", mdps=0, frames=10)
    with pytest.raises(InputError):
        richness(small(), "sarsa", "sideways", mdps=5, frames=5)
    with pytest.raises(InputError):
        richness(small(), "sarsa", "reduced", mdps=1, frames=2, n=4)     # too few prompts for a rank decision
    with pytest.raises(InputError):
        MDPDistribution(states=2, actions=2, gamma_range=(0.5, 1.0))


@pytest.mark.parametrize("argv", [["--mdps", "0"], ["--gamma-range", "0.5", "1.5"], ["--states", "0"],
                                  ["--parameterization", "sideways"], ["--bootstrap", "-1"]])
def test_cli_bad_input_exits_2_with_one_line(argv, capsys, tmp_path):
    from numerics.commands.cli import main
    rc = main(["richness", "--out", str(tmp_path)] + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert not list(tmp_path.iterdir())


def test_cli_report_and_exit_codes(capsys, tmp_path):
    from numerics.commands.cli import main
    base = ["richness", "--states", "2", "--actions", "2", "--mdps", "10", "--frames", "10", "--context", "6",
            "--bootstrap", "2", "--out", str(tmp_path), "--json"]
    assert main(base + ["--features", "onehot", "--name", "oh"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) >= {"parameterization", "parameters", "kernel_dim", "symmetry_dim", "data_invariance_dim",
                        "nonflat_dim", "mu", "mu_ci95", "verdict", "report"}
    assert out["verdict"] == "morse-bott"
    for ext in (".md", ".json", ".png"):
        assert (tmp_path / f"oh{ext}").exists()
    assert "gamma 1, -1, 0" in (tmp_path / "oh.md").read_text()
    assert main(base + ["--parameterization", "full", "--name", "full"]) == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["verdict"] == "fails"


def test_richness_refuses_a_sample_the_construction_does_not_fit(onehot_sample):
    """A wrong teacher (targets shifted) leaves a residual at theta*: the
    Gauss-Newton identity no longer holds and the analysis says so."""
    import dataclasses
    bad = dataclasses.replace(onehot_sample, target=onehot_sample.target + 1e-3)
    with pytest.raises(AssertionError, match="does not fit"):
        richness(None, "sarsa", "reduced", sample=bad, bootstrap=0)
