"""bfloat16 mixed precision for training on the CPU, and the tensor layout of every network.

On a CPU with bfloat16 units, convolutions in bfloat16 run about twice as fast as in float32
(``coilmap bench precision`` times a training step of each network both ways; figures in
docs/detection-anomaly.md). Tensors are laid out channels-last, the faster layout, except
where that layout computes wrong gradients (:func:`memory_format`). The training loops that
take a precision (DRAEM, the segmenter) check their loss with :func:`check_finite`, so a run
that diverges stops with a clear error instead of saving a model that never learned.
Under :func:`autocast` the weights, the optimiser state and the losses stay float32; only the
network's own arithmetic runs in bfloat16, so losses are computed on ``.float()`` outputs (an
SSIM in bfloat16 would lose its variances to cancellation). Models are saved in float32; a
DRAEM scorer may score in bfloat16 (its ``score_precision``), the segmenter predicts in float32.
A CPU without bfloat16 units only emulates it, far slower than float32: there a model asked to
score in bfloat16 scores in float32 (:func:`scoring_precision`), and bf16 training warns
(:func:`slow_bf16_warning`). Having the units is not enough either: on an Intel Xeon with
AVX512-BF16 and no AMX, bfloat16 convolutions ran slower than float32, so scoring takes
bfloat16 only where a short probe measures it faster (:func:`bf16_runs_faster`).

>>> import torch
>>> net = prepare(torch.nn.Conv2d(1, 2, 3), "bf16")
>>> with autocast("bf16"):
...     y = net(as_input(torch.zeros(1, 1, 8, 8), net))
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
def _cpuinfo() -> str:
    """/proc/cpuinfo, read once ("" where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX bfloat16 tiles (read from /proc/cpuinfo; False elsewhere)."""
    return "amx_bf16" in _cpuinfo()


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX flags in /proc/cpuinfo).

    Without them oneDNN emulates bfloat16, which is far slower than float32: on an AMD EPYC
    with AVX2 only, a training step of the segmenter took 2,508 ms in bf16 against 295 ms in
    fp32, and the default anomaly model scored 15.9 tiles/s in bf16.
    """
    flags = _cpuinfo()
    return "avx512_bf16" in flags or "amx_bf16" in flags


BF16_PROBE_MARGIN = 1.05
_probed: dict[tuple[object, ...], dict[str, float]] = {}


def precision_seconds(model: torch.nn.Module, example: torch.Tensor) -> dict[str, float]:
    """Seconds ``model`` (in inference) takes on ``example`` in each precision here: best of
    three timed runs each way after a warm-up, at the current thread count; measured once per
    process for each network shape, example shape and thread count (a DRAEM member on 8 crops
    of 96 pixels: 0.15-0.25 s)."""
    import time

    key = (type(model).__name__, tuple((n, tuple(p.shape)) for n, p in model.named_parameters()),
           tuple(example.shape), torch.get_num_threads())
    if key not in _probed:
        best = {}
        with torch.inference_mode():
            for precision in PRECISIONS:
                net = prepare(model, precision, training=False)
                times = []
                for _ in range(4):  # the first run warms up
                    start = time.perf_counter()
                    with autocast(precision):
                        net(as_input(example, net))
                    times.append(time.perf_counter() - start)
                best[precision] = min(times[1:])
        _probed[key] = best
    return _probed[key]


def bf16_runs_faster(model: torch.nn.Module, example: torch.Tensor) -> bool:
    """Whether ``model`` runs ``example`` faster in bfloat16 than in float32 here, by at least
    :data:`BF16_PROBE_MARGIN` (:func:`precision_seconds`).

    Why measure: the CPU flags do not tell. Scoring the DRAEM pair, bfloat16 gave 1.48 times
    the tiles per second of float32 on an AMD EPYC with AVX512-BF16, and 0.70 times on an Intel
    Xeon with AVX512-BF16 and no AMX (docs/detection-anomaly.md, "Second session of 2026-12-07").
    """
    seconds = precision_seconds(model, example)
    return seconds["fp32"] > BF16_PROBE_MARGIN * seconds["bf16"]


def scoring_precision(requested: str, model: torch.nn.Module | None = None,
                      example: torch.Tensor | None = None) -> str:
    """The precision a model asked to score in ``requested`` actually scores in here: bf16 only
    on a CPU with bfloat16 units (:func:`cpu_has_bf16`) where ``model`` runs ``example``
    faster in it (:func:`bf16_runs_faster`; not measured without them), fp32 elsewhere (the
    figures of the default anomaly model scored both ways are within 0.003 of each other).

    >>> scoring_precision("fp32")
    'fp32'
    """
    if check(requested) != "bf16" or not cpu_has_bf16():
        return "fp32"
    if model is not None and example is not None and not bf16_runs_faster(model, example):
        return "fp32"
    return "bf16"


def training_precision(requested: str, model: torch.nn.Module, example: torch.Tensor) -> str:
    """The precision a training run asked for ``requested`` trains in: ``"auto"`` is bf16 on
    a CPU with bfloat16 units where ``model`` runs ``example`` faster in it
    (:func:`bf16_runs_faster`, at the current thread count), fp32 elsewhere; fp32 and bf16
    are themselves. Why: the default anomaly recipe's bf16 members trained 1.5 times the steps
    of fp32 on an AMD EPYC with AVX512-BF16, fewer on an Intel Xeon without AMX, and on an
    AVX2-only EPYC a DRAEM training step took 5,365 ms in bf16 against 359 ms in fp32.

    >>> training_precision("fp32", torch.nn.Conv2d(1, 1, 3), torch.zeros(1, 1, 8, 8))
    'fp32'
    """
    if requested != "auto":
        return check(requested)
    return scoring_precision("bf16", model, example)  # the same rule as scoring's


def precision_summary(model: torch.nn.Module, example: torch.Tensor) -> str:
    """One line naming the milliseconds each precision took on ``example`` here (measured
    once, :func:`precision_seconds`), for a log that says why ``auto`` chose as it did."""
    if not cpu_has_bf16():
        return "no bfloat16 units on this CPU"
    seconds = precision_seconds(model, example)
    return (f"a batch of {example.shape[0]}: {1000 * seconds['fp32']:.1f} ms fp32, "
            f"{1000 * seconds['bf16']:.1f} ms bf16")


def resolve_training_precision(requested: str, model: torch.nn.Module,
                               example: torch.Tensor) -> tuple[str, str | None]:
    """``(precision, message)`` for a training command: :func:`training_precision`, and the
    line to print on stderr: what ``auto`` chose and why, or :func:`slow_bf16_warning`."""
    precision = training_precision(requested, model, example)
    if requested == "auto":
        return precision, f"--precision auto: {precision} here ({precision_summary(model, example)})"
    return precision, slow_bf16_warning(requested, model, example)


def slow_bf16_warning(precision: str, model: torch.nn.Module | None = None,
                      example: torch.Tensor | None = None) -> str | None:
    """A one-line warning when ``precision`` is bf16 on a CPU without bfloat16 units, or, given
    the network to train and a batch, where its forward pass runs no faster in bfloat16
    (:func:`bf16_runs_faster`; on an Intel Xeon with AVX512-BF16 and no AMX a DRAEM training
    step took 409 ms in bf16 against 332 in fp32: a time-capped run trained fewer steps)."""
    if check(precision) != "bf16":
        return None
    if not cpu_has_bf16():
        return ("warning: this CPU has no bfloat16 units (no avx512_bf16 / amx_bf16 flag); "
                "bf16 training is emulated here, several times slower than --precision fp32")
    if model is None or example is None:
        return None
    try:
        faster = bf16_runs_faster(model, example)
    except RuntimeError:  # a batch the network cannot take: training says why, not this check
        return None
    if not faster:
        seconds = precision_seconds(model, example)
        return (f"warning: on this CPU the network runs no faster in bf16 than in fp32 "
                f"({1000 * seconds['bf16']:.1f} against {1000 * seconds['fp32']:.1f} ms for a "
                f"batch of {example.shape[0]}); --precision fp32 may train more steps in the same minutes")
    return None


def memory_format(model: torch.nn.Module, precision: str, *, training: bool = True) -> torch.memory_format:
    """The layout ``model`` runs fastest in and correctly: channels-last, except for training a
    network with dilated convolutions in bf16 on a CPU without AMX.

    On an AMD EPYC with AVX512-BF16 (no AMX), torch 2.13's channels-last bfloat16 convolution
    gave NaN weight gradients for dilations 4 and 8 with 24 input channels (its forward pass,
    and undilated networks, were right); channels-last was still the faster layout there
    (DRAEM training step 208 against 255 ms, scoring 120 against 81 tiles per second). In
    float32 too channels-last is the faster layout: on an AVX2-only EPYC the default anomaly
    model scored 102.0 against 74.5 tiles/s with one thread, and a segmenter training step took
    136 against 186 ms (same outputs within 2e-5 of the largest, gradients within 1 %).
    """
    check(precision)
    if precision == "bf16" and training and not cpu_has_amx() and _has_dilated_convolution(model):
        return torch.contiguous_format
    return torch.channels_last


def _has_dilated_convolution(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) and max(m.dilation) > 1 for m in model.modules())


def prepare(model: torch.nn.Module, precision: str, *, training: bool = True) -> torch.nn.Module:
    """``model`` in its :func:`memory_format` (remembered for :func:`as_input`)."""
    fmt = memory_format(model, precision, training=training)
    model.coilmap_memory_format = fmt  # type: ignore[assignment]
    return model.to(memory_format=fmt)


def as_input(x: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """A 4-D batch laid out as the :func:`prepare`'d ``model``."""
    fmt = getattr(model, "coilmap_memory_format", torch.contiguous_format)
    return x.contiguous(memory_format=fmt) if x.dim() == 4 else x


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
    model.coilmap_memory_format = torch.contiguous_format  # type: ignore[assignment]
    return model.to(memory_format=torch.contiguous_format)
