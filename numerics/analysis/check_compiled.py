"""``icrl-verify check`` through the compiled stream (issue 14): the same
prompts as the torch stream, the same comparison, 5-10 times the throughput.

For records whose prompt and teacher the kernels implement
(``numerics.core.compiled.supports``: the SARSA structure), on the CPU, the
whole frame (window, prompt, teacher, the block's Lemma C.1 read-out and the
term scale of the tolerance) runs in ``numerics.core.compiled.check_frames``.
The random draws are the torch stream's: ``initial_state`` from the same
generator, then each frame's ``2n+1`` uniforms per MDP as one
``torch.rand(frames, 2n+1, B)`` call (equal to the stream's successive
draws), so the windows are the torch stream's (``w`` follows the compiled
teacher, which agrees with torch's to ~1e-16: the windows differ only if two
``Q_w`` values tie to within rounding).

What is compared, and how, is :func:`numerics.analysis.check.run_check`'s
rule unchanged: per read-out entry, ``|TF(H) - teacher|`` against that
entry's rounding bound (``numerics.core.tolerances.rounding_bound`` of the
magnitudes entering it, the coefficients from
``numerics.core.tolerances.bound_coefficients``), and the prompt
undecidable when its bound is not small against the teacher update's terms
(``numerics.analysis.check_verdict.Tally``).  The read-out comes from the given
weights (the construction from ``theory``, or a user's), the teacher from
the window alone (paper eq. 2 as a per-transition loop): two independent
computations, each differential-tested against the torch implementation
(``property_tests/test_compiled_exact.py``), and the planted faults of
``property_tests/test_check_cli.py`` still fail the check.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from numerics.analysis.check_verdict import Tally
from numerics.core import compiled as K
from numerics.core.stream import initial_state
from numerics.core.tolerances import bound_coefficients, lemma_c1_depths, teacher_depth

#: Prompts per compiled call (frames x MDPs): each call reads every MDP's
#: tables once and draws its uniforms at once (~330 bytes a prompt, 16 MB).
CHUNK_PROMPTS = 50_000


def applies(record, F: torch.Tensor, device) -> bool:
    """The compiled check runs for records the kernels implement, in float64 on the CPU."""
    return K.supports(record) and torch.device(device).type == "cpu" and F.dtype == torch.float64


def run_check_compiled(record, mdp, F: torch.Tensor, weights, index, *, prompts: int, n: int, epsilon: float,
                       alpha: float, seed: int, gen: torch.Generator, progress=None) -> dict:
    """Check ``prompts`` prompts of the stream of ``mdp`` (``B`` MDPs, one
    prompt each per frame; the last frame's first ``prompts mod B`` count).
    Returns ``{"done", "tally", "counterexample"}``: the
    :class:`numerics.analysis.check_verdict.Tally` of the per-quantity rule,
    as :func:`numerics.analysis.check.run_check` keeps it."""
    B, d = mdp.batch, F.shape[-1]
    theta, s0 = initial_state(record, mdp, F, gen)
    as_np = lambda t, dt=np.float64: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dt)
    tables = (as_np(F), as_np(mdp.T.cumsum(-1)), as_np(mdp.R), as_np(mdp.gamma))
    w, s = as_np(theta).copy(), as_np(s0, np.int64).copy()
    params = K.flatten_blocks(index, weights[0], weights[1], "full")
    params_abs = np.abs(params)
    depth = lemma_c1_depths(index.m, index.p, n)
    coef = np.array(bound_coefficients([depth["w"], depth["linear"], depth["cubic"], 1,
                                        teacher_depth(d, n, mdp.actions)]))
    num_frames = math.ceil(prompts / B)
    chunk = max(1, min(num_frames, CHUNK_PROMPTS // B))
    stats = np.empty((chunk, B, 5))
    none = np.empty((0, 0, 0))
    tally, cex, done = Tally(), None, 0
    for t0 in range(0, num_frames, chunk):
        fc = min(chunk, num_frames - t0)
        U = torch.rand(fc, 2 * n + 1, B, generator=gen, dtype=torch.float64).transpose(1, 2).contiguous().numpy()
        w_start, s_start = w.copy(), s.copy()
        K.check_frames(*tables, w, s, U, float(epsilon), float(alpha), params, params_abs, coef, stats[:fc],
                       False, none, none, none)
        step = 0
        for f in range(fc):
            take = min(B, prompts - done)
            st = stats[f, :take]
            fail, undecided = tally.add(st)
            if undecided is not None:
                tally.example(st[undecided], mdp_index=undecided, frame=t0 + f, seed=seed)
            if fail is not None:
                b = fail
                theta_b, want, got, window = _replay(tables, b, w_start, s_start, U[:f + 1], epsilon, alpha,
                                                     params, params_abs, coef)
                cex = dict(states=mdp.states, actions=mdp.actions, d=d, n=n, seed=seed, mdp_index=b,
                           frame=t0 + f, gamma=float(mdp.gamma[b]), abs_error=float(st[b, 0]),
                           tolerance=float(st[b, 2]), error_over_bound=float(st[b, 1]), theta=theta_b,
                           window=window, expected=want, got=got,
                           expected_by="compiled textbook loop over the raw window "
                                       "(numerics.core.compiled.sarsa_teacher_q)",
                           got_by="block read-out on the compiled prompt (numerics.core.compiled.sarsa_prompt)")
            done += take
            step += take
        if progress is not None:
            progress(step)
    return dict(done=done, tally=tally, counterexample=cex)


def _replay(tables, b: int, w_start, s_start, U, epsilon, alpha, params, params_abs, coef):
    """``(theta, teacher, read-out, window)`` of MDP ``b`` at the last frame
    of ``U``, replayed from the chunk's start state (MDPs are independent, so
    the numbers are those of the full pass); the window ``{s, a, r}`` is
    redrawn from that frame's start state, ``theta`` and uniforms."""
    one = tuple(np.ascontiguousarray(t[b:b + 1]) for t in tables)
    d = one[0].shape[-1]
    f = U.shape[0]
    stats = np.empty((f, 1, 5))
    thetas, targets, gots = (np.empty((f, 1, d)) for _ in range(3))
    s_before = s_start[b:b + 1].copy()
    if f > 1:                                   # s_0 of the last frame: the stream after the frames before it
        K.check_frames(*one, w_start[b:b + 1].copy(), s_before, np.ascontiguousarray(U[:f - 1, b:b + 1]),
                       float(epsilon), float(alpha), params, params_abs, coef, np.empty((f - 1, 1, 5)), False,
                       *(np.empty((0, 0, 0)),) * 3)
    K.check_frames(*one, w_start[b:b + 1].copy(), s_start[b:b + 1].copy(), np.ascontiguousarray(U[:, b:b + 1]),
                   float(epsilon), float(alpha), params, params_abs, coef, stats, True, thetas, targets, gots)
    F, T_cdf, R = one[0][0], one[1][0], one[2][0]
    n = (U.shape[2] - 1) // 2
    pi_cdf = np.empty(F.shape[:2])
    K.egreedy_cdf(F, thetas[-1, 0].copy(), float(epsilon), pi_cdf)
    s, a, r = np.empty(n + 1, np.int64), np.empty(n + 1, np.int64), np.empty(n)
    K.sample_window(T_cdf, pi_cdf, R, int(s_before[0]), np.ascontiguousarray(U[-1, b]), s, a, r)
    window = dict(s=s.tolist(), a=a.tolist(), r=r.tolist())
    return thetas[-1, 0].tolist(), targets[-1, 0].tolist(), gots[-1, 0].tolist(), window
