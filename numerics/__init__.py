"""Numeric side of the toolkit: batched, float64 PyTorch implementations of
the objects in THEORY.md (MDPs, windows, teachers, prompts, the linear
self-attention block and the constructions taken from ``theory``)."""

import torch as _torch

DTYPE = _torch.float64
