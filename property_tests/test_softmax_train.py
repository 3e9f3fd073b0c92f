"""Theorem 3 of Xie et al. (2026) under stated readings
(``numerics.analysis.softmax_train``, ``icrl-verify softmax-train``): the
fast masked block against ``forward_layers``, the derivatives against
finite differences, the symmetries, the distances, the verdict rule, and
planted faults that must be reported as not minimisers."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

from numerics.analysis import softmax_train as st
from numerics.commands.cli import main
from numerics.core import softmax as sm


def small(**kw) -> st.TrainConfig:
    base = dict(layers=(2,), n=8, d=3, states=4, mrps=24, inits=2, steps=10, polish=8, tau=8.0)
    base.update(kw)
    return st.TrainConfig(**base)


def drawn(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    return st.sample(cfg, g), st.sample(cfg, g), g


@pytest.mark.parametrize("form", ["one-head", "two-head"])
@pytest.mark.parametrize("tied", [True, False])
def test_fast_masked_block_equals_forward_layers(form, tied):
    """The recursion on the two memory rows equals the full block on the
    full (V, A) that the masked parameters unpack to, at random parameters."""
    cfg = small(form=form)
    s, _, g = drawn(cfg)
    L = 4
    Lp = 1 if tied else L
    theta = 0.6 * torch.randn(Lp, st.per_layer(cfg.d, form), generator=g, dtype=torch.float64)
    a = st.block_values(theta, s, L, form, tied)
    b = st.fast_values(theta, s.X, s.r, s.gamma, L, form, tied)
    assert float((a - b).abs().max()) <= 1e-12 * max(1.0, float(a.abs().max()))
    # planted fault: a different depth is not the same block
    c = st.fast_values(theta, s.X, s.r, s.gamma, L - 1, form, tied)
    assert float((a - c).abs().max()) > 1e-6


def test_unpack_places_the_construction():
    """Theorem 1's (V, A) from numerics.core.softmax is what the family's
    c = alpha = 1 member unpacks to, both forms."""
    for form in sm.FORMS:
        V, A = st.unpack(st.construction_theta(4, 0.7, form)[0], 4, form)
        V0, A0 = sm.construction(4, 0.7, form)
        assert torch.equal(V, V0) and torch.equal(A, A0)


def test_tabular_fixed_point_is_a_zero_gradient_minimiser():
    """gamma = 0, one-hot features with tau = 30 (the equality kernel to
    e^-30): one layer of weighted softmax TD reaches the window's fixed point
    (per-state mean rewards), so the NEU loss of the construction is 0 at
    every depth; its gradient is ~0, and the verdict holds."""
    cfg = small(features="onehot", d=4, states=4, gamma=0.0, tau=30.0, readings=("neu",))
    s, held, g = drawn(cfg)
    sym = st.softmax_symmetries(torch.cat([s.features, held.features]), cfg.d)
    res = st.run_case(cfg, "neu", 2, s, held, sym, g)
    assert res["loss_star"] <= 1e-20
    assert res["grad_norm"] <= 1e-10
    assert res["verdict"] == "holds", res["reasons"]


def test_sign_flip_in_the_v_row_is_not_a_minimiser():
    """Planted fault: the construction with the reward entry's sign flipped
    (alpha [-1, 1, -1]) on the same tabular case has a positive loss, a
    gradient far above its sampling error, and is reported as failing with a
    lower-loss witness."""
    cfg = small(features="onehot", d=4, states=4, gamma=0.0, tau=30.0, readings=("neu",))
    s, held, g = drawn(cfg)
    sym = st.softmax_symmetries(torch.cat([s.features, held.features]), cfg.d)
    star = st.construction_theta(cfg.d, cfg.gamma, cfg.form)
    flipped = star.clone()
    flipped[0, cfg.d * cfg.d] = -1.0
    res = st.run_case(cfg, "neu", 2, s, held, sym, g, star=flipped)
    assert res["loss_star"] > 1e-3
    assert res["grad_norm"] > 3 * res["grad_se"]
    assert res["verdict"] == "fails"
    assert res["witness"] is not None


def test_hessian_equals_finite_differences_through_forward_layers():
    """The fast path's autograd Hessian against central differences of the
    mean loss computed through forward_layers (no shared code below the
    sample), at a random point, both readings."""
    cfg = small(n=5, d=2, states=3, mrps=6, tau=2.0)
    s, _, g = drawn(cfg)
    theta = st.construction_theta(cfg.d, cfg.gamma, cfg.form) + 0.2 * torch.randn(
        1, st.per_layer(cfg.d, cfg.form), generator=g, dtype=torch.float64)
    for reading in st.READINGS:
        H = st.hessian(theta, s, reading, 3, cfg.form, True)
        fd = st.finite_difference_hessian(
            lambda t: float(st.block_losses(t.reshape(1, -1), s, reading, 3, cfg.form).mean()), theta.reshape(-1))
        assert float((H - fd).abs().max()) <= 1e-5 * float(H.abs().max())
        # planted fault: the Hessian of another depth differs from these differences
        H2 = st.hessian(theta, s, reading, 2, cfg.form, True)
        assert float((H2 - fd).abs().max()) > 1e-3 * float(H.abs().max())


def test_per_prompt_curvature_averages_to_the_hessian():
    """The per-prompt second directional derivatives (whose spread gives
    lambda_min's standard error) average to u^T H u; along another direction
    they do not (planted fault)."""
    cfg = small()
    s, _, g = drawn(cfg)
    theta = st.construction_theta(cfg.d, cfg.gamma, cfg.form)
    H = st.hessian(theta, s, "neu", 3, cfg.form, True)
    u = torch.randn(H.shape[0], generator=g, dtype=torch.float64)
    u = u / u.norm()
    mean, se = st.curvature(theta, u, s, "neu", 3, cfg.form, True)
    assert abs(mean - float(u @ H @ u)) <= 1e-10 * float(H.abs().max())
    assert se > 0
    w = torch.roll(u, 1)
    assert abs(st.curvature(theta, w, s, "neu", 3, cfg.form, True)[0] - float(u @ H @ u)) > 1e-6 * float(H.abs().max())


def test_gradient_equals_autograd_through_forward_layers():
    cfg = small()
    s, _, g = drawn(cfg)
    theta = 0.5 * torch.randn(1, st.per_layer(cfg.d, cfg.form), generator=g, dtype=torch.float64)
    for reading in st.READINGS:
        a = st.gradient_stats(theta, s, reading, 3, cfg.form, True)["grad"]
        b = st.block_gradient(theta, s, reading, 3, cfg.form, True)
        assert float((a - b).abs().max()) <= 1e-10 * max(1.0, float(b.abs().max()))


def test_full_gradient_on_the_mask_equals_the_masked_gradient():
    """The unmasked gradient restricted to the masked entries has the norm of
    the masked-class gradient (two computations: the full (V, A) through
    forward_layers, the masked parameters through the fast path)."""
    for form in sm.FORMS:
        cfg = small(form=form)
        s, _, g = drawn(cfg)
        theta = st.construction_theta(cfg.d, cfg.gamma, form)
        full = st.full_gradient(theta, s, "neu", 3, form, True)
        masked = st.gradient_stats(theta, s, "neu", 3, form, True)["norm"]
        assert abs(full["masked"] - masked) <= 1e-10 * max(masked, 1e-300)
        assert full["off_mask"] > 0 and full["norm"] >= full["masked"]


def test_softmax_symmetries_of_one_hot_features_leave_the_block_unchanged():
    """One-hot features: every phi_i . 1 is sqrt(tau), so A + 1 w^T adds
    w . phi_j to column j's scores: d flat directions, and the block's output
    (through forward_layers) does not move along them at a random point.
    Random features on the sphere (d < states) have none; a direction that
    is not a symmetry (the identity) moves the output."""
    cfg = small(features="onehot", d=4, states=4)
    s, _, g = drawn(cfg)
    sym = st.softmax_symmetries(s.features, cfg.d)
    assert sym.shape == (cfg.d, cfg.d * cfg.d)
    theta = 0.5 * torch.randn(1, st.per_layer(cfg.d, cfg.form), generator=g, dtype=torch.float64)
    base = st.block_values(theta, s, 3, cfg.form)
    for row in sym:
        moved = theta.clone()
        moved[0, :cfg.d * cfg.d] += 2.0 * row
        assert float((st.block_values(moved, s, 3, cfg.form) - base).abs().max()) <= 1e-12
    moved = theta.clone()
    moved[0, :cfg.d * cfg.d] += 0.5 * torch.eye(cfg.d, dtype=torch.float64).reshape(-1)
    assert float((st.block_values(moved, s, 3, cfg.form) - base).abs().max()) > 1e-4
    r, _, _ = drawn(small())
    assert st.softmax_symmetries(r.features, 3).shape[0] == 0


def test_distances_quotient_the_symmetries_and_fit_the_family():
    d, gamma, form = 4, 0.5, "one-head"
    cfg = small(features="onehot", d=d, states=d)
    s, _, g = drawn(cfg)
    sym_A = st.softmax_symmetries(s.features, d)
    sym = st.symmetry_basis(sym_A, d, form, 1)
    member = st.construction_theta(d, gamma, form, c=2.0, alpha=0.5)
    moved = member + (3.0 * sym[0]).reshape(1, -1)
    out = st.distances(moved, d, gamma, form, 1, sym)
    assert out["to_family"] <= 1e-12
    assert abs(out["family_c"] - 2.0) <= 1e-12 and abs(out["family_alpha"] - 0.5) <= 1e-12
    star = st.construction_theta(d, gamma, form) + (5.0 * sym[1]).reshape(1, -1)
    assert st.distances(star, d, gamma, form, 1, sym)["to_construction"] <= 1e-12
    # planted fault: a sign flip in the row is far from the family
    off = st.construction_theta(d, gamma, form)
    off[0, d * d] = -1.0
    out = st.distances(off, d, gamma, form, 1, sym)
    assert out["to_family"] > 0.3 and out["to_construction"] > 0.3


def verdict_of(best_loss, se=1e-3, grad=0.0, lam_min=0.1):
    return st.verdict(grad_norm=grad, grad_se=1e-3, grad_scale=1.0, lam_min=lam_min, lam_min_se=1e-3, lam_max=1.0,
                      loss_star=1.0, candidates=[{"name": "init 0", "heldout_loss": best_loss, "heldout_star": 1.0,
                                                  "diff_se": se}])


def test_verdict_rule():
    assert verdict_of(1.0)["verdict"] == "holds"
    assert verdict_of(1.0 - 2e-3)["verdict"] == "holds"          # within 3 standard errors
    beaten = verdict_of(0.9)
    assert beaten["verdict"] == "fails" and beaten["witness"] == "init 0" and not beaten["no_lower_loss"]
    assert verdict_of(1.0, grad=0.1)["verdict"] == "fails"
    assert verdict_of(1.0, lam_min=-0.1)["verdict"] == "fails"
    assert verdict_of(float("nan"))["verdict"] == "holds"         # a NaN candidate is no witness...
    assert verdict_of(1.0, grad=float("nan"))["verdict"] == "fails"   # ...but a NaN gradient is never zero


def test_same_seed_same_numbers():
    cfg = small(readings=("neu",))
    a, b = st.experiment(cfg), st.experiment(cfg)
    for x, y in zip(a["cases"], b["cases"]):
        assert x["loss_star"] == y["loss_star"] and x["grad_norm"] == y["grad_norm"]
        assert x["best_loss"] == y["best_loss"] and torch.equal(x["hessian_eigenvalues"], y["hessian_eigenvalues"])


def test_assumption_margin_refuses_an_impossible_tau():
    with pytest.raises(st.InputError, match="tau"):
        st.sample(small(gamma=0.95, tau=0.01), torch.Generator().manual_seed(0))


def cli(capsys, *args):
    """``icrl-verify softmax-train ARGS`` in this process: (status, stdout, stderr)."""
    status = main(["softmax-train", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.mark.parametrize("args,field", [
    (["--reading", "loss"], "reading"),
    (["--gamma", "1.5"], "gamma"),
    (["--features", "onehot"], "features-dim"),
    (["--tau", "-1"], "tau"),
    (["--layers", "0"], "layers"),
    (["--max-time", "1s"], "max-time"),
])
def test_bad_input_exits_2_with_one_line(args, field, tmp_path, capsys):
    status, _, err = cli(capsys, *args, "--out", str(tmp_path))
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and field in err
    assert not os.listdir(tmp_path)


def test_cli_writes_the_report(tmp_path, capsys):
    status, stdout, err = cli(capsys, "--mrps", "16", "--layers", "2", "--inits", "2", "--steps", "5", "--polish",
                              "3", "--context", "6", "--out", str(tmp_path), "--name", "t", "--json")
    assert status in (0, 1), err
    out = json.loads(stdout.strip().splitlines()[-1])
    assert {c["reading"] for c in out["cases"]} == set(st.READINGS)
    assert out["verdict"] == ("holds" if status == 0 else "fails")
    assert sorted(os.listdir(tmp_path)) == ["t.json", "t.md", "t.png"]
    data = json.loads((tmp_path / "t.json").read_text())
    assert math.isfinite(data["cases"][0]["loss_star"])
    assert "could not be read" in (tmp_path / "t.md").read_text()
