"""Execution settings shared by the long-running analyses."""
from __future__ import annotations

import contextlib
import signal
import threading

import torch


@contextlib.contextmanager
def torch_threads(threads: int | None, device=None):
    """Run with ``threads`` intra-op CPU threads (None, or a non-CPU device:
    leave as is), restoring the previous setting.  The batched operations of
    training, flow and control are small (~10^5 numbers); on a busy 2-core
    machine two OpenMP threads made them 5-10x slower than one."""
    if threads is None or (device is not None and torch.device(device).type != "cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------- interrupts
#
# Ctrl-C (SIGINT) and SIGTERM during a long command must lose nothing: the
# command layer installs :func:`interruptible`'s handlers while the command
# runs; a signal only sets a flag, and the computation checks it at its own
# clean boundaries (an MDP batch of training, a bootstrap replicate, a flow
# step, a control round, a claims check) with :func:`check_interrupt`, which
# raises :class:`Interrupted` there.  Training writes a checkpoint first, so
# ``--resume`` continues to the same numbers.  Files are written atomically
# (``numerics.io.files``), so no report or weight file is ever partly
# written.  A second signal before a boundary is reached stops at once
# (``KeyboardInterrupt``; temporary files are still removed).

#: Exit status of a command stopped by a signal: 128 + the signal number
#: (130 for SIGINT, 143 for SIGTERM), the shell's convention.
EXIT_SIGNAL_BASE = 128

_pending: list[int] = []          # signals received and not yet acted on


class Interrupted(KeyboardInterrupt):
    """Raised at a clean boundary after SIGINT / SIGTERM.  ``signum``: the
    signal; ``checkpoint``: the checkpoint written on the way out (or None).
    A ``KeyboardInterrupt``, so no ``except Exception`` on the way up (a
    claims check recorded as "did not run") swallows it."""

    def __init__(self, signum: int, checkpoint: str | None = None):
        self.signum, self.checkpoint = int(signum), checkpoint
        super().__init__(signal.Signals(signum).name)

    def __reduce__(self):             # survives pickling (a worker process's result)
        return (Interrupted, (self.signum, self.checkpoint))

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return EXIT_SIGNAL_BASE + self.signum


def interrupted() -> int | None:
    """The first pending signal number, or None."""
    return _pending[0] if _pending else None


def check_interrupt():
    """Raise :class:`Interrupted` if SIGINT or SIGTERM arrived (call at a clean boundary)."""
    if _pending:
        raise Interrupted(_pending[0])


def _handler(signum, frame):
    _pending.append(signum)
    if len(_pending) > 1:            # a second signal: stop now
        raise KeyboardInterrupt


def _quiet_handler(signum, frame):
    _pending.append(signum)


def install_for_worker(signals=(signal.SIGINT, signal.SIGTERM)):
    """A worker process's handlers for its whole life (``--seeds K``
    training): every signal only sets the flag (the parent forwards the
    signal it received, and a terminal's Ctrl-C reaches the worker too, so
    a repeat must not abort the checkpoint)."""
    for s in signals:
        signal.signal(s, _quiet_handler)


@contextlib.contextmanager
def interruptible(signals=(signal.SIGINT, signal.SIGTERM)):
    """While the block runs, SIGINT / SIGTERM set the flag read by
    :func:`check_interrupt` instead of raising wherever the interpreter is.
    Restores the previous handlers and clears the flag on exit.  Outside
    the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals}
    _pending.clear()
    for s in signals:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _pending.clear()
