"""Evaluating a scorer on the magnetic-tile *test* part (reads images: the shell), and the
selection figure that needs no real defect: defect-free *val* images against the same images
with synthetic anomalies (:func:`evaluate_synthetic_val`).

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


def evaluate_synthetic_val(
    scorer: AnomalyScorer, mt_root: Path, sources: list[np.ndarray], *, seed: int = 12345
) -> dict[str, Any]:
    """Image and pixel AUROC on ``MT_Free`` *val* images (label 0) against the same images
    carrying one synthetic surface anomaly each (label 1; pits, cracks, bands, broken edges,
    foreign textures), drawn with a fixed seed so every scorer meets the same ones.

    A criterion for choosing among models and settings without looking at real defects (the
    *test* part's defects stay unseen until the choice is made). It favours scorers trained on
    similar synthetic anomalies, so it ranks candidates; it does not predict test figures.
    """
    from detection.anomaly.features.synthetic import synthesize_surface

    images = [load_gray(it.image) for it in mt_items(mt_root, "MT_Free", "val")]
    rng = np.random.default_rng(seed)
    pairs = [synthesize_surface(im, sources, rng, p_anomaly=1.0) for im in images]
    keep = [i for i, (_, m) in enumerate(pairs) if m.any()]
    defect = [pairs[i][0] for i in keep]
    maps, scores = scorer.score_maps_and_samples(images + defect)
    labels = np.r_[np.zeros(len(images), bool), np.ones(len(defect), bool)]
    pixel_labels = np.concatenate([np.zeros(im.size, bool) for im in images]
                                  + [pairs[i][1].ravel() > 0.5 for i in keep])
    return {
        "synthetic_val_image_auroc": auroc(labels, scores),
        "synthetic_val_pixel_auroc": binned_auroc(pixel_labels, np.concatenate([m.ravel() for m in maps])),
        "n_normal": len(images),
        "n_synthetic": len(defect),
    }


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
