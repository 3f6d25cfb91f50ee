"""A two-stage convolutional network whose filters are learned by PCA (PCANet, Chan et al. 2015).

Why this and not only a gradient-trained CNN: on the shared two-core machine a gradient-trained
network gets a few hundred steps in 15 minutes, too few for good features; PCA learns a filter
bank from *every* patch of the defect-free training images in seconds. The filters are the
principal directions of normal surface texture, so a defect (a hole, a crack, a chipped edge)
answers them with an unusual energy pattern; that is what the memory bank then measures.

Stages (each learned from defect-free images only):

1. stage-1 filters: the top ``n1`` principal components of mean-removed ``k1 x k1`` patches;
   the feature is the rectified response energy, averaged over 2 x 2 cells (stride 2);
2. stage-2 filters: the top ``n2`` principal components of ``k2 x k2`` patches of the stage-1
   maps (all channels together), energy averaged again (stride 4);
3. context: local mean and standard deviation of intensity, so flat dark or bright regions
   (a missing piece, uneven glaze) are seen, not only texture.

Every output channel is standardised with its training mean and spread, so no channel
dominates the nearest-neighbour distance.

>>> import torch
>>> net = PcaNet(n1=4, n2=6).fit(torch.rand(3, 1, 64, 64))
>>> [tuple(f.shape[1:]) for f in net.features(torch.rand(2, 1, 64, 64))]
[(6, 16, 16), (6, 8, 8)]
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _pca_filters(patches: torch.Tensor, n: int) -> torch.Tensor:
    """Top ``n`` principal directions (rows) of mean-removed patch vectors (P, D)."""
    patches = patches - patches.mean(1, keepdim=True)  # remove each patch's DC
    cov = patches.T @ patches / len(patches)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    return vecs[:, -n:].flip(1).T.contiguous()


def _sample_patches(maps: torch.Tensor, k: int, max_patches: int, seed: int) -> torch.Tensor:
    cols = F.unfold(maps, k, stride=max(1, k // 2))  # (N, C*k*k, L)
    flat = cols.permute(0, 2, 1).reshape(-1, cols.shape[1])
    gen = torch.Generator().manual_seed(seed)
    if len(flat) > max_patches:
        flat = flat[torch.randperm(len(flat), generator=gen)[:max_patches]]
    return flat


class PcaNet(nn.Module):
    """``features(x)`` -> ``[stage-1 energies + context (stride 4), stage-2 energies (stride 8)]``."""

    def __init__(self, n1: int = 8, n2: int = 16, k1: int = 7, k2: int = 5) -> None:
        super().__init__()
        self.n1, self.n2, self.k1, self.k2 = n1, n2, k1, k2
        self.register_buffer("filters1", torch.zeros(n1, 1, k1, k1))
        self.register_buffer("filters2", torch.zeros(n2, n1, k2, k2))
        self.register_buffer("mean_a", torch.zeros(n1 + 2))
        self.register_buffer("std_a", torch.ones(n1 + 2))
        self.register_buffer("mean_b", torch.zeros(n2))
        self.register_buffer("std_b", torch.ones(n2))

    def _stage1(self, x: torch.Tensor) -> torch.Tensor:
        r = F.conv2d(F.pad(x, [self.k1 // 2] * 4, mode="reflect"), self.filters1)
        return F.avg_pool2d(r.abs(), 2)  # stride 2

    def _raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Each image to zero mean, unit spread: exposures differ between images, defects do not
        # depend on exposure, and the memory bank should not spend itself on brightness.
        flat = x.flatten(1)
        x = (x - flat.mean(1)[:, None, None, None]) / (flat.std(1)[:, None, None, None] + 1e-3)
        s1 = self._stage1(x)
        r2 = F.conv2d(F.pad(s1, [self.k2 // 2] * 4, mode="reflect"), self.filters2)
        s2 = F.avg_pool2d(r2.abs(), 4)  # stride 8
        mean = F.avg_pool2d(x, 4)
        std = (F.avg_pool2d(x * x, 4) - mean**2).clamp_min(0).sqrt()
        a = torch.cat([F.avg_pool2d(s1, 2), mean, std], dim=1)  # stride 4
        return a, s2

    @torch.no_grad()
    def fit(self, images: torch.Tensor, *, max_patches: int = 200_000, seed: int = 0) -> PcaNet:
        """Learn both filter banks and the channel standardisation from (N, 1, S, S) images."""
        self.filters1.copy_(
            _pca_filters(_sample_patches(images, self.k1, max_patches, seed), self.n1)
            .view(self.n1, 1, self.k1, self.k1)
        )
        s1 = self._stage1(images)
        self.filters2.copy_(
            _pca_filters(_sample_patches(s1, self.k2, max_patches, seed + 1), self.n2)
            .view(self.n2, self.n1, self.k2, self.k2)
        )
        a, b = self._raw(images)
        self.mean_a.copy_(a.mean((0, 2, 3)))
        self.std_a.copy_(a.std((0, 2, 3)) + 1e-6)
        self.mean_b.copy_(b.mean((0, 2, 3)))
        self.std_b.copy_(b.std((0, 2, 3)) + 1e-6)
        return self.eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        a, b = self._raw(x)
        a = (a - self.mean_a[None, :, None, None]) / self.std_a[None, :, None, None]
        b = (b - self.mean_b[None, :, None, None]) / self.std_b[None, :, None, None]
        return [a, b]
