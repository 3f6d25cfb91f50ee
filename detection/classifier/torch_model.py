"""A compact residual CNN for grayscale defect images, trained from scratch.

Four stages of basic residual blocks (He et al.), each halving the resolution, then global
average pooling. The pooled vector is the image *embedding* (similar-image search uses it) and
the stage outputs are the *features* (a PatchCore scorer may use them as learned patch
features), so both are methods of the module rather than hooks.

>>> import torch
>>> net = CompactResNet(n_classes=6, widths=(8, 16, 16, 32))
>>> net.eval()(torch.zeros(2, 1, 64, 64)).shape
torch.Size([2, 6])
>>> [tuple(f.shape[1:]) for f in net.features(torch.zeros(1, 1, 64, 64))]
[(8, 16, 16), (16, 8, 8), (16, 4, 4), (32, 2, 2)]
>>> net.embed(torch.zeros(3, 1, 64, 64)).shape
torch.Size([3, 32])
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut (1x1 projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class CompactResNet(nn.Module):
    """Stem (3x3 stride-2 conv) + one residual stage per width, each stage at half resolution."""

    def __init__(
        self,
        n_classes: int,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks_per_stage: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 2, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages = []
        c_in = widths[0]
        for i, width in enumerate(widths):
            blocks = [BasicBlock(c_in, width, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock(width, width, 1) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            c_in = width
        # The first stage keeps the stem's resolution, so pool once before it (ResNet's max-pool).
        self.pool = nn.MaxPool2d(2)
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], n_classes))
        self.embedding_dim = widths[-1]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage, shallow to deep (input (N, 1, H, W), normalised)."""
        x = self.pool(self.stem(x))
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: the global average of the last stage, (N, embedding_dim)."""
        return self.features(x)[-1].mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, n_classes)."""
        return self.head(self.embed(x))
