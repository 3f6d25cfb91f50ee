"""Coil-grouped, class-stratified train/val/test splits of a labelled image table (pure core).

Images of one coil share its steel, its time and its camera conditions, so an image of a coil
in the training set tells a classifier much about an image of the same coil in the test set:
a random split inflates test accuracy. Here every group (a hot coil, with all the pieces rolled
from it; see :mod:`fusion.image_table`) lies in exactly one part, and each part keeps the class
mix as far as whole groups allow (scikit-learn's ``StratifiedGroupKFold``). The result depends
only on the table and the seed.

>>> labels = ["a"] * 6 + ["b"] * 6
>>> coils = ["c1", "c1", "c2", "c2", "c3", "c3", "c4", "c4", "c5", "c5", "c6", "c6"]
>>> parts = grouped_split(labels, coils, test_fraction=0.34, seed=0)
>>> all(len({p for p, c in zip(parts, coils) if c == g}) == 1 for g in set(coils))
True
>>> sorted(set(parts))
['test', 'train']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from coilmap.errors import InputError


def _one_fold(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of about ``fraction`` of the rows, whole groups, class-stratified."""
    n_splits = max(2, int(round(1.0 / fraction)))
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise InputError(
            f"{n_groups} coil groups cannot make a {fraction:.0%} part; need at least {n_splits}",
            field="coil",
        )
    # The rarest class decides how finely stratification can work; sklearn warns and does its
    # best when a class has fewer groups than folds, which is what we want.
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, pick = next(iter(cv.split(np.zeros(len(y)), y, groups)))
    mask = np.zeros(len(y), dtype=bool)
    mask[pick] = True
    return mask


def grouped_split(
    labels: Sequence[str] | np.ndarray,
    groups: Sequence[str] | np.ndarray,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """``'train'``, ``'val'`` or ``'test'`` for each row; no group in two parts."""
    y = np.asarray(labels, dtype=object).astype(str)
    g = np.asarray(groups, dtype=object).astype(str)
    if y.shape != g.shape or y.ndim != 1:
        raise InputError("labels and groups must be 1-D and of the same length")
    if not 0.0 < test_fraction < 1.0 or not 0.0 <= val_fraction < 1.0 - test_fraction:
        raise InputError(
            f"need 0 < test_fraction < 1 and 0 <= val_fraction < 1 - test_fraction, "
            f"got {test_fraction:g} and {val_fraction:g}",
            field="test_fraction",
        )
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        out = np.full(len(y), "train", dtype=object)
        test = _one_fold(y, g, test_fraction, seed)
        out[test] = "test"
        if val_fraction > 0:
            rest = np.flatnonzero(~test)
            val = _one_fold(y[rest], g[rest], val_fraction / (1.0 - test_fraction), seed + 1)
            out[rest[val]] = "val"
    return out
