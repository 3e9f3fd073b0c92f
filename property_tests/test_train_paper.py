"""``icrl-verify train --protocol paper`` (issue 14): the paper's exact
Algorithm 1 through the command line: the weight file and report, resume
to the same bits, seeds in parallel processes equal to the same seeds alone,
and bad input (exit 2, one line naming the field, nothing written)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from numerics.analysis import exact as E
from numerics.analysis.seeds import run_seeds, seed_configs
from numerics.commands.cli import main
from numerics.io.files import load_npz
from numerics.io.models import load_model

#: A small run of the exact protocol (3 states, 2 actions, d = 6, n = 5).
SMALL = ["--protocol", "paper", "--states", "3", "--actions", "2", "--context", "5", "--mdps", "6", "--frames", "30",
         "--eval-mdps", "4"]


def run(argv, capsys):
    rc = main(["train", *argv, "--json"])
    out, err = capsys.readouterr()
    return rc, (json.loads(out.strip().splitlines()[-1]) if out.strip() else None), err


def small_cfg(**kw):
    return E.paper_config(states=3, actions=2, n=5, mdps=6, frames=30, eval_mdps=4, **kw)


def test_paper_protocol_writes_weights_and_report(tmp_path, capsys):
    out, rep = tmp_path / "run", tmp_path / "rep"
    rc, res, _ = run([*SMALL, "--out", str(out), "--report-dir", str(rep)], capsys)
    assert rc in (0, 1) and res["protocol"] == "paper"
    model, meta = load_model(str(out / "lsa.npz"))
    assert meta["protocol"] == "paper" and meta["config"]["batch_mdps"] == 1 and meta["config"]["lr_every"] == 10
    assert meta["steps"] == 6 * 30 and len(meta["loss_curve"]) == 6
    state, _ = E.train_exact(small_cfg())
    P, V = E.exact_weights(small_cfg(), state)
    assert np.array_equal(load_npz(str(out / "lsa.npz"), "w")["P"], P.numpy())
    md = (rep / "sarsa-lsa-paper.md").read_text()
    assert "exact Algorithm 1" in md and "Reproduce: `icrl-verify train" in md and "--protocol paper" in md
    assert os.path.exists(rep / "sarsa-lsa-paper-heatmaps.png")


def test_paper_protocol_defaults_are_section_4_1(capsys, monkeypatch):
    """Without scale options the paper protocol is 10,000 MDPs x 1,000 frames,
    one MDP per step, Adam 1e-3 x 0.99 every 10 MDPs (read from the config
    the command builds, not run)."""
    seen = {}

    def fake(protocol, cfgs, **kw):
        seen["cfg"], seen["protocol"] = cfgs[0], protocol
        raise KeyboardInterrupt

    monkeypatch.setattr("numerics.commands.train.run_seeds", fake)
    assert main(["train", "--protocol", "paper", "--json"]) == 130
    c = seen["cfg"]
    assert seen["protocol"] == "paper"
    assert (c.mdps, c.frames, c.batch_mdps, c.lr, c.lr_decay, c.lr_every) == (10_000, 1_000, 1, 1e-3, 0.99, 10)


def test_paper_protocol_resume_equals_uninterrupted(tmp_path, capsys):
    """A run interrupted after 4 of 6 MDPs (checkpoint in DIR), resumed with
    --resume, writes the very weights of an uninterrupted run."""
    whole = tmp_path / "whole"
    run([*SMALL, "--out", str(whole), "--no-report"], capsys)
    part = tmp_path / "part"
    E.train_exact(small_cfg(), out_dir=str(part), checkpoint_every=2, stop_after=4)
    rc, res, _ = run([*SMALL, "--out", str(part), "--no-report", "--resume", "--checkpoint-every", "2"], capsys)
    a, b = load_npz(str(whole / "lsa.npz"), "w"), load_npz(str(part / "lsa.npz"), "w")
    assert np.array_equal(a["P"], b["P"]) and np.array_equal(a["V"], b["V"])
    ma, mb = (json.loads((d / "lsa.npz.json").read_text()) for d in (whole, part))
    assert ma["loss_curve"] == mb["loss_curve"]


def test_seeds_in_parallel_processes_equal_seeds_alone(tmp_path):
    """Two seeds in two spawned worker processes give bitwise the weights
    and curves of each seed trained alone in this process."""
    cfgs = seed_configs(small_cfg(seed=3), 2)
    par = run_seeds("paper", cfgs, out_dirs=[None, None], workers=2)
    alone = [run_seeds("paper", [c], out_dirs=[None])[0] for c in cfgs]
    for a, b in zip(par, alone):
        assert a["curve"] == b["curve"]
        for x, y in zip(a["model"].full_weights(), b["model"].full_weights()):
            assert np.array_equal(x.detach().numpy(), y.detach().numpy())
    assert par[0]["curve"] != par[1]["curve"]


def test_seeds_cli_writes_one_directory_per_seed_and_one_report(tmp_path, capsys):
    out, rep = tmp_path / "run", tmp_path / "rep"
    rc, res, _ = run([*SMALL, "--seeds", "2", "--workers", "1", "--seed", "5", "--out", str(out), "--report-dir",
                      str(rep)], capsys)
    assert [r["seed"] for r in res["seeds"]] == [5, 6]
    assert all(os.path.exists(out / f"seed-{s}" / "lsa.npz") for s in (5, 6))
    md = (rep / "sarsa-lsa-paper.md").read_text()
    assert "| 5 |" in md and "| 6 |" in md


@pytest.mark.parametrize("argv,field", [
    (["--algorithm", "actor-critic"], "algorithm"),
    (["--algorithm", "expected-sarsa"], "algorithm"),
    (["--model", "mlp"], "model"),
    (["--batch-mdps", "4"], "batch-mdps"),
    (["--checkpoint-every", "-1"], "usage"),        # refused by its kind when parsed (issue 12)
    (["--seeds", "0"], "usage"),
    (["--resume"], "resume"),
])
def test_paper_protocol_bad_input_exits_2(tmp_path, capsys, argv, field):
    rep = tmp_path / "rep"
    rc = main(["train", *SMALL, *argv, "--out", str(tmp_path / "run"), "--report-dir", str(rep)])
    _, err = capsys.readouterr()
    assert rc == 2
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith(f"icrl-verify: error: {field}"), err
    assert not rep.exists()
