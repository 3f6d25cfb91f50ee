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
from detection.anomaly.mt_data import MT_DEFECT_CLASSES, MtItem, load_gray, mt_items


def evaluate_synthetic_val(
    scorer: AnomalyScorer, mt_root: Path, sources: list[np.ndarray], *, seed: int = 12345,
    regions: bool = False,
) -> dict[str, Any]:
    """Image and pixel AUROC on ``MT_Free`` *val* images (label 0) against the same images
    carrying one synthetic surface anomaly each (label 1; pits, cracks, bands, broken edges,
    foreign textures), drawn with a fixed seed so every scorer meets the same ones.

    With ``regions``, also against the same images carrying one large region of another val
    image each, brighter, darker or more streaked (the ``natural`` kind of
    :func:`~detection.anomaly.features.synthetic.synthesize_surface`; drawn from its own seed,
    so the surface figures stay those of the plain call), and ``synthetic_val_mean``: the mean
    of the four AUROCs.

    A criterion for choosing among models and settings without looking at real defects (the
    *test* part's defects stay unseen until the choice is made). It favours scorers trained on
    similar synthetic anomalies, so it ranks candidates; it does not predict test figures.
    """
    from detection.anomaly.base import resize_map
    from detection.anomaly.features.synthetic import SURFACE_KINDS, synthesize_surface

    images = [load_gray(it.image) for it in mt_items(mt_root, "MT_Free", "val")]
    rng = np.random.default_rng(seed)
    sets = {"synthetic_val": [synthesize_surface(im, sources, rng, p_anomaly=1.0) for im in images]}
    if regions:
        rng = np.random.default_rng(seed + 1)
        only_regions = tuple(float(kind == "natural") for kind in SURFACE_KINDS)
        sets["synthetic_val_region"] = [
            synthesize_surface(im, sources, rng, p_anomaly=1.0, weights=only_regions,
                               donor01=resize_map(images[(i + 1) % len(images)], im.shape))
            for i, im in enumerate(images)
        ]
    anomalous = [(name, a, m) for name, pairs in sets.items() for a, m in pairs if m.any()]
    maps, scores = scorer.score_maps_and_samples(images + [a for _, a, _ in anomalous])
    normal_pixels = [np.zeros(im.size, bool) for im in images]
    result: dict[str, Any] = {"n_normal": len(images)}
    for name in sets:
        pick = [len(images) + j for j, (n, _, _) in enumerate(anomalous) if n == name]
        labels = np.r_[np.zeros(len(images), bool), np.ones(len(pick), bool)]
        pixel_labels = np.concatenate(normal_pixels + [anomalous[j - len(images)][2].ravel() > 0.5
                                                       for j in pick])
        keep = list(range(len(images))) + pick
        result[f"{name}_image_auroc"] = auroc(labels, scores[keep])
        result[f"{name}_pixel_auroc"] = binned_auroc(pixel_labels,
                                                     np.concatenate([maps[j].ravel() for j in keep]))
        result[f"n_{name.replace('synthetic_val', 'synthetic')}"] = len(pick)
    if regions:
        result["synthetic_val_mean"] = float(np.mean([v for k, v in result.items() if k.endswith("auroc")]))
    return result


def mt_test_items(mt_root: Path) -> list[MtItem]:
    items = mt_items(mt_root, "MT_Free", "test")
    for class_dir in MT_DEFECT_CLASSES:
        items += mt_items(mt_root, class_dir, "test")
    return items


def mt_selection_items(mt_root: Path) -> list[MtItem]:
    """The real-defect selection set: ``MT_Free`` *val* (no scorer fits on it) against the
    *train* and *val* parts of every defect class (no anomaly scorer ever trains on a defect
    image), so models are chosen on real defects and the *test* part stays unseen.

    Beside the synthetic set, which ranks candidates by how well they find the synthetic
    anomalies some of them were trained on: 88 normal against 223 real defect images.
    """
    items = mt_items(mt_root, "MT_Free", "val")
    for class_dir in MT_DEFECT_CLASSES:
        items += mt_items(mt_root, class_dir, "train") + mt_items(mt_root, class_dir, "val")
    return items


def evaluate_mt(
    scorer: AnomalyScorer, mt_root: Path, *, limit_per_class: int | None = None,
    selection: bool = False,
) -> dict[str, Any]:
    """Image and pixel AUROC of ``scorer`` on the magnetic-tile test part (or, with
    ``selection``, on :func:`mt_selection_items`), plus timing."""
    items = mt_selection_items(mt_root) if selection else mt_test_items(mt_root)
    if limit_per_class is not None:  # a quick look (tests): the first images of each class
        items = [it for it in items
                 if sum(o.class_dir == it.class_dir for o in items[: items.index(it)]) < limit_per_class]
    images = [load_gray(it.image) for it in items]
    start = time.perf_counter()
    maps, scores = scorer.score_maps_and_samples(images)
    seconds = time.perf_counter() - start
    labels = np.array([it.is_defect for it in items])
    per_class = {}
    for class_dir in MT_DEFECT_CLASSES:
        sel = np.array([it.class_dir in ("MT_Free", class_dir) for it in items])
        per_class[class_dir] = auroc(labels[sel], scores[sel])
    pixel_labels = np.concatenate([it.defect_mask(m.shape).ravel()
                                   for it, m in zip(items, maps, strict=True)])
    pixel_scores = np.concatenate([m.ravel() for m in maps])
    predictions = scores >= scorer.threshold_
    image_auroc, pixel_auroc = auroc(labels, scores), binned_auroc(pixel_labels, pixel_scores)
    return {
        "image_auroc": image_auroc,
        "pixel_auroc": pixel_auroc,
        "mean_image_pixel_auroc": (image_auroc + pixel_auroc) / 2,
        "image_auroc_per_class": per_class,
        "n_normal": int((~labels).sum()),
        "n_defect": int(labels.sum()),
        "true_positive_rate_at_threshold": float(predictions[labels].mean()),
        "false_positive_rate_at_threshold": float(predictions[~labels].mean()),
        "seconds_scoring_maps_and_scores": round(seconds, 1),
        "scoring_precisions": scorer.scoring_precisions(),
    }
