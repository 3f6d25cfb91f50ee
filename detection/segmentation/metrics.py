"""Segmentation and image-level figures of a defect segmenter, as in the CAN paper's table.

- image level: average precision of each class (one-vs-rest on its score; the defect-free
  class scores ``1 - max`` of the defect scores) and their mean over all classes (mAP);
  accuracy, balanced accuracy (mean recall of the classes) and confusion matrix of the
  predicted class;
- pixel level: the IoU of each defect class over the whole test set (intersection and union
  summed over every test image, so false positives on other images count) at the threshold,
  and the mean IoU over all classes including the background.

>>> y = np.array([0, 1, 2, 2])  # free, a, b, b; a defect-free image scores 1 - max
>>> s = np.array([[0.1, 0.2], [0.9, 0.1], [0.2, 0.7], [0.6, 0.4]])
>>> m = image_level_metrics(y, s, ["free", "a", "b"], threshold=0.5)
>>> m["AP"], m["errors"]
({'free': 1.0, 'a': 1.0, 'b': 1.0}, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from detection.classifier.metrics import classification_metrics


def image_level_metrics(
    y_true: np.ndarray, defect_scores: np.ndarray, classes: Sequence[str], threshold: float
) -> dict[str, Any]:
    """``y_true`` 0 = defect-free, k + 1 = defect class k; ``defect_scores`` (N, n_defect)."""
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(defect_scores, dtype=np.float64)
    scores = np.column_stack([1.0 - s.max(1), s])
    ap = {}
    for k, c in enumerate(classes):
        pos = y == k
        ap[c] = float(average_precision_score(pos, scores[:, k])) if pos.any() else None
    pred = np.where(s.max(1) >= threshold, s.argmax(1) + 1, 0)
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


class IoUAccumulator:
    """Sums intersections and unions per class over images of different sizes."""

    def __init__(self, n_defect: int) -> None:
        self.inter = np.zeros(n_defect + 1)
        self.union = np.zeros(n_defect + 1)

    def add(self, prob: np.ndarray, mask: np.ndarray, threshold: float) -> None:
        """``prob`` (n_defect, H, W); ``mask`` int (H, W), 0 background, k + 1 class k."""
        hit = prob >= threshold
        pred = np.where(hit.any(0), prob.argmax(0) + 1, 0)
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
