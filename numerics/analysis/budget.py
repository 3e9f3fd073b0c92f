"""Size guards: what a command would allocate, estimated before it allocates,
and how long it would run, estimated before it starts.

Each estimate adds up the largest float64 tensors the command holds at once
(MDP batches, features, windows, prompts, Hessians), named, so that a refusal
can say what is large and which option shrinks it.  :func:`guard` raises
:class:`InputError` (exit 2 at the command line) with the estimate, the limit
and the option that raises the limit (``--max-memory``) before anything is
allocated.  The estimates are upper bounds of the dominant terms, not exact
accounting: Python, torch and the libraries add a few hundred MB.

Time guards (issue 19) sit beside them: each heavy command counts its work
from its sizes (:class:`Work`: named float64 operation counts, the dominant
loops only) and divides by a throughput measured on the project's 2-core
machine (the constants below say which run measured them);
:func:`guard_time` refuses a job whose estimate is above ``--max-time``
(default :data:`DEFAULT_MAX_TIME`, environment :data:`ICRL_MAX_TIME
<TIME_ENV_VAR>`) with exit 2 and one line: the estimate, its largest parts,
the limit and what shrinks the job.  The estimates aim at the right order
of magnitude (docs/limits.md), not at a forecast.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from numerics.analysis.spectrum import DENSE_EIGH_LIMIT
from numerics.io.options import Bytes, Duration, Integer
from theory.errors import InputError

F64 = 8
#: Default limit: this fraction of the machine's physical memory.
DEFAULT_MEMORY_FRACTION = 0.5

#: Environment variable that sets the limit when ``--max-memory`` is not given.
ENV_VAR = "ICRL_MAX_MEMORY"


def physical_memory() -> int:
    """Bytes of physical memory (``sysconf``), or 8 GB where it is unknown."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 1024 ** 3


def default_max_memory() -> int:
    return int(DEFAULT_MEMORY_FRACTION * physical_memory())


def max_memory(value: int | None = None) -> int:
    """The limit in bytes: ``value`` (``--max-memory``), else the environment
    variable :data:`ICRL_MAX_MEMORY <ENV_VAR>` (``8G`` style), else
    :func:`default_max_memory`."""
    if value is not None:
        return int(value)
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip():
        kind = Bytes()
        try:
            return int(kind.check(kind.parse_text(env)))
        except ValueError as e:
            raise InputError(ENV_VAR, str(e)) from None
    return default_max_memory()


def human(nbytes: float) -> str:
    for unit, size in (("EB", 1024 ** 6), ("PB", 1024 ** 5), ("TB", 1024 ** 4), ("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes:.0f} B"


@dataclass
class Estimate:
    """Named byte counts of the largest tensors held at once."""

    parts: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, nbytes: float) -> "Estimate":
        self.parts[name] = self.parts.get(name, 0.0) + float(nbytes)
        return self

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def describe(self, most: int = 3) -> str:
        top = sorted(self.parts.items(), key=lambda kv: -kv[1])[:most]
        return ", ".join(f"{name} {human(b)}" for name, b in top)


def guard(estimate: Estimate, limit: int, what: str, shrink: str) -> Estimate:
    """Refuse (``InputError`` on ``max-memory``, exit 2 at the command line)
    when the estimate exceeds the limit: one line with the estimate, its
    largest parts, the limit, what shrinks the job and the option that
    raises the limit."""
    if estimate.total > limit:
        raise InputError("max-memory", f"{what} would need about {human(estimate.total)} ({estimate.describe()}), "
                                       f"above the limit {human(limit)}; {shrink}, or raise --max-memory "
                                       f"(or {ENV_VAR})")
    return estimate


def mdp_batch(B: int, S: int, A: int, d: int) -> Estimate:
    """A batch of ``B`` MDPs and features as ``MDPDistribution.sample`` and the
    stream hold them: Dirichlet draws, ``T``, ``R``, the transition CDFs (each
    ``B x S x A x S``) and ``F`` (``B x S x A x d``)."""
    return Estimate().add("transitions and rewards (mdps x states x actions x states)", 4 * B * S * A * S * F64) \
                     .add("features (mdps x states x actions x d)", B * S * A * d * F64)


def guard_source(source, args):
    """The size guard of the MDP source (``numerics.io.sources.MDPSource``):
    one MDP's tables and features (the Section 4.1 options
    ``--states``/``--actions``, or a named family's sizes by its own
    arithmetic) must fit under ``--max-memory`` before anything is
    generated.  A batch file or a generator is sized once it is read."""
    sizes = source.sizes()
    if sizes is None:
        return
    S, A, d = sizes
    limit = max_memory(getattr(args, "max_memory", None))
    if source.is_default:
        guard(mdp_batch(1, S, A, d), limit, f"one MDP of {S:,} states x {A:,} actions (d = {d:,})",
              "use smaller --states/--actions")
        return
    flags = [p.option(source.name) for p in source.family.params if isinstance(p.kind, Integer)]
    guard(mdp_batch(1, S, A, d), limit, f"one MDP of family {source.name} ({S:,} states x {A} actions, d = {d:,})",
          f"use a smaller {'/'.join(flags) or 'family'}")


def frame(record, B: int, n: int, A: int, d: int) -> Estimate:
    """One frame of the stream for ``B`` MDPs: the per-transition quantities,
    the context ``X`` with the read-out's and the teacher's intermediates of
    the same size (three copies: measured, docs/limits.md) and, for the
    expected / greedy ``phi+`` and the score, the features of every action
    at each visited state."""
    m = record.layout.m(d)
    e = Estimate().add("window quantities (mdps x context x d)", 2 * B * n * d * F64) \
                  .add("prompts and read-out intermediates (3 x mdps x context x m)", 3 * B * n * m * F64)
    if record.next_rule != "taken" or "g" in record.quantities:
        e.add("features of every action along the window", B * n * A * d * F64)
    return e


def check(record, B: int, S: int, A: int, d: int, n: int) -> Estimate:
    e = mdp_batch(B, S, A, d)
    for k, v in frame(record, B, n, A, d).parts.items():
        e.add(k, v)
    return e



#: Copies of the ``p x p`` Gauss-Newton matrix alive at the peak of the
#: richness analysis (the matrix, the assembly's permuted blocks and
#: symmetrisation, the eigensolver's copy and eigenvectors, a bootstrap
#: replicate's own matrix and solver), dense route / shift-invert route.
#: Calibrated by peak RSS (docs/limits.md): d = 20 (1,681 parameters, dense)
#: measured ~11 copies above the import baseline, d = 30 (3,721, shift-invert) ~7.
HESSIAN_COPIES = {"dense": 12, "shift-invert": 8}


def reduced_parameters(record, d: int) -> int:
    return record.spec.index(d).reduced_count()


def hessian(record, d: int, prompts: int, n: int, bootstrap: int = 0) -> Estimate:
    """The richness analysis on ``prompts`` prompts of context ``n``: the
    prompt sample, the per-prompt Jacobian factors and products of the
    closed-form Gauss-Newton assembly (``numerics.analysis.hessian``), and
    :data:`HESSIAN_COPIES` copies of the ``p x p`` matrix on the ``p``
    reduced parameters (dense ``eigh`` up to
    :data:`~numerics.analysis.spectrum.DENSE_EIGH_LIMIT`, shift-invert
    Lanczos with a Cholesky factor above)."""
    idx = record.spec.index(d)
    p, m, q, w = idx.reduced_count(), idx.m, idx.q, idx.q + 1
    route = "dense" if p <= DENSE_EIGH_LIMIT else "shift-invert"
    copies = HESSIAN_COPIES[route] - (0 if bootstrap else 2)
    e = Estimate().add("prompt sample (prompts x context x m)", 2 * prompts * n * idx.m * F64) \
                  .add("Jacobian factors and products (prompts x (q m + m^2 + p^2))",
                       2 * prompts * (q * m + m * m + w * w + w * m) * F64)
    e.add(f"Gauss-Newton matrix ({p:,} x {p:,} reduced parameters, {route} eigensolver), {copies} copies",
          copies * p * p * F64)
    return e


def largest_fitting_d(record, prompts: int, n: int, limit: int, bootstrap: int = 0, d_max: int = 100_000) -> int:
    """The largest feature dimension ``d`` whose richness analysis fits under
    ``limit`` (0 when none does); the estimate grows with ``d``."""
    lo, hi = 0, d_max
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if hessian(record, mid, prompts, n, bootstrap).total <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def guard_hessian(record, d: int, prompts: int, n: int, limit: int, what: str, bootstrap: int = 0,
                  parameterization: str = "reduced", states_option: str = "--states/--actions",
                  note: str = "") -> Estimate:
    """:func:`guard` for the dense Hessian of the richness analysis (and the
    flow, which uses its spectrum): the refusal says that the sizes are
    beyond a dense Hessian and which ``d`` would fit."""
    e = hessian(record, d, prompts, n, bootstrap)
    if e.total <= limit:
        return e
    p = reduced_parameters(record, d)
    fit = largest_fitting_d(record, prompts, n, limit, bootstrap)
    alt = "" if parameterization == "reduced" else " (--parameterization full analyses this same reduced " \
                                                   "Hessian and more: the reduced parameterisation is the smallest)"
    shrink = (f"d = {d} gives {p:,} reduced parameters, beyond a dense Hessian at this limit: use smaller "
              f"{states_option} (d = {fit} fits; d is states x actions, states for td) or fewer prompts{alt}{note}")
    return guard(e, limit, what, shrink)


def train(record, batch: int, eval_mdps: int, S: int, A: int, d: int, n: int, hidden: int = 0,
          model: str = "lsa") -> Estimate:
    """Training (minibatch protocol): one MDP batch and its frame (with
    autograd's saved tensors, about twice the prompt) and the held-out
    evaluation batch (all ``eval_mdps`` at once); a baseline's hidden
    activations over the context."""
    e = Estimate()
    for B, tag in ((batch, "training"), (eval_mdps, "evaluation")):
        for k, v in check(record, B, S, A, d, n).parts.items():
            e.add(f"{tag}: {k}", v)
    m = record.layout.m(d)
    e.add("autograd's saved tensors (batch x context x m)", 2 * batch * n * m * F64)
    if model != "lsa":
        h = hidden or 128
        e.add(f"{model} activations ((batch + eval) x context x hidden)",
              4 * (batch + eval_mdps) * n * h * F64 + 4 * (n * m + d + 2) * h * F64)
    return e


def exact(record, eval_mdps: int, S: int, A: int, d: int, n: int, frames: int) -> Estimate:
    """Training with ``--protocol paper``: one MDP at a time (its tables,
    features and the ``frames x (2n+1)`` uniforms of its frames, the
    compiled workspace) and the held-out evaluation batch of the torch
    evaluator."""
    e = mdp_batch(1, S, A, d)
    e.add("uniforms of one MDP (frames x (2 context + 1))", frames * (2 * n + 1) * F64)
    e.add("compiled workspace (context x m)", 4 * n * record.layout.m(d) * F64)
    for k, v in check(record, eval_mdps, S, A, d, n).parts.items():
        e.add(f"evaluation: {k}", v)
    return e


def flow(record, d: int, prompts: int, n: int, runs: int, parameterization: str = "reduced") -> Estimate:
    """The flow experiment: the richness analysis of its sample (no
    bootstrap), ``runs`` flows integrated side by side (their batched
    Lemma C.1 read-outs and gradients, ``runs x prompts x (context + 3 m)``)
    and, on the shift-invert route, the Cholesky factors of ``I + h H``
    cached per step size (up to about ten)."""
    idx = record.spec.index(d)
    e = hessian(record, d, prompts, n)
    e.add("batched flows (runs x prompts x (context + 3 m))", 2 * runs * prompts * (n + 3 * idx.m) * F64)
    p = idx.reduced_count()
    if p > DENSE_EIGH_LIMIT:
        e.add("cached Cholesky factors of I + h H (about 10)", 10 * p * p * F64)
    if parameterization == "full":
        D = idx.D
        e.add("full parameters of every run (runs x 2 D^2)", 4 * runs * 2 * D * D * F64)
    return e


def control(record, mdps: int, S: int, A: int, d: int, n: int, rounds: int, methods: int = 3) -> Estimate:
    """The closed loop for one chunk of seeds (``numerics.analysis.control``
    runs at least one seed at a time): ``mdps`` MDPs with their features,
    the policy evaluation matrices (``S x S`` per MDP), a frame per method
    and the return curves."""
    e = mdp_batch(mdps, S, A, d)
    dense_eval = S * S if S <= 128 else S * 4
    e.add("policy evaluation (mdps x 2 states^2)", mdps * 2 * dense_eval * F64)
    for k, v in frame(record, mdps, n, A, d).parts.items():
        e.add(k, methods * v)
    e.add("curves (mdps x rounds x q)", mdps * (rounds + 1) * 2 * record.layout.q(d) * F64)
    return e


def layer_check(mrps: int, S: int, d: int, n: int, layers: int) -> Estimate:
    """``check`` of an mrp record: one window per MRP (its ``S x S``
    tables, features, ``n + 1`` transitions) and every layer's ``D x (n+1)``
    prompt (``D = 2d + 1``) for the block and for the batch-TD loop."""
    D = 2 * d + 1
    return Estimate().add("MRPs and features (mrps x states x (2 states + d))", mrps * S * (2 * S + d) * F64) \
                     .add("prompts of every layer (mrps x (layers + 2) x D x (context + 1))",
                          2 * mrps * (layers + 2) * D * (n + 1) * F64)


def softmax_check(mrps: int, S: int, d: int, n: int, layers: int) -> Estimate:
    """``check`` of a softmax record: one window per MRP (its tables and
    features) and every layer's ``(d + 3) x (n + 1)`` prompt, twice (the
    block and its magnitudes), plus the reference's kernel and values."""
    D = d + 3
    return Estimate().add("MRPs and features (mrps x states x (2 states + d))", mrps * S * (2 * S + d) * F64) \
                     .add("prompts of every layer (2 x mrps x (layers + 1) x D x (context + 1))",
                          2 * mrps * (layers + 1) * D * (n + 1) * F64) \
                     .add("attention of one layer (mrps x (context + 1)^2), the reference's kernel",
                          2 * mrps * (n + 1) * (n + 1) * F64 + S * n * F64)


def layer_train(seeds: int, steps: int, eval_mrps: int, S: int, d: int, n: int, layers: int) -> Estimate:
    """``train`` of an mrp record: every seed's window of ``steps`` sliding
    prompts through ``layers`` layers with autograd's saved tensors, and the
    held-out evaluation (one prompt per state and MRP)."""
    D = 2 * d + 1
    return Estimate().add("training prompts (seeds x window steps x layers x D x (context + 1)), with autograd",
                          3 * seeds * steps * (layers + 1) * D * (n + 1) * F64) \
                     .add("evaluation prompts (seeds x eval MRPs x states x layers x D x (context + 1))",
                          seeds * eval_mrps * S * (layers + 1) * D * (n + 1) * F64)


# =========================================================================== time
#: Default time limit: 24 hours.
DEFAULT_MAX_TIME = 24 * 3600.0

#: Environment variable that sets the time limit when ``--max-time`` is not given.
TIME_ENV_VAR = "ICRL_MAX_TIME"

#: Throughputs, float64 multiply-adds per CPU second of the dominant loops,
#: each measured on the project's 2-core machine (Python 3.11, torch 2.13
#: CPU, one thread, numba) by ``benchmarks/time_guards.py`` (issue 19,
#: 2026-12-07, at load 8: CPU seconds of a second, warm run were timed, not
#: wall seconds):
#:   check      the compiled check stream: Section 4.1 ``check --prompts 400000``
#:   batched    the batched torch training stream: ``train --mdps 512 --frames 50``
#:   dense      the closed-form Gauss-Newton assembly and ``eigh``: ``richness`` at d = 12
#:   flow       the flow's batched gradients: ``flow`` at 3 x 2, 400 prompts
#:   compiled   the compiled exact Algorithm 1: ``train --protocol paper --mdps 20``
#:   control    the closed loop: ``control --constructed --seeds 4 --mdps 100 --rounds 200``
#:   layers     the layer-by-layer (mrp) records: ``check --algorithm td-preconditioned`` (40 layers, n = 100, 3,000 MRPs)
#:   softmax    the softmax records' check: the reference's per-state Python loop, one inner iteration per
#:              (MRP, layer, state, context column): ``check --algorithm softmax-td --layers 40`` (n = 100, 30 MRPs,
#:              1.2 million iterations in 1.6 s, measured on the project's 2 cores; set at 5e5 per second)
#: The benchmark prints estimate / measured per command (all within 0.5 to 2
#: when set); the first run of a process adds imports and numba loading
#: (STARTUP_SECONDS).
THROUGHPUT = {"check": 3.0e9, "batched": 1.6e9, "dense": 2.0e9, "flow": 6.0e8, "compiled": 9.0e8, "control": 1.2e9,
              "layers": 1.0e8, "softmax": 5.0e5}

#: Start-up every estimate includes (imports, numba loading: the first
#: ``check`` of a process took 1.8 s more than the next): seconds.
STARTUP_SECONDS = 2.0


def max_time(value: float | None = None) -> float:
    """The limit in seconds: ``value`` (``--max-time``), else the
    environment variable :data:`ICRL_MAX_TIME <TIME_ENV_VAR>` (``24h``
    style), else :data:`DEFAULT_MAX_TIME`."""
    if value is not None:
        return float(value)
    env = os.environ.get(TIME_ENV_VAR)
    if env is not None and env.strip():
        kind = Duration()
        try:
            return float(kind.check(kind.parse_text(env)))
        except ValueError as e:
            raise InputError(TIME_ENV_VAR, str(e)) from None
    return DEFAULT_MAX_TIME


def human_time(seconds: float) -> str:
    """``seconds`` in the largest unit that leaves at least 1 (days from 2 days on)."""
    for unit, size, above in (("years", 365.25 * 86400, 1.0), ("days", 86400.0, 2.0), ("h", 3600.0, 1.0),
                              ("min", 60.0, 1.0)):
        if seconds >= above * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


@dataclass
class Work:
    """Named counts of float64 multiply-adds, each with the throughput kind
    (:data:`THROUGHPUT`) that runs it."""

    parts: dict[str, tuple[float, str]] = field(default_factory=dict)

    def add(self, name: str, ops: float, kind: str = "batched") -> "Work":
        old = self.parts.get(name, (0.0, kind))[0]
        self.parts[name] = (old + float(ops), kind)
        return self

    def scaled(self, factor: float, prefix: str = "") -> "Work":
        return Work({prefix + k: (v * float(factor), kind) for k, (v, kind) in self.parts.items()})

    def merged(self, other: "Work") -> "Work":
        out = Work(dict(self.parts))
        for k, (v, kind) in other.parts.items():
            out.add(k, v, kind)
        return out

    def seconds_of(self, name: str) -> float:
        v, kind = self.parts[name]
        return v / THROUGHPUT[kind]

    @property
    def seconds(self) -> float:
        return STARTUP_SECONDS + sum(self.seconds_of(k) for k in self.parts)

    def describe(self, most: int = 2) -> str:
        top = sorted(self.parts, key=lambda k: -self.seconds_of(k))[:most]
        return ", ".join(f"{k} {human_time(self.seconds_of(k))}" for k in top)


def guard_time(work: Work, limit: float, what: str, shrink: str) -> Work:
    """Refuse (``InputError`` on ``max-time``, exit 2 at the command line)
    when the estimated time exceeds the limit: one line with the estimate,
    its largest parts, the limit, what shrinks the job and the option that
    raises the limit.  Call it before any heavy work starts."""
    t = work.seconds
    if not t <= limit:
        raise InputError("max-time", f"{what} would take about {human_time(t)} ({work.describe()}), above the "
                                     f"limit {human_time(limit)}; {shrink}, or raise --max-time (or {TIME_ENV_VAR})")
    return work


def stream_ops(record, B: int, n: int, S: int, A: int, d: int) -> float:
    """Multiply-adds of one frame of the stream for ``B`` MDPs: the window
    (``n`` transitions, a greedy choice over ``A`` actions of ``d``
    features each), the prompt and the read-out (``P12 w~``, the ``n x m``
    context twice, ``Vbar21 s``) and the teacher."""
    m, q = record.layout.m(d), record.layout.q(d)
    return float(B) * (n * (A * d + 3 * m + 4 * d) + m * (m + 2 * q))


def check_work(record, prompts: int, mdps: int, S: int, A: int, d: int, n: int) -> Work:
    """``check``: ``prompts`` frames of the stream spread over ``mdps`` MDPs
    (drawn once: ``S x A x S`` tables)."""
    return Work().add("stream (prompts x context x m)", stream_ops(record, prompts, n, S, A, d), "check") \
                 .add("MDPs (mdps x states^2 x actions)", float(mdps) * S * S * A)


def richness_work(record, d: int, prompts: int, n: int, bootstrap: int = 0) -> Work:
    """``richness``: the prompt sample, the closed-form ``E[J^T J]``
    (``prompts x p^2`` over the ``p`` reduced parameters) and its dense
    spectrum (``~10 p^3``), once plus once per bootstrap replicate."""
    idx = record.spec.index(d)
    p, m, q = idx.reduced_count(), idx.m, idx.q
    one = Work().add("prompt sample (prompts x context x m x q)", stream_ops(record, prompts, n, 1, 1, d)) \
                .add("Gauss-Newton assembly (prompts x p^2)", float(prompts) * (p * p + n * m), "dense") \
                .add("spectrum (10 p^3)", 10.0 * p ** 3, "dense")
    return one.scaled(1 + max(0, bootstrap))


def flow_work(record, d: int, prompts: int, n: int, runs: int, steps: int, parameterization: str = "reduced") -> Work:
    """``flow``: its richness analysis and ``runs`` flows of up to ``steps``
    implicit-Euler steps, each step ~6 gradient evaluations (chord
    iterations to the rounding floor), a gradient ``~6 prompts x context x
    m`` multiply-adds per run (plus ``p^2`` per prompt in the full
    parameterisation)."""
    idx = record.spec.index(d)
    m, p = idx.m, idx.p
    grad = 6.0 * prompts * n * m + (2.0 * prompts * p * p if parameterization == "full" else 0.0)
    return richness_work(record, d, prompts, n).add("flows (runs x steps x 6 gradients)",
                                                    float(runs) * steps * 6 * grad, "flow")


def train_work(record, mdps: int, frames: int, S: int, A: int, d: int, n: int, eval_mdps: int, seeds: int = 1,
               protocol: str = "minibatch", hidden: int = 0, model: str = "lsa") -> Work:
    """Training: ``mdps x frames`` frames of the stream, each with the
    forward and backward pass of the block (about 3 read-outs; a baseline:
    its hidden units over the context) and the held-out evaluation."""
    m = record.layout.m(d)
    per = stream_ops(record, 1, n, S, A, d) * 3
    if model != "lsa":
        per += 6.0 * n * (hidden or 128) * (m + (hidden or 128))
    kind = "compiled" if protocol == "paper" else "batched"
    w = Work().add("training frames (mdps x frames x context x m)", float(mdps) * frames * per, kind) \
              .add("evaluation (eval mdps x context x m)", 10.0 * stream_ops(record, eval_mdps, n, S, A, d))
    return w.scaled(seeds)


def control_work(record, seeds: int, mdps: int, rounds: int, S: int, A: int, d: int, n: int,
                 methods: int = 3) -> Work:
    """The closed loop: ``seeds x rounds`` frames of ``mdps`` MDPs per
    method, and each round's policy evaluation (``S^3`` per MDP)."""
    per_round = methods * stream_ops(record, mdps, n, S, A, d) + 2.0 * mdps * S ** 3
    return Work().add("closed loop (seeds x rounds x mdps x context x m)", float(seeds) * (rounds + 1) * per_round,
                      "control")


def layer_check_work(mrps: int, S: int, d: int, n: int, layers: int) -> Work:
    """``check`` of an mrp record: every layer of every MRP's prompt
    (``D x D`` against ``D x (n+1)``, twice: block and batch-TD loop)."""
    D = 2 * d + 1
    return Work().add("layers (mrps x layers x D^2 x context)", 4.0 * mrps * layers * D * D * (n + 1)
                      + float(mrps) * S ** 3, "layers")


def softmax_check_work(mrps: int, S: int, d: int, n: int, layers: int) -> Work:
    """``check`` of a softmax record: the reference's per-state loop (one
    Python iteration per MRP, layer, state and context column) and the
    check's per-layer NumPy work."""
    return Work().add("reference (mrps x layers x states x context), per-state Python loops",
                      float(mrps) * layers * (S * (n + 1) + 4 * (n + 1) + 200), "softmax")


def layer_train_work(seeds: int, steps: int, minibatches: int, eval_mrps: int, S: int, d: int, n: int,
                    layers: int) -> Work:
    """``train`` of an mrp record: every seed's window steps, each a
    forward and backward pass through ``layers`` layers for ``minibatches``
    minibatches, and the held-out evaluation."""
    D = 2 * d + 1
    per = 6.0 * layers * D * D * (n + 1)
    return Work().add("training (seeds x window steps x minibatches x layers x D^2 x context)",
                      float(seeds) * steps * max(1, minibatches) * per, "layers") \
                 .add("evaluation (seeds x eval MRPs x states x layers)", float(seeds) * eval_mrps * S * per, "layers")
