"""A small fully convolutional network trained self-supervised on defect-free images only, by
predicting where synthetic anomalies were pasted (the DRAEM discriminative task without the
reconstruction), so that its middle layers become learned patch features for PatchCore and the
one-class SVM.

Why crops and this size: on a shared two-core machine a whole-image DRAEM gets a few hundred
gradient steps in 15 minutes; 64-pixel crops through a 30k-parameter network get tens of
thousands of samples in the same time, and a fully convolutional network scores whole images
of any size afterwards.

Inputs are standardised per image (zero mean, unit spread over the whole image): exposures
differ between images and a defect does not depend on exposure.

>>> import torch
>>> net = PerlinSegNet(width=8).eval()
>>> x = torch.rand(2, 1, 64, 64)
>>> tuple(net(x).shape), [tuple(f.shape[1:]) for f in net.features(x)]
((2, 1, 64, 64), [(8, 32, 32), (16, 16, 16)])
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from detection.anomaly.features.synthetic import synthesize


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Each (1, H, W) image of a batch to zero mean and unit spread."""
    flat = x.flatten(1)
    return (x - flat.mean(1)[:, None, None, None]) / (flat.std(1)[:, None, None, None] + 1e-3)


def _conv(c_in: int, c_out: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class PerlinSegNet(nn.Module):
    """Pixel unshuffle (stride 2) -> two convolutions -> stride 4 with dilated convolutions
    (a receptive field of about 60 pixels) -> a logit per pixel."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.width = width
        self.stage2 = nn.Sequential(_conv(4, w), _conv(w, w))
        self.stage4 = nn.Sequential(
            _conv(w, 2 * w, stride=2), _conv(2 * w, 2 * w, dilation=2), _conv(2 * w, 2 * w, dilation=4)
        )
        self.head = nn.Sequential(_conv(3 * w, w), nn.Conv2d(w, 4, 1))

    def _stages(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h2 = self.stage2(F.pixel_unshuffle(z, 2))
        return h2, self.stage4(h2)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of already standardised input (training crops use their image's statistics)."""
        h2, h4 = self._stages(z)
        up = F.interpolate(h4, size=h2.shape[-2:], mode="bilinear", align_corners=False)
        return F.pixel_shuffle(self.head(torch.cat([h2, up], dim=1)), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly logits of [0, 1] images, (N, 1, H, W); H and W must be even."""
        return self.logits(standardise(x))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Learned patch features at strides 2 and 4."""
        return list(self._stages(standardise(x)))


def _crops(
    images: Sequence[torch.Tensor], n: int, size: int, sources: Sequence[np.ndarray],
    rng: np.random.Generator, p_anomaly: float, p_crack: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random crops (flipped at random) with synthetic anomalies, and their masks, from
    images of any size (each (1, 1, H, W) or (1, H, W), at least ``size`` a side).

    Crops are standardised with their *image's* statistics, as whole images are at test time.
    """
    planes = [im.reshape(im.shape[-2], im.shape[-1]) for im in images]
    means = [float(p.mean()) for p in planes]
    stds = [float(p.std()) + 1e-3 for p in planes]
    xs, ms = [], []
    for _ in range(n):
        k = int(rng.integers(0, len(planes)))
        h, w = planes[k].shape
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        crop = planes[k][y : y + size, x : x + size].numpy()
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        aug, mask = synthesize(np.ascontiguousarray(crop), sources, rng, p_anomaly=p_anomaly,
                               p_crack=p_crack)
        xs.append((aug - means[k]) / stds[k])
        ms.append(mask)
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ms))[:, None]


def train_perlin_segnet(
    images: Sequence[torch.Tensor],
    val_images: Sequence[torch.Tensor],
    sources: Sequence[np.ndarray],
    *,
    width: int = 24,
    crop_px: int = 64,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 3e-3,
    p_anomaly: float = 0.7,
    max_seconds: float | None = None,
    seed: int = 0,
    log: Any = None,
) -> tuple[PerlinSegNet, list[dict[str, float]]]:
    """Train on defect-free images in [0, 1] (tensors of any size, at working resolution);
    keep the best checkpoint by the focal loss on synthetic anomalies drawn (fixed seed) on the
    validation images."""
    from detection.anomaly.draem.scorer import focal_loss

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = PerlinSegNet(width)
    val_x, val_m = _crops(val_images, 128, crop_px, sources, np.random.default_rng(seed + 1), 1.0)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    best, best_state, history = float("inf"), copy.deepcopy(net.state_dict()), []
    start = time.monotonic()
    for step in range(1, steps + 1):
        net.train()
        x, m = _crops(images, batch_size, crop_px, sources, rng, p_anomaly)
        loss = focal_loss(net.logits(x), m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        out_of_time = max_seconds is not None and time.monotonic() - start > max_seconds
        if step % 100 == 0 or step == steps or out_of_time:
            net.eval()
            with torch.inference_mode():
                val_loss = float(focal_loss(net.logits(val_x), val_m))
            history.append({"step": step, "train_loss": float(loss.detach()), "val_loss": val_loss,
                            "seconds": time.monotonic() - start})
            if log is not None:
                log(history[-1])
            if val_loss < best:
                best, best_state = val_loss, copy.deepcopy(net.state_dict())
        if out_of_time:
            break
    net.load_state_dict(best_state)
    return net.eval(), history
