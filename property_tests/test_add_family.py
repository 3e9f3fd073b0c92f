"""Adding an MDP family is one file (issue 20; docs/architecture.md, "How to
add an MDP family").

``property_tests/family_example.py`` is written as a module of
``numerics/io/families/``.  Here it is (a) dropped into the package's search
path as ``ring.py`` and discovered like a built-in family: ``--family ring``
with its parameter ``--ring-states`` (flag, ``--help``, configuration key,
size guard, bad value) works in ``richness`` with no other edit; and (b)
imported as a user's module and trained with ``train --seeds 2`` in two
spawned worker processes, which receive the family by value inside the
training configuration and give the same numbers as one process.
"""
from __future__ import annotations

import importlib
import json
import os
import pickle
import shutil
import sys

import numpy as np
import pytest
import torch

from numerics.analysis.train import TrainConfig
from numerics.commands import cells
from numerics.commands.cli import main
from numerics.io import families
from numerics.io.mdp_batch import mdp_from_arrays
from numerics.io.sources import MDPSource
from theory import algorithms
from theory.errors import InputError

HERE = os.path.dirname(os.path.abspath(__file__))
TINY_RICHNESS = ["--mdps", "20", "--frames", "10", "--bootstrap", "0", "--json"]


@pytest.fixture
def ring_in_package(tmp_path):
    """``family_example.py`` as ``numerics/io/families/ring.py``: a folder
    added to the package's path, then the package's own discovery."""
    folder = tmp_path / "families"
    folder.mkdir()
    shutil.copy(os.path.join(HERE, "family_example.py"), folder / "ring.py")
    families.__path__.append(str(folder))
    try:
        families._discover()
        yield families.get("ring")
    finally:
        families.__path__.remove(str(folder))
        families.unregister("ring")
        sys.modules.pop("numerics.io.families.ring", None)


@pytest.fixture
def users_ring():
    """The same family imported as a user's module (registered on import)."""
    module = importlib.import_module("property_tests.family_example")
    families.register(module.FAMILY)
    yield module.FAMILY
    families.unregister("ring")


def test_every_module_of_the_package_is_one_registered_family():
    """The built-in families are exactly the package's modules: a file is all
    a family needs to be found."""
    folder = os.path.dirname(families.__file__)
    modules = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and f != "__init__.py")
    assert sorted(families.names()[1:]) == modules
    for name in modules:
        assert families.get(name).generate.__module__ == f"numerics.io.families.{name}"


def test_the_ring_generator_gives_valid_seeded_mdps(users_ring):
    ring = users_ring.generate
    a, b, c = ring(3, 4, states=4), ring(3, 4, states=4), ring(4, 4, states=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in ("T", "R"))
    mdp, F = mdp_from_arrays(a, "ring")                     # the batch checks: rows sum to 1, shapes, ...
    assert (mdp.states, mdp.actions, F.shape[-1]) == (4, 2, 8)


def test_a_family_file_in_the_package_runs_richness(ring_in_package, tmp_path, capsys):
    assert "ring" in families.names()
    rc = main(["richness", "--family", "ring", "--ring-states", "3", *TINY_RICHNESS, "--out", str(tmp_path / "r")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc in (0, 1) and out["verdict"] in ("identifiable", "morse-bott", "fails")
    with open(out["report"]) as fh:
        cfg = json.loads(fh.read().split("Config: `", 1)[1].split("`", 1)[0])
    assert cfg["source"]["family"] == "ring" and cfg["source"]["family_params"] == {"states": 3}
    assert (cfg["source"]["states"], cfg["source"]["actions"], cfg["source"]["features_dim"]) == (3, 2, 6)
    assert os.path.basename(out["report"]) == "sarsa-ring-reduced.md"
    # the same source built in code gives the same verdict and mu
    src = MDPSource.of_family("ring", gamma=0.5, states=3)
    assert src.describe().startswith("family ring (states 3, gamma 0.5), 3 states, 2 actions, d = 6")


def test_the_family_parameter_is_an_option_a_config_key_and_guarded(ring_in_package, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["richness", "--help"])
    assert "--ring-states" in capsys.readouterr().out
    config = tmp_path / "ring.toml"
    config.write_text('family = "ring"\nring-states = 3\nmdps = 20\nframes = 10\nbootstrap = 0\n')
    assert main(["richness", "--config", str(config), "--json", "--out", str(tmp_path / "c")]) in (0, 1)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["report"].endswith("sarsa-ring-reduced.md")
    for argv, needle in ((["--ring-states", "1"], "--ring-states: must be at least 2"),
                         (["--ring-states", "10000000000"], "max-memory: one MDP of family ring")):
        rc = main(["richness", "--family", "ring", *argv, "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(InputError, match="ring has no parameter 'size'"):
        MDPSource.of_family("ring", gamma=0.5, size=3)


def test_a_source_is_a_value_that_survives_pickling(users_ring):
    src = MDPSource.of_family("ring", gamma=0.5, gamma_range=(0.3, 0.7), states=3)
    back = pickle.loads(pickle.dumps(src))
    assert back == src and hash(back) == hash(src) and back.family is not None
    a = src.sample(4, torch.Generator().manual_seed(1))
    b = back.sample(4, torch.Generator().manual_seed(1))
    assert torch.equal(a[0].T, b[0].T) and torch.equal(a[0].gamma, b[0].gamma) and torch.equal(a[1], b[1])
    assert MDPSource.from_dict(src.as_dict()) == src
    cfg = TrainConfig(states=3, actions=2, source=src, mdps=2, frames=2, batch_mdps=1, eval_mdps=1)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.as_dict()))) == cfg
    assert cfg.sizes == (3, 2, 6)


def test_a_users_family_trains_in_two_worker_processes(users_ring, tmp_path, capsys):
    """``train --seeds 2`` with two spawned workers: each receives the
    family by value (its registry does not have it until the config is
    unpickled) and reproduces the in-process run of the same seed."""
    common = ["train", "--family", "ring", "--ring-states", "3", "--gamma", "0.5", "--context", "4", "--mdps", "4",
              "--frames", "3", "--batch-mdps", "2", "--eval-mdps", "2", "--seeds", "2", "--json", "--no-report"]
    results = []
    for workers in ("1", "2"):
        rc = main([*common, "--workers", workers, "--out", str(tmp_path / f"w{workers}")])
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert rc in (0, 1), out
        results.append(out["seeds"])
    assert [r["seed"] for r in results[1]] == [0, 1]
    for one, two in zip(*results):
        assert one["seed"] == two["seed"] and one["final_loss"] == two["final_loss"], (one, two)
        assert np.isfinite(one["final_loss"]) and os.path.exists(two["weights"])


def test_a_sweep_cell_draws_from_the_named_family(ring_in_package):
    """A sweep cell of ``richness`` with ``family = "ring"`` computes on the
    ring (d = 6), not on the Section 4.1 options (d = 36) it used to fall
    back to; the same cell without the family does."""
    sarsa = algorithms.get("sarsa")
    small = {"mdps": 20, "frames": 10, "bootstrap": 0}
    for options, d in (({"family": "ring", "ring-states": 3, **small}, 6), ({"states": 3, "actions": 3, **small}, 9)):
        argv, _ = cells.parse_cell("richness", options)
        res = cells.run_cell("richness", argv)["result"]
        assert res["parameters"] == sarsa.spec.index(d).reduced_count(), (options, res["parameters"])
