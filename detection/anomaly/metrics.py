"""AUROC for image and pixel scores (pure numpy).

Pixel AUROC runs over tens of millions of pixels; sorting them all is slow and memory-hungry,
so :func:`binned_auroc` counts scores in 2^16 equal bins between the minimum and maximum and
integrates the ROC curve from the counts, ties within a bin counted half (error below 1e-4).

>>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.4, 0.35, 0.8])
>>> float(binned_auroc(y, s)), float(auroc(y, s))
(0.75, 0.75)
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact AUROC (scikit-learn); NaN if only one class is present."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def binned_auroc(labels: np.ndarray, scores: np.ndarray, bins: int = 65536) -> float:
    """AUROC from score histograms of the positives and negatives (see the module text)."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.all() or not labels.any():
        return float("nan")
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        return 0.5
    idx = score_bins(scores, lo, hi, bins)
    return float(histogram_auroc(np.bincount(idx[labels], minlength=bins),
                                 np.bincount(idx[~labels], minlength=bins)))


def score_bins(scores: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Each score's bin among ``bins`` equal bins from ``lo`` to ``hi`` (``hi`` in the last)."""
    span = hi - lo if hi > lo else 1.0
    return np.minimum(((np.asarray(scores, np.float64) - lo) / span * bins).astype(np.int64), bins - 1)


def histogram_auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC from score histograms of the positives and negatives over the same bins (last
    axis), ties within a bin counted half; any leading axes are kept (one AUROC per row). NaN
    where a row has no positives or no negatives."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    neg_below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (neg_below + 0.5 * neg)).sum(-1)
    total = pos.sum(-1) * neg.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / np.where(total > 0, total, 1.0), np.nan)
