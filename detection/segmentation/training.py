"""The shell around :class:`DefectSegmenter`: magnetic-tile-layout data in, figures out.

Training on the ``train`` part, selection on ``val``, figures on ``test``
(:func:`coilmap.datasplit.mt_parts`, by tile). The defect-free class (``Free``) has no mask channel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from coilmap.datasplit import mt_tile_groups
from coilmap.errors import InputError
from detection.datasets import MT_FREE, LabelledImage, LabelledSet, load_images, load_mask
from detection.segmentation.estimator import DefectSegmenter
from detection.segmentation.metrics import IoUAccumulator, image_level_metrics


def defect_classes(data: LabelledSet) -> list[str]:
    """The mask channels: every class but the defect-free one."""
    return [c for c in data.classes if c != MT_FREE]


def load_with_masks(
    items: list[LabelledImage], classes: list[str]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images and int masks (0 background, k + 1 for class k = the image's class)."""
    images = load_images(items)
    masks = []
    for it, im in zip(items, images, strict=True):
        m = load_mask(it, im.shape).astype(np.int16)
        masks.append(m * (classes.index(it.label) + 1) if it.label in classes else m * 0)
    return images, masks


def train_on_set(
    data: LabelledSet,
    seg: DefectSegmenter,
    *,
    n_synthetic: int = 100,
    log: Callable[[str], None] | None = None,
) -> tuple[DefectSegmenter, dict[str, Any]]:
    """Fit ``seg`` on the train part of a magnetic-tile-layout set, selecting on val."""
    if data.layout != "mt":
        raise InputError(
            "the segmenter trains on images with masks (MT_<Class>/Imgs/<id>.jpg + .png)",
            source=str(data.root),
        )
    classes = defect_classes(data)
    t0 = time.perf_counter()
    xi, mi = load_with_masks(data.part("train"), classes)
    xv, mv = load_with_masks(data.part("val"), classes)
    seg.fit(xi, mi, classes=classes, val_images=xv, val_masks=mv, n_synthetic=n_synthetic, log=log)
    return seg, {"train_seconds": round(time.perf_counter() - t0, 1), "best_epoch": seg.best_epoch_}


def image_calls(items: list[LabelledImage], classes: list[str], source: str | None = None) -> np.ndarray:
    """Each item's call: 0 for the defect-free class, ``k + 1`` for ``classes[k]``; a label
    that is neither is an error naming it (``source``: the data folder, for the message)."""
    unknown = sorted({it.label for it in items} - set(classes) - {MT_FREE})
    if unknown:
        raise InputError(f"classes {unknown} are not among the model's classes {classes}", source=source)
    all_classes = [MT_FREE, *classes]
    return np.array([all_classes.index(it.label) for it in items], dtype=int)


def tile_keys(items: list[LabelledImage]) -> np.ndarray:
    """Each magnetic tile item's tile among ``items``, ``<class>:<group>``: the exposures of one
    tile share a key (:func:`coilmap.datasplit.mt_tile_groups`, within each class)."""
    groups = {label: mt_tile_groups([it.path.stem for it in items if it.label == label])
              for label in {it.label for it in items}}
    return np.array([f"{it.label}:{groups[it.label][it.path.stem]}" for it in items])


def evaluate_items(seg: DefectSegmenter, items: list[LabelledImage]) -> dict[str, Any]:
    """Image-level AP/mAP/accuracy and pixel IoU of ``seg`` on ``items`` (with masks)."""
    y = image_calls(items, seg.classes_)
    images, masks = load_with_masks(items, seg.classes_)
    all_classes = [MT_FREE, *seg.classes_]
    lows = seg.low_res_logits(images)  # one pass serves the figures and the selection criterion
    scores, probs = seg.predict_all(images, lows=lows)
    out = image_level_metrics(y, scores, all_classes, seg.image_thresholds_,
                              free_score=seg.free_scores(scores), pred=seg.calls(scores))
    names = ["background", *seg.classes_]
    acc = IoUAccumulator(len(seg.classes_))
    # The same IoU counted only over each class's own images (false alarms elsewhere ignored).
    own = {k: IoUAccumulator(len(seg.classes_)) for k in range(1, len(names))}
    for pred, m, label in zip(seg.pixel_labels(scores, probs), masks, y, strict=True):
        acc.add_labels(pred, m)
        if label > 0:
            own[int(label)].add_labels(pred, m)
    out.update(acc.result(names))
    out["IoU_own_images"] = {names[k]: a.result(names)["IoU"][names[k]] for k, a in own.items()}
    out.update(image_thresholds=dict(zip(seg.classes_, seg.image_thresholds_, strict=True)),
               pixel_threshold=seg.pixel_threshold_)
    # The threshold-free figures that choose among epochs and models, on these images.
    out["selection"] = seg.selection_criterion(images, masks, lows=lows)
    return out
