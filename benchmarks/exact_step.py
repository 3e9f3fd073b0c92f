"""Exact Algorithm 1 throughput: the compiled loop (``numerics.core.compiled``
driven by ``numerics.analysis.exact``) against the torch per-step path
(``numerics.analysis.train.train`` with ``batch_mdps = 1``: autograd and
``torch.optim.Adam`` one prompt at a time), in two forms.

Both run the paper's protocol (THEORY.md section 6: SARSA, 9 states, 4
actions, d = 36, n = 20, one MDP at a time, one Adam step per frame) in this
process, float64, for the reduced and the full parameterisation.  A *step*
is one frame: window, prompt, teacher, read-out, gradient, Adam update.
Both timings include drawing the MDPs and the uniforms (the compiled
driver draws them with torch, exactly as the trainer does); the compiled
loop is timed after a warm-up that compiles (or loads) its kernels.  Each
path runs ``--repeat`` times and its shortest time counts (as ``timeit``
does: on a shared machine the other runs include waiting for a core).

The two torch paths: ``torch`` is the torch implementation throughout (the
window drawn by ``numerics.core.stream.sample_window_torch``: the reference
the differential tests compare with, and the path of ``train --batch-mdps 1``
before issue 14); ``trainer`` is ``train --batch-mdps 1`` as it runs now,
whose windows come from the compiled sampler (same windows, faster), so only
the step itself (autograd, torch Adam, torch prompt and teacher) is torch.

``ratio`` = compiled steps/s over ``torch`` steps/s (target >= 100) and
``ratio_vs_trainer`` over ``trainer`` steps/s; the JSON has both per
parameterisation and ``ratio_min``, the smaller ``ratio`` of the two.
``--alternatives`` also times the same step written as numpy array calls
(hand gradient, no torch dispatch), the measurement behind choosing numba.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from contextlib import nullcontext
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._common import parser, report  # noqa: E402
from numerics.analysis import exact as E  # noqa: E402
from numerics.analysis.train import train  # noqa: E402
from numerics.core import compiled as C  # noqa: E402
from numerics.core import stream  # noqa: E402


def compiled_rate(cfg, repeat: int) -> tuple[float, int, float]:
    """``(steps/s, steps, seconds)`` of :func:`numerics.analysis.exact.train_exact`
    on ``cfg`` (drawing the MDPs and uniforms included), the best of
    ``repeat`` runs; the kernels are warmed up first on a 1-frame run."""
    E.train_exact(dataclasses.replace(cfg, mdps=1, frames=1))
    best, steps = math.inf, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        _, info = E.train_exact(cfg)
        best, steps = min(best, time.perf_counter() - t0), info["steps"]
    return steps / best, steps, best


def torch_rate(cfg, torch_sampler: bool, repeat: int) -> tuple[float, int, float]:
    """``(steps/s, steps, seconds)`` of the torch trainer with one MDP per
    step, the best of ``repeat`` runs; ``torch_sampler``: with the compiled
    window sampler switched off."""
    with mock.patch.object(stream, "_compiled_sampler_applies", lambda *a: False) if torch_sampler else nullcontext():
        train(dataclasses.replace(cfg, mdps=1, frames=2), threads=1)    # warm-up (allocator, imports)
        best, steps = math.inf, 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            _, info = train(cfg, threads=1)
            best, steps = min(best, time.perf_counter() - t0), info["frames"]
    return steps / best, steps, best


def numpy_rate(cfg) -> tuple[float, int, float]:
    """The reduced step as plain numpy calls (same data, hand gradient,
    Adam as ``numerics.core.compiled.adam_update``): the alternative to numba."""
    gen = torch.Generator().manual_seed(cfg.seed)
    state = E.init_exact(cfg)
    d, n, m = cfg.d, cfg.n, 2 * cfg.d + 1
    blocks = C.unflatten_blocks(cfg.record.spec.index(d), state.params, "reduced")
    P12, V21 = blocks["P12"].numpy().copy(), blocks["Vbar21"].numpy().copy()
    mom = [np.zeros_like(P12), np.zeros_like(V21)]
    sq = [np.zeros_like(P12), np.zeros_like(V21)]
    step, b1, b2, eps = 0, C.ADAM_BETA1, C.ADAM_BETA2, C.ADAM_EPS
    t0 = time.perf_counter()
    for j in range(cfg.mdps):
        F, T_cdf, R, gamma, w, s0, U = E.draw_mdp(cfg, gen)
        lr = cfg.lr_at(j)
        for f in range(cfg.frames):
            Q = F @ w
            probs = np.full(Q.shape, cfg.epsilon / Q.shape[1])
            probs[np.arange(Q.shape[0]), Q.argmax(1)] += 1.0 - cfg.epsilon
            pi_cdf = probs.cumsum(1)
            u = U[f]
            s = np.empty(n + 1, np.int64)
            a = np.empty(n + 1, np.int64)
            s[0] = s0
            a[0] = min(int((pi_cdf[s0] < u[0]).sum()), pi_cdf.shape[1] - 1)
            for i in range(n):
                s[i + 1] = min(int((T_cdf[s[i], a[i]] < u[1 + 2 * i]).sum()), T_cdf.shape[2] - 1)
                a[i + 1] = min(int((pi_cdf[s[i + 1]] < u[2 + 2 * i]).sum()), pi_cdf.shape[1] - 1)
            r = R[s[:-1], a[:-1], s[1:]]
            phi, phin = F[s[:-1], a[:-1]], F[s[1:], a[1:]]
            X = np.concatenate([phi, gamma * phin, r[:, None]], 1)
            wt = np.concatenate([[1.0], w])
            target = w + cfg.alpha * ((r + gamma * (phin @ w) - phi @ w)[:, None] * phi).mean(0)
            av = P12 @ wt
            sv = X.T @ (X @ av) / n
            e = w + V21 @ sv - target
            gs = V21.T @ e
            grads = [np.outer(X.T @ (X @ gs) / n, wt), np.outer(e, sv)]
            step += 1
            bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
            for p, g, mo, s2 in zip((P12, V21), grads, mom, sq):
                mo += (1 - b1) * (g - mo)
                s2 *= b2
                s2 += (1 - b2) * g * g
                p -= (lr / bc1) * mo / (np.sqrt(s2) / bc2 ** 0.5 + eps)
            w, s0 = target, s[-1]
    dt = time.perf_counter() - t0
    return cfg.mdps * cfg.frames / dt, cfg.mdps * cfg.frames, dt


def main():
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--mdps", type=int, default=20, help="MDPs of 1,000 frames for the compiled loop (20)")
    p.add_argument("--torch-frames", type=int, default=400, help="frames (steps) for each torch path (400)")
    p.add_argument("--repeat", type=int, default=3, help="runs per path; the best (shortest) counts (3)")
    p.add_argument("--alternatives", action="store_true", help="also time the numpy per-step alternative")
    args = p.parse_args()
    torch.set_num_threads(1)
    result = dict(name="exact_step", d=36, n=20, numba=numba.__version__, threads=torch.get_num_threads(),
                  repeat=args.repeat, parameterizations={})
    lines = ["Exact Algorithm 1 (one MDP at a time, one Adam step per frame), Section 4.1 sizes, float64"]
    for par in ("reduced", "full"):
        ours_cfg = E.paper_config(mdps=args.mdps, parameterization=par)
        ref_cfg = E.paper_config(mdps=1, frames=args.torch_frames, parameterization=par)
        c_rate, c_steps, c_s = compiled_rate(ours_cfg, args.repeat)
        t_rate, t_steps, t_s = torch_rate(ref_cfg, True, args.repeat)
        h_rate, h_steps, h_s = torch_rate(ref_cfg, False, args.repeat)
        entry = dict(steps_per_s_compiled=c_rate, steps_per_s_torch=t_rate, steps_per_s_trainer=h_rate,
                     ratio=c_rate / t_rate, ratio_vs_trainer=c_rate / h_rate,
                     steps_compiled=c_steps, seconds_compiled=c_s, steps_torch=t_steps, seconds_torch=t_s,
                     steps_trainer=h_steps, seconds_trainer=h_s,
                     paper_scale_minutes_compiled=1e7 / c_rate / 60, paper_scale_hours_torch=1e7 / t_rate / 3600,
                     paper_scale_hours_trainer=1e7 / h_rate / 3600)
        result["parameterizations"][par] = entry
        lines += [f"{par}: compiled {c_steps} steps in {c_s:.2f} s = {c_rate:,.0f} steps/s; "
                  f"torch {t_steps} steps in {t_s:.2f} s = {t_rate:,.0f} steps/s (ratio {c_rate / t_rate:,.0f}x); "
                  f"trainer {h_steps} steps in {h_s:.2f} s = {h_rate:,.0f} steps/s (ratio {c_rate / h_rate:,.0f}x)",
                  f"  1e7 steps (10,000 MDPs x 1,000 frames): compiled {1e7 / c_rate / 60:.1f} min, "
                  f"torch {1e7 / t_rate / 3600:.1f} h, trainer {1e7 / h_rate / 3600:.1f} h"]
    if args.alternatives:
        n_rate, n_steps, n_s = numpy_rate(E.paper_config(mdps=1, frames=2_000))
        result["steps_per_s_numpy_reduced"] = n_rate
        lines.append(f"numpy per-step alternative (reduced): {n_steps} steps in {n_s:.2f} s = {n_rate:,.0f} steps/s")
    result["ratio_min"] = min(e["ratio"] for e in result["parameterizations"].values())
    result["ratio"] = result["ratio_min"]
    result["load_average"] = os.getloadavg()
    lines.append(f"ratio (compiled / torch), smaller of the two: {result['ratio_min']:,.0f}x (target >= 100); "
                 f"load average {result['load_average'][0]:.2f}")
    if not math.isfinite(result["ratio_min"]):
        raise SystemExit("benchmark produced a non-finite ratio")
    report(result, lines, args.json)


if __name__ == "__main__":
    main()
