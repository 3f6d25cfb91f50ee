"""The fused classifier's pseudo threshold, chosen on hot coils it did not train on (pure core).

A fused ``pseudo`` takes an observation off the coil map's defects, so calling a real defect
``pseudo`` loses it. The plain argmax of seven classes calls ``pseudo`` whenever that class is
the likeliest, even at a probability of 0.3. Here the threshold is set from coil-grouped
out-of-fold probabilities: the lowest one at which at most ``real_loss`` of the observations
of real defects are called ``pseudo``, the way an anomaly threshold is set from a quantile of
clean validation scores. The price is shown beside it: the share of pseudo-defects that are
still rejected.

>>> p = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.4])
>>> y = np.array(["pseudo", "pseudo", "a", "a", "a", "b"])
>>> pseudo_threshold_for(p, y, real_loss=0.0)
0.7
>>> pseudo_threshold_for(p, y, real_loss=0.25)
0.35
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GroupKFold

from coilmap.datasplit import PSEUDO


def out_of_fold_proba(
    estimator: BaseEstimator,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    n_splits: int = 5,
) -> tuple[np.ndarray, list[str]]:
    """Each row's class probabilities from a model fitted without its hot coil (GroupKFold),
    over the sorted classes of ``y`` (a class a fold did not see gets probability 0)."""
    classes = sorted(set(np.asarray(y).tolist()))
    k = min(n_splits, len(np.unique(groups)))
    if k < 2:
        raise ValueError("coil-grouped cross-validation needs observations of at least two hot coils")
    proba = np.zeros((len(y), len(classes)))
    for train, test in GroupKFold(n_splits=k).split(X, y, groups):
        model = clone(estimator).fit(X[train], y[train])
        cols = [classes.index(c) for c in model.classes_]
        proba[np.ix_(test, cols)] = model.predict_proba(X[test])
    return proba, classes


def pseudo_threshold_for(p_pseudo: np.ndarray, y: np.ndarray, *, real_loss: float) -> float:
    """The lowest threshold (midway between two observed probabilities) at which at most
    ``real_loss`` of the real-defect rows (``y != pseudo``) have ``p_pseudo >= threshold``."""
    if not 0.0 <= real_loss < 1.0:
        raise ValueError(f"real_loss must lie in [0, 1), got {real_loss:g}")
    real = np.sort(np.asarray(p_pseudo, dtype=np.float64)[np.asarray(y) != PSEUDO])
    if not len(real):
        return 0.5
    allowed = int(np.floor(real_loss * len(real) + 1e-9))
    values = np.unique(real)
    candidates = np.append((values[:-1] + values[1:]) / 2.0, (values[-1] + 1.0) / 2.0)
    called = len(real) - np.searchsorted(real, candidates, side="left")
    return round(float(candidates[np.argmax(called <= allowed)]), 6)
