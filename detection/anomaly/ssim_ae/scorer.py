"""SSIM-autoencoder scorer: sliding-window reconstruction, residual map, percentile threshold.

As in the patterned-plate study: 128-pixel patches reconstructed every 32 pixels (the
:class:`~detection.tiling.TileGrid` with ``stride=32``), overlapping reconstructions averaged,
residual ``1 - SSIM(image, reconstruction)`` per pixel, pixel threshold = the 98th percentile
of defect-free *validation* residuals; blob extraction then opens the thresholded map with a
disk of radius 4 (:mod:`detection.anomaly.blobs`).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from detection.anomaly.base import AnomalyScorer, Images, check_images, resize_batch
from detection.anomaly.ssim import ssim_map
from detection.anomaly.ssim_ae.torch_model import PATCH_PX, SsimAutoencoder
from detection.tiling import make_grid, tile, untile


def random_crops(images: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` random 128-pixel crops (with random flips) from an (N, 1, S, S) batch."""
    s = images.shape[-1]
    out = torch.empty(n, 1, PATCH_PX, PATCH_PX)
    for i in range(n):
        k = int(rng.integers(0, len(images)))
        y, x = (int(v) for v in rng.integers(0, s - PATCH_PX + 1, 2))
        crop = images[k, :, y : y + PATCH_PX, x : x + PATCH_PX]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        if rng.random() < 0.5:
            crop = crop.flip(-2)
        out[i] = crop
    return out


class SsimAeScorer(AnomalyScorer):
    """Bergmann's SSIM autoencoder; map = residual ``1 - SSIM``, image score = max of the
    residual averaged over ``score_kernel`` pixels."""

    kind = "ssim_ae"

    def __init__(
        self,
        *,
        input_size: int = 256,
        latent_dim: int = 100,
        width: int = 32,
        window_stride: int = 32,
        steps: int = 1500,
        batch_size: int = 32,
        lr: float = 1e-3,
        score_kernel: int = 9,
        image_quantile: float = 0.98,
        pixel_quantile: float = 0.98,
        max_seconds: float | None = None,
        seed: int = 0,
    ) -> None:
        self.input_size = input_size
        self.latent_dim = latent_dim
        self.width = width
        self.window_stride = window_stride
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.score_kernel = score_kernel
        self.image_quantile = image_quantile
        self.pixel_quantile = pixel_quantile
        self.max_seconds = max_seconds
        self.seed = seed

    def fit(self, X: Images, y: Any = None, *, X_val: Images | None = None,
            log: Any = None) -> SsimAeScorer:
        train_images = check_images(X, what="training images")
        val_images = check_images(X_val, what="validation images") if X_val is not None else train_images
        train = resize_batch(train_images, self.input_size)
        val = resize_batch(val_images, self.input_size)
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        model = SsimAutoencoder(self.latent_dim, self.width)
        val_crops = random_crops(val, 64, np.random.default_rng(self.seed + 1))
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=self.steps,
                                                    pct_start=0.1)
        best, best_state, history = float("inf"), copy.deepcopy(model.state_dict()), []
        start = time.monotonic()
        for step in range(1, self.steps + 1):
            model.train()
            batch = random_crops(train, self.batch_size, rng)
            loss = 1 - ssim_map(model(batch), batch).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            out_of_time = self.max_seconds is not None and time.monotonic() - start > self.max_seconds
            if step % 50 == 0 or step == self.steps or out_of_time:
                model.eval()
                with torch.inference_mode():
                    val_loss = float(1 - ssim_map(model(val_crops), val_crops).mean())
                history.append({"step": step, "train_loss": float(loss.detach()), "val_loss": val_loss,
                                "seconds": time.monotonic() - start})
                if log is not None:
                    log(history[-1])
                if val_loss < best:
                    best, best_state = val_loss, copy.deepcopy(model.state_dict())
            if out_of_time:
                break
        model.load_state_dict(best_state)
        self.model_, self.history_ = model.eval(), history
        self._calibrate(val_images, image_quantile=self.image_quantile,
                        pixel_quantile=self.pixel_quantile)
        return self

    def reconstruct(self, batch: torch.Tensor) -> torch.Tensor:
        """Sliding-window reconstruction of an (N, 1, S, S) batch, overlaps averaged."""
        grid = make_grid((batch.shape[-2], batch.shape[-1]), tile=PATCH_PX, stride=self.window_stride)
        patches = np.concatenate([tile(im, grid) for im in batch[:, 0].numpy()])
        recon = self.model_(torch.from_numpy(patches)[:, None])[:, 0].numpy()
        recon = recon.reshape(len(batch), grid.n_tiles, PATCH_PX, PATCH_PX)
        return torch.from_numpy(np.stack([untile(r, grid) for r in recon]))[:, None]

    def _score_batch(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        residual = 1 - ssim_map(batch, self.reconstruct(batch))
        pooled = F.avg_pool2d(residual, self.score_kernel, stride=1, padding=self.score_kernel // 2)
        return residual[:, 0].numpy(), pooled.flatten(1).amax(1).numpy()

    def _get_state(self) -> dict[str, Any]:
        return {"model": self.model_.state_dict(), "history": self.history_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.model_ = SsimAutoencoder(self.latent_dim, self.width)
        self.model_.load_state_dict(state["model"])
        self.model_.eval()
        self.history_ = state["history"]
