"""A multinomial logistic head over evidence vectors, its strength chosen by cross-validated mAP.

Fitted with scikit-learn (standardised features, balanced class weights), kept as plain arrays:
prediction is a softmax of one matrix product, and the arrays go into a model file
exactly (float64, no float16 rounding of the weights).

>>> rng = np.random.default_rng(0)
>>> y = np.repeat([0, 1, 2], 20)
>>> X = rng.normal(size=(60, 4)) + np.eye(3, 4)[y] * 3
>>> head, table = fit_head(X, y, 3, c_grid=(0.1, 1.0), folds=3)
>>> head.proba(X).shape, bool((head.proba(X).argmax(1) == y).mean() > 0.9)
((60, 3), True)
>>> sorted(table) == [0.1, 1.0] and head.c in table
True
>>> bool(np.array_equal(LogisticHead.from_state(head.state(), head.c).proba(X), head.proba(X)))
True
>>> views = np.stack([X, X[:, ::-1]])  # two views of each image
>>> both, _ = fit_head(views, y, 3, c_grid=(1.0,), folds=3)
>>> mean_proba(both, views).shape
(60, 3)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from coilmap.errors import InputError

_ARRAYS = ("mean", "scale", "coef", "intercept")


@dataclass(frozen=True)
class LogisticHead:
    """``softmax(((X - mean) / scale) @ coef.T + intercept)``; ``c`` the inverse strength."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    c: float

    def proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise InputError(f"the head reads {self.mean.shape[0]} evidence features, not "
                             f"{X.shape[1] if X.ndim == 2 else X.shape} (a model fitted by another "
                             "version of coilmap: fit it again)")
        z = ((X - self.mean) / self.scale) @ self.coef.T + self.intercept
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def state(self) -> dict[str, torch.Tensor]:
        """The arrays as float64 tensors (a model file keeps them exactly)."""
        return {k: torch.from_numpy(np.asarray(getattr(self, k), dtype=np.float64)) for k in _ARRAYS}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], c: float) -> LogisticHead:
        return cls(**{k: state[k].double().numpy() for k in _ARRAYS}, c=float(c))


def mean_average_precision(y: np.ndarray, proba: np.ndarray) -> float:
    """The mean over the classes present in ``y`` of each one's one-vs-rest AP."""
    present = [k for k in range(proba.shape[1]) if np.any(y == k)]
    return float(np.mean([average_precision_score(y == k, proba[:, k]) for k in present]))


def mean_proba(head: LogisticHead, views: np.ndarray) -> np.ndarray:
    """The head's probabilities averaged over views: ``views`` (V, N, F) -> (N, n_classes)."""
    return np.mean([head.proba(v) for v in np.asarray(views)], axis=0)


def fit_head(
    X: np.ndarray, y: np.ndarray, n_classes: int, *, c_grid: Sequence[float] = (0.3, 1.0, 3.0),
    folds: int = 5, seed: int = 0, groups: np.ndarray | None = None,
) -> tuple[LogisticHead, dict[float, float]]:
    """The head with the ``c_grid`` entry of the best ``folds``-fold cross-validated mAP
    (stratified, seeded), refitted on all of ``X``; and that mAP for every entry.

    ``X`` is (N, F), or (V, N, F): V views of each image (mirror images, say). With views the
    head fits on every view of its images, the folds split images (never an image's views),
    and a held-out image's probabilities are the mean over its views (:func:`mean_proba`).
    ``groups`` (one label per image, e.g. the tile it shows): the folds split groups, never a
    group, so the figure says how the head does on groups it did not see.
    """
    X = np.asarray(X, dtype=np.float64)
    views = X if X.ndim == 3 else X[None]
    y = np.asarray(y, dtype=int)
    counts = np.bincount(y, minlength=n_classes)
    if views.ndim != 3 or views.shape[1] != len(y):
        raise InputError(f"evidence {X.shape} and labels {y.shape} do not match")
    if (counts < folds).any():
        raise InputError(f"each class needs at least {folds} images for {folds}-fold selection; "
                         f"counts per class {counts.tolist()}")
    if groups is None:
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y))
    else:
        if len(groups) != len(y):
            raise InputError(f"{len(groups)} group labels for {len(y)} images")
        splits = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(y, y, groups))
        if any(len(np.unique(y[train])) < n_classes for train, _ in splits):
            raise InputError(f"{folds}-fold selection by group leaves a class out of a fold's "
                             "training images: too few groups of some class")
    table = {}
    for c in c_grid:
        proba = np.zeros((len(y), n_classes))
        for train, held in splits:
            proba[held] = mean_proba(_fit_views(views[:, train], y[train], n_classes, float(c)),
                                     views[:, held])
        table[float(c)] = mean_average_precision(y, proba)
    best = max(table, key=lambda c: table[c])
    return _fit_views(views, y, n_classes, best), table


def _fit_views(views: np.ndarray, y: np.ndarray, n_classes: int, c: float) -> LogisticHead:
    return _fit(views.reshape(-1, views.shape[-1]), np.tile(y, len(views)), n_classes, c)


def _fit(X: np.ndarray, y: np.ndarray, n_classes: int, c: float) -> LogisticHead:
    mean = X.mean(0)
    scale = X.std(0)
    scale[scale < 1e-12] = 1.0
    with warnings.catch_warnings():  # a few hundred images: lbfgs may stop at max_iter, harmlessly
        warnings.simplefilter("ignore")
        lr = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        lr.fit((X - mean) / scale, y)
    coef = np.zeros((n_classes, X.shape[1]))
    intercept = np.full(n_classes, -1e9)  # a class absent from this fold is never predicted
    binary = len(lr.classes_) == 2  # one row of weights for the second class against the first
    coef[lr.classes_] = np.vstack([-lr.coef_, lr.coef_]) / 2 if binary else lr.coef_
    intercept[lr.classes_] = np.array([-1, 1]) * lr.intercept_[0] / 2 if binary else lr.intercept_
    return LogisticHead(mean, scale, coef, intercept, c)
