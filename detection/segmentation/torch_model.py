"""A context aggregation network (CAN) for defect segmentation and classification.

After the context-aggregation paper (section III-A): an average pooling at the input to cut
computation, a stack of 3x3 convolutions whose dilation grows (1, 2, 4, ... ) and comes back
down, with skip connections between opposite layers (as in an encoder-decoder, but every map
keeps the pooled resolution), a 1x1 head giving one mask channel per defect class, and an
interpolation back to the input size. The image's class scores are the maxima of the mask
channels, which ties classification to segmentation. ``in_channels`` > 1 takes extra input
planes beside the grey image (the segmenter's edge-proximity planes, see
:func:`detection.segmentation.edges.edge_planes`).

One change to the paper: the input reduction is a space-to-depth (pixel unshuffle) rather
than an average pooling. It cuts the computation by the same factor (every later map has
1/pool of the side), but the pooled maps keep every input pixel as a channel, so the smallest
defects (blowholes of a few pixels) are not averaged into the background. Training computes
its loss at the reduced resolution (:meth:`low_res_logits`), against masks pooled the same way.

>>> import torch
>>> net = ContextAggregationNetwork(n_classes=5, width=8, dilations=(1, 2, 4), pool=4)
>>> masks = net.eval()(torch.zeros(2, 1, 64, 48))
>>> masks.shape, net.image_logits(masks).shape
(torch.Size([2, 5, 64, 48]), torch.Size([2, 5]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(c_in: int, c_out: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


class ContextAggregationNetwork(nn.Module):
    """Dilations out and back with opposite-layer skips; mask logits (N, n_classes, H, W)."""

    def __init__(
        self,
        n_classes: int,
        width: int = 32,
        dilations: tuple[int, ...] = (1, 2, 4, 8, 16),
        pool: int = 4,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.reduce = nn.PixelUnshuffle(pool) if pool > 1 else nn.Identity()
        self.down = nn.ModuleList()
        c_in = pool * pool * in_channels
        for d in dilations:
            self.down.append(_conv(c_in, width, d))
            c_in = width
        # Back down the dilations; each layer also sees its opposite layer's output (skip).
        self.up = nn.ModuleList(_conv(2 * width, width, d) for d in reversed(dilations[:-1]))
        self.head = nn.Conv2d(width, n_classes, 1)

    def low_res_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Mask logits at 1/pool of the input side; H and W must be multiples of ``pool``."""
        h = self.reduce(x)
        skips = []
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        for layer, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            h = layer(torch.cat([h, skip], dim=1))
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mask logits at the input size (N, n_classes, H, W)."""
        logits = self.low_res_logits(x)
        # The paper interpolates with 'nearest'; bilinear logits give smoother mask edges.
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    @staticmethod
    def image_logits(mask_logits: torch.Tensor) -> torch.Tensor:
        """The class read from the masks: each channel's maximum, (N, n_classes)."""
        return mask_logits.amax(dim=(2, 3))
