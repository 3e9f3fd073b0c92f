"""The paper's exact Algorithm 1 beside the minibatch variant (issue 14): do
the two training protocols end at the same place, and do their blocks
control unseen MDPs alike, as well as the teacher, and how near the oracle?

Per protocol: the relative distance of the learned ``(P12, Vbar21)`` to
``M*`` and the fitted ``c`` (``numerics.analysis.recovery``); the held-out
teacher-mimicking loss on one common held-out set (``eval_mdps`` fresh MDPs
x ``eval_frames`` frames, seed ``seed + 1_000_003``: the same prompts for
both blocks); and one closed-loop control run
(``numerics.analysis.control.run_control``: ``seeds`` x ``mdps`` unseen
MDPs, ``rounds`` rounds, 95% Student-t intervals over seeds) in which both
trained blocks, the teacher, the constructed block, the oracle and the
uniform policy act on the same MDPs, so every difference is paired.

Near the oracle: the oracle's normalised return is 1 by definition, so "0.9
of the oracle" is the level 0.9; :func:`numerics.analysis.control.rounds_to_level`
gives the first round each method reaches it (on the mean curve, and per
seed with an interval) and how much the curve still moves over the last
fifth of the rollout.

The protocols *agree* when both blocks recover the construction (within
``STRUCTURE_RECOVERY_RTOL``) and the paired 95% interval of their final
normalised-return difference lies inside ``+-CONTROL_EQUIVALENCE_ATOL``
(control ``equivalent``).  They *differ* when a block does not recover or
the interval lies entirely outside the margin (control ``different``);
otherwise the control comparison is ``inconclusive`` at this size (the
interval is wider than the margin: more seeds or MDPs decide it).
"""
from __future__ import annotations

import time

import torch

from numerics.analysis.control import paired_difference, rounds_to_level, run_control
from numerics.analysis.recovery import recovery_summary
from numerics.analysis.train import TrainConfig, evaluate
from numerics.core.runtime import torch_threads
from numerics.core.tolerances import CONTROL_EQUIVALENCE_ATOL, STRUCTURE_RECOVERY_RTOL
from theory.errors import InputError

#: The two protocols, in report order.
NAMES = ("exact", "minibatch")

#: Rounds at which the paired differences are reported (besides the last).
MILESTONES = (50, 200, 500, 1000, 2000)

#: Further fractions of the oracle's normalised return whose first round is
#: reported (the shape of the approach, besides ``level``).
LEVELS = (0.5, 0.8, 0.85)


def equivalence(ci95, margin: float) -> str:
    """``equivalent`` when the interval lies inside ``[-margin, margin]``,
    ``different`` when it lies entirely outside it, else ``inconclusive``."""
    lo, hi = ci95
    if -margin <= lo and hi <= margin:
        return "equivalent"
    if lo > margin or hi < -margin:
        return "different"
    return "inconclusive"


def describe_training(cfg: TrainConfig, meta: dict) -> dict:
    """The training facts a report shows for one protocol (from the model
    file's metadata or a ``train_block`` / ``train_exact_block`` result)."""
    return dict(protocol=meta.get("protocol") or ("paper" if cfg.batch_mdps == 1 else "minibatch"),
                mdps=cfg.mdps, frames=cfg.frames, batch_mdps=cfg.batch_mdps, lr=cfg.lr, lr_decay=cfg.lr_decay,
                lr_every=cfg.lr_every, seed=cfg.seed, adam_steps=cfg.num_batches * cfg.frames,
                train_seconds=meta.get("train_seconds", meta.get("total_seconds")),
                own_heldout_loss=meta.get("final_loss"), parameterization=cfg.parameterization)


def compare_protocols(models: dict, configs: dict, metas: dict | None = None, *, seeds: int = 10, mdps: int = 100,
                      rounds: int = 1000, seed: int = 0, level: float = 0.9, eval_mdps: int = 64,
                      eval_frames: int = 1000, threads: int | None = 1, progress=None) -> dict:
    """Compare the blocks ``models["exact"]`` and ``models["minibatch"]``
    (trained with ``configs[name]``, ``TrainConfig``; ``metas[name]``: their
    training metadata, optional).  Writes nothing; see the module docstring.

    Returns a dict: ``training`` and ``structure`` and ``heldout`` per
    protocol, ``control`` (the ``run_control`` result), ``rounds_to_level``
    (per method), ``rounds_to_levels`` (the mean curve's first round at
    each of :data:`LEVELS` and ``level``), ``exact_minus_minibatch`` and ``minus_teacher`` (paired
    intervals at :data:`MILESTONES` and the last round), ``agree_structure``,
    ``control_equivalence`` (:func:`equivalence`), ``agree_control``,
    ``agree``, ``differ``, ``level``, ``seconds``.
    """
    t0 = time.perf_counter()
    metas = metas or {}
    if sorted(models) != sorted(NAMES) or sorted(configs) != sorted(NAMES):
        raise InputError("models", f"expected blocks named {', '.join(NAMES)}, got {', '.join(models)}")
    records = {configs[k].record.name for k in NAMES}
    ds = {(configs[k].d, configs[k].n) for k in NAMES}
    if len(records) != 1 or len(ds) != 1:
        raise InputError("models", f"the two blocks were trained for different algorithms or sizes: "
                                   f"{', '.join(f'{k}: {configs[k].record.name}, d = {configs[k].d}, n = {configs[k].n}' for k in NAMES)}")
    if not (0 < level <= 1):
        raise InputError("level", f"must be in (0, 1], got {level}")
    base = configs["exact"]
    common = TrainConfig(algorithm=base.algorithm, states=base.states, actions=base.actions, gamma=base.gamma,
                         gamma_range=base.gamma_range, features=base.features, n=base.n, epsilon=base.epsilon,
                         alpha=base.alpha, beta=base.beta, frames=eval_frames, eval_mdps=eval_mdps, seed=seed)
    structure, heldout, training = {}, {}, {}
    with torch_threads(threads):
        for k in NAMES:
            structure[k] = recovery_summary(models[k], configs[k])
            ev = evaluate(models[k], common, torch.device("cpu"))
            heldout[k] = dict(loss=ev["loss"], identity_loss=ev["identity_loss"],
                              ratio=ev["loss"] / ev["identity_loss"])
            training[k] = describe_training(configs[k], metas.get(k, {}))
    ctrl = run_control("random", base.record, dist=base.distribution(), seeds=seeds, mdps=mdps, rounds=rounds,
                       n=base.n, epsilon=base.epsilon, alpha=base.alpha, beta=base.beta, seed=seed,
                       models={k: models[k] for k in NAMES}, threads=threads, progress=progress)
    marks = [k for k in MILESTONES if k < rounds] + [rounds]
    diff = paired_difference(ctrl, "exact", "minibatch", marks)
    vs_teacher = {k: paired_difference(ctrl, k, "teacher", marks) for k in NAMES}
    final = diff[rounds]
    agree_structure = all(structure[k]["distance_to_manifold"] < STRUCTURE_RECOVERY_RTOL for k in NAMES)
    control = equivalence(final["ci95"], CONTROL_EQUIVALENCE_ATOL)
    agree_control = control == "equivalent"
    return dict(training=training, structure=structure, heldout=heldout,
                heldout_set=dict(mdps=eval_mdps, frames=eval_frames, seed=seed + 1_000_003),
                control={k: v for k, v in ctrl.items()}, rounds_to_level=rounds_to_level(ctrl, level), level=level,
                rounds_to_levels={lv: {m: e["mean_curve"] for m, e in rounds_to_level(ctrl, lv).items()}
                                  for lv in sorted(set(LEVELS) | {level})},
                exact_minus_minibatch=diff, minus_teacher=vs_teacher, agree_structure=agree_structure,
                agree_control=agree_control, control_equivalence=control, agree=bool(agree_structure and agree_control),
                differ=bool(not agree_structure or control == "different"),
                equivalence_atol=CONTROL_EQUIVALENCE_ATOL, recovery_rtol=STRUCTURE_RECOVERY_RTOL,
                seconds=time.perf_counter() - t0)
