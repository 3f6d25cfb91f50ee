"""DRAEM (Zavrtanik et al., ICCV 2021) as a plain ``nn.Module``, narrowed to train on a CPU.

Two sub-networks, named as in the paper:

- the *reconstructive* sub-network, an encoder-decoder **without** skip connections (skips
  would let it copy the anomaly through), learns to paint a defect-free surface back;
- the *discriminative* sub-network, a U-Net over ``[image, reconstruction]``, learns where the
  two differ in a way that matters, from synthetic Perlin anomalies. Its output is the anomaly
  map; its encoder activations are the learned patch features that PatchCore and the one-class
  SVM reuse (see :meth:`DraemModel.features`).

Widths are a fraction of the paper's (base 16 instead of 128) so that a model trains in
minutes on two CPU cores and scores more than 100 tiles a second.

>>> import torch
>>> m = DraemModel(base_width=4).eval()
>>> recon, logits = m(torch.rand(2, 1, 64, 64))
>>> tuple(recon.shape), tuple(logits.shape)
((2, 1, 64, 64), (2, 1, 64, 64))
>>> x = torch.rand(2, 1, 64, 64)
>>> with torch.no_grad():
...     bool(torch.allclose(fuse_batchnorm(m)(x)[1], m(x)[1], atol=1e-4))
True
>>> [tuple(f.shape[1:]) for f in m.features(torch.rand(1, 1, 64, 64))]
[(8, 16, 16), (16, 8, 8)]
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy with every Conv2d + BatchNorm2d pair of a block folded into one
    convolution: same outputs in eval mode, one pass over memory less per layer."""
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if isinstance(module, nn.Sequential):
            layers = list(module)
            for i in range(len(layers) - 1):
                if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(layers[i], layers[i + 1])
                    module[i + 1] = nn.Identity()
    return fused


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ReconstructiveSubNetwork(nn.Module):
    """Encoder-decoder (4 scales, no skips) that maps an image to a defect-free version of it.

    The first step folds 2 x 2 pixels into 4 channels (pixel unshuffle) instead of running
    convolutions at full resolution: thin full-resolution convolutions are memory-bound on a
    CPU and cost most of the time for little gain.
    """

    def __init__(self, base_width: int = 16) -> None:
        super().__init__()
        w = base_width
        self.encoder = nn.ModuleList(
            [_block(4, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w)]
        )
        self.decoder = nn.ModuleList([_block(4 * w, 2 * w), _block(2 * w, w), _block(w, w)])
        self.out = nn.Conv2d(w, 4, 3, padding=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations at strides 2, 4, 8 and 16 (after a 2 x 2 pixel unshuffle)."""
        acts = []
        h = F.pixel_unshuffle(x, 2)
        for i, block in enumerate(self.encoder):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            acts.append(h)
        return acts

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """The reconstruction from the deepest activation."""
        for block in self.decoder:
            h = block(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False))
        return torch.sigmoid(F.pixel_shuffle(self.out(h), 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)[-1])


class DiscriminativeSubNetwork(nn.Module):
    """U-Net over ``[image, reconstruction]`` giving one anomaly logit per pixel."""

    def __init__(self, base_width: int = 16) -> None:
        super().__init__()
        w = base_width
        self.encoder = nn.ModuleList(
            [_block(8, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w)]
        )
        self.decoder = nn.ModuleList(
            [_block(8 * w, 2 * w), _block(4 * w, w), _block(2 * w, w)]
        )
        self.out = nn.Conv2d(w, 1, 3, padding=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations at strides 2, 4, 8 and 16 (after a 2 x 2 pixel unshuffle)."""
        acts = []
        h = F.pixel_unshuffle(x, 2)
        for i, block in enumerate(self.encoder):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            acts.append(h)
        return acts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts = self.encode(x)
        h = acts[-1]
        for block, skip in zip(self.decoder, reversed(acts[:-1]), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return F.interpolate(self.out(h), size=x.shape[-2:], mode="bilinear", align_corners=False)


class DraemModel(nn.Module):
    """Reconstruct, then discriminate; ``forward`` returns ``(reconstruction, logits)``."""

    def __init__(self, base_width: int = 16) -> None:
        super().__init__()
        self.base_width = base_width
        self.reconstructive = ReconstructiveSubNetwork(base_width)
        self.discriminative = DiscriminativeSubNetwork(base_width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        recon = self.reconstructive(x)
        logits = self.discriminative(torch.cat([x, recon], dim=1))
        return recon, logits

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Middle-layer patch features (strides 4 and 8) of the discriminative encoder.

        Middle layers, as PatchCore argues: early layers are too generic, the deepest too
        specific to the training task. These layers were trained to tell synthetic defects from
        the surface, so they are learned features (random ones reach only ~0.6 AUROC here).
        """
        recon = self.reconstructive(x)
        acts = self.discriminative.encode(torch.cat([x, recon], dim=1))
        return acts[1:3]
