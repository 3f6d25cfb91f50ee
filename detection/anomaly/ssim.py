"""Structural similarity (Wang et al. 2004) as a per-pixel map, differentiable, in torch.

Used as the SSIM autoencoder's training loss and residual (Bergmann et al. 2019) and as DRAEM's
reconstruction loss. A Gaussian window (sigma 1.5) as in the original definition; the map
keeps the input size (reflect padding), so residual maps align with image pixels.

>>> import torch
>>> x = torch.rand(1, 1, 32, 32)
>>> round(float(ssim_map(x, x).mean()), 4)
1.0
>>> bool(ssim_map(x, 1 - x).mean() < 0.5)
True
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

_C1 = 0.01**2
_C2 = 0.03**2


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(a: torch.Tensor, b: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM of two (N, 1, H, W) batches in [0, 1], same shape as the input."""
    win = _gaussian_window(window_size, sigma).to(a)
    pad = window_size // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (pad, pad, pad, pad), mode="reflect"), win)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    return num / den
