"""DRAEM scorer: the training loop and the scikit-learn face of :class:`DraemModel`.

Trained on defect-free images only: every step draws synthetic Perlin anomalies
(:func:`detection.anomaly.features.synthetic.synthesize`) onto the batch. Loss, as in the
paper: L2 + SSIM loss for the reconstruction, focal loss for the mask. The checkpoint kept is
the one with the lowest loss on synthetic anomalies drawn (with a fixed seed) onto the
defect-free *validation* images, so no real defect is ever seen.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from detection.anomaly.base import AnomalyScorer, Images, check_images, resize_batch
from detection.anomaly.draem.torch_model import DraemModel, fuse_batchnorm
from detection.anomaly.features.synthetic import synthesize
from detection.anomaly.ssim import ssim_map


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Binary focal loss: down-weights the many easy background pixels (Lin et al. 2017)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    return ((1 - p_t) ** gamma * bce).mean()


def synthetic_batch(
    images: torch.Tensor,
    sources: Sequence[np.ndarray],
    rng: np.random.Generator,
    p_anomaly: float,
    *,
    flip: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(clean, augmented, masks)`` for an (N, 1, S, S) batch; random flips first if ``flip``."""
    clean, aug, masks = [], [], []
    for im in images[:, 0].numpy():
        if flip and rng.random() < 0.5:
            im = im[:, ::-1]
        if flip and rng.random() < 0.5:
            im = im[::-1]
        im = np.ascontiguousarray(im)
        a, m = synthesize(im, sources, rng, p_anomaly=p_anomaly)
        clean.append(im)
        aug.append(a)
        masks.append(m)
    return tuple(torch.from_numpy(np.stack(t))[:, None] for t in (clean, aug, masks))  # type: ignore[return-value]


def draem_loss(
    model: DraemModel, clean: torch.Tensor, augmented: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    recon, logits = model(augmented)
    l2 = F.mse_loss(recon, clean)
    ssim_loss = 1 - ssim_map(recon, clean).mean()
    return l2 + ssim_loss + focal_loss(logits, masks)


def train_draem(
    model: DraemModel,
    train: torch.Tensor,
    val: torch.Tensor,
    sources: Sequence[np.ndarray],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    p_anomaly: float = 0.5,
    eval_every: int = 50,
    max_seconds: float | None = None,
    log: Any = None,
) -> tuple[DraemModel, list[dict[str, float]]]:
    """Train ``model`` in place; returns the best-on-validation copy and the loss history."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    # A fixed synthetic validation set: the same anomalies at every evaluation.
    _, val_aug, val_masks = synthetic_batch(
        val, sources, np.random.default_rng(seed + 1), 1.0, flip=False
    )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    best_state, best_val = copy.deepcopy(model.state_dict()), float("inf")
    history: list[dict[str, float]] = []
    start = time.monotonic()
    for step in range(1, steps + 1):
        model.train()
        idx = torch.from_numpy(rng.integers(0, len(train), batch_size))
        clean, aug, masks = synthetic_batch(train[idx], sources, rng, p_anomaly)
        loss = draem_loss(model, clean, aug, masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        out_of_time = max_seconds is not None and time.monotonic() - start > max_seconds
        if step % eval_every == 0 or step == steps or out_of_time:
            model.eval()
            with torch.inference_mode():
                val_loss = float(draem_loss(model, val, val_aug, val_masks))
            history.append({"step": step, "train_loss": float(loss.detach()), "val_loss": val_loss,
                            "seconds": time.monotonic() - start})
            if log is not None:
                log(history[-1])
            if val_loss < best_val:
                best_val, best_state = val_loss, copy.deepcopy(model.state_dict())
        if out_of_time:
            break
    model.load_state_dict(best_state)
    return model.eval(), history


class DraemScorer(AnomalyScorer):
    """DRAEM anomaly scorer. The anomaly map is the discriminative sub-network's probability;
    the image score is the maximum of that map averaged over ``score_kernel`` pixels (a single
    hot pixel is not a defect).

    ``fit(X, X_val=..., sources=...)``: ``sources`` are foreign textures for the synthetic
    anomalies (for example NEU train images); without them flat dark/bright patches are used.
    """

    kind = "draem"

    def __init__(
        self,
        *,
        input_size: int = 128,
        base_width: int = 8,
        steps: int = 1500,
        batch_size: int = 16,
        lr: float = 2e-3,
        score_kernel: int = 9,
        image_quantile: float = 0.98,
        pixel_quantile: float = 0.995,
        max_seconds: float | None = None,
        seed: int = 0,
    ) -> None:
        self.input_size = input_size
        self.base_width = base_width
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.score_kernel = score_kernel
        self.image_quantile = image_quantile
        self.pixel_quantile = pixel_quantile
        self.max_seconds = max_seconds
        self.seed = seed

    def fit(
        self,
        X: Images,
        y: Any = None,
        *,
        X_val: Images | None = None,
        sources: Sequence[np.ndarray] = (),
        log: Any = None,
    ) -> DraemScorer:
        train_images = check_images(X, what="training images")
        val_images = check_images(X_val, what="validation images") if X_val is not None else train_images
        train = resize_batch(train_images, self.input_size)
        val = resize_batch(val_images, self.input_size)
        model = DraemModel(self.base_width)
        self.model_, self.history_ = train_draem(
            model, train, val, list(sources), steps=self.steps, batch_size=self.batch_size,
            lr=self.lr, seed=self.seed, max_seconds=self.max_seconds, log=log,
        )
        self.inference_model_ = fuse_batchnorm(self.model_)
        self._calibrate(val_images, image_quantile=self.image_quantile,
                        pixel_quantile=self.pixel_quantile)
        return self

    def _score_batch(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        _, logits = self.inference_model_(batch)
        prob = torch.sigmoid(logits)
        pooled = F.avg_pool2d(prob, self.score_kernel, stride=1, padding=self.score_kernel // 2)
        return prob[:, 0].numpy(), pooled.flatten(1).amax(1).numpy()

    def _get_state(self) -> dict[str, Any]:
        return {"model": self.model_.state_dict(), "history": self.history_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.model_ = DraemModel(self.base_width)
        self.model_.load_state_dict(state["model"])
        self.model_.eval()
        self.inference_model_ = fuse_batchnorm(self.model_)
        self.history_ = state["history"]
