"""numerics.core.models and numerics.io.models: one interface for the block and the baselines; files
without pickle; the block's file is readable by ``check --weights``."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from numerics.analysis.check import run_check
from numerics.core.block import readout_literal
from numerics.core.constructions import constructed_weights
from numerics.core.distributions import MDPDistribution
from numerics.core.models import INIT_GAIN, build_model
from numerics.core.prompts import assemble_prompt
from numerics.core.stream import Stream
from numerics.core.tolerances import REORDER_RTOL
from numerics.io.models import load_model, load_weights, save_model
from theory.algorithms import get
from theory.errors import InputError


def _prompts(algorithm, B=5, n=4, states=3, actions=2, seed=0):
    record = get(algorithm)
    dist = MDPDistribution(states=states, actions=actions, state_features=(record.features == "state"))
    gen = torch.Generator().manual_seed(seed)
    mdp, F = dist.sample(B, gen)
    frame = Stream(record, mdp, F, n=n, epsilon=0.1, steps={"alpha": 0.2, "beta": 0.2}, gen=gen).next()
    return frame.X, frame.wt, dist.d


@pytest.mark.parametrize("algorithm", ["sarsa", "actor-critic", "td"])
@pytest.mark.parametrize("kind,par", [("lsa", "reduced"), ("lsa", "full"), ("mlp", "reduced"), ("lstm", "reduced")])
def test_models_save_load_round_trip(tmp_path, algorithm, kind, par):
    X, wt, d = _prompts(algorithm)
    model = build_model(kind, algorithm, d, X.shape[1], par, gen=torch.Generator().manual_seed(3), hidden=8
                        if kind != "lsa" else None)
    y = model.readout(X, wt)
    assert y.shape == (X.shape[0], wt.shape[1] - 1) and y.dtype == torch.float64
    path = str(tmp_path / f"{kind}.npz")
    save_model(path, model, {"seed": 3, "loss_curve": [1.0, 0.5]})
    loaded, meta = load_model(path)
    assert meta["seed"] == 3 and meta["model"]["kind"] == kind and meta["loss_curve"] == [1.0, 0.5]
    assert torch.equal(loaded.readout(X, wt), y)
    with np.load(path, allow_pickle=False) as z:      # plain arrays only
        assert all(z[k].dtype.kind == "f" for k in z.files)


def test_models_lsa_file_is_check_weights_format(tmp_path):
    """A saved block is (P, V) in the THEORY.md layout: ``check --weights``
    accepts the saved construction and rejects a saved random block."""
    d = 4
    dist = MDPDistribution(states=2, actions=2)
    model = build_model("lsa", "sarsa", d, 5)
    model.set_weights(*constructed_weights(get("sarsa"), d, {"alpha": 0.2}))
    path = str(tmp_path / "lsa.npz")
    save_model(path, model, {})
    P, V = load_weights(path, get("sarsa").spec.weight_shape(d))
    assert run_check("sarsa", dist, prompts=40, mdps=4, n=5, weights=(P, V)).holds
    save_model(path, build_model("lsa", "sarsa", d, 5), {})
    assert not run_check("sarsa", dist, prompts=40, mdps=4, n=5, weights=load_weights(path, get("sarsa").spec.weight_shape(d))).holds


def test_models_lsa_init_is_section_4_1_xavier():
    """Xavier-normal with gain 0.1 on (P12, Vbar21): empirical std within
    10% of ``0.1 sqrt(2 / (fan_in + fan_out))`` at d = 36; full: never-read blocks zero."""
    d = 36
    m = build_model("lsa", "sarsa", d, 20, gen=torch.Generator().manual_seed(0))
    for W in (m.P12, m.Vbar21):
        want = INIT_GAIN * math.sqrt(2.0 / sum(W.shape))
        assert abs(float(W.detach().std()) / want - 1) < 0.1
    f = build_model("lsa", "sarsa", d, 20, "full", gen=torch.Generator().manual_seed(0))
    P12, Vbar21, P22, Vbar22 = (b.detach() for b in f.blocks())
    assert torch.equal(P12, m.P12) and torch.equal(Vbar21, m.Vbar21)     # same draws as reduced
    assert float(P22.abs().max()) > 0 and float(Vbar22.abs().max()) > 0
    mm = 2 * d + 1
    assert float(f.P.detach()[:, :mm].abs().max()) == 0 and float(f.V.detach()[:mm + 1, :].abs().max()) == 0


def test_models_lsa_readout_is_lemma_c1():
    X, wt, d = _prompts("sarsa")
    m = build_model("lsa", "sarsa", d, X.shape[1], "full", gen=torch.Generator().manual_seed(1))
    want = readout_literal(m.spec, m.P, m.V, assemble_prompt(X, wt), d)
    assert torch.allclose(m.readout(X, wt), want, rtol=0, atol=REORDER_RTOL)


@pytest.mark.parametrize("mutate,field", [
    ("no_meta", "model"), ("bad_shape", "model."), ("missing", "model"), ("pickled", "model"), ("nan", "model."),
])
def test_models_load_rejects_bad_files(tmp_path, mutate, field):
    model = build_model("mlp", "sarsa", 4, 5, hidden=6)
    path = str(tmp_path / "mlp.npz")
    save_model(path, model, {})
    arrays = dict(np.load(path, allow_pickle=False))
    if mutate == "no_meta":
        (tmp_path / "mlp.npz.json").unlink()
    elif mutate == "bad_shape":
        k = next(iter(arrays))
        arrays[k] = np.zeros((2, 2))
        np.savez(path, **arrays)
    elif mutate == "missing":
        arrays.pop(next(iter(arrays)))
        np.savez(path, **arrays)
    elif mutate == "pickled":
        arrays[next(iter(arrays))] = np.array([{"a": 1}], dtype=object)
        np.savez(path, **arrays)
    elif mutate == "nan":
        k = next(iter(arrays))
        arrays[k] = np.full_like(arrays[k], np.nan)
        np.savez(path, **arrays)
    with pytest.raises(InputError) as e:
        load_model(path)
    assert e.value.field.startswith(field)


def test_models_build_rejects_bad_kind():
    for kw, field in [(dict(kind="cnn"), "model"), (dict(parameterization="half"), "parameterization"),
                      (dict(d=0), "d"), (dict(n=0), "context")]:
        args = dict(kind="lsa", algorithm="sarsa", d=4, n=5, parameterization="reduced")
        args.update(kw)
        with pytest.raises(InputError) as e:
            build_model(**args)
        assert e.value.field == field


def test_models_meta_json_is_plain(tmp_path):
    path = str(tmp_path / "lsa.npz")
    save_model(path, build_model("lsa", "sarsa", 3, 4), {"config": {"lr": 1e-3}})
    meta = json.loads((tmp_path / "lsa.npz.json").read_text())
    assert meta["model"] == {"kind": "lsa", "algorithm": "sarsa", "d": 3, "n": 4, "parameterization": "reduced"}
