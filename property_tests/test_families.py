"""Issue 16: MDP batches as data, generators as code, named families, and
the matrix-free spectrum of richness (docs/families.md, docs/richness.md)."""
import json

import numpy as np
import pytest
import torch

from numerics.analysis.hessian import gauss_newton_reduced, sample_prompts, structure
from numerics.analysis.matrix_free import GaussNewtonOperator, MatrixFreeSpectrum
from numerics.analysis.richness import richness, scaling_tangent
from numerics.analysis.spectrum import Spectrum
from numerics.commands.cli import main
from numerics.core.distributions import MDPDistribution
from numerics.io.families import family_distribution
from numerics.io.families.boyan import boyan_features
from numerics.io.families.darkroom import darkroom
from numerics.io.families.frozenlake import frozenlake
from numerics.io.mdp_batch import BatchDistribution, mdp_from_arrays
from theory.errors import InputError

SMALL = MDPDistribution(states=3, actions=2, gamma=0.5, features="dense-shared")


def _dense_and_free(dist, mdps=30, frames=10):
    sample = sample_prompts("sarsa", dist, mdps=mdps, frames_per_mdp=frames, seed=0)
    st = structure(sample)
    P12s, V21s = sample.construction()
    return Spectrum(gauss_newton_reduced(st)), MatrixFreeSpectrum(st, sample.X, scaling_tangent(P12s, V21s), V21s), st


def test_gauss_newton_operator_equals_dense_matrix(rng):
    sample = sample_prompts("sarsa", MDPDistribution(states=2, actions=2), mdps=5, frames_per_mdp=4, seed=1)
    st = structure(sample)
    H = gauss_newton_reduced(st)
    V = torch.randn(st.count, 3, generator=rng.torch, dtype=torch.float64).numpy()
    got = GaussNewtonOperator(st, sample.X, sample.construction()[1], chunk=7).matmat(V)
    assert np.abs(got - H @ V).max() <= 1e-12 * np.abs(H).max() * st.count


@pytest.mark.parametrize("dist", [SMALL, MDPDistribution(states=2, actions=2, gamma_range=(0.3, 0.7))],
                         ids=["dense-shared-morse-bott", "gamma-range-identifiable"])
def test_matrix_free_spectrum_matches_dense(dist):
    dense, free, _ = _dense_and_free(dist)
    assert free.kernel_dim == dense.kernel.shape[1]
    assert abs(free.mu - dense.mu) <= 1e-6 * dense.mu
    assert abs(free.lam_max - dense.lam_max) <= 1e-8 * dense.lam_max


def test_matrix_free_richness_report_matches_dense_verdict():
    a = richness(SMALL, "sarsa", mdps=30, frames=10, bootstrap=2, solver="dense")
    b = richness(SMALL, "sarsa", mdps=30, frames=10, bootstrap=2, solver="matrix-free")
    for k in ("verdict", "kernel_dim", "symmetry_dim", "data_invariance_dim", "nonflat_dim"):
        assert a[k] == b[k], k
    assert abs(a["mu"] - b["mu"]) <= 1e-6 * a["mu"]
    assert b["details"]["solver"] == "matrix-free" and b["details"]["lobpcg_converged"]


def test_matrix_free_would_miss_nothing_wrongly_deflated():
    """Feeding the solver a wrong 'invariance' (a context null vector that is
    not one) must show up: the known-kernel residual check is then large."""
    dense, free, st = _dense_and_free(MDPDistribution(states=2, actions=2, gamma_range=(0.3, 0.7)))
    assert free.known_residual <= 1e-9
    bad = np.zeros((st.m, 1))
    bad[0, 0] = 1.0
    free.Nc = bad
    free._Qc = np.eye(st.m) - bad @ bad.T
    r = torch.randn(st.count, 4, dtype=torch.float64).numpy()
    e = r - free.project(r)
    assert np.linalg.norm(free.op(e)) / (free.lam_max * np.linalg.norm(e)) > 1e-6


@pytest.mark.slow
def test_matrix_free_matches_dense_at_section_4_1_d36():
    dist = MDPDistribution()
    dense, free, _ = _dense_and_free(dist, mdps=40, frames=10)
    assert free.kernel_dim == dense.kernel.shape[1]
    assert abs(free.mu - dense.mu) <= 1e-6 * dense.mu


def test_batch_file_from_dense_shared_gives_the_family_verdict(tmp_path, capsys):
    path = str(tmp_path / "b.npz")
    common = ["--states", "3", "--actions", "2", "--gamma", "0.5", "--features", "dense-shared"]
    assert main(["families", *common, "--write-batch", path, "--batch", "40"]) == 0
    capsys.readouterr()
    outs = []
    for extra in (common, ["--mdp-batch", path]):
        rc = main(["richness", *extra, "--mdps", "30", "--frames", "10", "--bootstrap", "2", "--json",
                   "--out", str(tmp_path)])
        outs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
        assert rc == 0
    for k in ("verdict", "kernel_dim", "symmetry_dim", "data_invariance_dim", "nonflat_dim"):
        assert outs[0][k] == outs[1][k], k
    assert outs[0]["verdict"] == "morse-bott"


def test_richness_report_of_a_batch_lists_what_the_batch_holds(tmp_path, capsys):
    """Issue 19: the report's configuration listed the default 9 states,
    4 actions and dense features for a batch of 3 x 2 MDPs with d = 5."""
    path = tmp_path / "b.npz"
    g = _good_batch(B=6, S=3, A=2, d=5) | {"gamma": np.array([0.3, 0.5, 0.5, 0.6, 0.5, 0.5])}
    np.savez(path, **g)
    rc = main(["richness", "--mdp-batch", str(path), "--mdps", "12", "--frames", "4", "--bootstrap", "0",
               "--json", "--out", str(tmp_path / "r")])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["report"]
    assert rc in (0, 1)
    with open(report) as fh:
        text = fh.read()
    cfg = json.loads(text.split("Config: `", 1)[1].split("`", 1)[0])
    assert cfg["source"] == dict(states=3, actions=2, features_dim=5, mdp_batch=str(path), mdps_in_batch=6,
                                 features="batch", gamma_range=[0.3, 0.6])
    for k in ("states", "actions", "features", "gamma", "gamma_range"):
        assert k not in cfg, k
    # the built-in source keeps its options as they are
    rc = main(["richness", "--states", "3", "--actions", "2", "--mdps", "12", "--frames", "4", "--bootstrap", "0",
               "--json", "--out", str(tmp_path / "s")])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["report"]
    with open(report) as fh:
        cfg = json.loads(fh.read().split("Config: `", 1)[1].split("`", 1)[0])
    assert (cfg["states"], cfg["actions"], cfg["features"]) == (3, 2, "dense") and "source" not in cfg


def _good_batch(B=4, S=3, A=2, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return dict(T=rng.dirichlet(np.ones(S), size=(B, S, A)), R=rng.uniform(-1, 1, (B, S, A, S)),
                gamma=np.full(B, 0.5), rho0=np.full((B, S), 1 / S), features=rng.uniform(-1, 1, (B, S, A, d)))


def _corrupt():
    g = _good_batch()
    T = g["T"].copy(); T[1, 0, 0, 0] += 0.3
    R = g["R"].copy(); R[0, 1, 1, 2] = np.nan
    F = g["features"].copy(); F[2, 0, 0, 0] = np.inf
    rows = [("row-sum", g | {"T": T}, "'T'"), ("nan", g | {"R": R}, "'R'"), ("inf-features", g | {"features": F}, "'features'"),
            ("gamma-one", g | {"gamma": np.array([0.5, 1.0, 0.5, 0.5])}, "'gamma'"),
            ("wrong-shape", g | {"rho0": np.full((3, 3), 1 / 3)}, "'rho0'"),
            ("features-shape", g | {"features": np.zeros((4, 3, 3, 5))}, "'features'")]
    missing = dict(g)
    del missing["rho0"]
    rows.append(("missing", missing, "'rho0'"))
    rows.append(("unknown", g | {"Q": np.zeros(2)}, "'Q'"))
    return rows


@pytest.mark.parametrize("name,arrays,needle", _corrupt(), ids=[r[0] for r in _corrupt()])
def test_corrupted_batch_exits_2_with_one_line(tmp_path, capsys, name, arrays, needle):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    rc = main(["richness", "--mdp-batch", str(path), "--out", str(tmp_path / "r")])
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "mdp-batch" in err[0] and needle in err[0], err
    assert "Traceback" not in cap.err and not (tmp_path / "r").exists()


def _count_mismatch(odd: str, B: int, other: int) -> dict:
    """A good batch of ``other`` MDPs whose array ``odd`` holds ``B``."""
    g, h = _good_batch(B=other), _good_batch(B=B)
    return g | {odd: h[odd]}


@pytest.mark.parametrize("odd", ["T", "R", "gamma", "rho0", "features"])
def test_batch_count_mismatch_blames_the_array_outside_the_majority(odd):
    """Issue 19: a ``T`` of 50 MDPs among arrays of 60 was reported as a
    wrong shape of ``R`` (the count was taken from ``T``)."""
    with pytest.raises(InputError) as e:
        mdp_from_arrays(_count_mismatch(odd, 50, 60), "b.npz")
    msg = str(e.value)
    assert f"array {odd!r} holds 50 MDPs" in msg and "hold 60" in msg, msg
    for k in ("T", "R", "gamma", "rho0", "features"):
        if k != odd:
            assert f"{k!r}" in msg.split("but", 1)[1], msg


def test_batch_count_tie_is_judged_against_T():
    """Shared features (3-D) leave four per-MDP arrays; two against two has
    no majority, so the arrays that disagree with ``T`` are blamed."""
    g, h = _good_batch(B=6), _good_batch(B=5)
    arrays = g | {"gamma": h["gamma"], "rho0": h["rho0"], "features": g["features"][0]}
    with pytest.raises(InputError) as e:
        mdp_from_arrays(arrays, "b.npz")
    assert "array 'gamma' holds 5 MDPs" in str(e.value) and "'T', 'R' hold 6" in str(e.value), str(e.value)


def test_batch_count_mismatch_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "b.npz"
    np.savez(path, **_count_mismatch("T", 50, 60))
    rc = main(["richness", "--mdp-batch", str(path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "array 'T' holds 50 MDPs" in err[0] and "60" in err[0], err
    assert "'R' must have shape" not in err[0]


def test_pickled_object_array_is_refused(tmp_path, capsys):
    path = tmp_path / "obj.npz"
    np.savez(path, **(_good_batch() | {"T": np.array([{"evil": 1}], dtype=object)}))
    rc = main(["richness", "--mdp-batch", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "mdp-batch" in err[0]


def test_batch_sampling_is_seeded_with_replacement():
    g = _good_batch(B=3)
    mdp, F = mdp_from_arrays(g, "test")
    dist = BatchDistribution(mdp, F, "test")
    a = dist.sample(20, torch.Generator().manual_seed(3))
    b = dist.sample(20, torch.Generator().manual_seed(3))
    assert torch.equal(a[0].T, b[0].T) and torch.equal(a[1], b[1])
    # every drawn MDP is one of the batch's three
    match = (a[0].T[:, None] == mdp.T[None]).flatten(2).all(-1)
    assert (match.sum(1) == 1).all() and match.any(0).sum() >= 2


@pytest.mark.parametrize("spec,needle", [("gen_batch_example:raises", "boom"), ("gen_batch_example:gamma_one", "'gamma'"),
                                         ("gen_batch_example:wrong_batch", "returned"), ("no_such_module_x:f", "cannot import"),
                                         ("gen_batch_example:nothing", "no callable"), ("not a spec", "MODULE:FUNCTION")])
def test_bad_distribution_callable_exits_2(capsys, spec, needle):
    rc = main(["richness", "--distribution", spec])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "error: distribution:" in err[0] and needle in err[0], err


def test_distribution_callable_runs(tmp_path, capsys):
    rc = main(["richness", "--distribution", "gen_batch_example:good", "--mdps", "20", "--frames", "10",
               "--bootstrap", "0", "--json", "--out", str(tmp_path)])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["verdict"] == "identifiable"


def test_darkroom_family():
    b = darkroom(0, 6, grid=3, features="onehot")
    S = 9
    assert b["T"].shape == (6, S, 5, S) and b["features"].shape == (6, S, 5, 45)
    assert np.allclose(b["T"].sum(-1), 1)
    # reward 1 exactly on the moves that reach the goal; staying on the goal pays
    for k in range(6):
        goal = np.flatnonzero(b["R"][k, :, 4])
        assert goal.size == 1 and b["R"][k].sum() == (b["T"][k][:, :, goal[0]] > 0).sum()
    assert family_distribution("darkroom", gamma=0.9, grid=5, features="onehot", goals="uniform").d == 125


def test_boyan_family_features_and_chain():
    Phi = boyan_features(13)
    assert np.allclose(Phi[12], [1, 0, 0, 0]) and np.allclose(Phi[8], [0, 1, 0, 0]) and np.allclose(Phi[0], [0, 0, 0, 1])
    assert np.allclose(Phi[10], [0.5, 0.5, 0, 0]) and np.allclose(Phi.sum(1), 1)
    dist = family_distribution("boyan", gamma=0.9, states=13, features="boyan")
    assert (dist.states, dist.actions, dist.d) == (13, 1, 4)


def test_frozenlake_family_valid_and_seeded():
    a = frozenlake(5, 3, size=3)
    b = frozenlake(5, 3, size=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.allclose(a["T"].sum(-1), 1) and a["features"].shape[-1] == a["T"].shape[1] * 4


def test_two_sources_are_refused(capsys):
    rc = main(["richness", "--family", "boyan", "--distribution", "gen_batch_example:good"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "error: source:" in err[0]
