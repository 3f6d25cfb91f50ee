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

from detection import mixed_precision
from detection.anomaly.base import (
    AnomalyScorer,
    Images,
    check_images,
    gain_normalise,
    resize_batch,
    resize_keep_aspect,
)
from detection.anomaly.draem.torch_model import DraemModel, fuse_batchnorm
from detection.anomaly.features.synthetic import (
    ANOMALY_KINDS,
    SURFACE_KINDS,
    SURFACE_WEIGHTS,
    synthesize,
    synthesize_surface,
)
from detection.anomaly.ssim import gaussian_blur, ssim_map

PROBE_PX = 96  # side of the crops a bf16 scorer times both precisions on (mixed_precision.bf16_runs_faster)


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
    anomalies: str = "draem",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(clean, augmented, masks)`` for an (N, 1, S, S) batch; random flips first if ``flip``.

    ``anomalies``: ``"draem"`` (Perlin blobs of foreign texture, the paper's) or a mix of the
    kinds of :func:`synthesize_surface` named in :data:`SURFACE_WEIGHTS`: ``"surface"`` (those
    blobs plus pits, cracks, bands and broken edges), ``"mixed"`` (the same, texture blobs for
    60 %), ``"natural"`` and ``"draem_natural"`` (with regions of another image of the batch,
    brighter, darker or more streaked: real surface, ground differently).
    """
    if anomalies != "draem" and anomalies not in SURFACE_WEIGHTS:
        raise ValueError(f"anomalies: one of {ANOMALY_KINDS}, not {anomalies!r}")
    weights = SURFACE_WEIGHTS.get(anomalies)

    def flipped(im: np.ndarray) -> np.ndarray:
        if flip and rng.random() < 0.5:
            im = im[:, ::-1]
        if flip and rng.random() < 0.5:
            im = im[::-1]
        return np.ascontiguousarray(im)

    def make(im: np.ndarray, donor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if weights is None:
            return synthesize(im, sources, rng, p_anomaly=p_anomaly)
        return synthesize_surface(im, sources, rng, p_anomaly=p_anomaly, weights=weights,
                                  donor01=donor)

    if weights is None or weights[SURFACE_KINDS.index("natural")] == 0:
        # each image flipped, then given its anomaly (the order of random draws of every run
        # before natural regions existed, so that their commands give the same models)
        clean, pairs = [], []
        for im in images[:, 0].numpy():
            clean.append(flipped(im))
            pairs.append(make(clean[-1]))
    else:
        # every image flipped first: the donor of a natural region is another image of the
        # batch as the network sees it (or, alone in its batch, the image mirrored)
        clean = [flipped(im) for im in images[:, 0].numpy()]
        pairs = [make(im, clean[(i + int(rng.integers(1, len(clean)))) % len(clean)]
                          if len(clean) > 1 else im[:, ::-1])
                 for i, im in enumerate(clean)]
    aug = [a for a, _ in pairs]
    masks = [m for _, m in pairs]
    return tuple(torch.from_numpy(np.stack(t))[:, None] for t in (clean, aug, masks))  # type: ignore[return-value]


def draem_loss(
    model: DraemModel,
    clean: torch.Tensor,
    augmented: torch.Tensor,
    masks: torch.Tensor,
    precision: str = "fp32",
) -> torch.Tensor:
    """L2 + SSIM loss of the reconstruction, focal loss of the mask; the network runs in
    ``precision`` (:mod:`detection.mixed_precision`), the losses in float32."""
    with mixed_precision.autocast(precision):
        recon, logits = model(mixed_precision.as_input(augmented, model))
    recon, logits = recon.float(), logits.float()
    l2 = F.mse_loss(recon, clean)
    ssim_loss = 1 - ssim_map(recon, clean).mean()
    return l2 + ssim_loss + focal_loss(logits, masks)


def schedule_lr(peak: float, progress: float, warmup: float = 0.1) -> float:
    """Linear warm-up over the first ``warmup`` of training, then cosine decay to 1 % of ``peak``.

    >>> [round(schedule_lr(1.0, p), 3) for p in (0.0, 0.05, 0.1, 0.55, 1.0)]
    [0.04, 0.52, 1.0, 0.505, 0.01]
    """
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return peak * (0.04 + 0.96 * progress / warmup)
    cos = 0.5 * (1 + np.cos(np.pi * (progress - warmup) / (1 - warmup)))
    return float(peak * (0.01 + 0.99 * cos))


def random_crops(
    images: Sequence[torch.Tensor], n: int, size: int, rng: np.random.Generator
) -> torch.Tensor:
    """(n, 1, size, size) crops of randomly chosen (1, 1, h, w) images (reflect-padded when
    smaller): training at the scoring scale, whatever each image's shape."""
    out = torch.empty(n, 1, size, size)
    for k in range(n):
        im = images[int(rng.integers(len(images)))]
        h, w = im.shape[-2:]
        if h < size or w < size:
            ph, pw = max(0, size - h), max(0, size - w)
            im = F.pad(im, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect"
                       if ph < h and pw < w else "replicate")
            h, w = im.shape[-2:]
        y0, x0 = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        out[k] = im[0, :, y0 : y0 + size, x0 : x0 + size]
    return out


def train_draem(
    model: DraemModel,
    train: torch.Tensor | Sequence[torch.Tensor],
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
    anomalies: str = "draem",
    crop_px: int | None = None,
    precision: str = "fp32",
    log: Any = None,
) -> tuple[DraemModel, list[dict[str, float]]]:
    """Train ``model`` in place; returns the best-on-validation copy and the loss history.

    ``train`` is an (N, 1, S, S) batch, or with ``crop_px`` a list of (1, 1, h, w) images of
    any shape that random crops are cut from. ``val`` is a fixed (M, 1, S, S) batch.
    ``precision`` "bf16" trains in bfloat16 mixed precision (:mod:`detection.mixed_precision`).
    """
    mixed_precision.prepare(model, precision)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    # A fixed synthetic validation set: the same anomalies at every evaluation.
    _, val_aug, val_masks = synthetic_batch(
        val, sources, np.random.default_rng(seed + 1), 1.0, flip=False, anomalies=anomalies
    )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best_state, best_val = copy.deepcopy(model.state_dict()), float("inf")
    history: list[dict[str, float]] = []
    start = time.monotonic()
    for step in range(1, steps + 1):
        # The schedule runs on progress = the larger of the step and the time fractions, so a
        # run cut short by its wall-time budget still warms up and anneals fully (a schedule by
        # steps alone would stop at a high learning rate when the machine is busy).
        elapsed = time.monotonic() - start
        progress = max((step - 1) / steps, elapsed / max_seconds if max_seconds else 0.0)
        for group in opt.param_groups:
            group["lr"] = schedule_lr(lr, progress)
        model.train()
        if crop_px is not None:
            picked = random_crops(train, batch_size, crop_px, rng)
        else:
            picked = train[torch.from_numpy(rng.integers(0, len(train), batch_size))]
        clean, aug, masks = synthetic_batch(picked, sources, rng, p_anomaly, anomalies=anomalies)
        loss = draem_loss(model, clean, aug, masks, precision)
        mixed_precision.check_finite(loss, step=step, precision=precision)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out_of_time = max_seconds is not None and time.monotonic() - start > max_seconds
        if step % eval_every == 0 or step == steps or out_of_time:
            model.eval()
            with torch.inference_mode():
                val_loss = float(draem_loss(model, val, val_aug, val_masks, precision))
            history.append({"step": step, "train_loss": float(loss.detach()), "val_loss": val_loss,
                            "seconds": time.monotonic() - start})
            if log is not None:
                log(history[-1])
            if val_loss < best_val:
                best_val, best_state = val_loss, copy.deepcopy(model.state_dict())
        if out_of_time:
            break
    model.load_state_dict(best_state)
    return mixed_precision.restore(model).eval(), history


class DraemScorer(AnomalyScorer):
    """DRAEM anomaly scorer. The anomaly map is the discriminative sub-network's probability;
    the image score is the maximum of that map averaged over ``score_kernel`` pixels (a single
    hot pixel is not a defect).

    ``fit(X, X_val=..., sources=...)``: ``sources`` are foreign textures for the synthetic
    anomalies (for example NEU train images); without them flat dark/bright patches are used.

    With ``input_scale`` the model trains on random ``crop_px`` crops of the images scaled by
    that factor (aspect kept) and scores every image whole at that scale, so a pit keeps its
    size in pixels whatever the crop's shape. ``normalise`` brings every image's median to one
    level first (exposure differs between images; a defect does not depend on it).
    ``anomalies`` picks the synthetic anomalies (see :func:`synthetic_batch`). ``precision``
    "bf16" trains in bfloat16 mixed precision; ``score_precision`` "bf16" scores in it (about
    2.4 times the tiles per second on a CPU with AMX; the thresholds are set in the precision
    that scores, so change it with :meth:`set_score_precision` and recalibrate). ``map_sigma``
    smooths the anomaly map (not the image score) with a Gaussian of that many working pixels.
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
        input_scale: float | None = None,
        crop_px: int = 128,
        normalise: bool = False,
        anomalies: str = "draem",
        precision: str = "fp32",
        score_precision: str = "fp32",
        map_sigma: float = 0.0,
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
        self.input_scale = input_scale
        self.crop_px = crop_px
        self.normalise = normalise
        self.anomalies = anomalies
        self.precision = precision
        self.score_precision = score_precision
        self.map_sigma = map_sigma
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
        if self.normalise:
            train_images = [gain_normalise(im) for im in train_images]
            val_images_n = [gain_normalise(im) for im in val_images]
        else:
            val_images_n = val_images
        crop_px: int | None = None
        if self.input_scale is not None:
            crop_px = self.crop_px
            train: Any = [resize_keep_aspect(im, self.input_scale) for im in train_images]
            val_scaled = [resize_keep_aspect(im, self.input_scale) for im in val_images_n]
            val = random_crops(val_scaled, max(len(val_scaled), 64), crop_px,
                               np.random.default_rng(self.seed + 2))
        else:
            train = resize_batch(train_images, self.input_size)
            val = resize_batch(val_images_n, self.input_size)
        model = DraemModel(self.base_width)
        self.model_, self.history_ = train_draem(
            model, train, val, list(sources), steps=self.steps, batch_size=self.batch_size,
            lr=self.lr, seed=self.seed, max_seconds=self.max_seconds, anomalies=self.anomalies,
            crop_px=crop_px, precision=self.precision, log=log,
        )
        self.set_score_precision(self.score_precision)
        self._calibrate(val_images, image_quantile=self.image_quantile,
                        pixel_quantile=self.pixel_quantile)
        return self

    def set_score_precision(self, precision: str) -> None:
        """Score in ``precision`` from now on (the thresholds are not changed: recalibrate).

        On a CPU without bfloat16 units a "bf16" model scores in float32 all the same
        (``scoring_precision_``; :func:`detection.mixed_precision.scoring_precision`): there
        bfloat16 is emulated and several times slower. So it does where bfloat16 is measured
        slower than float32 on crops of :data:`PROBE_PX` pixels (the default pair scores at
        0.35 of a 256-pixel tile: 96 pixels).
        """
        self.score_precision = mixed_precision.check(precision)
        fused = fuse_batchnorm(self.model_)
        self.scoring_precision_ = mixed_precision.scoring_precision(
            precision, fused, torch.rand(8, 1, PROBE_PX, PROBE_PX))
        self.inference_model_ = mixed_precision.prepare(fused, self.scoring_precision_, training=False)

    def _score_batch(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with mixed_precision.autocast(self.scoring_precision_):
            _, logits = self.inference_model_(mixed_precision.as_input(batch, self.inference_model_))
        prob = torch.sigmoid(logits.float())
        pooled = F.avg_pool2d(prob, self.score_kernel, stride=1, padding=self.score_kernel // 2)
        # the map may be smoothed (map_sigma working pixels); the image score is not
        return gaussian_blur(prob, self.map_sigma)[:, 0].numpy(), pooled.flatten(1).amax(1).numpy()

    def _get_state(self) -> dict[str, Any]:
        return {"model": self.model_.state_dict(), "history": self.history_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.model_ = DraemModel(self.base_width)
        self.model_.load_state_dict(state["model"])
        self.model_.eval()
        self.set_score_precision(self.score_precision)
        self.history_ = state["history"]
