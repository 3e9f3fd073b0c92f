"""Execution settings shared by the long-running analyses."""
from __future__ import annotations

import contextlib

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
