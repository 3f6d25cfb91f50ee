"""Two segmenters' image-level figures (each class's AP and their mean, mAP) on the same images,
with intervals from resampling whole tiles within each class
(:func:`detection.tile_bootstrap.tile_bootstrap`). Pure numpy: the shell scores the images.

Each class's AP is the one :func:`detection.segmentation.metrics.image_level_metrics` reports:
one-vs-rest on the class's column of ``scores`` (column 0 the defect-free class's score).

>>> y = np.array([0, 0, 1, 1, 2, 2]); tiles = np.arange(6)
>>> a = np.array([[.9, .1, .1], [.8, .2, .1], [.1, .9, .2], [.2, .3, .8], [.1, .2, .9], [.3, .1, .7]])
>>> r = paired_map_bootstrap(y, tiles, a, a, ["free", "x", "y"], resamples=20)
>>> r["mAP"]["a"] == r["mAP"]["b"], r["mAP"]["difference_95_low"], r["AP x"]["b_ahead_share"]
(True, 0.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from coilmap.errors import InputError
from detection.tile_bootstrap import tile_bootstrap, tiles_per_stratum


def paired_map_bootstrap(y: np.ndarray, tiles: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                         classes: Sequence[str], *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Segmenters a and b on the same images: ``y`` each image's class (0 the defect-free
    class), ``scores_*`` (N, len(classes)) each class's score; per class ``AP <class>`` and
    ``mAP`` (mean over the classes present), each model's and the difference b - a's 95 %
    interval over tile draws within each class, and the share of draws where b is ahead. A
    class of fewer than three tiles is named in ``classes_with_intervals_too_narrow``."""
    y = np.asarray(y, int)
    scores_a, scores_b = np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64)
    if not (len(y) == len(tiles) == len(scores_a) == len(scores_b)):
        raise InputError("calls, tiles and both models' scores must have one entry per image")
    if scores_a.shape[1:] != (len(classes),) or scores_b.shape[1:] != (len(classes),):
        raise InputError(f"scores must have one column per class ({len(classes)})")
    present = [k for k in range(len(classes)) if (y == k).any()]
    if len(present) < 2:
        raise InputError("the images must hold at least two classes")

    def mean_ap(scores: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
        keep = np.ones(len(y), bool) if w is None else w > 0
        sw = None if w is None else w[keep]
        ap = {f"AP {classes[k]}":
              float(average_precision_score(y[keep] == k, scores[keep, k], sample_weight=sw))
              for k in present}
        return {"mAP": float(np.mean(list(ap.values()))), **ap}

    def figures(w: np.ndarray | None) -> dict[str, tuple[float, float]]:
        a, b = mean_ap(scores_a, w), mean_ap(scores_b, w)
        return {name: (a[name], b[name]) for name in a}

    per_class = {classes[k]: n for k, n in tiles_per_stratum(y, tiles).items()}
    return {"n_images": int(len(y)), "tiles_per_class": per_class,
            # a class of one or two tiles is drawn as (nearly) the same tiles every time: its
            # interval is (nearly) zero wide and says nothing of how it would do on other tiles
            "classes_with_intervals_too_narrow": [c for c, n in per_class.items() if n < 3],
            **tile_bootstrap(y, tiles, figures, resamples=resamples, seed=seed)}
