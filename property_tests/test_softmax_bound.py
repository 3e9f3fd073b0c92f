"""Theorem 2 of Xie et al. (2026) (numerics.analysis.softmax_bound and
``icrl-verify softmax-bound``): Assumption 5.1's margin, the population
iteration's contraction against ``1 - 2C``, the bound detector, the window
fixed point against the block, and the command's bad inputs.  Every check
has a test that feeds it something wrong."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from numerics.analysis import softmax_bound as sb
from numerics.commands.cli import main
from numerics.core import softmax as sm
from numerics.core.mdp import MDP
from numerics.core.tolerances import DTYPE
from theory.errors import InputError


def _chain(S=4, gamma=0.5, seed=0):
    """One random MRP (rows Dirichlet(1)) as plain arrays, its MDP."""
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.ones(S), size=S)
    R = rng.uniform(-1, 1, size=(S, S))
    return T, R, MDP(torch.tensor(T)[None, :, None, :], torch.tensor(R)[None, :, None, :], gamma,
                     torch.full((1, S), 1.0 / S, dtype=DTYPE))


def _stationary_eig(T):
    w, V = np.linalg.eig(T.T)
    v = np.real(V[:, np.argmin(np.abs(w - 1))])
    return v / v.sum()


# ------------------------------------------------------------------ the margin
def test_margin_onehot_closed_form():
    """One-hot phi = sqrt(tau) e_s: M_pi(s, s) = mu_s e^tau / (mu_s e^tau + 1 - mu_s), mu from an eigenvector."""
    T, _, mdp = _chain(S=4, gamma=0.6)
    tau = 3.0
    m = sb.margin(mdp, math.sqrt(tau) * torch.eye(4, dtype=DTYPE))
    mu = _stationary_eig(T)
    diag = mu * math.exp(tau) / (mu * math.exp(tau) + 1 - mu)
    assert abs(m["min_diag"].item() - diag.min()) < 1e-12
    assert abs(m["C"].item() - (diag.min() - 0.8)) < 1e-12
    assert bool(m["holds"]) == (0 < diag.min() - 0.8 < 0.2)


def test_margin_tabular_huge_tau_is_the_limit():
    """A tabular chain with huge tau: M_pi -> I, so C -> 1 - (1+gamma)/2 = (1-gamma)/2."""
    for gamma in (0.0, 0.5, 0.9):
        _, _, mdp = _chain(S=5, gamma=gamma, seed=1)
        m = sb.margin(mdp, math.sqrt(800.0) * torch.eye(5, dtype=DTYPE))
        assert abs(m["C"].item() - (1 - gamma) / 2) < 1e-12
        m40 = sb.margin(mdp, math.sqrt(20.0) * torch.eye(5, dtype=DTYPE))
        assert 0 < m40["C"].item() < (1 - gamma) / 2 and bool(m40["holds"])
        assert (1 - gamma) / 2 - m40["C"].item() < 1e-6


def test_margin_reports_violating_families():
    """Two states with one feature vector (aliased) never meet the assumption; small tau does not either."""
    gen = torch.Generator().manual_seed(0)
    mdp, F = sb.sample_family(sb.FAMILIES["aliased"], 30, 5, 10, 5.0, 0.5, gen)
    s = sb.margin_summary(sb.margin(mdp, F))
    assert s["fraction_holds"] == 0.0 and s["C"]["q95"] < 0
    mdp, F = sb.sample_family(sb.FAMILIES["onehot"], 30, 5, 10, 0.5, 0.5, gen)
    assert sb.margin_summary(sb.margin(mdp, F))["fraction_holds"] == 0.0
    mdp, F = sb.sample_family(sb.FAMILIES["onehot"], 30, 5, 10, 8.0, 0.5, gen)
    assert sb.margin_summary(sb.margin(mdp, F))["fraction_holds"] == 1.0


def test_margin_bad_input():
    _, _, mdp = _chain()
    with pytest.raises(InputError, match="gamma"):
        sb.margin(mdp, torch.eye(4, dtype=DTYPE), gamma=1.0)
    with pytest.raises(InputError, match="features"):
        sb.margin(mdp, torch.full((4, 2), math.nan, dtype=DTYPE))
    with pytest.raises(InputError, match="features"):
        sb.margin(mdp, torch.eye(3, dtype=DTYPE))


# ------------------------------------------------ the population contraction
@pytest.mark.parametrize("name", ["onehot", "boyan-orth", "dense"])
def test_population_rate_within_1_minus_2C(name):
    gen = torch.Generator().manual_seed(3)
    fam = sb.FAMILIES[name]
    mdp, F = sb.sample_family(fam, 12, 5, 10, fam.tau, 0.5, gen)
    rc = sb.rate_check(mdp, F, layers=30)
    assert rc["ok"] and rc["operator_gap"].max() < 1e-12
    assert (rc["iter_rate"] <= rc["bound_1m2C"] + 1e-12).all()
    h = rc["margin"]["holds"]
    assert (rc["bound_1m2C"][h] < rc["bound_1mC"][h]).all()          # 1 - 2C is the sharper rate


def _no_mu(good):
    def kernel(mu, F):
        return good(torch.ones_like(mu) / mu.shape[-1], F)
    return kernel


def test_population_rate_check_refuses_planted_faults(monkeypatch):
    """A kernel normalised without mu, or a wrong gamma, fails the rate check;
    on Boyan chains (tight bound) the inequality 1 - 2C alone catches both."""
    gen = torch.Generator().manual_seed(0)
    fam = sb.FAMILIES["boyan-orth"]
    mdp, F = sb.sample_family(fam, 20, 5, 10, fam.tau, 0.5, gen)
    assert sb.rate_check(mdp, F)["ok"]
    rc = sb.rate_check(mdp, F, gamma=0.45)
    assert not rc["ok"] and (rc["op_norm"] > rc["bound_1m2C"] + 1e-9).any()
    monkeypatch.setattr(sb, "population_kernel", _no_mu(sb.population_kernel))
    rc = sb.rate_check(mdp, F)
    assert not rc["ok"] and (rc["op_norm"] > rc["bound_1m2C"] + 1e-9).any()


def test_population_rate_check_refuses_faults_where_the_bound_is_loose(monkeypatch):
    """On random MRPs the inequality has slack; the operator identity still catches both faults."""
    gen = torch.Generator().manual_seed(0)
    mdp, F = sb.sample_family(sb.FAMILIES["onehot"], 10, 5, 10, 5.0, 0.5, gen)
    assert sb.rate_check(mdp, F)["ok"]
    assert not sb.rate_check(mdp, F, gamma=0.49)["ok"]
    monkeypatch.setattr(sb, "population_kernel", _no_mu(sb.population_kernel))
    assert not sb.rate_check(mdp, F)["ok"]


# ------------------------------------------------------------ the detector
def test_bound_violations_detector():
    L = 6
    e0 = torch.tensor([1.0, 2.0], dtype=DTYPE)
    C = torch.tensor([0.2, 0.1], dtype=DTYPE)
    k = torch.arange(L, dtype=DTYPE)
    bound = (1 - C)[:, None] ** k * e0[:, None] + 0.05
    assert not sb.bound_violations(bound, e0, C, 0.05).any()              # on the bound: no violation
    err = bound.clone()
    err[1, 4] += 1e-3                                                     # a counterexample above it
    v = sb.bound_violations(err, e0, C, 0.05)
    assert v.sum() == 1 and v[1, 4]
    assert sb.bound_violations(bound, e0, C, 0.05, "1-2C")[:, 1:].all()   # the sharper rate is below (1-C)^L
    assert sb.bound_violations(bound, e0, C, torch.tensor([0.05, 0.0], dtype=DTYPE))[1, 1:].all()


def test_summary_counts_constructed_counterexamples():
    """Errors planted above (1-C)^L e0 + floor are counted as geometric violations."""
    gen = torch.Generator().manual_seed(0)
    fam = sb.FAMILIES["onehot"]
    mdp, F = sb.sample_family(fam, 8, 4, 4, 8.0, 0.5, gen)
    marg = sb.margin(mdp, F)
    meas = sb.measure(mdp, F, [40, 80], 6, gen)
    s = sb.summarise(meas, marg, torch.Generator().manual_seed(1))
    assert not s["bound_fails"]["geometric"]
    cell = meas["cells"][1]
    cell["err"] = cell["err"].clone()
    cell["err"][3, 5] = cell["floor"][3] + 2 * cell["e0"][3]              # far above (1-C)^5 e0 + floor
    s = sb.summarise(meas, marg, torch.Generator().manual_seed(1))
    assert s["bound_fails"]["geometric"]
    assert s["holding"]["cells"][1]["violations"]["geometric"]["pairs"] == 1


def test_fitted_cprime_covers_and_is_smallest():
    n = np.array([25.0, 100.0, 400.0])
    q = np.array([0.5, 0.3, 0.1])
    cp = sb.fitted_cprime(n, q)
    term = sb.floor_term(cp, n)
    assert (term >= q - 1e-12).all() and np.isclose(term - q, 0, atol=1e-9).any()
    assert (sb.floor_term(cp * (1 - 1e-6), n) < q).any()


# ------------------------------------------- the window fixed point vs the block
def test_window_fixed_point_is_the_blocks_limit():
    gen = torch.Generator().manual_seed(2)
    fam = sb.FAMILIES["onehot"]
    mdp, F = sb.sample_family(fam, 6, 4, 4, 6.0, 0.5, gen)
    X, r, S = sm.windows(mdp, F, 60, gen)
    V = sb.block_values(X, r, mdp.gamma, 120)
    fp = sb.window_fixed_point(F, S, r, mdp.gamma)
    b = torch.arange(6)[:, None]
    assert (V[:, -1] - fp["v_inf"][b, S]).abs().max() < 1e-9
    assert (fp["rho_n"] < 1).all()
    wrong = sb.window_fixed_point(F, S, r, mdp.gamma * 0.9)                  # another gamma: another limit
    assert (V[:, -1] - wrong["v_inf"][b, S]).abs().max() > 1e-3


def test_two_head_form_gives_the_same_values():
    gen = torch.Generator().manual_seed(4)
    mdp, F = sb.sample_family(sb.FAMILIES["boyan-orth"], 3, 5, 6, 12.0, 0.5, gen)
    X, r, _ = sm.windows(mdp, F, 30, gen)
    one = sb.block_values(X, r, mdp.gamma, 5)
    two = sb.block_values(X, r, mdp.gamma, 5, form="two-head")
    assert (one - two).abs().max() < 1e-12


def test_experiment_is_deterministic():
    kw = dict(mrps=6, states=4, dim=6, tau=8.0, gamma=0.5, contexts=[20, 40], layers=4, seed=5, rate_mrps=3)
    a = sb.experiment(sb.FAMILIES["onehot"], **kw)
    b = sb.experiment(sb.FAMILIES["onehot"], **kw)
    assert torch.equal(a["_meas"]["cells"][1]["err"], b["_meas"]["cells"][1]["err"])
    assert a["summary"]["cprime"]["value"] == b["summary"]["cprime"]["value"]


# ------------------------------------------------------------------ the CLI
def _npz(tmp_path, T, R, gamma=0.5, **extra):
    path = tmp_path / f"mrp{len(list(tmp_path.iterdir()))}.npz"
    np.savez(path, T=np.asarray(T), R=np.asarray(R), gamma=np.asarray(gamma), **extra)
    return str(path)


def test_cli_margin_only_from_file(tmp_path, capsys):
    T, R, _ = _chain(S=3)
    path = _npz(tmp_path, T[:, None, :], R[:, None, :], 0.5, features=np.sqrt(9.0) * np.eye(3)[:, None, :])
    assert main(["softmax-bound", "--margin-only", "--mdp-file", path, "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    mu = _stationary_eig(T)
    diag = mu * math.exp(9) / (mu * math.exp(9) + 1 - mu)
    assert abs(res["per_mrp"][0]["C"] - (diag.min() - 0.75)) < 1e-12


BAD = [
    ("gamma-1", ["--gamma", "1.0"], "gamma"),
    ("gamma-nan", ["--gamma", "nan"], "gamma"),
    ("tau-negative", ["--tau", "-1"], "tau"),
    ("family-unknown", ["--family", "nope"], "family"),
    ("mdp-file-without-margin-only", ["--mdp-file", "x.npz"], "mdp-file"),
    ("mrps-zero", ["--mrps", "0"], "mrps"),
    ("time-guard", ["--full", "--max-time", "1"], "max-time"),
]


@pytest.mark.parametrize("case,argv,field", BAD, ids=[b[0] for b in BAD])
def test_cli_bad_input_exits_2(case, argv, field, capsys, tmp_path):
    assert main(["softmax-bound", "--out", str(tmp_path)] + argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and field in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def _file_cases(tmp_path):
    T, R, _ = _chain(S=3)
    bad_row = T.copy()
    bad_row[1, 2] += 0.2
    nan_R = R.copy()
    nan_R[0, 0] = math.nan
    return [(_npz(tmp_path, bad_row[:, None, :], R[:, None, :]), "transitions"),
            (_npz(tmp_path, T[:, None, :], nan_R[:, None, :]), "rewards"),
            (_npz(tmp_path, T[:, None, :], R[:, None, :], 1.0), "gamma"),
            (_npz(tmp_path, T[:, None, :], R[:, None, :], features=np.full((3, 1, 2), np.nan)), "features"),
            (str(tmp_path / "missing.npz"), "mdp")]


def test_cli_bad_mdp_files_exit_2(tmp_path, capsys):
    for path, field in _file_cases(tmp_path):
        assert main(["softmax-bound", "--margin-only", "--mdp-file", path]) == 2, field
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and field in err, (field, err)


def test_cli_small_run_writes_the_report(tmp_path, capsys):
    argv = ["softmax-bound", "--family", "onehot", "aliased", "--mrps", "8", "--contexts", "20", "40", "--layers", "4",
            "--rate-mrps", "3", "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(res["families"]) == {"onehot", "aliased"}
    assert res["families"]["onehot"]["rate_check_ok"] and res["families"]["aliased"]["fraction_holds"] == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["theorem2.json", "theorem2.md", "theorem2.png"]
    md = (tmp_path / "theorem2.md").read_text()
    assert "Geometric part, rate 1 - C" in md and "bound not tested" not in md


def test_window_limit_with_a_query_only_state_and_without_a_limit():
    """A state seen only as the query makes the window's map singular (rank at most the number of distinct
    source states): no unique fixed point, yet the iteration from 0 converges, to what the block reaches.
    Faults: gamma = 1.2 makes the map expand (no limit, flagged NaN)."""
    F = math.sqrt(6.0) * torch.eye(3, dtype=DTYPE).expand(3, 3, 3)
    states = torch.tensor([[0, 1, 0, 0, 1, 0, 2], [0, 1, 1, 0, 0, 0, 2], [0, 1, 2, 0, 1, 2, 0]])
    r = torch.tensor([[0.3, -0.2, 0.5, 0.1, -0.4, 0.7]] * 3, dtype=DTYPE)
    g = torch.full((3,), 0.5, dtype=DTYPE)
    fp = sb.window_fixed_point(F, states, r, g)
    assert fp["limit"].all()
    assert (fp["radius"][:2] - 1).abs().max() < 1e-12 and fp["radius"][2] < 1
    X = F[torch.arange(3)[:, None], states]
    V = sb.block_values(X, r, g, 2000)
    b = torch.arange(3)[:, None]
    assert (V[:, -1] - fp["v_inf"][b, states]).abs().max() < 1e-9
    bad = sb.window_fixed_point(F, states, r, torch.full((3,), 1.2, dtype=DTYPE))
    assert not bad["limit"].any() and torch.isnan(bad["v_inf"]).all()
