"""numerics.core.compiled and numerics.analysis.exact: the compiled exact
Algorithm 1 against the torch reference (issue 14).

Fed the same inputs (the same uniforms, weights and Adam state), one
compiled frame gives the torch step's window, prompt, teacher, read-out,
gradient and Adam update; a run of a few hundred steps stays within a
stated bound of ``numerics.analysis.train.train(batch_mdps=1)``; the
batched window sampler returns the torch stream's windows bit for bit; a
resumed run equals an uninterrupted one bitwise; and planted faults
in the compiled gradient (a factor 2, a transposed block, a factor 2 on the
cubic term) are caught.

Tolerances: one compiled frame against torch is ``REORDER_RTOL`` (1e-12,
relative to ``max(1, scale)``): the same float64 closed forms in another
summation order.  The run bound is
``numerics.core.tolerances.compiled_run_bound``, with its reason.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from numba import njit

from numerics import reference
from numerics.analysis import check_compiled
from numerics.analysis import exact as E
from numerics.analysis.check import run_check
from numerics.analysis.train import make_optimizer, train
from numerics.core import compiled as C
from numerics.core.block import embed_reduced, lemma_c1, mimic_loss, readout_magnitudes, split_full
from numerics.core.constructions import constructed_weights
from numerics.core.distributions import MDPDistribution
from numerics.core.models import build_model
from numerics.core.policies import behaviour_probs
from numerics.core.prompts import build_context, window_quantities
from numerics.core.stream import Stream, initial_state, sample_window, sample_window_torch
from numerics.core.teachers import teacher_update
from numerics.core.tolerances import (
    REORDER_RTOL,
    RESUME_ATOL,
    VISIBLE_RTOL,
    bound_coefficients,
    compiled_run_bound,
    lemma_c1_depths,
    rounding_bound,
    teacher_depth,
)
from property_tests.references import sample_window_per_step
from theory.algorithms import get
from theory.errors import InputError

#: Section 4.1 sizes (THEORY.md section 6) at a few frames.
SEC41 = E.paper_config(mdps=1, frames=1)


def max_err(got, want) -> tuple[float, float]:
    """``(max |got - want| / max(1, max |want|), max |got - want| / max |want|)``:
    the pass criterion's error and the error relative to the quantity's own scale."""
    got, want = torch.as_tensor(np.asarray(got), dtype=torch.float64), torch.as_tensor(np.asarray(want), dtype=torch.float64)
    diff = float((got - want).abs().max())
    scale = float(want.abs().max())
    return diff / max(1.0, scale), diff / max(scale, 1e-300)


SARSA = get("sarsa")
INDEX = SARSA.spec.index(36)


def block_err(got: np.ndarray, want: np.ndarray, parameterization: str, index=INDEX) -> tuple[float, float]:
    """:func:`max_err` of flat parameter-shaped vectors, each block
    (``P12``, ``Vbar21``[, ``P22``, ``Vbar22``]) against its own scale;
    the worst block's pair."""
    g = C.unflatten_blocks(index, np.asarray(got, dtype=np.float64), parameterization)
    w = C.unflatten_blocks(index, np.asarray(want, dtype=np.float64), parameterization)
    errs = [max_err(g[k], w[k]) for k in g]
    return max(e[0] for e in errs), max(e[1] for e in errs)


# ------------------------------------------------------------ random draws

@pytest.mark.parametrize("rows,B", [(41, 1), (3, 5), (41, 64), (11, 1000), (41_000, 1)])
def test_rand_matrix_equals_successive_rand_calls(rows, B):
    """``torch.rand(rows, B)`` from a generator equals ``rows`` successive
    ``torch.rand(B)`` calls and leaves the generator in the same state: the
    batched stream can draw a frame's uniforms at once (module docstring)."""
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    one = torch.rand(rows, B, generator=g1, dtype=torch.float64)
    many = torch.stack([torch.rand(B, generator=g2, dtype=torch.float64) for _ in range(rows)])
    assert torch.equal(one, many)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_categorical_matches_torch_inverse_cdf_at_the_edges():
    """``#{k: cdf[k] < u}`` clamped, as numerics.policies.sample_categorical,
    including u equal to a CDF value, u = 0, and u above a last CDF entry
    that rounding left below 1."""
    cdf = torch.tensor([0.25, 0.25, 0.5, 1.0 - 2 ** -52], dtype=torch.float64)
    for u in (0.0, 0.25, np.nextafter(0.25, 1), 0.5, 0.75, 1.0 - 2 ** -52, 1.0 - 2 ** -53):
        want = int((cdf < u).sum().clamp_max(cdf.numel() - 1))
        assert C.categorical(cdf.numpy(), float(u)) == want, u


def _windows_case(states, actions, B, n, epsilon, seed, algorithm="sarsa"):
    cfg = E.paper_config(states=states, actions=actions, n=n, epsilon=epsilon, algorithm=algorithm)
    gen = torch.Generator().manual_seed(seed)
    mdp, F = cfg.distribution().sample(B, gen)
    theta, s0 = initial_state(cfg.record, mdp, F, gen)
    return cfg.record, mdp, F, theta, s0, gen


@pytest.mark.parametrize("states,actions,B,n,epsilon", [(9, 4, 64, 20, 0.1), (2, 2, 7, 5, 0.5), (3, 1, 4, 9, 0.0),
                                                        (5, 3, 9, 3, 1.0)])
def test_batched_window_sampler_equals_torch_samplers(states, actions, B, n, epsilon):
    """Given the uniforms of one ``torch.rand(2n+1, B)`` call, the compiled
    sampler returns the window of the torch stream's sampler and of the
    per-step reference loop drawn from the same generator state, bit for bit."""
    record, mdp, F, theta, s0, gen = _windows_case(states, actions, B, n, epsilon, seed=3 + B)
    start = gen.get_state()
    want = sample_window_per_step(record, mdp, F, s0, theta, n, epsilon, gen)
    gen.set_state(start)
    fast = sample_window_torch(record, mdp, F, mdp.T.cumsum(-1), s0, theta, n, epsilon, gen)
    after = gen.get_state()
    gen.set_state(start)
    U = torch.rand(2 * n + 1, B, generator=gen, dtype=torch.float64)
    assert torch.equal(gen.get_state(), after)
    pi_cdf = behaviour_probs(record, F, theta, epsilon).cumsum(-1)
    s, a, r = C.sample_windows(mdp.T.cumsum(-1).numpy(), pi_cdf.numpy(), mdp.R.numpy(), s0.numpy(), U.numpy())
    for w in (want, fast):
        assert torch.equal(torch.from_numpy(s), w.s) and torch.equal(torch.from_numpy(a), w.a)
        assert torch.equal(torch.from_numpy(r), w.r)


@pytest.mark.parametrize("algorithm", ["sarsa", "expected-sarsa", "q-learning", "actor-critic", "td"])
def test_stream_uses_compiled_sampler_without_changing_a_number(algorithm):
    """``Stream.next`` on the CPU (compiled sampler) gives the torch-only
    sampler's windows, thetas and targets bit for bit over several frames,
    for every algorithm (the sampler takes the behaviour CDF as data), and
    leaves the generator in the same state; a broadcast (stride-0) table too."""
    record, mdp, F, theta, s0, gen = _windows_case(4, 3, 6, 7, 0.3, seed=21, algorithm=algorithm)
    steps = {"alpha": 0.2, "beta": 0.2}
    start = gen.get_state()
    got = [(fr.theta, fr.window, fr.target) for fr in
           Stream(record, mdp, F, n=7, epsilon=0.3, steps=steps, gen=gen, theta=theta, s0=s0).frames(5)]
    end = gen.get_state()
    gen.set_state(start)
    th, s = theta, s0
    T_cdf = mdp.T.cumsum(-1)
    for g_theta, g_win, g_target in got:
        win = sample_window_torch(record, mdp, F, T_cdf, s, th, 7, 0.3, gen)
        target = teacher_update(record, window_quantities(record, F, win, th, 0.3), th, mdp.gamma, steps)
        assert torch.equal(g_theta, th) and torch.equal(g_win.s, win.s) and torch.equal(g_win.a, win.a)
        assert torch.equal(g_win.r, win.r) and torch.equal(g_target, target)
        th, s = target, win.s[:, -1]
    assert torch.equal(gen.get_state(), end)
    # a table broadcast over the batch (control on a Gymnasium env): stride-0 R
    one = mdp[0:1]
    wide = type(mdp)(one.T.expand(6, -1, -1, -1), one.R.expand(6, -1, -1, -1), one.gamma.expand(6), one.rho0.expand(6, -1))
    gen.set_state(start)
    a = sample_window(record, wide, F, wide.T.cumsum(-1), s0, theta, 7, 0.3, gen)
    gen.set_state(start)
    b = sample_window_torch(record, wide, F, wide.T.cumsum(-1), s0, theta, 7, 0.3, gen)
    assert torch.equal(a.s, b.s) and torch.equal(a.a, b.a) and torch.equal(a.r, b.r)


def test_batched_window_sampler_rejects_bad_shapes():
    T = np.full((2, 3, 2, 3), 1 / 3).cumsum(-1)
    with pytest.raises(InputError, match="U of shape"):
        C.sample_windows(T, np.ones((2, 3, 2)), np.zeros_like(T), np.zeros(2), np.zeros((4, 2)))
    with pytest.raises(InputError, match="s0"):
        C.sample_windows(T, np.ones((2, 3, 2)), np.zeros_like(T), np.array([0, 3]), np.zeros((5, 2)))


def test_egreedy_cdf_equals_torch_behaviour_policy():
    """The kernel's behaviour CDF of ``w`` equals
    ``behaviour_probs(...).cumsum(-1)`` (the same first maximiser, the same
    probabilities ``eps/A + (1 - eps)``, the same sequential sum)."""
    record, mdp, F, theta, _, _ = _windows_case(9, 4, 16, 20, 0.1, seed=8)
    want = behaviour_probs(record, F, theta, 0.1).cumsum(-1)
    got = np.zeros((9, 4))
    for b in range(16):
        C.egreedy_cdf(F[b].numpy(), theta[b].numpy(), 0.1, got)
        assert torch.equal(torch.from_numpy(got), want[b])


def test_q_values_are_the_in_order_dot_products_bit_for_bit():
    """``q_values`` (rows of the transposed features, vectorised across
    pairs) sums each ``w . F[s, a]`` in the order of ``_dot``, so the
    teacher that reads ``Q`` is the teacher that takes the dot products,
    bit for bit (the kernels rely on it)."""
    rng = np.random.default_rng(4)
    for S, A, d in ((9, 4, 36), (3, 2, 6), (1, 1, 1)):
        F, w = rng.uniform(-1, 1, (S, A, d)), rng.uniform(-1, 1, d)
        FT, Q = np.empty((d, S * A)), np.empty(S * A)
        C.features_t(F, FT)
        C.q_values(FT, w, Q)
        assert all(Q[s * A + a] == C._dot(F[s, a], w) for s in range(S) for a in range(A))


def test_lr_schedule_equals_trainconfig():
    """``lr_at`` of the kernels is ``TrainConfig.lr_at`` with one MDP per batch, bit for bit."""
    cfg = E.paper_config()
    for j in list(range(0, 10_000, 7)) + [9_999]:
        assert C.lr_at(cfg.lr, cfg.lr_decay, cfg.lr_every, j) == cfg.lr_at(j)


# --------------------------------------------------------- one exact frame

def _random_problem(parameterization: str, seed: int):
    """Section 4.1 data for one frame, random weights (unread blocks too) and
    a nonzero Adam state, as torch objects."""
    cfg = dataclasses.replace(SEC41, parameterization=parameterization)
    gen = torch.Generator().manual_seed(seed)
    mdp, F = cfg.distribution().sample(1, gen)
    theta, s0 = initial_state(cfg.record, mdp, F, gen)
    wgen = torch.Generator().manual_seed(seed + 1)
    D = INDEX.D
    P = torch.randn(D, D, generator=wgen, dtype=torch.float64) * 0.3
    V = torch.randn(D, D, generator=wgen, dtype=torch.float64) * 0.3
    return cfg, gen, mdp, F, theta, s0, P, V


def compare_frame(kernel, parameterization: str, seed: int = 0, lr: float = 1e-2, step: int = 37) -> dict:
    """Run one frame through the compiled ``kernel`` and through torch (the
    stream's sampler, prompt and teacher, autograd, ``make_optimizer``'s
    Adam) from the same generator state, weights and Adam state.  Returns,
    per quantity, the pair of :func:`max_err` (window and prompt: 0.0 when
    bitwise equal)."""
    cfg, gen, mdp, F, theta, s0, P, V = _random_problem(parameterization, seed)
    n, eps, m, record = cfg.n, cfg.epsilon, INDEX.m, cfg.record
    start = gen.get_state()
    # torch reference
    model = build_model("lsa", record, cfg.d, n, parameterization, init=False)
    model.set_weights(P, V)
    win = sample_window_torch(record, mdp, F, mdp.T.cumsum(-1), s0, theta, n, eps, gen)
    q = window_quantities(record, F, win, theta, eps)
    X, wt = build_context(record, q, theta, mdp.gamma)
    target = teacher_update(record, q, theta, mdp.gamma, {"alpha": cfg.alpha})
    sgen = torch.Generator().manual_seed(seed + 2)
    opt = make_optimizer(model, lr)
    params = list(model.parameters())
    mom = [torch.randn(p.shape, generator=sgen, dtype=torch.float64) * 1e-2 for p in params]
    sq = [torch.rand(p.shape, generator=sgen, dtype=torch.float64) * 1e-4 for p in params]
    if parameterization == "full":   # unread entries: zero moments, as in any run (their gradient is 0)
        live_P = torch.zeros(P.shape, dtype=torch.bool)
        live_P[:, m:] = True           # P12 and P22
        live_V = torch.zeros(V.shape, dtype=torch.bool)
        live_V[m + 1:, :] = True       # Vbar21 and Vbar22
        for k, live in enumerate((live_P, live_V)):
            mom[k] = torch.where(live, mom[k], 0.0)
            sq[k] = torch.where(live, sq[k], 0.0)
    for p, mo, s2 in zip(params, mom, sq):
        opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": mo.clone(), "exp_avg_sq": s2.clone()}
    with torch.no_grad():
        readout = model.readout(X, wt).clone()
    loss = mimic_loss(model.readout(X, wt), target)
    opt.zero_grad()
    loss.backward()
    grads = [p.grad.detach().clone() for p in params]
    opt.step()
    # compiled, from the same generator state, weights and Adam state
    gen.set_state(start)
    U = torch.rand(1, 2 * n + 1, generator=gen, dtype=torch.float64).numpy()
    if parameterization == "full":
        flat = lambda pair: C.flatten_blocks(INDEX, pair[0], pair[1], "full")
    else:
        P0, V0 = torch.zeros_like(P), torch.zeros_like(V)
        flat = lambda pair: C.flatten_blocks(INDEX, *_embed(pair, P0, V0, m), "reduced")
    cp = C.flatten_blocks(INDEX, P, V, parameterization)
    c_m, c_v = flat(mom), flat(sq)
    ws = C.Workspace.new(cfg.states, cfg.actions, cfg.d, n, cp.shape[0])
    w = theta[0].numpy().copy()
    losses = np.zeros(1)
    s_end, new_step = kernel(F[0].numpy(), mdp.T.cumsum(-1)[0].numpy(), mdp.R[0].contiguous().numpy(),
                             float(mdp.gamma[0]), w, int(s0[0]), U, eps, cfg.alpha, cp, c_m, c_v, float(step), lr,
                             C.ADAM_BETA1, C.ADAM_BETA2, C.ADAM_EPS, losses, *ws.arrays())
    out = {}
    out["window"] = (0.0 if (torch.equal(torch.from_numpy(ws.s), win.s[0]) and torch.equal(torch.from_numpy(ws.a), win.a[0])
                             and torch.equal(torch.from_numpy(ws.r), win.r[0]) and s_end == int(win.s[0, -1])) else 1.0,) * 2
    out["prompt"] = (0.0 if torch.equal(torch.from_numpy(ws.X), X[0]) and torch.equal(torch.from_numpy(ws.wt), wt[0])
                     else 1.0,) * 2
    out["teacher"] = max_err(ws.target, target[0])
    out["w_next"] = max_err(w, target[0])
    out["readout"] = max_err(ws.out, readout[0])
    out["loss"] = max_err(losses, float(loss.detach()))
    blockwise = lambda got, want: block_err(got, want, parameterization)
    out["gradient"] = blockwise(ws.grad, flat(grads))
    after = [p.detach() for p in params]
    out["params"] = blockwise(cp, flat(after))
    out["update"] = blockwise(cp - C.flatten_blocks(INDEX, P, V, parameterization), flat(after) - flat(_pair_of(model, P, V)))
    st = [opt.state[p] for p in params]
    out["exp_avg"] = blockwise(c_m, flat([s["exp_avg"] for s in st]))
    out["exp_avg_sq"] = blockwise(c_v, flat([s["exp_avg_sq"] for s in st]))
    out["step"] = (abs(new_step - float(st[0]["step"])),) * 2
    if parameterization == "full":   # Prop 3.1: torch's unread entries have gradient 0 and stay put
        out["unread"] = (float(max(grads[0][~live_P].abs().max(), grads[1][~live_V].abs().max(),
                                   (after[0] - P)[~live_P].abs().max(), (after[1] - V)[~live_V].abs().max())),) * 2
    return out


def _embed(pair, P0, V0, m):
    """Reduced (P12, Vbar21)-shaped tensors into D x D zeros (for flatten_blocks)."""
    P, V = P0.clone(), V0.clone()
    P[:m, m:] = pair[0]
    V[m + 1:, :m] = pair[1]
    return P, V


def _pair_of(model, P, V):
    """The weights before the step in the model's parameter shapes."""
    if model.parameterization == "full":
        return [P, V]
    m = model.m
    return [P[:m, m:], V[m + 1:, :m]]


@pytest.mark.parametrize("parameterization", ["reduced", "full"])
@pytest.mark.parametrize("seed", [0, 1])
def test_one_compiled_frame_equals_torch_step(parameterization, seed):
    """One frame of Algorithm 1 at Section 4.1 sizes: the same window and
    prompt (bitwise), and teacher, read-out, loss, gradient and Adam update
    (parameters, both moments, step) within REORDER_RTOL of torch."""
    errs = compare_frame(C.RUN_MDP[parameterization], parameterization, seed)
    bad = {k: v[0] for k, v in errs.items() if not v[0] <= REORDER_RTOL}
    assert not bad, bad
    assert errs["window"][0] == 0.0 and errs["prompt"][0] == 0.0 and errs["step"][0] == 0.0


# ------------------------------------------------------------ planted faults

@njit
def _grad_factor_2(X, wt, params, target, out, grad, work):
    loss = C.loss_grad_reduced(X, wt, params, target, out, grad, work)
    m, p = X.shape[1], wt.shape[0]
    for k in range(m * p, m * p + (p - 1) * m):     # the Vbar21 block, doubled
        grad[k] *= 2.0
    return loss


@njit
def _grad_transposed(X, wt, params, target, out, grad, work):
    loss = C.loss_grad_reduced(X, wt, params, target, out, grad, work)
    m, p = X.shape[1], wt.shape[0]
    q, o = p - 1, m * p
    block = grad[o:o + q * m].copy()                 # Vbar21's gradient, written as its transpose (m x q)
    for i in range(q):
        for k in range(m):
            grad[o + k * q + i] = block[i * m + k]
    return loss


@njit
def _grad_cubic_factor_2(X, wt, params, target, out, grad, work):
    loss = C.loss_grad_full(X, wt, params, target, out, grad, work)
    m, p = X.shape[1], wt.shape[0]
    o = m * p + (p - 1) * m
    for k in range(o, o + p * p):                    # the P22 block (the cubic term), doubled
        grad[k] *= 2.0
    return loss


FAULTS = {"factor-2": ("reduced", _grad_factor_2), "transposed": ("reduced", _grad_transposed),
          "cubic-factor-2": ("full", _grad_cubic_factor_2)}


@pytest.fixture(scope="module")
def faulty_kernels():
    return {name: (par, C.make_mdp_kernel(fn)) for name, (par, fn) in FAULTS.items()}


def test_factory_kernel_equals_production_kernel():
    """``make_mdp_kernel`` (used to plant faults) builds the very loop of
    ``run_mdp_reduced``: same numbers, bit for bit, over several frames."""
    cfg = E.paper_config(mdps=2, frames=30)
    a = E.init_exact(cfg)
    b = E.init_exact(cfg)
    E.run_exact(cfg, a)
    E.run_exact(cfg, b, kernel=C.make_mdp_kernel(C.loss_grad_reduced))
    assert np.array_equal(a.params, b.params) and np.array_equal(a.exp_avg_sq, b.exp_avg_sq) and a.curve == b.curve


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_planted_gradient_fault_is_caught(fault, faulty_kernels):
    """The one-frame differential test flags each planted fault: the
    gradient and the Adam update are visibly wrong while the window, prompt,
    teacher and read-out still agree (the fault is where it was planted)."""
    par, kernel = faulty_kernels[fault]
    errs = compare_frame(kernel, par, seed=0)
    assert errs["gradient"][1] > VISIBLE_RTOL and errs["update"][1] > VISIBLE_RTOL
    for k in ("window", "prompt", "teacher", "readout", "loss"):
        assert errs[k][0] <= REORDER_RTOL, k


# -------------------------------------------------------------- whole runs

RUN = E.paper_config(mdps=2, frames=100, lr=1e-3, lr_every=1, lr_decay=0.5)


@pytest.fixture(scope="module")
def torch_runs():
    """``numerics.analysis.train.train`` with ``batch_mdps = 1`` (the torch
    per-step path) on RUN, both parameterisations: weights and loss curve."""
    out = {}
    for par in ("reduced", "full"):
        cfg = dataclasses.replace(RUN, parameterization=par)
        model, info = train(cfg)
        out[par] = ([t.detach().clone() for t in model.full_weights()], info["curve"])
    return out


@pytest.mark.parametrize("parameterization", ["reduced", "full"])
def test_compiled_run_stays_within_bound_of_torch_trainer(parameterization, torch_runs):
    """200 Adam steps over 2 MDPs (the learning rate halved between them):
    the compiled run's weights stay within ``compiled_run_bound`` of torch's
    (measured: ~1e-16), its per-MDP loss curve within REORDER_RTOL."""
    cfg = dataclasses.replace(RUN, parameterization=parameterization)
    state, info = E.train_exact(cfg)
    P, V = E.exact_weights(cfg, state)
    (Pt, Vt), curve = torch_runs[parameterization]
    bound = compiled_run_bound(int(state.step), cfg.lr)
    assert int(state.step) == info["steps"] == cfg.mdps * cfg.frames
    assert float((P - Pt).abs().max()) <= bound and float((V - Vt).abs().max()) <= bound
    assert max_err(state.curve, curve)[0] <= REORDER_RTOL


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_planted_fault_leaves_the_compiled_run_bound(fault, faulty_kernels, torch_runs):
    """The run comparison alone also flags every planted fault, by more than
    100 times its bound.  Measured after 200 steps: transposed block 5e-2;
    a factor 2 on a whole block only ~1e-5 (Adam is invariant to a per-entry
    gradient scale except through its eps), still ~1e3 times the bound; the
    one-frame gradient comparison sees it at relative error 1."""
    par, kernel = faulty_kernels[fault]
    cfg = dataclasses.replace(RUN, parameterization=par)
    state = E.run_exact(cfg, E.init_exact(cfg), kernel=kernel)
    P, V = E.exact_weights(cfg, state)
    (Pt, Vt), _ = torch_runs[par]
    assert max(float((P - Pt).abs().max()), float((V - Vt).abs().max())) > 100 * compiled_run_bound(int(state.step), cfg.lr)


SMALL = E.paper_config(mdps=5, frames=20, states=3, actions=2, n=5, eval_mdps=4)


def _same_state(a, b) -> bool:
    return (np.array_equal(a.params, b.params) and np.array_equal(a.exp_avg, b.exp_avg)
            and np.array_equal(a.exp_avg_sq, b.exp_avg_sq) and a.curve == b.curve and a.step == b.step
            and torch.equal(a.gen_state, b.gen_state) and a.next_mdp == b.next_mdp)


def test_same_seed_same_numbers_and_resume_is_exact():
    """Same config => bitwise the same run; stopping after one MDP and
    continuing from the state gives the uninterrupted run bitwise; another
    seed gives other numbers."""
    a, _ = E.train_exact(SMALL)
    b, _ = E.train_exact(SMALL)
    st = E.init_exact(SMALL)
    E.run_exact(SMALL, st, stop_after=1)
    E.run_exact(SMALL, st)
    assert _same_state(a, b) and _same_state(a, st)
    c, _ = E.train_exact(dataclasses.replace(SMALL, seed=1))
    assert not np.array_equal(a.params, c.params)


@pytest.mark.parametrize("parameterization", ["reduced", "full"])
def test_checkpoint_resume_equals_uninterrupted_run(tmp_path, parameterization):
    """Interrupted after 3 of 5 MDPs (checkpoints every 2 MDPs and at the
    interruption), then resumed from the file: the same state bitwise
    (RESUME_ATOL = 0) as the uninterrupted run, and the same weight file."""
    cfg = dataclasses.replace(SMALL, parameterization=parameterization)
    whole, _ = E.train_exact(cfg)
    E.train_exact(cfg, out_dir=str(tmp_path), checkpoint_every=2, stop_after=3)
    assert E.load_state(E.checkpoint_path(str(tmp_path)), cfg).next_mdp == 3
    resumed, info = E.train_exact(cfg, out_dir=str(tmp_path), checkpoint_every=2, resume=True)
    assert info["steps"] == 2 * cfg.frames and info["completed"]
    assert _same_state(whole, resumed)
    Pw, Vw = E.exact_weights(cfg, whole)
    Pr, Vr = E.exact_weights(cfg, resumed)
    assert float((Pw - Pr).abs().max()) <= RESUME_ATOL and float((Vw - Vr).abs().max()) <= RESUME_ATOL


def test_resume_refuses_other_config_and_foreign_files(tmp_path):
    E.train_exact(SMALL, out_dir=str(tmp_path), checkpoint_every=2, stop_after=2)
    with pytest.raises(InputError, match="lr = 0.001, this run has 0.002"):
        E.train_exact(dataclasses.replace(SMALL, lr=2e-3), out_dir=str(tmp_path), resume=True)
    with pytest.raises(InputError, match="no checkpoint"):
        E.train_exact(SMALL, out_dir=str(tmp_path / "none"), resume=True)
    train(dataclasses.replace(SMALL, batch_mdps=2), out_dir=str(tmp_path / "mb"), checkpoint_every=1, stop_after=1)
    with pytest.raises(InputError, match="not a checkpoint of the exact protocol"):
        E.train_exact(SMALL, out_dir=str(tmp_path / "mb"), resume=True)


def test_exact_protocol_rejects_other_configs():
    for kw, field_name in ((dict(algorithm="td"), "algorithm"), (dict(algorithm="expected-sarsa"), "algorithm"),
                           (dict(model="mlp"), "model"), (dict(batch_mdps=2), "batch-mdps")):
        with pytest.raises(InputError) as e:
            E.init_exact(E.paper_config(**kw))
        assert e.value.field == field_name
    with pytest.raises(InputError) as e:
        E.check_exact_config(E.paper_config(), device="cuda")
    assert e.value.field == "device"


def test_supports_reads_the_record_not_its_name():
    """The kernels accept a record by its fields: SARSA yes; a copy of SARSA
    under another name yes; SARSA with another layout, next rule or
    behaviour no."""
    assert C.supports(SARSA) and C.supports(dataclasses.replace(SARSA, name="renamed"))
    assert not any(C.supports(get(a)) for a in ("expected-sarsa", "q-learning", "actor-critic", "td"))
    assert not C.supports(dataclasses.replace(SARSA, behaviour="softmax"))
    assert not C.supports(dataclasses.replace(SARSA, spec=get("actor-critic").spec, context=get("actor-critic").context))


# ------------------------------------------------------------ check stream

@pytest.mark.parametrize("parameterization", ["reduced", "full"])
@pytest.mark.parametrize("states,actions,B,frames", [(9, 4, 6, 4), (3, 2, 5, 7)])
def test_compiled_check_frames_equal_torch_stream(parameterization, states, actions, B, frames):
    """``check_frames`` (the check's stream compiled end to end) draws the
    torch stream's windows (teacher as the update) and gives, per prompt,
    ``max |TF(H) - teacher|``, the largest per-entry rounding bound and the
    teacher increment's size (the signal) within REORDER_RTOL of the torch
    read-out, teacher and the rule's own parts (``readout_magnitudes``,
    ``reference_magnitudes``, ``rounding_bound``), for random (not
    constructed) weights; its kept thetas, targets and read-outs too."""
    cfg = E.paper_config(states=states, actions=actions)
    record = cfg.record
    gen = torch.Generator().manual_seed(B + frames)
    mdp, F = cfg.distribution().sample(B, gen)
    theta, s0 = initial_state(record, mdp, F, gen)
    start = gen.get_state()
    index = record.spec.index(cfg.d)
    wgen = torch.Generator().manual_seed(7)
    P = torch.randn(index.D, index.D, generator=wgen, dtype=torch.float64) * 0.2
    V = torch.randn(index.D, index.D, generator=wgen, dtype=torch.float64) * 0.2
    if parameterization == "reduced":
        P, V = embed_reduced(index, *split_full(index, P, V)[:2])
    blocks = split_full(index, P, V)
    depth = lemma_c1_depths(index.m, index.p, cfg.n)
    k_teacher = teacher_depth(cfg.d, cfg.n, actions)
    stream = Stream(record, mdp, F, n=cfg.n, epsilon=cfg.epsilon, steps={"alpha": cfg.alpha}, gen=gen, theta=theta,
                    s0=s0)
    want, bmax, signal, th, tg, got, s_last = [], [], [], [], [], [], None
    for fr in stream.frames(frames):
        out = lemma_c1(fr.X, fr.wt, *blocks)
        want.append((out - fr.target).abs().max(-1).values)
        mag = readout_magnitudes(fr.X, fr.wt, *blocks)
        t_abs, t_inc = reference.reference_magnitudes(record, F.numpy(), fr.window.s.numpy(), fr.window.a.numpy(),
                                                      fr.window.r.numpy(), fr.theta.numpy(), mdp.gamma.numpy(),
                                                      cfg.epsilon, {"alpha": cfg.alpha})
        bound = rounding_bound([(mag["w"], depth["w"]), (mag["linear"], depth["linear"]),
                                (mag["cubic"], depth["cubic"]), (torch.from_numpy(t_abs), 1),
                                (torch.from_numpy(t_inc), k_teacher)])
        bmax.append(bound.max(-1).values)
        signal.append(torch.from_numpy(t_inc.max(-1)))
        th.append(fr.theta), tg.append(fr.target), got.append(out)
        s_last = fr.window.s[:, -1]
    gen.set_state(start)
    U = torch.rand(frames, 2 * cfg.n + 1, B, generator=gen, dtype=torch.float64).transpose(1, 2).contiguous().numpy()
    w, s = theta.numpy().copy(), s0.numpy().copy()
    stats = np.empty((frames, B, 5))
    kept = [np.empty((frames, B, cfg.d)) for _ in range(3)]
    params = C.flatten_blocks(index, P, V, "full")
    coef = np.array(bound_coefficients([depth["w"], depth["linear"], depth["cubic"], 1, k_teacher]))
    C.check_frames(F.numpy(), mdp.T.cumsum(-1).numpy(), mdp.R.numpy(), mdp.gamma.numpy(), w, s, U, cfg.epsilon,
                   cfg.alpha, params, np.abs(params), coef, stats, True, *kept)
    assert torch.equal(torch.from_numpy(s), s_last)
    assert max_err(stats[..., 0], torch.stack(want))[0] <= REORDER_RTOL
    assert max_err(stats[..., 3], torch.stack(bmax))[1] <= REORDER_RTOL
    assert max_err(stats[..., 4], torch.stack(signal))[1] <= REORDER_RTOL
    for k, ref in zip(kept, (th, tg, got)):
        assert max_err(k, torch.stack(ref))[0] <= REORDER_RTOL


def _torch_check(monkeypatch, *args, **kw):
    """``run_check`` through the torch stream (the compiled path switched off)."""
    with monkeypatch.context() as mp:
        mp.setattr(check_compiled, "applies", lambda *a: False)
        return run_check(*args, **kw)


@pytest.mark.parametrize("prompts,mdps", [(1000, 100), (250, 40), (7, 3)])
def test_compiled_check_equals_torch_check(monkeypatch, prompts, mdps):
    """``run_check`` for SARSA on the CPU (compiled) and through the torch
    stream agree: both hold, the same number of prompts, the worst error
    within REORDER_RTOL.  (Which prompt has the worst error-to-tolerance
    ratio, and so the reported tolerance, may differ: the errors are
    ~1e-16, their last bits decide it.)"""
    dist = MDPDistribution(states=4, actions=3)
    a = run_check(SARSA, dist, prompts=prompts, mdps=mdps, seed=3)
    b = _torch_check(monkeypatch, SARSA, dist, prompts=prompts, mdps=mdps, seed=3)
    assert a.holds and b.holds and a.prompts == b.prompts == prompts
    assert a.verdict == b.verdict == "holds" and a.undecidable == b.undecidable == 0
    assert abs(a.max_abs_error - b.max_abs_error) <= REORDER_RTOL


def test_compiled_and_torch_check_agree_on_undecidable_weights(monkeypatch):
    """Issue 19's cubic file (antisymmetric ``P22`` of entries 1e12, ``Vbar22``
    ones): both streams say undecidable on every prompt, with the same bound."""
    dist = MDPDistribution(states=2, actions=2)
    d = dist.d
    index = SARSA.spec.index(d)
    P, V = constructed_weights(SARSA, d, {"alpha": 0.2})
    A = torch.triu(torch.ones(index.p, index.p, dtype=torch.float64), 1) * 1e12
    P[index.p22] = A - A.T
    V[index.vbar22] = 1.0
    a = run_check(SARSA, dist, prompts=200, mdps=20, seed=2, weights=(P, V))
    b = _torch_check(monkeypatch, SARSA, dist, prompts=200, mdps=20, seed=2, weights=(P, V))
    assert a.verdict == b.verdict == "undecidable" and a.undecidable == b.undecidable == 200
    ua, ub = a.undecidable_example, b.undecidable_example
    assert abs(ua["bound"] - ub["bound"]) <= REORDER_RTOL * ub["bound"] and ua["bound"] > ua["signal"] * 1e-6


@pytest.mark.parametrize("fault", ["alpha", "sign", "nan"])
def test_compiled_check_catches_faults_with_the_torch_counterexample(monkeypatch, fault):
    """Wrong weights (alpha 0.3 against a teacher at 0.2, a flipped entry of
    ``P12*``, a NaN) fail the compiled check at the prompt where the torch
    check fails, with the same theta, teacher and read-out."""
    dist = MDPDistribution(states=3, actions=2)
    d = dist.d
    index = SARSA.spec.index(d)
    P, V = constructed_weights(SARSA, d, {"alpha": 0.3 if fault == "alpha" else 0.2})
    if fault == "sign":
        P[0, index.m + 1] *= -1
    if fault == "nan":
        V[index.m + 2, 0] = math.nan
    a = run_check(SARSA, dist, prompts=300, mdps=30, seed=1, n=6, weights=(P, V))
    b = _torch_check(monkeypatch, SARSA, dist, prompts=300, mdps=30, seed=1, n=6, weights=(P, V))
    assert not a.holds and not b.holds
    ca, cb = a.counterexample, b.counterexample
    assert (ca["mdp_index"], ca["frame"]) == (cb["mdp_index"], cb["frame"])
    for k in ("theta", "expected", "got"):
        assert np.allclose(ca[k], cb[k], rtol=0, atol=REORDER_RTOL, equal_nan=True), k
