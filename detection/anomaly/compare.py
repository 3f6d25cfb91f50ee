"""Two anomaly scorers compared on the same images, with the uncertainty of the difference.

The magnetic-tile sets are small in *tiles* (the selection set: 19 clean tiles of 76 images),
and a tile's exposures score alike, so a difference of 0.01 AUROC between two models can be one
tile. :func:`paired_tile_bootstrap` gives both models' image and pixel AUROC with intervals
from :func:`detection.tile_bootstrap.tile_bootstrap` (clean tiles and defect tiles drawn each
within their own kind). Pure numpy: the shell scores the images.

Pixel AUROC on a resample comes from per-image histograms of each model's map (positives and
negatives apart), summed with the resample's weights: :func:`detection.anomaly.metrics.histogram_auroc`, which
:func:`detection.anomaly.metrics.binned_auroc` integrates its counts with too.

>>> y = np.array([0, 0, 1, 1]); tiles = np.array([0, 1, 2, 3])
>>> a, b = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.1, 0.2, 0.6, 0.8])
>>> r = paired_tile_bootstrap(y, tiles, a, b, resamples=200, seed=0)
>>> r["image_auroc"]["a"], r["image_auroc"]["b"], r["image_auroc"]["difference"]
(0.75, 1.0, 0.25)
>>> 0.0 <= r["image_auroc"]["b_ahead_share"] <= 1.0
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from coilmap.errors import InputError
from detection.anomaly.metrics import histogram_auroc, score_bins
from detection.tile_bootstrap import tile_bootstrap, tiles_per_stratum


def map_histograms(maps: list[np.ndarray], masks: list[np.ndarray],
                   bins: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the histogram of its defect pixels' and of its clean pixels' map values over
    ``bins`` equal bins between the smallest and largest value of all ``maps``: (n, bins) each."""
    if len(maps) != len(masks):
        raise InputError(f"{len(maps)} maps but {len(masks)} masks")
    lo = min(float(m.min()) for m in maps)
    hi = max(float(m.max()) for m in maps)
    pos = np.zeros((len(maps), bins), np.float64)
    neg = np.zeros((len(maps), bins), np.float64)
    for i, (m, mask) in enumerate(zip(maps, masks, strict=True)):
        if m.shape != mask.shape:
            raise InputError(f"image {i}: map {m.shape} and mask {mask.shape} differ in size")
        idx = score_bins(m.ravel(), lo, hi, bins)
        defect = mask.ravel().astype(bool)
        pos[i] = np.bincount(idx[defect], minlength=bins)
        neg[i] = np.bincount(idx[~defect], minlength=bins)
    return pos, neg


def paired_tile_bootstrap(
    labels: np.ndarray, tiles: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, *,
    pixels_a: tuple[np.ndarray, np.ndarray] | None = None,
    pixels_b: tuple[np.ndarray, np.ndarray] | None = None,
    resamples: int = 2000, seed: int = 0,
) -> dict[str, Any]:
    """Anomaly scorers a and b on the same images (``labels`` True for a defect image,
    ``tiles`` any hashable tile id per image): their image AUROC (and, given each one's
    :func:`map_histograms`, pixel AUROC and the mean of the two, the selection rule's figure)
    by :func:`tile_bootstrap`, clean and defect tiles drawn each within their kind."""
    labels = np.asarray(labels, bool)
    scores_a, scores_b = np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64)
    if not (len(labels) == len(tiles) == len(scores_a) == len(scores_b)):
        raise InputError("labels, tiles and both models' scores must have one entry per image")
    if labels.all() or not labels.any():
        raise InputError("the images must hold both clean and defect images")

    def image_auroc(scores: np.ndarray, w: np.ndarray | None) -> float:
        if w is None:
            return float(roc_auc_score(labels, scores))
        keep = w > 0
        return float(roc_auc_score(labels[keep], scores[keep], sample_weight=w[keep]))

    def pixel_auroc(pixels: tuple[np.ndarray, np.ndarray], w: np.ndarray | None) -> float:
        pos, neg = (pixels[0].sum(0), pixels[1].sum(0)) if w is None else (w @ pixels[0], w @ pixels[1])
        return float(histogram_auroc(pos, neg))

    def figures(w: np.ndarray | None) -> dict[str, tuple[float, float]]:
        out = {"image_auroc": (image_auroc(scores_a, w), image_auroc(scores_b, w))}
        if pixels_a is not None and pixels_b is not None:
            out["pixel_auroc"] = (pixel_auroc(pixels_a, w), pixel_auroc(pixels_b, w))
            out["mean_image_pixel_auroc"] = tuple(  # type: ignore[assignment]
                (i + p) / 2 for i, p in zip(out["image_auroc"], out["pixel_auroc"], strict=True))
        return out

    per_kind = tiles_per_stratum(labels, tiles)
    return {"n_images": int(len(labels)), "n_defect_images": int(labels.sum()),
            "n_clean_tiles": per_kind[False], "n_defect_tiles": per_kind[True],
            **tile_bootstrap(labels, tiles, figures, resamples=resamples, seed=seed)}
