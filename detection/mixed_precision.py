"""bfloat16 mixed precision for training on the CPU.

On a CPU with bfloat16 units, convolutions in bfloat16 run about twice as fast as in float32
(``coilmap bench precision`` times a training step of each network both ways; figures in
docs/detection-anomaly.md). Tensors are laid out channels-last only on a CPU with AMX tiles
(where that layout was measured fastest): on an AMD EPYC with AVX512-BF16 and no AMX, torch
2.13's channels-last bfloat16 convolution gave NaN weight gradients for dilations 4 and 8 with
24 input channels, and the default layout was as fast. Every training loop in bfloat16 also
checks its loss with :func:`check_finite`, so a run that diverges stops with a clear error
instead of saving a model that never learned.
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
import functools
import math
from pathlib import Path

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


@functools.cache
def cpu_has_amx() -> bool:
    """Whether the CPU has AMX bfloat16 tiles (read from /proc/cpuinfo; False elsewhere)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def channels_last(precision: str) -> bool:
    """Whether ``precision`` trains in the channels-last layout on this CPU (bf16 with AMX)."""
    return check(precision) == "bf16" and cpu_has_amx()


def prepare(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """``model`` in the memory format its training runs fastest in (see :func:`channels_last`)."""
    if channels_last(precision):
        return model.to(memory_format=torch.channels_last)
    return model


def as_input(x: torch.Tensor, precision: str) -> torch.Tensor:
    """A 4-D batch laid out for :func:`prepare`'d models."""
    if channels_last(precision) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def check_finite(loss: torch.Tensor | float, *, step: int, precision: str) -> None:
    """Stop a training run whose loss is no longer a finite number, naming step and precision.

    >>> try:
    ...     check_finite(float("nan"), step=3, precision="bf16")
    ... except InputError as exc:
    ...     print(str(exc).split("; ")[0])
    training diverged: the loss is nan at step 3 (precision bf16)
    """
    value = float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
    if not math.isfinite(value):
        hint = ("train again with --precision fp32" if precision == "bf16"
                else "train again with a lower --lr")
        raise InputError(f"training diverged: the loss is {value} at step {step} "
                         f"(precision {precision}); no model was written; {hint}")


def restore(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` back in the default memory format (for saving and float32 inference)."""
    return model.to(memory_format=torch.contiguous_format)
