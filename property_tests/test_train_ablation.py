"""numerics.ablation: the richness ablation measures where trained weights
end up, split along the extra kernel of H_L (the data invariances)."""
from __future__ import annotations

import json

import pytest
import torch

from numerics.analysis.ablation import (
    ABLATION_SCALE,
    classify_run,
    consistent,
    invariance_component,
    richness_and_kernel,
)
from numerics.analysis.hessian import split_reduced
from numerics.analysis.train import TrainConfig
from numerics.commands.cli import main
from numerics.core.constructions import constructed_blocks
from numerics.core.tolerances import FIT_RTOL, STRUCTURE_RECOVERY_RTOL
from theory.algorithms import get

SMALL = TrainConfig(**{**ABLATION_SCALE, "states": 2, "actions": 2, "mdps": 320, "frames": 20})


@pytest.fixture(scope="module")
def onehot_kernel():
    cfg = TrainConfig(**{**ABLATION_SCALE, "states": 2, "actions": 2, "features": "onehot"})
    return richness_and_kernel(cfg, sample_mdps=60, sample_frames=10)


def test_train_ablation_onehot_fixed_gamma_has_2d_plus_1_invariances(onehot_kernel):
    """THEORY.md section 5: one-hot features with one fixed gamma: 2d+1 data
    invariances (d = 4: 9), verdict morse-bott; the extra kernel has that dimension."""
    rich, basis = onehot_kernel
    assert rich["verdict"] == "morse-bott" and rich["data_invariance_dim"] == 9 and basis.shape[1] == 9


def test_train_ablation_offset_along_invariances_is_recognised(onehot_kernel):
    """A rescaled construction moved along the invariances: everything is
    'along the extra kernel'; moved off it (a wrong alpha): the rest is large."""
    _, basis = onehot_kernel
    P12s, Vbar21s = constructed_blocks(get("sarsa"), 4, {"alpha": 0.2})
    m, p = P12s.shape
    dP, dV = split_reduced(torch.as_tensor(basis.T), m, p)
    a = torch.linspace(-0.5, 0.5, basis.shape[1], dtype=torch.float64)
    c = -0.6
    P = c * (P12s + (dP * a[:, None, None]).sum(0))
    V = (Vbar21s + (dV * a[:, None, None]).sum(0)) / c
    from numerics.analysis.manifold import distance_to_manifold
    rel, cfit = distance_to_manifold(P, V, P12s, Vbar21s)
    comp = invariance_component(P, V, cfit, P12s, Vbar21s, basis)
    assert rel > STRUCTURE_RECOVERY_RTOL and comp["other_component"] < FIT_RTOL and abs(comp["fit_c"] - c) < FIT_RTOL
    run = dict(distance_to_manifold=rel, final_loss=0.0, identity_loss=1.0, **comp)
    assert classify_run(run) == "invariance"
    wrong = invariance_component(c * P12s, 2 * Vbar21s / c, c, P12s, Vbar21s, basis)
    assert wrong["other_component"] > STRUCTURE_RECOVERY_RTOL


def test_train_ablation_consistency_can_fail():
    """A zero-loss end point off M* outside the extra kernel, or an identifiable
    distribution ending along an extra kernel, makes the ablation inconsistent."""
    ok = dict(distance_to_manifold=0.01, other_component=0.01, invariance_component=0.0, final_loss=0.0,
              identity_loss=1.0)
    bad = dict(ok, distance_to_manifold=0.3, other_component=0.3, final_loss=1e-9)
    slow = dict(bad, final_loss=1e-3)
    along = dict(ok, distance_to_manifold=0.3, other_component=0.01, invariance_component=0.3)
    assert [classify_run(r) for r in (ok, bad, slow, along)] == ["on-manifold", "contradiction", "not-converged",
                                                                 "invariance"]
    row = lambda verdict, runs: {"rows": [dict(verdict=verdict, runs=runs)]}
    assert consistent(row("identifiable", [ok, slow])) and consistent(row("morse-bott", [along]))
    assert not consistent(row("morse-bott", [bad])) and not consistent(row("identifiable", [along]))


def test_train_ablation_small_run_separates_narrow_from_rich(tmp_path, capsys):
    """Narrow (one-hot, fixed gamma) ends off M* along its invariances;
    Section 4.1's dense-per-MDP features end on M* (d = 4, a short run)."""
    rc = main(["ablation", "--states", "2", "--actions", "2", "--mdps", "640", "--frames", "40", "--seeds", "1",
               "--lr", "2e-2", "--lr-decay", "0.85", "--distributions", "onehot-fixed-gamma", "section-4.1",
               "--out", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {r["name"]: r for r in out["rows"]}
    narrow, rich = rows["onehot-fixed-gamma"], rows["section-4.1"]
    assert narrow["verdict"] == "morse-bott" and rich["verdict"] == "identifiable"
    assert classify_run(rich["runs"][0]) == "on-manifold"
    assert classify_run(narrow["runs"][0]) == "invariance"
    assert rc == 0 and out["consistent"]
    text = (tmp_path / "ablation.md").read_text()
    assert "Reproduce: `icrl-verify ablation" in text and (tmp_path / "ablation.png").exists()


def test_train_ablation_bad_input_exits_2(capsys, tmp_path):
    rc = main(["ablation", "--distributions", "everything", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "distributions" in err[0]
    assert not (tmp_path / "ablation.md").exists()


_ABLATION_CODE = """
import json
from numerics.analysis.ablation import run_ablation
print(json.dumps(run_ablation(seeds=(0,), distributions=["onehot-fixed-gamma", "dense-shared"])))
"""


def test_ablation_gives_the_same_numbers_under_one_and_two_threads():
    """Issue 19: the ablation (the claims' ``referee-experiments`` evidence,
    at its default scale) in two processes, ``OMP_NUM_THREADS`` and torch at
    1 and 2 threads: every number equal to 1e-9 relative.  Before the fitted
    ``c'`` was the root of the residual's slope it was the argmin of the
    (flat) residual, and dense-shared's ``fit_c`` and
    ``invariance_component`` moved by 9e-8 between the two."""
    from property_tests.test_flow_rate import _assert_same_numbers, run_with_threads

    out = [json.loads(run_with_threads(t, _ABLATION_CODE).stdout.strip().splitlines()[-1]) for t in (1, 2)]
    _assert_same_numbers(out[0], out[1], least=10)
