"""Training-step time in float32 against bfloat16 mixed precision, on this machine's CPU.

    coilmap bench precision --repeats 5 --threads 1

One optimiser step of the two networks trained here from scratch, on the batches their
trainings use: DRAEM (base width 16, 16 crops of 128 px with synthetic anomalies, L2 + SSIM +
focal loss) and the context aggregation network (width 24, 16 crops of 128 px). Each is timed
in float32 and in bfloat16 mixed precision (:mod:`detection.mixed_precision`), best of the
repeats after two warm-up steps; the figure that matters is the ratio within one run. A CPU
without bfloat16 units may show bf16 slower. A third line times the SSIM loss alone (forward
and backward on 16 x 128 x 128) with the separable window DRAEM uses against the plain 11 x 11
window it replaced (kept here as the anchor). Prints one JSON line each.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmarks.timing import best_seconds
from detection import mixed_precision
from detection.anomaly.draem.scorer import draem_loss
from detection.anomaly.draem.torch_model import DraemModel
from detection.anomaly.ssim import ssim_map
from detection.segmentation.torch_model import ContextAggregationNetwork


def draem_step(precision: str, batch: int = 16, crop_px: int = 128) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(batch, 1, crop_px, crop_px, generator=gen)
    masks = (torch.rand(batch, 1, crop_px, crop_px, generator=gen) > 0.97).float()
    aug = clean * (1 - masks) + masks * 0.1
    model = mixed_precision.prepare(DraemModel(16), precision)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = draem_loss(model, clean, aug, masks, precision)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def can_step(precision: str, batch: int = 16, crop_px: int = 128) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, crop_px, crop_px, generator=gen)
    target = (torch.rand(batch, 5, crop_px // 4, crop_px // 4, generator=gen) > 0.95).float()
    net = mixed_precision.prepare(ContextAggregationNetwork(5, 24), precision)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        with mixed_precision.autocast(precision):
            lo = net.low_res_logits(mixed_precision.as_input(x, net))
        loss = F.binary_cross_entropy_with_logits(lo.float(), target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _ssim_2d_window(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The SSIM map with one 11 x 11 Gaussian convolution per local mean (the old way)."""
    coords = torch.arange(11, dtype=torch.float32) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :])[None, None]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (5, 5, 5, 5), mode="reflect"), win)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim_step(window: str) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(16, 1, 128, 128, generator=gen).requires_grad_()
    b = torch.rand(16, 1, 128, 128, generator=gen)
    fn = ssim_map if window == "separable" else _ssim_2d_window

    def step() -> None:
        a.grad = None
        (1 - fn(a, b).mean()).backward()

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name, make in (("draem", draem_step), ("context_aggregation", can_step)):
        seconds = {p: best_seconds(make(p), args.repeats, warmup=2) for p in mixed_precision.PRECISIONS}
        print(json.dumps({
            "network": name, "threads": args.threads, "batch": 16, "crop_px": 128,
            "fp32_ms": round(1000 * seconds["fp32"], 1), "bf16_ms": round(1000 * seconds["bf16"], 1),
            "speedup_bf16": round(seconds["fp32"] / seconds["bf16"], 2),
        }))
    seconds = {w: best_seconds(ssim_step(w), args.repeats, warmup=2) for w in ("window_2d", "separable")}
    print(json.dumps({
        "network": "ssim_loss", "threads": args.threads, "batch": 16, "crop_px": 128,
        "window_2d_ms": round(1000 * seconds["window_2d"], 1),
        "separable_ms": round(1000 * seconds["separable"], 1),
        "speedup_separable": round(seconds["window_2d"] / seconds["separable"], 2),
    }))


if __name__ == "__main__":
    main()
