"""The SSIM autoencoder of Bergmann et al. (2019), as used on patterned plates, as a plain
``nn.Module``.

128 x 128 patches, nine convolutions down to a latent vector of ``latent_dim`` (100 in the
paper) and the mirror image up; LeakyReLU(0.2). Trained with the SSIM loss so that it
reconstructs structure rather than mean intensity, which makes the residual ``1 - SSIM``
sensitive to the texture breaks that defects are.

>>> import torch
>>> m = SsimAutoencoder(latent_dim=8, width=4)
>>> tuple(m(torch.rand(2, 1, 128, 128)).shape)
(2, 1, 128, 128)
"""

from __future__ import annotations

import torch
from torch import nn

PATCH_PX = 128


def _conv(c_in: int, c_out: int, k: int, s: int, p: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, s, p), nn.LeakyReLU(0.2, inplace=True)]


def _deconv(c_in: int, c_out: int, k: int, s: int, p: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(c_in, c_out, k, s, p), nn.LeakyReLU(0.2, inplace=True)]


class SsimAutoencoder(nn.Module):
    """Encoder (128 -> 8 -> 1 x 1 x latent) and decoder, as in Bergmann et al., Table 1."""

    def __init__(self, latent_dim: int = 100, width: int = 32) -> None:
        super().__init__()
        w = width
        self.latent_dim = latent_dim
        self.width = width
        self.encoder = nn.Sequential(
            *_conv(1, w, 4, 2, 1),  # 64
            *_conv(w, w, 4, 2, 1),  # 32
            *_conv(w, w, 3, 1, 1),
            *_conv(w, 2 * w, 4, 2, 1),  # 16
            *_conv(2 * w, 2 * w, 3, 1, 1),
            *_conv(2 * w, 4 * w, 4, 2, 1),  # 8
            *_conv(4 * w, 2 * w, 3, 1, 1),
            *_conv(2 * w, w, 3, 1, 1),
            nn.Conv2d(w, latent_dim, 8, 1, 0),  # 1 x 1 latent vector
        )
        self.decoder = nn.Sequential(
            *_deconv(latent_dim, w, 8, 1, 0),  # 8
            *_conv(w, 2 * w, 3, 1, 1),
            *_conv(2 * w, 4 * w, 3, 1, 1),
            *_deconv(4 * w, 2 * w, 4, 2, 1),  # 16
            *_conv(2 * w, 2 * w, 3, 1, 1),
            *_deconv(2 * w, w, 4, 2, 1),  # 32
            *_conv(w, w, 3, 1, 1),
            *_deconv(w, w, 4, 2, 1),  # 64
            nn.ConvTranspose2d(w, 1, 4, 2, 1),  # 128
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
