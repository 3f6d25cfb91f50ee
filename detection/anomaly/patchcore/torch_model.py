"""PatchCore (Roth et al., CVPR 2022) as a plain ``nn.Module`` over a pluggable feature extractor.

Steps named as in the paper:

1. *locally aware patch features*: middle-layer activations, each averaged over a 3 x 3
   neighbourhood (so a patch sees its surroundings), resized to one grid and concatenated;
2. *coreset subsampling*: greedy k-centre selection of the memory bank, on a random projection
   (Johnson-Lindenstrauss) so each step is cheap;
3. *anomaly detection*: the distance of each test patch to its nearest memory-bank patch is
   the patch's anomaly score; the map is upsampled and smoothed with a Gaussian (sigma 4).

>>> import torch
>>> bank = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
>>> greedy_coreset(bank, 3, projection_dim=0, seed=0).tolist()
[0, 1, 2]
>>> nearest_distance(torch.tensor([[0.0, 0.1]]), bank).tolist()
[0.10000000149011612]
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from detection import mixed_precision
from detection.anomaly.draem.torch_model import fuse_batchnorm


def greedy_coreset(features: torch.Tensor, n: int, *, projection_dim: int = 128,
                   seed: int = 0) -> torch.Tensor:
    """Indices of ``n`` rows chosen by greedy k-centre (farthest point) selection.

    Each new point is the one farthest from all chosen so far, so the coreset covers the
    feature space, rare normal patterns included, at a fraction of the bank's size.
    ``projection_dim=0`` works in the original space.
    """
    n = min(n, len(features))
    gen = torch.Generator().manual_seed(seed)
    x = features
    if projection_dim and projection_dim < features.shape[1]:
        proj = torch.randn(features.shape[1], projection_dim, generator=gen) / math.sqrt(projection_dim)
        x = features @ proj
    chosen = torch.empty(n, dtype=torch.long)
    chosen[0] = 0 if projection_dim == 0 else int(torch.randint(len(x), (1,), generator=gen))
    min_dist = ((x - x[chosen[0]]) ** 2).sum(1)
    for i in range(1, n):
        chosen[i] = int(torch.argmax(min_dist))
        min_dist = torch.minimum(min_dist, ((x - x[chosen[i]]) ** 2).sum(1))
    return chosen


def random_projection(n_in: int, n_out: int, seed: int = 0) -> torch.Tensor:
    """An (n_in, n_out) Gaussian projection scaled by 1/sqrt(n_out) (Johnson-Lindenstrauss:
    distances kept within a few per cent), its entries float16-representable as stored.

    >>> p = random_projection(384, 128)
    >>> tuple(p.shape), bool(torch.equal(p, p.half().float()))
    ((384, 128), True)
    """
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n_in, n_out, generator=gen) / math.sqrt(n_out)).half().float()


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Euclidean distance of each query row to its nearest bank row.

    Not ``torch.cdist``: its default path materialises a (Q, B, C) difference for small inputs
    and is slower on CPU; ``|q|^2 - 2 q.b + |b|^2`` is one matrix product. Clamped at 0 because
    rounding can make it slightly negative.
    """
    bank_sq = (bank**2).sum(1)
    out = torch.empty(len(queries))
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        d2 = (q**2).sum(1, keepdim=True) - 2 * q @ bank.T + bank_sq[None]
        out[start : start + chunk] = d2.min(1).values.clamp_min(0).sqrt()
    return out


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) maps (reflect padding)."""
    if sigma <= 0:
        return maps
    radius = max(1, int(round(3 * sigma)))
    coords = torch.arange(-radius, radius + 1, dtype=maps.dtype)
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    pad_mode = "reflect" if min(maps.shape[-2:]) > radius else "replicate"
    h = F.conv2d(F.pad(maps, (radius, radius, 0, 0), mode=pad_mode), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(h, (0, 0, radius, radius), mode=pad_mode), g.view(1, 1, -1, 1))


class PatchCoreModel(nn.Module):
    """Embedding, memory bank and nearest-neighbour scoring; the bank is a buffer."""

    def __init__(self, feature_extractor: nn.Module, *, blur_sigma: float = 4.0,
                 patch_stride_px: int | None = None) -> None:
        super().__init__()
        self.feature_extractor = feature_extractor
        # the copy that computes: batch norms folded into their convolutions, channels-last
        # (1.2-1.3 times the tiles per second on a CPU; features equal within 1e-6)
        self.computing = mixed_precision.prepare(fuse_batchnorm(feature_extractor), "fp32",
                                                 training=False)
        self.blur_sigma = blur_sigma
        self.patch_stride_px = patch_stride_px
        self.register_buffer("memory_bank", torch.empty(0))
        # (C, D) random projection of every patch feature, or empty: none (see random_projection)
        self.register_buffer("bank_projection", torch.empty(0))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Locally aware patch features, (N, C, h, w) on the grid of the first feature layer."""
        feats = self.computing.features(mixed_precision.as_input(x, self.computing))
        size = feats[0].shape[-2:]
        pooled = [F.avg_pool2d(f, 3, stride=1, padding=1, count_include_pad=False) for f in feats]
        resized = [p if p.shape[-2:] == size else
                   F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in pooled]
        emb = torch.cat(resized, dim=1)
        # Fewer, coarser patches where the first layer is fine-grained: the bank's size and the
        # search time grow with the square of the patch density.
        if self.patch_stride_px is not None:
            factor = max(1, self.patch_stride_px * size[-1] // x.shape[-1])
            if factor > 1:
                emb = F.avg_pool2d(emb, factor)
        if self.bank_projection.numel():
            emb = torch.einsum("nchw,cd->ndhw", emb, self.bank_projection)
        return emb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly maps (N, H, W) at the input size."""
        emb = self.embed(x)
        n, c, h, w = emb.shape
        dist = nearest_distance(emb.permute(0, 2, 3, 1).reshape(-1, c), self.memory_bank)
        maps = dist.view(n, 1, h, w)
        maps = F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)
        # sigma in working-resolution pixels (4, as the paper uses on its 224-pixel inputs), not
        # scaled with the image: images of different sizes share one resolution
        return gaussian_blur(maps, self.blur_sigma)[:, 0]
