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
    idx = np.minimum(((scores - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)
    pos = np.bincount(idx[labels], minlength=bins).astype(np.float64)
    neg = np.bincount(idx[~labels], minlength=bins).astype(np.float64)
    neg_below = np.cumsum(neg) - neg
    wins = (pos * (neg_below + 0.5 * neg)).sum()
    return float(wins / (pos.sum() * neg.sum()))
