"""Two models' figures on the same images, with intervals from resampling whole tiles.

The magnetic-tile data shows each tile under up to six exposures, and its parts are small in
tiles (the anomaly selection set: 19 clean tiles; the test part: 24 defect tiles). Exposures of
one tile score alike, so images are not independent: :func:`tile_bootstrap` draws whole tiles
with replacement within each stratum (clean / defect, or each class, so every draw keeps every
stratum), recomputes both models' figures on each draw, and gives each model's and the
difference's 95 % percentile interval and how often the second model came out ahead. Used by
:mod:`detection.anomaly.compare` (AUROC) and :mod:`detection.segmentation.compare` (AP, mAP).

>>> y = np.array([0, 0, 1, 1]); tiles = np.array(["a", "a", "b", "c"])
>>> def figures(w): return {"mean": (float(np.average(y, weights=w)), 0.5)}
>>> r = tile_bootstrap(y, tiles, figures, resamples=50)
>>> r["mean"]["a"], r["mean"]["b"], r["mean"]["difference"]
(0.5, 0.5, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from coilmap.errors import InputError


def tile_weights(strata: np.ndarray, tiles: np.ndarray, resamples: int,
                 rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) image weights: within each stratum (clean / defect, or each class), its
    tiles drawn with replacement, as many as it has, and each drawn tile's images counted once
    per draw."""
    strata, tiles = np.asarray(strata), np.asarray(tiles)
    weights = np.zeros((resamples, len(strata)))
    for kind in np.unique(strata):
        kind_tiles = np.unique(tiles[strata == kind])
        members = [np.flatnonzero((tiles == t) & (strata == kind)) for t in kind_tiles]
        draws = rng.integers(0, len(kind_tiles), size=(resamples, len(kind_tiles)))
        counts = np.stack([np.bincount(row, minlength=len(kind_tiles)) for row in draws])
        for j, idx in enumerate(members):
            weights[:, idx] += counts[:, j : j + 1]
    return weights


def tiles_per_stratum(strata: np.ndarray, tiles: np.ndarray) -> dict[Any, int]:
    """How many distinct tiles each stratum holds (the draws' unit).

    >>> tiles_per_stratum(np.array([0, 0, 1, 1]), np.array(["a", "a", "b", "c"]))
    {0: 1, 1: 2}
    """
    strata, tiles = np.asarray(strata), np.asarray(tiles).astype(str)
    return {kind.item(): int(len(np.unique(tiles[strata == kind]))) for kind in np.unique(strata)}


def _summary(a: float, b: float, a_boot: np.ndarray, b_boot: np.ndarray) -> dict[str, float]:
    diff = b_boot - a_boot
    lo, hi = np.nanpercentile(diff, [2.5, 97.5])
    a_lo, a_hi = np.nanpercentile(a_boot, [2.5, 97.5])
    b_lo, b_hi = np.nanpercentile(b_boot, [2.5, 97.5])
    return {"a": round(a, 4), "a_95_low": round(float(a_lo), 4), "a_95_high": round(float(a_hi), 4),
            "b": round(b, 4), "b_95_low": round(float(b_lo), 4), "b_95_high": round(float(b_hi), 4),
            "difference": round(b - a, 4),
            "difference_95_low": round(float(lo), 4), "difference_95_high": round(float(hi), 4),
            "b_ahead_share": round(float(np.nanmean(diff > 0)), 3)}


Figures = Callable[[np.ndarray | None], dict[str, tuple[float, float]]]


def tile_bootstrap(strata: np.ndarray, tiles: np.ndarray, figures: Figures, *,
                   resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """``figures(weights)`` gives each figure of models a and b, ``(a, b)`` by name, on the
    images weighted by ``weights`` (None: every image once). Each figure on the whole set,
    and over ``resamples`` draws of whole tiles within each stratum: each model's and the
    difference b - a's 95 % interval and the share of draws in which b is ahead."""
    strata = np.asarray(strata)
    _, tiles = np.unique(np.asarray(tiles).astype(str), return_inverse=True)
    if len(strata) != len(tiles):
        raise InputError("strata and tiles must have one entry per image")
    if resamples < 10:
        raise InputError("at least 10 resamples")
    weights = tile_weights(strata, tiles, resamples, np.random.default_rng(seed))
    whole = figures(None)
    drawn = [figures(w) for w in weights]
    out: dict[str, Any] = {"resamples": resamples, "seed": seed}
    for name, (a, b) in whole.items():
        out[name] = _summary(a, b, np.array([d[name][0] for d in drawn]),
                             np.array([d[name][1] for d in drawn]))
    return out
