"""Segmentation and image-level figures of a defect segmenter, as in the CAN paper's table.

- image level: average precision of each class (one-vs-rest on its score; the defect-free
  class scores how far every defect score stays below its class's threshold, or ``1 - max``
  of the defect scores with one threshold for all) and their mean over all classes (mAP);
  accuracy, balanced accuracy (mean recall of the classes) and confusion matrix of the
  predicted class (:func:`decide`: the class furthest over its threshold, in logits);
- pixel level: the IoU of each defect class over the whole test set (intersection and union
  summed over every test image, so false positives on other images count) of the predicted
  masks (:meth:`DefectSegmenter.pixel_labels`), and the mean IoU over all classes including
  the background.

>>> y = np.array([0, 1, 2, 2])  # free, a, b, b; a defect-free image scores 1 - max
>>> s = np.array([[0.1, 0.2], [0.9, 0.1], [0.2, 0.7], [0.6, 0.4]])
>>> m = image_level_metrics(y, s, ["free", "a", "b"], threshold=0.5)
>>> m["AP"], m["errors"]
({'free': 1.0, 'a': 1.0, 'b': 1.0}, 1)
>>> decide(s, [0.5, 0.5]).tolist(), decide(s, [0.95, 0.3]).tolist()
([0, 1, 2, 1], [0, 0, 2, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from detection.classifier.metrics import classification_metrics


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1.0 - 1e-9)
    return np.log(p) - np.log1p(-p)


def class_margins(defect_scores: np.ndarray, thresholds: float | Sequence[float]) -> np.ndarray:
    """(N, n_defect) logit of each score minus the logit of its class's threshold: > = 0 where
    a class is called present. Logits, because positive class weights push the classes'
    probabilities towards 1 by different amounts."""
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), np.shape(defect_scores)[1:])
    return _logit(defect_scores) - _logit(t)[None]


def decide(defect_scores: np.ndarray, thresholds: float | Sequence[float]) -> np.ndarray:
    """0 (defect-free) where no class reaches its threshold, else ``k + 1`` for the class ``k``
    furthest over its own (one threshold for all: the most probable class)."""
    margins = class_margins(defect_scores, thresholds)
    return np.where(margins.max(1) >= 0, margins.argmax(1) + 1, 0)


def per_class_thresholds(free_scores: np.ndarray, alarm_rate: float) -> np.ndarray:
    """One threshold per defect class, all at one quantile level of the defect-free images'
    scores (``free_scores`` (n, n_defect)): the lowest level at which at most ``alarm_rate`` of
    those images have any class reaching its threshold. Each class is measured against how
    high *it* scores on clean images, so a class the network scores high everywhere (uneven
    grinding, here) no longer sets the cut for the others.

    >>> free = np.array([[0.1, 0.9], [0.2, 0.95], [0.3, 0.97], [0.15, 0.99], [0.12, 0.5],
    ...                  [0.11, 0.6], [0.13, 0.7], [0.14, 0.8]])
    >>> t = per_class_thresholds(free, 0.25)
    >>> t.round(3).tolist(), float((free >= t).any(1).mean())
    ([0.2, 0.97], 0.25)
    """
    f = np.asarray(free_scores, dtype=np.float64)
    for level in np.linspace(0.0, 1.0, 2001):
        t = np.quantile(f, level, axis=0)
        if np.mean((f >= t[None]).any(1)) <= alarm_rate:
            return t
    return np.nextafter(f.max(0), 2.0)  # too few images for the rate: above every one


def image_level_metrics(
    y_true: np.ndarray, defect_scores: np.ndarray, classes: Sequence[str],
    threshold: float | Sequence[float], *, free_score: np.ndarray | None = None,
    pred: np.ndarray | None = None,
) -> dict[str, Any]:
    """``y_true`` 0 = defect-free, k + 1 = defect class k; ``defect_scores`` (N, n_defect);
    ``threshold`` one for every class, or one per defect class. A model that scores the
    defect-free class and calls images its own way passes ``free_score`` and ``pred``."""
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(defect_scores, dtype=np.float64)
    per_class = np.ndim(threshold) > 0 and len(set(np.ravel(threshold))) > 1
    if free_score is None:
        free_score = -class_margins(s, threshold).max(1) if per_class else 1.0 - s.max(1)
    scores = np.column_stack([free_score, s])
    ap = {}
    for k, c in enumerate(classes):
        pos = y == k
        ap[c] = float(average_precision_score(pos, scores[:, k])) if pos.any() else None
    pred = decide(s, threshold) if pred is None else np.asarray(pred, dtype=int)
    m = classification_metrics(y, pred, classes)
    present = [v for v in ap.values() if v is not None]
    m.update(AP=ap, mAP=float(np.mean(present)) if present else float("nan"),
             balanced_accuracy=balanced_accuracy(y, pred))
    return m


def balanced_accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    """The mean over the classes present in ``true`` of each one's recall.

    >>> balanced_accuracy(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]))
    0.5
    """
    return float(np.mean([np.mean(pred[true == k] == k) for k in np.unique(true)]))


def most_probable_labels(prob: np.ndarray, threshold: float) -> np.ndarray:
    """int (H, W) of ``prob`` (n_defect, H, W): ``k + 1`` for the most probable class ``k``
    where any class reaches ``threshold``, 0 elsewhere.

    >>> most_probable_labels(np.array([[[0.9, 0.2]], [[0.6, 0.3]]]), 0.5).tolist()
    [[1, 0]]
    """
    return np.where((prob >= threshold).any(0), prob.argmax(0) + 1, 0).astype(np.int16)


class IoUAccumulator:
    """Sums intersections and unions per class over images of different sizes."""

    def __init__(self, n_defect: int) -> None:
        self.inter = np.zeros(n_defect + 1)
        self.union = np.zeros(n_defect + 1)

    def add(self, prob: np.ndarray, mask: np.ndarray, threshold: float) -> None:
        """``prob`` (n_defect, H, W); ``mask`` int (H, W), 0 background, k + 1 class k; a pixel
        is the most probable class where any reaches ``threshold``."""
        self.add_labels(most_probable_labels(prob, threshold), mask)

    def add_labels(self, pred: np.ndarray, mask: np.ndarray) -> None:
        """``pred`` and ``mask`` int (H, W): 0 background, k + 1 class k."""
        for k in range(len(self.inter)):
            p, t = pred == k, mask == k
            self.inter[k] += np.logical_and(p, t).sum()
            self.union[k] += np.logical_or(p, t).sum()

    def result(self, classes: Sequence[str]) -> dict[str, Any]:
        """IoU per class (``classes`` begins with the background/defect-free class), mIoU."""
        iou = {
            c: (float(self.inter[k] / self.union[k]) if self.union[k] else None)
            for k, c in enumerate(classes)
        }
        defect = [v for v in list(iou.values())[1:] if v is not None]
        return {
            "IoU": iou,
            "mIoU_all": float(np.mean([v for v in iou.values() if v is not None])),
            "mIoU_defect": float(np.mean(defect)) if defect else float("nan"),
        }
