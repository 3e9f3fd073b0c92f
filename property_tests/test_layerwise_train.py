"""Wang et al.'s Figure 2 experiment (numerics.analysis.train.train_layers,
``icrl-verify train --algorithm td-preconditioned``): the measures are right on the exact
construction and see departures from it; the distance to the construction
family is invariant under the layer's symmetries; their objective is
semi-gradient; sliding windows are their prompts; seeds run side by side
exactly as alone; same seed, same numbers; the command writes a report with
95% intervals over seeds and exits by the stated threshold."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from numerics.analysis import train as T
from numerics.commands.cli import main
from numerics.core.mrp import boyan_chains, uniform_features
from numerics.core.tolerances import DTYPE, FIT_RTOL, REORDER_RTOL, VISIBLE_RTOL, WANG_RECOVERY_RTOL
from numerics.core.constructions import preconditioned_weights
from theory import algorithms

SMALL = dict(mrps=6, seeds=2, minibatches=2, steps=8, eval_mrps=3, log_every=3, curve_mrps=2, n=10)


def _construction(cfg, alpha, seeds):
    """The TD(0) construction with C = alpha I per seed, in the trainer's shapes."""
    P1, V1 = preconditioned_weights(algorithms.get("td-preconditioned"), torch.eye(cfg.d, dtype=DTYPE))
    return alpha[:, None, None] * P1, V1.expand(seeds, *V1.shape).clone()


def test_structure_and_family_distance_on_the_construction():
    cfg = T.LayersTrainConfig()
    alpha = torch.tensor([0.7, 1.3], dtype=DTYPE)
    P, V = _construction(cfg, alpha, 2)
    st = T.structure_measures(P, V, cfg.d)
    assert torch.equal(st["written_entry"], torch.ones(2, dtype=DTYPE)) and torch.all(st["others_mean_abs_V"] == 0)
    assert torch.allclose(st["trace_phi_phi"], -cfg.d * alpha) and torch.allclose(st["trace_phi_gphi"], cfg.d * alpha)
    assert torch.all(st["others_mean_abs_P"] == 0)
    D = cfg.D
    assert torch.allclose(st["others_P_theirs"], 2 * cfg.d * alpha / (D * D - 2 * cfg.d))   # their formula: not 0
    fam = T.family_distance(P, V, cfg.d)
    assert torch.all(fam["distance"] == 0) and torch.all(fam["distance_identity"] == 0)
    assert torch.allclose(fam["step"], alpha)


def test_family_distance_is_invariant_under_the_symmetries_and_sees_departures(rng):
    cfg = T.LayersTrainConfig()
    P = torch.randn(3, cfg.D, cfg.D, generator=rng.torch, dtype=DTYPE)
    V = torch.randn(3, cfg.D, cfg.D, generator=rng.torch, dtype=DTYPE)
    base = T.family_distance(P, V, cfg.d)
    for c in (2.5, -0.3):
        other = T.family_distance(c * P, V / c, cfg.d)
        for k in ("distance", "distance_identity", "rel_P", "rel_V"):
            assert torch.allclose(other[k], base[k], rtol=REORDER_RTOL), k
    # a construction plus one off-family entry E in V: rel_V = |E| / |V|
    Pc, Vc = _construction(cfg, torch.ones(1, dtype=DTYPE), 1)
    Vc[0, 0, 1] = 0.5
    fam = T.family_distance(Pc, Vc, cfg.d)
    assert float(fam["rel_V"]) == pytest.approx(0.5 / (1 + 0.25) ** 0.5, rel=REORDER_RTOL)
    assert float(fam["rel_P"]) == 0.0 and float(fam["distance"]) > VISIBLE_RTOL
    # a non-identity preconditioner is in the family but not in the subfamily C = c I
    Pg, Vg = preconditioned_weights(algorithms.get("td-preconditioned"), torch.eye(cfg.d, dtype=DTYPE) + 0.3 * torch.randn(cfg.d, cfg.d, generator=rng.torch,
                                                                                     dtype=DTYPE))
    fam = T.family_distance(Pg[None], Vg[None], cfg.d)
    assert float(fam["distance"]) <= REORDER_RTOL and float(fam["distance_identity"]) > VISIBLE_RTOL


def test_functional_measures_on_the_construction_are_exact(rng):
    """The construction with C = alpha I against batch TD with the same alpha:
    value difference 0, sensitivity and implied-weight similarity 1; another
    alpha is seen."""
    cfg = T.LayersTrainConfig(seeds=2)
    gens = [torch.Generator().manual_seed(s) for s in range(2)]
    F, r, Tm, mu, states = T.draw_chunk(cfg, gens, 4, cfg.n + 2, 1)
    held = (F, r, Tm, mu, states[:, :, 0])
    alpha = torch.tensor([0.8, 1.2], dtype=DTYPE)
    P, V = _construction(cfg, alpha, 2)
    m = T.functional_measures(cfg, P, V, alpha, *held)
    assert torch.all(m["value_difference"] <= REORDER_RTOL)
    assert torch.allclose(m["sensitivity_cosine"], torch.ones(2, dtype=DTYPE), atol=REORDER_RTOL)
    assert torch.allclose(m["implied_weight_cosine"], torch.ones(2, dtype=DTYPE), atol=FIT_RTOL)
    off = T.functional_measures(cfg, P, V, 2 * alpha, *held)
    assert torch.all(off["value_difference"] > VISIBLE_RTOL * 1e-3)


def test_their_objective_is_semi_gradient():
    """The next prompt's value is a detached target: the last prompt gets no
    gradient, the first gets -2 delta_0 / steps."""
    cfg = T.LayersTrainConfig(steps=3)
    v = torch.tensor([[[0.1, -0.2, 0.3, 0.4]]], dtype=DTYPE, requires_grad=True)
    rq = torch.tensor([[[1.0, 0.5, -1.0, 0.0]]], dtype=DTYPE)
    T.mstde(cfg, v, rq).sum().backward()
    delta0 = 1.0 + 0.9 * -0.2 - 0.1
    assert float(v.grad[0, 0, -1]) == 0.0
    assert float(v.grad[0, 0, 0]) == pytest.approx(-2 * delta0 / 3, rel=REORDER_RTOL)


def test_sliding_windows_are_their_prompts(rng):
    """Prompt t: context transitions s_t..s_{t+n}, query s_{t+n+1}, reward of
    the query state r(s_{t+n+1}); consecutive prompts overlap by n - 1."""
    F = uniform_features(1, 10, 4, rng.torch)
    mdp = boyan_chains(1, 10, rng.torch)
    r = mdp.R[:, :, 0, 0]
    states = torch.randint(0, 10, (1, 20), generator=rng.torch)
    n = 5
    win, rq = T.sliding_windows(F, r, states, n, 0.9)
    assert win.batch == 20 - n - 1
    for t in range(win.batch):
        s = states[0, t:t + n + 2]
        assert torch.equal(win.phi[t], F[0, s[:n]]) and torch.equal(win.phi_next[t], F[0, s[1:n + 1]])
        assert torch.equal(win.r[t], r[0, s[:n]]) and torch.equal(win.phi_q[t], F[0, s[n + 1]])
        assert rq[0, t] == r[0, s[n + 1]]


@pytest.fixture(scope="module")
def small_runs():
    a = T.train_layers(T.LayersTrainConfig(seed=0, **SMALL))
    b = T.train_layers(T.LayersTrainConfig(seed=0, **SMALL))
    c = T.train_layers(T.LayersTrainConfig(seed=1000, **SMALL))
    return a, b, c


def test_same_seed_same_numbers_and_seeds_side_by_side_equal_seeds_alone(small_runs):
    a, b, c = small_runs
    assert torch.equal(a["P"], b["P"]) and torch.equal(a["V"], b["V"]) and a["final"] == b["final"]
    # seed index 1 of base seed 0 is seed index 0 of base seed 1000 (its own generators, elementwise Adam)
    assert torch.allclose(a["P"][1], c["P"][0], rtol=0, atol=REORDER_RTOL)
    assert torch.allclose(a["alpha"][1], c["alpha"][0], rtol=0, atol=REORDER_RTOL)


def test_training_result_has_every_measure_with_intervals(small_runs):
    res = small_runs[0]
    keys = {"written_entry", "others_mean_abs_V", "trace_phi_phi", "trace_phi_gphi", "others_mean_abs_P",
            "others_P_theirs", "distance", "distance_identity", "rel_P", "rel_V", "step_implied", "value_difference",
            "sensitivity_cosine", "implied_weight_cosine", "alpha_fitted", "heldout_loss_transformer",
            "heldout_loss_batch_td", "heldout_loss_zero"}
    assert keys <= res["final"].keys()
    for k in keys:
        s = res["final"][k]
        assert len(s["per_seed"]) == 2 and s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    assert res["recovered"] == (res["final"]["distance"]["ci95"][1] < WANG_RECOVERY_RTOL)
    assert [c["mrps"] for c in res["curve"]] == [3, 6]


def test_train_cli_wang_writes_report_and_weights(tmp_path, capsys):
    rc = main(["train", "--algorithm", "td-preconditioned", "--mdps", "4", "--seeds", "2", "--minibatches", "2", "--window-steps",
               "6", "--context", "8", "--eval-mdps", "2", "--log-every", "2", "--out", str(tmp_path / "runs"),
               "--report-dir", str(tmp_path / "rep"), "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == (0 if res["recovered"] else 1)
    assert res["command"].startswith("icrl-verify train --algorithm td-preconditioned --states 10 --features-dim 4 --context 8")
    text = (tmp_path / "rep" / "wang2025-td.md").read_text()
    assert "Reproduce: `icrl-verify train --algorithm td-preconditioned" in text and "95% Student-t interval" in text
    assert "distance to the construction family" in text
    for f in ("wang2025-td.json", "wang2025-td-curves.png", "wang2025-td-weights.png"):
        assert (tmp_path / "rep" / f).exists()
    data = np.load(tmp_path / "runs" / "seed-1.npz")
    assert data["P"].shape == (9, 9) and data["V"].shape == (9, 9)
    rc = main(["check", "--algorithm", "td-preconditioned", "--features-dim", "4", "--mdps", "2", "--context", "8",
               "--weights", str(tmp_path / "runs" / "seed-1.npz"), "--json"])
    assert rc in (0, 1)                                     # the trained weights are a valid input of check
    capsys.readouterr()


@pytest.mark.parametrize("argv, field", [
    (["--algorithm", "rg"], "algorithm"),
    (["--model", "mlp"], "model"),
    (["--seeds", "1"], "seeds"),
    (["--resume"], "resume"),
    (["--gamma", "1.0"], "gamma"),
])
def test_train_cli_wang_bad_input(argv, field, tmp_path, capsys):
    rc = main(["train", "--algorithm", "td-preconditioned", "--mdps", "2", "--out", str(tmp_path / "r"), "--report-dir",
               str(tmp_path / "rep"), *argv])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and f"error: {field}" in err, err
    assert not (tmp_path / "rep").exists()
