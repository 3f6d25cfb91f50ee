"""The shell around :class:`DefectClassifier`: read a labelled folder, train, evaluate, save.

Training uses the ``train`` part, model selection the ``val`` part; figures are reported on
the ``test`` part. NEU ``render`` images are never listed (see :mod:`detection.datasets`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detection.classifier.estimator import DefectClassifier
from detection.classifier.metrics import classification_metrics
from detection.datasets import LabelledImage, LabelledSet, load_images


def train_on_set(
    data: LabelledSet,
    clf: DefectClassifier,
    *,
    log: Callable[[str], None] | None = None,
) -> tuple[DefectClassifier, dict[str, Any]]:
    """Fit ``clf`` on the train part of ``data`` (selecting on val); returns it and a summary."""
    index = {c: i for i, c in enumerate(data.classes)}
    train, val = data.part("train"), data.part("val")
    t0 = time.perf_counter()
    x_train, x_val = load_images(train), load_images(val)
    clf.fit(
        x_train,
        [index[it.label] for it in train],
        classes=data.classes,
        val_images=x_val,
        val_labels=[index[it.label] for it in val],
        boxes=[it.boxes for it in train] if data.layout == "neu" else None,
        background_boxes=[it.all_boxes for it in train] if data.layout == "neu" else None,
        log=log,
    )
    summary = {
        "train_seconds": round(time.perf_counter() - t0, 1),
        "best_epoch": clf.best_epoch_,
        "val": evaluate_items(clf, val, x_val),
    }
    return clf, summary


def evaluate_items(
    clf: DefectClassifier, items: list[LabelledImage], images: list[np.ndarray] | None = None
) -> dict[str, Any]:
    """Classification figures of ``clf`` on ``items`` (their labels must be among its classes)."""
    from coilmap.errors import InputError

    unknown = sorted({it.label for it in items} - set(clf.classes_))
    if unknown:
        raise InputError(f"classes {unknown} are not among the model's classes {clf.classes_}")
    if images is None:
        images = load_images(items)
    index = {c: i for i, c in enumerate(clf.classes_)}
    pred = clf.predict_proba(images).argmax(1) if items else np.zeros(0, dtype=int)
    m = classification_metrics([index[it.label] for it in items], pred, clf.classes_)
    m["misclassified"] = [
        {"image": Path(it.path).name, "true": it.label, "pred": clf.classes_[int(p)]}
        for it, p in zip(items, pred, strict=True)
        if clf.classes_[int(p)] != it.label
    ]
    return m
