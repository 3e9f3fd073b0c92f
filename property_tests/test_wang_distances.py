"""Issue 21's distances for Wang et al.'s trained weights
(numerics.analysis.distances): each measure right where the answer is known
and seeing a planted departure.  The function-space reference (batch TD with
a matrix preconditioner in weight space) is checked against the block run on
the construction's weights; its Jacobian against autograd; the fit recovers a
generic C from a poor start; the gamma phi' diagonals' share is 1 when they
are the only departure and 0 when they are not touched; the seed average of
seeds equal up to the symmetries is each seed; training snapshots are the
shorter runs."""
from __future__ import annotations

import pytest
import torch

from numerics.analysis import distances as Dm
from numerics.analysis import train as T
from numerics.core.constructions import preconditioned_weights
from numerics.core.tolerances import DTYPE, FIT_RTOL, REORDER_RTOL, VISIBLE_RTOL, WANG_CONVERGED_DISTANCE
from theory import algorithms

SMALL = dict(seeds=2, eval_mrps=16, steps=16, n=10)        # 272 held-out prompts per seed against 16 entries of C


def _cfg(**kw):
    return T.LayersTrainConfig(**(SMALL | kw))


def _generic_C(rng, d, *lead):
    return torch.eye(d, dtype=DTYPE) + 0.3 * torch.randn(*lead, d, d, generator=rng.torch, dtype=DTYPE) / d ** 0.5


def _construction(cfg, C):
    """The TD(0) construction with preconditioner C (``d x d``) in every seed, trainer shapes."""
    P, V = preconditioned_weights(algorithms.get("td-preconditioned"), C)
    return P.expand(cfg.seeds, *P.shape).clone(), V.expand(cfg.seeds, *V.shape).clone()


@pytest.fixture(scope="module")
def held():
    return T.heldout_draws(_cfg())


def test_weight_space_member_is_the_block_on_the_construction(rng, held):
    """v_C (weight space, never the block) equals the block run on the
    construction's weights, tied and one C per layer."""
    cfg = _cfg()
    win, Z = Dm.heldout_windows(cfg, held)
    C = _generic_C(rng, cfg.d)
    P, V = _construction(cfg, C)
    v = T.values(cfg, P, V, Z).reshape(-1)
    assert torch.allclose(Dm.preconditioned_td_values(win, C, cfg.layers), v, rtol=0, atol=REORDER_RTOL * v.abs().max())
    Cs = _generic_C(rng, cfg.d, cfg.layers)
    cfg_u = _cfg(tied=False)
    Pu, Vu = preconditioned_weights(algorithms.get("td-preconditioned"), Cs)
    Pu, Vu = Pu[:, None].expand(-1, 2, -1, -1), Vu[:, None].expand(-1, 2, -1, -1)
    vu = T.values(cfg_u, Pu, Vu, Z).reshape(-1)
    assert torch.allclose(Dm.preconditioned_td_values(win, Cs, cfg.layers), vu, rtol=0,
                          atol=REORDER_RTOL * vu.abs().max())
    # a wrong C is seen
    assert (Dm.preconditioned_td_values(win, C.T, cfg.layers) - v).abs().max() > VISIBLE_RTOL * v.abs().max()


@pytest.mark.parametrize("K", [1, 3])
def test_adjoint_jacobian_equals_autograd(rng, held, K):
    cfg = _cfg()
    win = Dm._seed_windows(Dm.heldout_windows(cfg, held)[0], 16, 0)              # 34 windows
    C = _generic_C(rng, cfg.d, K)
    b, M = Dm.td_terms(win)
    v, J = Dm.td_values_and_jacobian(b, M, win.phi_q, C, cfg.layers)
    f = lambda t: Dm.preconditioned_td_values(win, t.reshape(C.shape) if K > 1 else t.reshape(cfg.d, cfg.d),
                                              cfg.layers)
    assert torch.allclose(v, f(C.reshape(-1)), rtol=0, atol=REORDER_RTOL * v.abs().max())
    Ja = torch.func.jacrev(f)(C.reshape(-1))
    assert torch.allclose(J, Ja, rtol=0, atol=REORDER_RTOL * Ja.abs().max())
    assert Dm.td_values_and_jacobian(b, M, win.phi_q, C, cfg.layers, jacobian=False)[1] is None


def test_fit_recovers_a_generic_preconditioner_from_a_poor_start(rng, held):
    cfg = _cfg()
    win, _ = Dm.heldout_windows(cfg, held)
    w = Dm._seed_windows(win, cfg.seeds, 0)
    C = _generic_C(rng, cfg.d)
    target = Dm.preconditioned_td_values(w, C, cfg.layers)
    Cfit, rel = Dm.fit_preconditioner(w, target, cfg.layers, [torch.eye(cfg.d, dtype=DTYPE)[None]])
    assert rel < FIT_RTOL
    # the identity subfamily cannot fit a generic C
    assert Dm.fit_preconditioner(w, target, cfg.layers, [torch.eye(cfg.d, dtype=DTYPE)[None]],
                                 identity=True)[1] > VISIBLE_RTOL


def test_function_distance_zero_on_the_construction_large_on_a_corrupted_block(rng, held):
    cfg = _cfg()
    C = _generic_C(rng, cfg.d)
    P, V = _construction(cfg, C)
    alpha = torch.ones(cfg.seeds, dtype=DTYPE)
    out = Dm.learned_distances(cfg, P, V, alpha, held)
    assert max(out["function_distance"]["per_seed"]) < FIT_RTOL
    assert max(out["weight_distance"]["per_seed"]) <= REORDER_RTOL
    assert out["split"]["converged"]["seeds"] == [0, 1] and out["split"]["not_converged"]["seeds"] == []
    assert out["diagonal_share"]["per_seed"] == [0.0, 0.0] and out["zeroing_change_percent"]["per_seed"] == [0.0, 0.0]
    assert "weight distance" in out["threshold_applies_to"]
    # corrupted: V's reward row also reads the phi rows (the query's written entry picks up attention-weighted
    # features): no member of the family computes that
    Vb = V.clone()
    Vb[:, -1, :cfg.d] = 0.5
    bad = Dm.learned_distances(cfg, P, Vb, alpha, held)
    assert min(bad["function_distance"]["per_seed"]) > 0.1
    assert all(x <= 1 for x in bad["function_distance"]["per_seed"])            # C = 0 is in the family


def test_diagonal_share_is_one_when_the_diagonals_are_the_only_departure(rng, held):
    cfg = _cfg()
    C = _generic_C(rng, cfg.d)
    P, V = _construction(cfg, C)
    mask = Dm.gphi_diagonals(cfg.record.layout, cfg.d)
    g0 = cfg.d                                                       # gphi_next rows follow the phi rows
    assert mask.sum() == 2 * cfg.d and all(mask[g0 + i, i] and mask[g0 + i, g0 + i] for i in range(cfg.d))
    win, Z = Dm.heldout_windows(cfg, held)
    v_c = T.values(cfg, P, V, Z)
    Vd = V + 0.4 * mask.to(DTYPE) * torch.randn(cfg.seeds, cfg.D, cfg.D, generator=rng.torch, dtype=DTYPE)
    v = T.values(cfg, P, Vd, Z)
    m = Dm.diagonal_measures(cfg, P, Vd, Z, v)
    assert torch.allclose(torch.as_tensor(m["diagonal_share"]), torch.ones(2, dtype=DTYPE), rtol=0, atol=REORDER_RTOL)
    # zeroing them gives back the construction's outputs: the change is |v_c - v| / |v|
    want = 100 * (v_c - v).norm(dim=-1) / v.norm(dim=-1)
    assert torch.allclose(torch.as_tensor(m["zeroing_change"]), want, rtol=REORDER_RTOL)
    assert min(m["zeroing_change"]) > 1
    # a departure elsewhere (V's phi rows): share 0, zeroing changes nothing
    Ve = V.clone()
    Ve[:, 0, 1] = 0.3
    e = Dm.diagonal_measures(cfg, P, Ve, Z, T.values(cfg, P, Ve, Z))
    assert e["diagonal_share"].tolist() == [0.0, 0.0] and e["zeroing_change"].tolist() == [0.0, 0.0]


def test_seed_average_of_seeds_equal_up_to_symmetry_is_each_seed(rng):
    d, D = 4, 9
    P1 = torch.randn(D, D, generator=rng.torch, dtype=DTYPE)
    V1 = torch.randn(D, D, generator=rng.torch, dtype=DTYPE)
    cs = torch.tensor([1.0, -2.0, 0.3, 5.0], dtype=DTYPE)
    P, V = cs[:, None, None] * P1, V1 / cs[:, None, None]
    one = float(T.family_distance(P1[None], V1[None], d)["distance"])
    avg = Dm.seed_average_distance(P, V, d, resamples=50)
    assert avg["distance"] == pytest.approx(one, rel=REORDER_RTOL)
    assert avg["ci95"] == pytest.approx([one, one], rel=REORDER_RTOL)
    Pc, Vc = Dm.canonical(P, V)
    assert torch.allclose(Pc, Pc[:1].expand_as(Pc), rtol=REORDER_RTOL) and torch.allclose(Vc, Vc[:1].expand_as(Vc),
                                                                                           rtol=REORDER_RTOL)
    # without removing the sign, two seeds of opposite sign cancel to zero weights; the canonical form keeps them
    Ps, Vs = torch.stack([P1, -P1]), torch.stack([V1, -V1])
    assert torch.all(Ps.mean(0) == 0) and torch.all(Vs.mean(0) == 0)
    assert Dm.seed_average_distance(Ps, Vs, d, resamples=10)["distance"] == pytest.approx(one, rel=REORDER_RTOL)
    # the construction averaged with a random seed is neither; untied stacks average per layer
    Pk, Vk = preconditioned_weights(algorithms.get("td-preconditioned"), _generic_C(rng, d))
    mixed = Dm.seed_average_distance(torch.stack([Pk, P1]), torch.stack([Vk, V1]), d, resamples=10)["distance"]
    assert VISIBLE_RTOL < mixed < one - VISIBLE_RTOL
    Pu, Vu = torch.stack([P, 2 * P]), torch.stack([V, V / 2])           # L = 2 x seeds x D x D
    layers = torch.stack([P1, 2 * P1])[:, None], torch.stack([V1, V1 / 2])[:, None]
    two = float(T.family_distance(*layers, d)["distance"])
    assert Dm.seed_average_distance(Pu, Vu, d, resamples=10)["distance"] == pytest.approx(two, rel=REORDER_RTOL)


def test_split_by_the_converged_threshold():
    t = WANG_CONVERGED_DISTANCE
    s = Dm.split_converged([t - 0.2, t + 0.05, t, t - 0.1])
    assert s["converged"]["seeds"] == [0, 3] and s["not_converged"]["seeds"] == [1, 2]
    assert s["converged"]["mean"] == pytest.approx(t - 0.15) and s["not_converged"]["ci95"][0] <= t + 0.025
    one = Dm.split_converged([t - 0.2, t + 0.1])
    assert one["converged"]["ci95"] is None and one["converged"]["mean"] == pytest.approx(t - 0.2)


def test_snapshots_are_the_shorter_runs(monkeypatch):
    """A snapshot at a multiple of LAYERS_CHUNK is the run of that many MRPs
    (the data are drawn in chunks; here chunks of 2)."""
    monkeypatch.setattr(T, "LAYERS_CHUNK", 2)
    kw = dict(seeds=2, minibatches=1, steps=4, eval_mrps=2, log_every=2, curve_mrps=1, n=6)
    long = T.train_layers(T.LayersTrainConfig(mrps=4, **kw), snapshots=(2,))
    short = T.train_layers(T.LayersTrainConfig(mrps=2, **kw))
    assert set(long["snapshots"]) == {2} and "snapshots" not in short
    assert torch.equal(long["snapshots"][2]["P"], short["P"]) and torch.equal(long["snapshots"][2]["V"], short["V"])
    assert not torch.equal(long["P"], short["P"])
