"""The fused classifier: the image classifier's probabilities plus upstream evidence.

A scikit-learn estimator (``__init__`` stores parameters, ``fit`` returns ``self``, learned
state ends in ``_``), so ``clone``, ``GroupKFold`` and pipelines work. Gradient-boosted trees
suit these features: a few dozen mixed-scale columns, interactions that matter (an upstream
scratch only counts if it is near), and class imbalance handled by sample weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.utils.class_weight import compute_sample_weight

from fusion.evidence import PSEUDO


class FusedClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the plant class (or ``pseudo``) from evidence features.

    ``columns`` selects feature columns by index (``None``: all), which is how the image-only
    baseline is the same estimator on the ``own_*`` columns alone. ``pseudo_threshold``: an
    observation is called ``pseudo`` only when that class's probability reaches it, else the
    likeliest real class (``None``: the likeliest class of all; chosen by
    :func:`fusion.pseudo_threshold.pseudo_threshold_for`)."""

    def __init__(
        self,
        *,
        columns: Sequence[int] | None = None,
        max_iter: int = 200,
        learning_rate: float = 0.08,
        max_leaf_nodes: int = 15,
        l2_regularization: float = 1.0,
        balanced: bool = True,
        random_state: int = 0,
        pseudo_threshold: float | None = None,
    ) -> None:
        self.columns = columns
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.balanced = balanced
        self.random_state = random_state
        self.pseudo_threshold = pseudo_threshold

    def _x(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return X if self.columns is None else X[:, list(self.columns)]

    def fit(self, X: np.ndarray, y: Sequence[str]) -> FusedClassifier:
        y = np.asarray(y)
        weights = compute_sample_weight("balanced", y) if self.balanced else None
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            l2_regularization=self.l2_regularization,
            random_state=self.random_state,
        ).fit(self._x(X), y, sample_weight=weights)
        self.classes_ = self.model_.classes_
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(self._x(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decide(self.predict_proba(X))]

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """The index into ``classes_`` of each row's decision, from :meth:`predict_proba`."""
        return decide(proba, list(self.classes_), getattr(self, "pseudo_threshold", None))

    def real_probability(self, X: np.ndarray) -> np.ndarray:
        """Probability that each observation is a real defect (not dirt, oil or water)."""
        return self.real_from_proba(self.predict_proba(X))

    def real_from_proba(self, proba: np.ndarray) -> np.ndarray:
        """:meth:`real_probability` from :meth:`predict_proba`'s output (one prediction, not two)."""
        if PSEUDO not in self.classes_:
            return np.ones(proba.shape[0])
        return 1.0 - proba[:, list(self.classes_).index(PSEUDO)]


def decide(proba: np.ndarray, classes: Sequence[str], pseudo_threshold: float | None) -> np.ndarray:
    """Each row's decision as a column index: ``pseudo`` where its probability reaches the
    threshold, else the likeliest other class (the plain argmax without a threshold).

    >>> decide(np.array([[0.5, 0.2, 0.3], [0.2, 0.1, 0.7]]), ["a", "b", "pseudo"], 0.6)
    array([0, 2])
    >>> decide(np.array([[0.5, 0.2, 0.3]]), ["a", "b", "pseudo"], None)
    array([0])
    """
    proba = np.asarray(proba, dtype=np.float64)
    best = np.argmax(proba, axis=1)
    if pseudo_threshold is None or PSEUDO not in classes or len(classes) < 2:
        return best
    k = list(classes).index(PSEUDO)
    real = proba.copy()
    real[:, k] = -np.inf
    return np.where(proba[:, k] >= pseudo_threshold, k, np.argmax(real, axis=1))
