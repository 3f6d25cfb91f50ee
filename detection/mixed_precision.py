"""bfloat16 mixed precision for training on the CPU.

On a CPU with bfloat16 matrix units (this machine's Xeon has AMX), convolutions in bfloat16 with
channels-last tensors run several times faster than in float32 (``coilmap bench precision``
times a training step of each network both ways; figures in docs/detection-anomaly.md).
Under :func:`autocast` the weights,
the optimiser state and the losses stay float32; only the network's own arithmetic runs in
bfloat16, so losses are computed on ``.float()`` outputs (an SSIM in bfloat16 would lose its
variances to cancellation). Models are saved and run for inference in float32 either way.

>>> import torch
>>> net = prepare(torch.nn.Conv2d(1, 2, 3), "bf16")
>>> with autocast("bf16"):
...     y = net(as_input(torch.zeros(1, 1, 8, 8), "bf16"))
>>> y.dtype, y.float().dtype
(torch.bfloat16, torch.float32)
"""

from __future__ import annotations

import contextlib

import torch

from coilmap.errors import InputError

PRECISIONS = ("fp32", "bf16")


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast(precision: str) -> contextlib.AbstractContextManager[object]:
    """The network's arithmetic in bfloat16 for ``"bf16"``, unchanged for ``"fp32"``."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=check(precision) == "bf16")


def prepare(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """``model`` in the memory format its training runs fastest in (channels-last for bf16)."""
    if check(precision) == "bf16":
        return model.to(memory_format=torch.channels_last)
    return model


def as_input(x: torch.Tensor, precision: str) -> torch.Tensor:
    """A 4-D batch laid out for :func:`prepare`'d models."""
    if check(precision) == "bf16" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def restore(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` back in the default memory format (for saving and float32 inference)."""
    return model.to(memory_format=torch.contiguous_format)
