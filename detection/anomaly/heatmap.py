"""Anomaly heatmaps for the dashboard, as pure array functions (the CLI writes the PNG).

The *anomalous-feature map* of the unit-image paper is the defect-class probability times the
anomaly score: a region lights up only where the surface is unusual *and* a classifier thinks
it is a defect. Without a classifier the probability is 1 and the map is the anomaly map.

>>> heat = anomalous_feature_map(np.array([[0.0, 2.0]]), class_probability=0.5)
>>> heat.tolist()
[[0.0, 1.0]]
>>> overlay_rgb(np.zeros((1, 2)), heat, vmax=1.0).shape
(1, 2, 3)
"""

from __future__ import annotations

import numpy as np


def anomalous_feature_map(score_map: np.ndarray, class_probability: float | np.ndarray = 1.0) -> np.ndarray:
    """``class_probability * score_map``; the probability is a scalar or a map of the same shape."""
    return np.asarray(class_probability, dtype=np.float32) * np.asarray(score_map, dtype=np.float32)


def _colour(t: np.ndarray) -> np.ndarray:
    """A black-body-like ramp (dark red -> yellow -> white) for values in [0, 1]."""
    r = np.clip(3 * t, 0, 1)
    g = np.clip(3 * t - 1, 0, 1)
    b = np.clip(3 * t - 2, 0, 1)
    return np.stack([r, g, b], axis=-1)


def overlay_rgb(
    image01: np.ndarray, heat: np.ndarray, *, vmax: float, vmin: float = 0.0, max_alpha: float = 0.7
) -> np.ndarray:
    """(H, W, 3) uint8: the grayscale image with ``heat`` blended in where it is high.

    ``vmax`` is the value drawn at full colour (for example twice the pixel threshold), so
    the same colour means the same score on every image instead of being rescaled per image.
    """
    image01 = np.asarray(image01, dtype=np.float32)
    t = np.clip((np.asarray(heat, dtype=np.float32) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    alpha = (max_alpha * t)[..., None]
    gray = np.repeat(image01[..., None], 3, axis=-1)
    out = (1 - alpha) * gray + alpha * _colour(t)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
