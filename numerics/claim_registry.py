"""The claims of the paper and of its referee, and the checks that decide
them (used by ``icrl-verify claims``; see ``numerics.claims``)."""
from __future__ import annotations

import torch

from numerics.claims import FAILS, HOLDS, NOT_CHECKED, QUALIFIED, Claim, Evidence, Settings, all_pass, check
from numerics.tolerances import READOUT_FACTOR, eps

ALGS = ("sarsa", "expected-sarsa", "q-learning", "actor-critic", "td")


# =========================================================================== numeric checks
@check("lemma-c1-numeric", "numeric")
def _lemma_c1_numeric(s: Settings) -> Evidence:
    """Lemma C.1 fast path vs the literal block formula, arbitrary P and V."""
    from numerics.algorithms import layout
    from numerics.block import readout_fast, readout_literal, split_full
    from numerics.check import term_scale
    from numerics.prompts import assemble_prompt
    gen = torch.Generator().manual_seed(s.seed)
    worst, worst_ratio, cases = 0.0, 0.0, 0
    for alg, d, n in (("sarsa", 36, 20), ("actor-critic", 36, 20), ("sarsa", 3, 1), ("actor-critic", 2, 5)):
        lay = layout(alg)
        m, p, D = lay.m(d), lay.p(d), lay.D(d)
        B = s.pick(200, 2000)
        P = torch.randn(D, D, generator=gen, dtype=torch.float64)
        V = torch.randn(D, D, generator=gen, dtype=torch.float64)
        X = torch.rand(B, n, m, generator=gen, dtype=torch.float64) * 2 - 1
        wt = torch.cat([torch.ones(B, 1, dtype=torch.float64),
                        torch.rand(B, p - 1, generator=gen, dtype=torch.float64) * 2 - 1], -1)
        fast = readout_fast(X, wt, *split_full(P, V, m))
        lit = readout_literal(P, V, assemble_prompt(X, wt), p - 1)
        err = (fast - lit).abs().max(-1).values
        tol = READOUT_FACTOR * (D + n) * eps() * term_scale(X, wt, *[b.abs() for b in split_full(P, V, m)]).clamp_min(1)
        worst = max(worst, float(err.max()))
        worst_ratio = max(worst_ratio, float((err / tol).max()))
        cases += B
    ok = worst_ratio <= 1.0
    return Evidence("", "", ok, f"{cases} random prompts with random dense P, V (d up to 36, n in 1..20, SARSA and "
                    f"actor-critic layouts): max |fast - literal| = {worst:.2e}, at most {worst_ratio:.2g} of the "
                    f"per-prompt tolerance ({READOUT_FACTOR:g} (D+n) eps x term scale)",
                    command="pytest property_tests/ -k lemma_c1",
                    data=dict(max_abs_error=worst, worst_error_over_tolerance=worst_ratio, prompts=cases))


def _numeric_check(alg: str, s: Settings) -> Evidence:
    from numerics.check import run_check
    from numerics.distributions import MDPDistribution
    prompts = s.pick(2000, 10_000)
    res = run_check(alg, MDPDistribution(state_features=(alg == "td")), prompts=prompts, mdps=100, seed=s.seed)
    summ = (f"{res.prompts} prompts from Algorithm 1 windows on Section 4.1 MDPs: max |TF(H) - teacher| = "
            f"{res.max_abs_error:.2e} (tolerance {res.tolerance:.1e})")
    if res.counterexample:
        c = res.counterexample
        summ += f"; counterexample at MDP {c['mdp_index']}, frame {c['frame']}: error {c['abs_error']:.3g}"
    return Evidence("", "", res.holds, summ, command=f"icrl-verify check --algorithm {alg} --prompts {prompts} --seed {s.seed}",
                    data=res.as_dict())


for _alg in ALGS:
    check(f"check-{_alg}", "numeric")(lambda s, _a=_alg: _numeric_check(_a, s))


@check("prop-3.1-autograd", "numeric")
def _prop31_autograd(s: Settings) -> Evidence:
    """Autograd: the listed blocks get exactly zero gradient; P22 (Vbar22)
    gets zero gradient while Vbar22 (P22) is zero."""
    from numerics.algorithms import layout
    from numerics.block import readout_fast, split_full
    from numerics.constructions import unread_mask
    gen = torch.Generator().manual_seed(s.seed)
    res = {}
    for alg in ("sarsa", "actor-critic"):
        d, n, B = 4, 5, 64
        lay = layout(alg)
        m, p, D = lay.m(d), lay.p(d), lay.D(d)
        X = torch.randn(B, n, m, generator=gen, dtype=torch.float64)
        wt = torch.cat([torch.ones(B, 1, dtype=torch.float64), torch.randn(B, p - 1, generator=gen, dtype=torch.float64)], -1)
        target = torch.randn(B, p - 1, generator=gen, dtype=torch.float64)
        mP, mV = unread_mask(alg, d)
        for case in ("generic", "P22=0", "Vbar22=0"):
            P = torch.randn(D, D, generator=gen, dtype=torch.float64)
            V = torch.randn(D, D, generator=gen, dtype=torch.float64)
            if case == "P22=0":
                P[m:, m:] = 0
            if case == "Vbar22=0":
                V[m + 1:, m:] = 0
            P.requires_grad_(True)
            V.requires_grad_(True)
            loss = 0.5 * ((readout_fast(X, wt, *split_full(P, V, m)) - target) ** 2).sum(-1).mean()
            gP, gV = torch.autograd.grad(loss, (P, V))
            res[f"{alg}/{case}/never-read"] = float(max(gP[mP].abs().max(), gV[mV].abs().max()))
            if case == "P22=0":
                res[f"{alg}/{case}/grad Vbar22"] = float(gV[m + 1:, m:].abs().max())
            if case == "Vbar22=0":
                res[f"{alg}/{case}/grad P22"] = float(gP[m:, m:].abs().max())
            if case == "generic":  # the check must be able to see a nonzero gradient
                res[f"{alg}/{case}/grad P22 (control, expected nonzero)"] = float(gP[m:, m:].abs().max())
    zero_ok = all(v == 0.0 for k, v in res.items() if "control" not in k)
    control_ok = all(v > 0 for k, v in res.items() if "control" in k)
    return Evidence("", "", zero_ok and control_ok,
                    "autograd of the teacher-mimicking loss at random weights: gradients of P11, P21, V11, V12 and the "
                    "first rows of V21, V22 are exactly 0; grad P22 = 0 when Vbar22 = 0 and grad Vbar22 = 0 when P22 = 0 "
                    f"(max {max(v for k, v in res.items() if 'control' not in k):.1e}); control: generic grad P22 is "
                    f"nonzero ({min(v for k, v in res.items() if 'control' in k):.2g})",
                    command="pytest property_tests/ -k proposition_3_1", data=res)


# =========================================================================== claims
CLAIMS: list[Claim] = [
    Claim("lemma-c1", "Lemma C.1: read-out identity", "paper, Lemma C.1",
          "For any P, V and any prompt of the paper's layout, the read-out of H + (1/n)(VH)(H^T P H) equals "
          "w + Vbar21 Sigma P12 w~ + (1/n) Vbar22 w~ w~^T P22 w~ with Sigma = (1/n) sum_i x_i x_i^T.",
          ("lemma-c1-numeric",), lambda ev: all_pass(ev)),
    Claim("theorem-3.1", "Theorem 3.1: one block computes a semi-gradient SARSA step", "paper, Theorem 3.1",
          "With P12* = [[0,-I],[0,I],[1,0]], Vbar21* = [alpha I, 0, 0] and every other block zero, the block's "
          "read-out equals w + (alpha/n) sum_i delta_i phi_i for every prompt; so does (c P*, V*/c) for c != 0.",
          ("check-sarsa",), lambda ev: all_pass(ev)),
    Claim("theorem-3.3", "Theorem 3.3: one block computes an actor-critic step", "paper, Theorem 3.3 (reconstructed)",
          "With the context extended by the score g_i and the parameter column by lam, the construction's read-out "
          "equals (w + (alpha/n) sum delta_i phi_i, lam + (beta/n) sum delta_i g_i).",
          ("check-actor-critic",), lambda ev: all_pass(ev)),
    Claim("prop-3.1", "Proposition 3.1: invariant blocks", "paper, Proposition 3.1",
          "P11, P21, V11, V12 and the first rows of V21, V22 never affect the read-out (zero gradient); P22 and "
          "Vbar22 stay zero under gradient flow if they start at zero.",
          ("prop-3.1-autograd",), lambda ev: all_pass(ev)),
]
