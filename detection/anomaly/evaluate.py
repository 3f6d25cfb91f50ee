"""Evaluating a scorer on the magnetic-tile *test* part (reads images: the shell).

Image AUROC: ``MT_Free`` test images (label 0) against the test images of every defect class
(label 1), overall and per class. Pixel AUROC: every pixel of those images at the image's own
size, defect where the mask value > 127 (``MT_Free`` pixels are all normal; the four empty
``MT_Uneven`` masks count as all-normal pixels of defect images).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from detection.anomaly.base import AnomalyScorer
from detection.anomaly.metrics import auroc, binned_auroc
from detection.anomaly.mt_data import MT_DEFECT_CLASSES, MtItem, load_gray, load_mask, mt_items


def mt_test_items(mt_root: Path) -> list[MtItem]:
    items = mt_items(mt_root, "MT_Free", "test")
    for class_dir in MT_DEFECT_CLASSES:
        items += mt_items(mt_root, class_dir, "test")
    return items


def evaluate_mt(
    scorer: AnomalyScorer, mt_root: Path, *, limit_per_class: int | None = None
) -> dict[str, Any]:
    """Image and pixel AUROC of ``scorer`` on the magnetic-tile test part, plus timing."""
    items = mt_test_items(mt_root)
    if limit_per_class is not None:  # a quick look (tests): the first images of each class
        items = [it for it in items
                 if sum(o.class_dir == it.class_dir for o in items[: items.index(it)]) < limit_per_class]
    images = [load_gray(it.image) for it in items]
    start = time.perf_counter()
    maps, scores = scorer.score_maps_and_samples(images)
    seconds = time.perf_counter() - start
    labels = np.array([it.class_dir != "MT_Free" for it in items])
    per_class = {}
    for class_dir in MT_DEFECT_CLASSES:
        sel = np.array([it.class_dir in ("MT_Free", class_dir) for it in items])
        per_class[class_dir] = auroc(labels[sel], scores[sel])
    pixel_labels = np.concatenate([
        (load_mask(it.mask) if it.class_dir != "MT_Free" else np.zeros(m.shape, bool)).ravel()
        for it, m in zip(items, maps, strict=True)
    ])
    pixel_scores = np.concatenate([m.ravel() for m in maps])
    predictions = scores >= scorer.threshold_
    return {
        "image_auroc": auroc(labels, scores),
        "pixel_auroc": binned_auroc(pixel_labels, pixel_scores),
        "image_auroc_per_class": per_class,
        "n_normal": int((~labels).sum()),
        "n_defect": int(labels.sum()),
        "true_positive_rate_at_threshold": float(predictions[labels].mean()),
        "false_positive_rate_at_threshold": float(predictions[~labels].mean()),
        "seconds_scoring_maps_and_scores": round(seconds, 1),
    }
