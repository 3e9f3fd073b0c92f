"""Wang et al. (ICLR 2025), numerically: ``icrl-verify check --algorithm
td-preconditioned`` (issue 13).

* Acceptance, through the CLI: the TD(0) construction at L = 40, n = 100,
  d = 3 over 30 random MRPs (one generic preconditioner per layer) matches
  the independent loop to 1e-10 relative at every layer; a flipped sign in
  Q (our P), a missing mask and a wrong C (C^T) each exit 1 with a
  counterexample.
* TD(lambda), residual gradient and average-reward TD at the same sizes; tied
  weights; their Figure 2 sizes on Boyan chains.
* The reference loop against independent answers (matrix form, eligibility
  traces, autograd of the Bellman residual, the running mean) and its
  independence (it imports NumPy only).
* MRPs, Boyan chains, windows, prompts, masks; bad input exits 2 with one line.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from numerics.analysis.check import check_against_loop, draw_windows, random_preconditioners
from numerics.commands.cli import main
from numerics import reference as wang_reference
from numerics.core.block import _mask, forward_layers, running_mean
from numerics.core.mdp import evaluate_policy
from numerics.core.mrp import (
    boyan_chains,
    mrp_windows,
    random_mrps,
    sample_trajectories,
    stationary_distribution,
    uniform_features,
)
from numerics.core.tolerances import DTYPE, FEW_OPS_ATOL, REORDER_RTOL, VISIBLE_RTOL, WANG_CHECK_RTOL
from numerics.core.block import readout_entry
from numerics.core.constructions import preconditioned_weights
from numerics.core.prompts import evaluation_prompt
from numerics.reference import batch_td_loop
from numerics.io.models import save_weights
from theory import algorithms
from theory.symbols import lam

ACCEPT = ["--layers", "40", "--context", "100", "--features-dim", "3", "--mdps", "30", "--states", "10",
          "--gamma", "0.9"]


def check(argv, capsys):
    rc = main(["check", "--algorithm", "td-preconditioned", *argv, "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out.strip().splitlines()[-1]), out


@pytest.fixture(scope="module")
def accept_case():
    """30 random MRPs, d = 3, n = 100, 40 untied generic preconditioners."""
    g = torch.Generator().manual_seed(13)
    win = draw_windows("random", 30, 10, 3, 100, 0.9, g)
    return win, random_preconditioners(40, 3, g)


def _write_c(tmp_path, Cs):
    path = str(tmp_path / "C.npz")
    np.savez(path, C=Cs.numpy())
    return path


# ---- acceptance through the command line ----------------------------------------------

def test_check_cli_wang_td_acceptance_and_faults(tmp_path, capsys):
    """Issue 13: the TD(0) construction at L = 40, n = 100, d = 3, 30 random
    MRPs, max relative error <= 1e-10; each planted fault exits 1 with a
    counterexample naming the window, the layer, both values."""
    g = torch.Generator().manual_seed(5)
    Cs = random_preconditioners(40, 3, g)
    cpath = _write_c(tmp_path, Cs)
    rc, res, out = check(ACCEPT + ["--preconditioner", cpath], capsys)
    assert rc == 0 and res["holds"] and res["counterexample"] is None, res
    assert res["prompts"] == 30 and res["layers"] == 40 and res["tied"] is False
    assert res["max_rel_error"] <= WANG_CHECK_RTOL and res["errors"]["untouched"] == 0.0
    assert res["verdict"] == "holds" and 0.0 <= res["worst_error_over_bound"] <= 1.0 and res["divergence"] is None
    assert "HOLDS" in out
    record = algorithms.get("td-preconditioned")
    P, V = preconditioned_weights(record, Cs)
    flipped = P.clone()
    flipped[:, :3, :3] *= -1                                 # -C^T -> +C^T on (phi, phi) of Q (our P)
    faults = {"flipped sign in Q": ["--weights", _save(tmp_path, "flip", flipped, V)],
              "missing mask": ["--mask", "none"],
              "wrong C (C^T)": ["--weights", _save(tmp_path, "ct", *preconditioned_weights(record, Cs.transpose(1, 2)))]}
    for name, extra in faults.items():
        rc, res, out = check(ACCEPT + ["--preconditioner", cpath] + extra, capsys)
        assert rc == 1 and not res["holds"], name
        c = res["counterexample"]
        assert c is not None and c["relative_error"] > VISIBLE_RTOL, (name, c)
        assert abs(c["block"] - c["loop"]) > WANG_CHECK_RTOL * max(1.0, abs(c["loop"]))
        assert "FAILS" in out and "counterexample: window" in out and "--algorithm td-preconditioned" in out, name


def _save(tmp_path, name, P, V):
    path = str(tmp_path / f"{name}.npz")
    save_weights(path, P, V)
    return path


def test_check_cli_defaults_are_their_verification_sizes(capsys):
    """Without options: TD(0), C = I (tied), n = 100, 30 MRPs, 10 states, gamma 0.9."""
    rc, res, _ = check([], capsys)
    cfg = res["config"]
    assert rc == 0 and res["holds"] and res["tied"] is True
    assert (cfg["algorithm"], cfg["context"], cfg["mdps"], cfg["states"], cfg["gamma"], cfg["alpha"]) == \
        ("td-preconditioned", 100, 30, 10, 0.9, 1.0)
    assert res["command"].startswith("icrl-verify check --algorithm td-preconditioned --layers 3")


def test_check_cli_given_value_equal_to_the_paper_default_is_kept(capsys):
    """--gamma 0.5 is the value layouts' default; given explicitly it is used, not replaced by 0.9."""
    rc, res, _ = check(["--gamma", "0.5", "--mdps", "3", "--context", "5"], capsys)
    assert rc == 0 and res["config"]["gamma"] == 0.5 and res["counterexample"] is None


@pytest.mark.parametrize("argv", [
    ["--algorithm", "td-lambda", "--lam", "0.9"],
    ["--algorithm", "rg", "--preconditioner", "random"],
    ["--algorithm", "avg-reward", "--preconditioner", "random"],
    ["--mrp", "boyan", "--features-dim", "4", "--context", "30", "--features", "dense-shared"],
    ["--gamma-range", "0.1", "0.9", "--preconditioner", "random"],
])
def test_check_cli_other_algorithms_and_options_hold(argv, capsys):
    rc, res, _ = check(["--layers", "6", "--mdps", "5", "--context", "20"] + argv, capsys)
    assert rc == 0 and res["holds"], res


# ---- every algorithm at the acceptance sizes (analysis level) ------------------------

@pytest.mark.parametrize("algorithm, lam", [("td-lambda", 0.5), ("rg", None), ("avg-reward", None)])
def test_wang_constructions_equal_the_loop_at_every_layer(accept_case, algorithm, lam):
    win, Cs = accept_case
    res = check_against_loop(algorithm, win, Cs, layers=40, tied=False, lam=lam)
    assert res.holds and res.max_rel_error <= WANG_CHECK_RTOL, res.counterexample
    assert res.errors["untouched"] == 0.0


@pytest.mark.parametrize("algorithm, lam", [("td-preconditioned", None), ("td-lambda", 0.5), ("rg", None), ("avg-reward", None)])
def test_wang_planted_faults_fail(algorithm, lam, rng):
    """A flipped sign, a missing mask, C^T, 2C (and the algorithm's own
    faults) each fail far above the tolerance."""
    win = draw_windows("random", 6, 8, 3, 40, 0.9, rng.torch)
    Cs = random_preconditioners(6, 3, rng.torch)
    record = algorithms.get(algorithm)
    P, V = preconditioned_weights(record, Cs)
    flipped = P.clone()
    flipped[:, :3, :3] *= -1
    faults = {"flip": dict(weights=(flipped, V)), "no mask": dict(mask="none"),
              "C^T": dict(weights=preconditioned_weights(record, Cs.transpose(1, 2))),
              "2C": dict(weights=preconditioned_weights(record, 2 * Cs))}
    if record.direction == "residual":
        faults["TD(0) weights"] = dict(weights=preconditioned_weights(algorithms.get("td-preconditioned"), Cs))
    if len(record.construction.v) > 1:
        dropped = V.clone()
        dropped[:, 0] = 0.0                                   # the running-mean head writes nothing
        faults["running-mean head dropped"] = dict(weights=(P, dropped))
    assert check_against_loop(record, win, Cs, layers=6, tied=False, lam=lam).holds
    for name, kw in faults.items():
        res = check_against_loop(record, win, Cs, layers=6, tied=False, lam=lam, **kw)
        assert not res.holds and res.max_rel_error > VISIBLE_RTOL, name


def test_wang_missing_mask_is_invisible_at_one_layer_and_visible_at_two(rng):
    """The query's carried entry is 0 before layer 1, so a one-layer check
    cannot see a missing mask and a two-layer check can."""
    win = draw_windows("random", 6, 8, 3, 25, 0.9, rng.torch)
    Cs = random_preconditioners(2, 3, rng.torch)
    one = check_against_loop("td-preconditioned", win, Cs[:1], layers=1, tied=False, mask="none")
    two = check_against_loop("td-preconditioned", win, Cs, layers=2, tied=False, mask="none")
    assert one.holds and not two.holds and two.counterexample["layer"] == 2


def test_wang_tied_equals_untied_repeated_and_boyan_figure_2_sizes(rng):
    """Tied weights (one pair looped, their mode 'auto') equal the untied stack
    with the same C; their hard-coded batch TD at Figure 2 sizes (Boyan chain,
    10 states, d = 4, n = 30, 3 layers, C = alpha I) equals 3 loop steps."""
    win = draw_windows("boyan", 20, 10, 4, 30, 0.9, rng.torch)
    C = 0.7 * torch.eye(4, dtype=DTYPE)
    Cs = C.expand(3, 4, 4).clone()
    tied = check_against_loop("td-preconditioned", win, Cs, layers=3, tied=True)
    assert tied.holds, tied.counterexample
    record = algorithms.get("td-preconditioned")
    Z0 = evaluation_prompt(record, win)
    a = forward_layers(record.spec_at(3, True), *preconditioned_weights(record, C), Z0, 4)
    b = forward_layers(record.spec_at(3, False), *preconditioned_weights(record, Cs), Z0, 4)
    assert torch.equal(a, b)


def test_wang_avg_reward_two_heads_equal_one_head_on_centered_rewards(rng):
    """Their two-head layer equals the one-head TD(0) construction with gamma = 1
    on a prompt whose reward row holds r_j - rbar_j."""
    win = draw_windows("random", 6, 8, 3, 30, 0.9, rng.torch)
    Cs = random_preconditioners(8, 3, rng.torch)
    avg, td = algorithms.get("avg-reward"), algorithms.get("td-preconditioned")
    two = readout_entry(avg.layout, forward_layers(avg.spec_at(8, False), *preconditioned_weights(avg, Cs), evaluation_prompt(avg, win), 3))
    rbar = win.r.cumsum(-1) / torch.arange(1, win.n + 1, dtype=DTYPE)
    red = dataclasses.replace(win, r=win.r - rbar, gamma=torch.ones_like(win.gamma))
    one = readout_entry(td.layout, forward_layers(td.spec_at(8, False), *preconditioned_weights(td, Cs), evaluation_prompt(td, red), 3))
    assert float((two - one).abs().max()) <= REORDER_RTOL * max(1.0, float(one.abs().max()))


# ---- the reference loop against independent answers ------------------------------------

def _one(rng, n=12, d=3, L=4):
    win = draw_windows("random", 1, 7, d, n, 0.8, rng.torch)
    Cs = random_preconditioners(L, d, rng.torch).numpy()
    return [x[0].numpy() for x in (win.phi, win.phi_next, win.r, win.phi_q)] + [0.8, Cs]


def test_reference_td0_equals_matrix_form(rng):
    """w_{l+1} = w_l + (1/n) C_l (b - A w_l), A = Phi^T (Phi - gamma Phi'), b = Phi^T r."""
    phi, phin, r, q, gam, Cs = _one(rng)
    tr = batch_td_loop(phi, phin, r, q, gam, Cs)
    A, b, w = phi.T @ (phi - gam * phin), phi.T @ r, np.zeros(3)
    for lay, C in enumerate(Cs):
        w = w + C @ (b - A @ w) / len(r)
        assert np.allclose(tr.w[lay + 1], w, rtol=REORDER_RTOL, atol=FEW_OPS_ATOL)
        assert np.allclose(tr.value[lay + 1], w @ q, rtol=REORDER_RTOL, atol=FEW_OPS_ATOL)


def test_reference_td_lambda_traces(rng):
    """lambda = 0 is TD(0); otherwise the update uses E = Lambda Phi,
    Lambda_ij = lambda^(i-j) (j <= i)."""
    phi, phin, r, q, gam, Cs = _one(rng)
    assert np.array_equal(batch_td_loop(phi, phin, r, q, gam, Cs).w,
                          batch_td_loop(phi, phin, r, q, gam, Cs, "trace", lam=0.0).w)
    lam, n = 0.7, len(r)
    tr = batch_td_loop(phi, phin, r, q, gam, Cs, "trace", lam=lam)
    i = np.arange(n)
    E = np.where(i[:, None] >= i[None, :], lam ** np.clip(i[:, None] - i[None, :], 0, None), 0.0) @ phi
    w = np.zeros(3)
    for lay, C in enumerate(Cs):
        w = w + C @ (E.T @ (r + gam * phin @ w - phi @ w)) / n
        assert np.allclose(tr.w[lay + 1], w, rtol=REORDER_RTOL, atol=FEW_OPS_ATOL)


def test_reference_rg_is_gradient_descent_on_the_bellman_residual(rng):
    """RG: w_{l+1} = w_l - C_l grad_w (1/2n) sum_j delta_j(w)^2 (autograd)."""
    phi, phin, r, q, gam, Cs = _one(rng)
    tr = batch_td_loop(phi, phin, r, q, gam, Cs, "residual")
    for lay, C in enumerate(Cs):
        w = torch.tensor(tr.w[lay], requires_grad=True)
        delta = torch.tensor(r) + gam * torch.tensor(phin) @ w - torch.tensor(phi) @ w
        (0.5 * (delta ** 2).mean()).backward()
        assert np.allclose(tr.w[lay + 1], tr.w[lay] - C @ w.grad.numpy(), rtol=REORDER_RTOL, atol=FEW_OPS_ATOL)


def test_reference_avg_reward_is_td0_on_centered_rewards(rng):
    phi, phin, r, q, _, Cs = _one(rng)
    rbar = np.array([r[:j + 1].mean() for j in range(len(r))])
    a = batch_td_loop(phi, phin, r, q, 0.3, Cs, centered=True)           # gamma ignored
    b = batch_td_loop(phi, phin, r - rbar, q, 1.0, Cs)
    assert np.allclose(a.w, b.w, rtol=REORDER_RTOL, atol=FEW_OPS_ATOL)


def test_reference_imports_numpy_only():
    """The reference shares no code with what it checks: the module imports NumPy and, for a user's
    per-transition rule, ``theory.rules`` (the rule algebra, no block code); the batch-TD loop reads
    neither."""
    with open(wang_reference.__file__) as fh:
        tree = ast.parse(fh.read())
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module + ("." + n.names[0].name if n.module == "theory" else "")
             for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert mods <= {"numpy", "dataclasses", "__future__", "theory.rules"}, mods
    loop = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "batch_td_loop")
    names = {n.id for n in ast.walk(loop) if isinstance(n, ast.Name)}
    assert "rules" not in names and "np" in names


# ---- MRPs, windows, prompts, masks ---------------------------------------------------------

def test_boyan_chain_structure(rng):
    mdp = boyan_chains(50, 10, rng.torch)
    T = mdp.T[:, :, 0, :]
    assert torch.allclose(T.sum(-1), torch.ones(50, 10, dtype=DTYPE), atol=FEW_OPS_ATOL)
    for i in range(8):
        assert torch.allclose(T[:, i, i + 1] + T[:, i, i + 2], torch.ones(50, dtype=DTYPE), atol=FEW_OPS_ATOL)
        assert torch.all((T[:, i, i + 1] >= 0.01) & (T[:, i, i + 1] <= 0.99)) and int((T[:, i] > 0).sum(-1).max()) == 2
    assert torch.all(T[:, 8, 9] == 1.0) and torch.all(T[:, 9] > 0) and torch.all(mdp.rho0 > 0)
    r = mdp.R[:, :, 0, 0]
    assert torch.all(mdp.R == r[:, :, None, None].expand_as(mdp.R)) and torch.all(r.abs() <= 1)


def test_boyan_representable_value_is_features_times_w(rng):
    F = uniform_features(5, 10, 4, rng.torch)
    mdp = boyan_chains(5, 10, rng.torch, 0.9, features=F, representable=True)
    V, _ = evaluate_policy(mdp, torch.ones(5, 10, 1, dtype=DTYPE))
    w = torch.linalg.lstsq(F, V.unsqueeze(-1)).solution
    assert float((F @ w - V.unsqueeze(-1)).abs().max()) <= REORDER_RTOL * max(1.0, float(V.abs().max()))


def test_stationary_distribution_and_trajectories(rng):
    mdp = boyan_chains(5, 10, rng.torch)
    pi = stationary_distribution(mdp)
    T = mdp.T[:, :, 0, :]
    assert torch.allclose((pi.unsqueeze(1) @ T).squeeze(1), pi, atol=REORDER_RTOL) and torch.all(pi > 0)
    one = random_mrps(1, 4, rng.torch)
    S = sample_trajectories(one, 40_000, rng.torch)[0]
    counts = torch.zeros(4, 4, dtype=DTYPE)
    counts.index_put_((S[:-1], S[1:]), torch.ones(len(S) - 1, dtype=DTYPE), accumulate=True)
    visits = counts.sum(-1, keepdim=True)
    T1 = one.T[0, :, 0, :]
    se = (T1 * (1 - T1) / visits).sqrt()
    assert torch.all((counts / visits - T1).abs() <= 6 * se + FEW_OPS_ATOL)   # 6 standard errors


def test_windows_and_prompt_layout(rng):
    """Context j: phi(s_j), gamma phi(s_{j+1}), R(s_j, s_{j+1}); query phi(s_{n+1}), zeros below."""
    F = uniform_features(3, 6, 2, rng.torch)
    mdp = random_mrps(3, 6, rng.torch, gamma=0.8)
    win = mrp_windows(mdp, F, 7, rng.torch)
    Z = evaluation_prompt(algorithms.get("td-preconditioned"), win)
    for b in range(3):
        s = win.states[b]
        for j in range(7):
            assert torch.equal(Z[b, :2, j], F[b, s[j]]) and torch.equal(Z[b, 2:4, j], 0.8 * F[b, s[j + 1]])
            assert Z[b, 4, j] == mdp.R[b, s[j], 0, s[j + 1]]
        assert torch.equal(Z[b, :2, 7], F[b, s[8]]) and torch.all(Z[b, 2:, 7] == 0)
    Za = evaluation_prompt(algorithms.get("avg-reward"), win)
    assert Za.shape == (3, 6, 8) and torch.equal(Za[:, 2:4, :7], win.phi_next.transpose(1, 2))
    assert torch.all(Za[:, 5] == 0)


def test_masks_and_running_mean():
    like = torch.zeros(1, dtype=DTYPE)
    assert torch.equal(_mask(algorithms.get("td-preconditioned").spec_at(1), 4, like), torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=DTYPE))
    Ml = _mask(algorithms.get("td-lambda").spec_at(1, lam_value=0.5), 4, like)
    assert torch.equal(Ml, torch.tensor([[1, 0, 0, 0], [0.5, 1, 0, 0], [0.25, 0.5, 1, 0], [0, 0, 0, 0]], dtype=DTYPE))
    Z = torch.tensor([[1.0, 3.0, 8.0]], dtype=DTYPE)
    assert torch.allclose(Z @ running_mean(3, like), torch.tensor([[0.0, -1.0, -4.0]], dtype=DTYPE), atol=FEW_OPS_ATOL)


# ---- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, field", [
    (["--layout", "wang2025", "--algorithm", "sarsa"], "algorithm"),
    (["--gamma", "1.0"], "gamma"),
    (["--algorithm", "td-lambda", "--lam", "1.5"], "lam"),
    (["--features", "onehot"], "features"),
    (["--mrp", "boyan", "--states", "1"], "states"),
    (["--preconditioner", "missing.npz"], "preconditioner"),
    (["--weights", "missing.npz"], "weights"),
    (["--mdp", "x.npz"], "mdp"),
])
def test_check_cli_wang_bad_input(argv, field, capsys):
    rc = main(["check", "--algorithm", "td-preconditioned", "--mdps", "2", "--context", "4", *argv])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and f"error: {field}" in err, err


def test_check_cli_wang_bad_weight_and_preconditioner_shapes(tmp_path, capsys):
    good = _save(tmp_path, "good", torch.zeros(7, 7, dtype=DTYPE), torch.zeros(7, 7, dtype=DTYPE))
    bad_v = _save(tmp_path, "badv", torch.zeros(7, 7, dtype=DTYPE), torch.zeros(3, 7, 7, dtype=DTYPE))
    bad_l = _save(tmp_path, "badl", torch.zeros(2, 7, 7, dtype=DTYPE), torch.zeros(2, 7, 7, dtype=DTYPE))
    np.savez(tmp_path / "c.npz", C=np.eye(2))
    for argv, field in ((["--weights", bad_v], "weights.V"), (["--weights", bad_l], "weights.P"),
                        (["--weights", good, "--preconditioner", str(tmp_path / "c.npz")], "preconditioner.C")):
        rc = main(["check", "--algorithm", "td-preconditioned", "--mdps", "2", "--context", "4", *argv])
        out, err = capsys.readouterr()
        assert rc == 2 and out == "" and f"error: {field}" in err, err
    assert os.path.exists(good)
