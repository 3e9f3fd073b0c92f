"""The claims of Wang et al. (ICLR 2025) and the question issue 13 asks of
the paper we verify (does its block stack?): the check records that decide
them (:func:`numerics.claims.evidence.check`), their verdict rules and one
:class:`~numerics.claims.evidence.Claim` record each, registered here.
"""
from __future__ import annotations

import os

import torch

from numerics.analysis.check import check_against_loop, draw_windows, random_preconditioners
from numerics.analysis.distances import learned_distances
from numerics.analysis.train import LAYERS_CPU_SCALE, LAYERS_PAPER_SCALE, LayersTrainConfig, heldout_draws, train_layers
from numerics.claims.evidence import (
    FAILS,
    HOLDS,
    NOT_CHECKED,
    QUALIFIED,
    Claim,
    Evidence,
    Experiment,
    Settings,
    check,
    register,
)
from numerics.core.tolerances import VISIBLE_RTOL, WANG_CHECK_RTOL, WANG_RECOVERY_RTOL
from numerics.core.constructions import preconditioned_weights
from numerics.io.files import atomic_savefig
from numerics.render import training as render
from theory import algorithms, stacked
from theory import layerwise

#: Their algorithms by the names this section gives them (check ids ``prove-wang-<name>``, ``check-wang-<name>``)
#: and the registry's records.
RECORDS = {"td": "td-preconditioned", "td-lambda": "td-lambda", "rg": "rg", "avg-reward": "avg-reward"}

PAPER = ("Wang, Blaser, Daneshmand, Zhang (ICLR 2025), *Transformers Can Learn Temporal Difference Methods for "
         "In-Context Reinforcement Learning*")

#: Their verification sizes (the acceptance of issue 13): L layers, n, d, random MRPs, states.
ACCEPT = dict(layers=40, n=100, d=3, mrps=30, states=10)
#: Training budget of the claims check: MRPs per seed (10 seeds, 5 minibatches each).
TRAIN_MRPS = {"quick": LAYERS_CPU_SCALE["mrps"], "full": LAYERS_PAPER_SCALE["mrps"]}


# =========================================================================== symbolic
_PROOFS: dict = {}


def _proof(name: str) -> dict:
    record = algorithms.get(RECORDS[name])
    if record not in _PROOFS:
        _PROOFS[record] = layerwise.summary(layerwise.prove(record))
    return _PROOFS[record]


def _proof_evidence(name: str) -> Evidence:
    r = _proof(name)
    refused = sum(f["general_refused"] and f["concrete_refused"] for f in r["faults"])
    ok = bool(r["general"] and r["faults_refused"])
    summ = (f"SymPy, symbolic d and n: one masked layer maps the prompt carrying w to the prompt carrying w+ "
            f"(whole matrix): {r['layer']}; the prompt as built carries w_0 = 0: {r['base_case']}; hence L layers = L "
            f"steps for every L (induction); independently at {len(r['concrete'])} concrete sizes and two untied "
            f"layers, all zero: {all(c['ok'] for c in r['concrete']) and r['stack']['ok']}; planted faults refused "
            f"{refused}/{len(r['faults'])}")
    if r["residual"]:
        summ += f"; residual: {r['residual']}"
    return Evidence("", "", ok, summ, command=f"icrl-verify prove --algorithm {RECORDS[name]}", data=r)


#: ``prove-wang-NAME`` for each of their constructions, by this section's name.
PROVE = {name: check(f"prove-wang-{name}", "symbolic")(lambda s, _n=name: _proof_evidence(_n)) for name in RECORDS}


def _stacked_evidence(name: str) -> Evidence:
    r = stacked.decide(name)
    summ = ("proven for every d, n, L: one block maps the whole prompt H(w) to H(w+) (symbolic d, n), so L blocks "
            "are L steps" if r["holds"] else
            "refuted: one block is one step with the phi+ written into the prompt (proven), but phi+ depends on w and "
            "is frozen at w_0; counterexample: " + str(r["counterexample"]))
    return Evidence("", "", bool(r["holds"]), summ, command=f"icrl-verify prove --stacked --algorithm {name}", data=r)


#: ``stacked-ALG`` for each algorithm whose stacking is decided, by name.
STACKED = {name: check(f"stacked-{name}", "symbolic")(lambda s, _n=name: _stacked_evidence(_n))
           for name in stacked.STACKABLE}


# =========================================================================== numeric
def _check_evidence(name: str, s: Settings) -> Evidence:
    """Their verification sizes, random MRPs, one generic preconditioner per
    layer (untied, so C and C^T differ); for TD(0) the three faults of the
    issue must each fail."""
    record = algorithms.get(RECORDS[name])
    gen = torch.Generator().manual_seed(s.seed)
    a = ACCEPT
    Cs = random_preconditioners(a["layers"], a["d"], gen)        # the order of `check --preconditioner random`
    win = draw_windows("random", a["mrps"], a["states"], a["d"], a["n"], 0.9, gen)
    lam = 0.5 if record.uses_lambda else None
    res = check_against_loop(record, win, Cs, layers=a["layers"], tied=False, lam=lam)
    faults = {}
    if name == "td":
        P, V = preconditioned_weights(record, Cs)
        flipped = P.clone()
        flipped[:, :a["d"], :a["d"]] *= -1
        for fault, kw in (("flipped sign in P (their Q)", dict(weights=(flipped, V))),
                          ("missing mask", dict(mask="none")),
                          ("wrong C (C^T)", dict(weights=preconditioned_weights(record, Cs.transpose(1, 2))))):
            f = check_against_loop(record, win, Cs, layers=a["layers"], tied=False, **kw)
            faults[fault] = dict(holds=f.holds, max_rel_error=f.max_rel_error, counterexample=f.counterexample)
    ok = res.holds and res.max_rel_error <= WANG_CHECK_RTOL and all(
        (not f["holds"]) and f["max_rel_error"] > VISIBLE_RTOL for f in faults.values())
    summ = (f"{res.prompts} random MRPs ({a['states']} states), L = {a['layers']} untied layers with generic "
            f"preconditioners, n = {a['n']}, d = {a['d']}" + (", lambda = 0.5" if lam is not None else "")
            + f": every layer's read-out, carried row and untouched entries against an independent loop: verdict "
            f"{res.verdict}, max relative error {res.max_rel_error:.2e} (issue 13's acceptance {WANG_CHECK_RTOL:g}), "
            f"each layer's own error at most {res.worst_error_over_bound:.2g} of its rounding bound, untouched "
            f"entries exactly unchanged")
    if faults:
        summ += "; planted faults, each must fail: " + ", ".join(
            f"{k}: {'FAILS' if not v['holds'] else 'passes (NOT caught)'} ({v['max_rel_error']:.2g})"
            for k, v in faults.items())
    cmd = (f"icrl-verify check --algorithm {RECORDS[name]} --layers {a['layers']} --context {a['n']} "
           f"--features-dim {a['d']} --mdps {a['mrps']} --preconditioner random --seed {s.seed}")
    return Evidence("", "", bool(ok), summ, command=cmd, data=res.as_dict() | {"faults": faults})


#: ``check-wang-NAME`` for each of their constructions, by this section's name.
CHECK = {name: check(f"check-wang-{name}", "numeric")(lambda s, _n=name: _check_evidence(_n, s)) for name in RECORDS}


# =========================================================================== experiment
_TRAINED: dict = {}


def _trained(s: Settings) -> dict:
    if s not in _TRAINED:
        _TRAINED[s] = _train_fresh(s)
    return _TRAINED[s]


def _train_fresh(s: Settings) -> dict:
    """The training run and, on its weights (no further training), the
    distances of numerics.analysis.distances on the final measures' held-out
    chains."""
    cfg = LayersTrainConfig(mrps=s.pick(TRAIN_MRPS["quick"], TRAIN_MRPS["full"]), seed=s.seed, log_every=25)
    r = train_layers(cfg)
    r["distances"] = learned_distances(cfg, r["P"], r["V"], r["alpha"], heldout_draws(cfg))
    return r


def _iv(x: dict) -> str:
    """``mean [lo, hi]`` of an interval record (the mean alone below two seeds)."""
    if x["mean"] is None:
        return "none"
    return f"{x['mean']:.3g}" + (f" [{x['ci95'][0]:.3g}, {x['ci95'][1]:.3g}]" if x["ci95"] else "")


def distances_summary(dist: dict) -> str:
    """The distances of :func:`numerics.analysis.distances.learned_distances`
    in one paragraph (mean [95% interval over seeds])."""
    sp = dist["split"]
    conv, rest = sp["converged"], sp["not_converged"]
    avg = lambda a: (f"{a['distance']:.3g}" + (f" [{a['ci95'][0]:.3g}, {a['ci95'][1]:.3g}]" if a["ci95"] else "")
                     if a["distance"] is not None else "none")
    return (f"weight distance {_iv(dist['weight_distance'])} (per seed "
            + ", ".join(f"{x:.2f}" for x in dist["weight_distance"]["per_seed"])
            + f"); function-space distance (trained outputs against the best member with C fitted by least squares, "
              f"|v_tf - v_C|_2 / |v_tf|_2 over {dist['prompts_per_seed']} held-out prompts per seed) "
              f"{_iv(dist['function_distance'])}, with C = c I {_iv(dist['function_distance_identity'])}; "
              f"converged ({sp['rule']}): {len(conv['seeds'])} seeds {conv['seeds']}, weight distance "
              f"{_iv(conv['weight_distance'])}, function-space {_iv(conv['function_distance'])}; not converged: "
              f"{len(rest['seeds'])} seeds, weight distance {_iv(rest['weight_distance'])}, function-space "
              f"{_iv(rest['function_distance'])}; seed-averaged weights (sign and scale removed, bootstrap interval): "
              f"all seeds {avg(dist['seed_average'])}, converged {avg(conv['seed_average'])}; the pair of "
              f"diagonals in V's gamma phi' rows holds {_iv(dist['diagonal_share'])} of the squared norm of V's "
              f"off-construction part (converged {_iv(conv['diagonal_share'])}) and zeroing it changes the output by "
              f"{_iv(dist['zeroing_change_percent'])}% (converged {_iv(conv['zeroing_change_percent'])}%); the "
              f"threshold applies to {dist['threshold_applies_to']}")


TRAIN = Experiment("train-wang2025", _train_fresh, lambda s, data: _TRAINED.__setitem__(s, data))


@check("train-wang2025", "experiment", (TRAIN,))
def train_wang2025(s: Settings) -> Evidence:
    r = _trained(s)
    cfg, f = r["config"], r["final"]
    fmt = lambda k: f"{f[k]['mean']:.3g} [{f[k]['ci95'][0]:.3g}, {f[k]['ci95'][1]:.3g}]"
    pat = r["pattern"]
    fig = os.path.join(s.out, "figures", "wang2025-train-curves.png")
    atomic_savefig(render.layers_curves_figure(r, f"Wang et al. Figure 2 setting, {cfg['seeds']} seeds, {cfg['mrps']} MRPs"),
                   fig, 80)
    summ = (f"Boyan chains (10 states, d = 4, n = 30), 3 tied layers, their loss, Adam 1e-3 / wd 1e-6, {cfg['seeds']} "
            f"seeds x {cfg['mrps']} MRPs x 5 minibatches ({r['adam_steps']} Adam steps, {r['seconds']:.0f} s): "
            f"V's written entry {fmt('written_entry')} vs mean |V| elsewhere {fmt('others_mean_abs_V')}; "
            f"tr P[phi,phi] {fmt('trace_phi_phi')}, tr P[phi,gamma phi'] {fmt('trace_phi_gphi')}; sensitivity "
            f"similarity {fmt('sensitivity_cosine')}, implied-weight similarity {fmt('implied_weight_cosine')}, value "
            f"difference {fmt('value_difference')} (fitted alpha {fmt('alpha_fitted')}); distance to the construction "
            f"family {fmt('distance')} (threshold {WANG_RECOVERY_RTOL:.0%} on the upper end); their pattern: "
            + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in pat.items())
            + ("; distances: " + distances_summary(r["distances"]) if "distances" in r else ""))
    cmd = f"icrl-verify train --algorithm td-preconditioned --mdps {cfg['mrps']} --seed {s.seed} --log-every {cfg['log_every']}"
    data = {k: v for k, v in r.items() if k not in ("P", "V", "alpha", "curve", "snapshots")}
    return Evidence("", "", bool(r["recovered"]), summ, command=cmd, data=data, figures=[fig])


# =========================================================================== claims and rules
def _beside(d: dict) -> str:
    """The distances reported beside the weight distance (none decides)."""
    if "distances" not in d:
        return ""
    x = d["distances"]
    conv = x["split"]["converged"]
    return (f"; beside it, deciding nothing: function-space distance {_iv(x['function_distance'])} (trained outputs "
            f"against the best member of the family with C fitted), {len(conv['seeds'])} of "
            f"{len(x['weight_distance']['per_seed'])} seeds converged ({x['split']['rule']}; their weight distance "
            f"{_iv(conv['weight_distance'])}), seed-averaged weights at {x['seed_average']['distance']:.3g}; V's "
            f"gamma phi' diagonals hold {_iv(x['diagonal_share'])} of V's off-construction squared norm, and zeroing "
            f"them changes the output by {_iv(x['zeroing_change_percent'])}%")


def _decide_learned(ev):
    e = ev[train_wang2025.name]
    if e.passed is None:
        return NOT_CHECKED, f"not run: {train_wang2025.name}"
    d = e.data
    dist = d["final"]["distance"]
    if e.passed:
        return HOLDS, (f"the trained weights lie within {WANG_RECOVERY_RTOL:.0%} of the construction family "
                       f"(weight distance {dist['mean']:.3g}, upper 95% end {dist['ci95'][1]:.3g}; the threshold "
                       f"applies to the weight distance)" + _beside(d))
    if all(d["pattern"].values()):
        return QUALIFIED, ("their Figure 2 reading reproduces (every sign of their measures, decided on 95% intervals "
                           "over seeds, and sensitivity similarity above 1/2), but the weights are not the "
                           "construction: "
                           f"weight distance to the construction family {dist['mean']:.3g} [{dist['ci95'][0]:.3g}, "
                           f"{dist['ci95'][1]:.3g}] > {WANG_RECOVERY_RTOL:.0%} (the threshold applies to the weight "
                           "distance); their measures compare one entry with the mean of the others, which hides how "
                           "much of the weights' norm lies off the construction" + _beside(d))
    missing = [k for k, v in d["pattern"].items() if not v]
    return FAILS, (f"not recovered (weight distance {dist['mean']:.3g} > {WANG_RECOVERY_RTOL:.0%}) and their pattern "
                   "fails on: " + ", ".join(missing) + _beside(d))


def _decide_stacked(ev):
    if any(e.passed is None for e in ev.values()):
        return NOT_CHECKED, "not run: " + ", ".join(k for k, e in ev.items() if e.passed is None)
    held = [k.split("-", 1)[1] for k, e in ev.items() if e.passed]
    refuted = [k.split("-", 1)[1] for k, e in ev.items() if not e.passed]
    if not refuted:
        return HOLDS, "proven for " + ", ".join(held)
    if not held:
        return FAILS, "refuted for every algorithm"
    return QUALIFIED, ("proven for " + ", ".join(held) + " (every d, n, L); refuted for " + ", ".join(refuted)
                       + ": their phi+ depends on w but is written into the prompt once, so the stack runs L steps "
                       "with "
                       "phi+ frozen at w_0 (exact counterexamples)")


def _claim(*args, **kw) -> Claim:
    return register(Claim(*args, paper=PAPER, **kw))


CLAIMS: list[Claim] = [
    _claim("wang-td", "L masked layers compute L steps of batch TD(0)", "Wang et al. 2025, TD(0) construction",
           "With P (their Q) carrying -C^T on (phi, phi) and +C^T on (phi, gamma phi'), V (their P) the single reward "
           "entry and the mask diag(1,...,1,0), the l-th layer's reward row holds delta_j(w_l) and the query entry "
           "-w_l.phi_q, with w_{l+1} = w_l + (1/n) C sum_j delta_j(w_l) phi_j; the read-out is L steps of batch "
           "TD(0).", (PROVE["td"], CHECK["td"])),
    _claim("wang-td-lambda", "The lambda mask gives TD(lambda)", "Wang et al. 2025, TD(lambda) construction",
           "The same weights with the mask M_ij = lambda^(i-j) (j <= i < n) compute L steps of batch TD(lambda) with "
           "eligibility traces e_i = lambda e_{i-1} + phi_i.", (PROVE["td-lambda"], CHECK["td-lambda"])),
    _claim("wang-rg", "Residual gradient", "Wang et al. 2025, residual-gradient construction",
           "P with the additional blocks +C^T on (gamma phi', phi) and -C^T on (gamma phi', gamma phi') computes L "
           "steps of batch residual gradient.", (PROVE["rg"], CHECK["rg"])),
    _claim("wang-avg-reward", "Average-reward TD (two heads)", "Wang et al. 2025, average-reward construction",
           "Two heads sharing P, one reading the rewards through a running-mean operator, on a prompt with a row y, "
           "compute L steps of batch average-reward TD (delta_j = r_j - rbar_j + w.phi'_j - w.phi_j).",
           (PROVE["avg-reward"], CHECK["avg-reward"])),
    _claim("wang-learned", "Trained transformers learn the construction's weights", "Wang et al. 2025, Figure 2",
           "A 3-layer linear transformer trained with the mean squared TD error on Boyan chains learns weights of "
           "the construction's shape: V's written entry dominates, P's (phi, phi) and (phi, gamma phi') blocks carry "
           "traces of opposite sign, and its predictions match batch TD.", (train_wang2025,), _decide_learned),
    _claim("stacked", "Stacking Theorem 3.1's block gives L batch steps", "issue 13 (a question to Liang & Lai 2026)",
           "L copies of the paper's one-layer block with the Theorem 3.1 weights compute L batch steps of the "
           "algorithm on the same window (SARSA, TD(0), expected SARSA, Q-learning).",
           tuple(STACKED.values()), _decide_stacked),
]
