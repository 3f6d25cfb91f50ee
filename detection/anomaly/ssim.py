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


def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _separable_blur(x: torch.Tensor, g: torch.Tensor, mode: str) -> torch.Tensor:
    """Each channel of (N, C, H, W) convolved with the 1-D kernel ``g`` along rows, then
    columns, after padding by half the kernel in ``mode``; same shape as ``x``."""
    pad, c, k = len(g) // 2, x.shape[1], len(g)
    y = F.pad(x, (pad, pad, pad, pad), mode=mode)
    y = F.conv2d(y, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(y, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) maps blurred by a Gaussian of ``sigma`` pixels (separable, edges replicated).

    >>> x = torch.zeros(1, 1, 9, 9); x[0, 0, 4, 4] = 1.0
    >>> y = gaussian_blur(x, 1.0)
    >>> round(float(y.sum()), 4), bool(y[0, 0, 4, 4] < 1.0)
    (1.0, True)
    """
    if sigma <= 0:
        return x
    radius = max(1, int(3 * sigma + 0.5))
    return _separable_blur(x, _gaussian_1d(2 * radius + 1, sigma).to(x), "replicate")


def ssim_map(a: torch.Tensor, b: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM of two (N, 1, H, W) batches in [0, 1], same shape as the input.

    The Gaussian window is separable, so the five local means (of a, b, a*a, b*b, a*b) are one
    depthwise pass along the rows and one along the columns: 2 x 11 taps per pixel instead of
    121, and a gradient that is as cheap (an 11 x 11 single-channel convolution's backward
    cost a DRAEM training step more than the whole network's).
    """
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    blurred = _separable_blur(stacked, _gaussian_1d(window_size, sigma).to(a), "reflect")
    mu_a, mu_b, aa, bb, ab = blurred.split(1, dim=1)
    var_a = aa - mu_a**2
    var_b = bb - mu_b**2
    cov = ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    return num / den
