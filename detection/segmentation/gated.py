"""A segmenter's classes read through an anomaly scorer: the anomalous-feature map.

The unit-image paper's anomalous-feature map is a defect class's probability times the anomaly
score, pixel by pixel: a region counts for a class only where the segmenter finds that class
*and* the surface is unusual. On tiles no model saw, the segmenter alone calls grinding streaks
and the edges of clean tiles Break or Uneven (on the magnetic tile test part its Break scores
separate Break from clean images with an AUROC of only 0.80), while the anomaly scorer, trained
on defect-free tiles only, finds those images usual. Here each class's image score is the
maximum of its anomalous-feature map:

    s_k = max over pixels of p_k(x) * a(x) / t_a

with ``p_k`` the segmenter's probability map of class ``k``, ``a`` the anomaly map and ``t_a``
the scorer's pixel threshold (a constant, so the ranking of images by ``s_k`` does not depend
on it). Nothing is fitted but the thresholds: as the segmenter's, one per class on the val
part's defect-free images (:func:`~detection.segmentation.metrics.per_class_thresholds`) and
the pixel threshold of the masks. The masks are the segmenter's channel of the called class.

``s_k`` is reported as the odds ``s_k / (1 + s_k)`` so that the segmenter's margins (logits
over the thresholds) read it unchanged: the margin of class ``k`` is ``log s_k - log t_k``.

>>> class_maps = np.array([[[0.2, 0.9]], [[0.5, 0.1]]])  # two classes over two pixels
>>> anomaly_map = np.array([[4.0, 1.0]])  # twice and half the pixel threshold of 2
>>> s = gated_scores(class_maps, anomaly_map, 2.0)  # max(0.4, 0.45) and max(1.0, 0.05), as odds
>>> (s / (1 - s)).round(3).tolist()
[0.45, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detection.segmentation.estimator import (
    image_thresholds_of,
    segmenter_from_config,
    sub_state,
)
from detection.segmentation.with_anomaly import SegmenterWithAnomaly, load_referenced_anomaly


def gated_scores(class_maps: np.ndarray, anomaly_map: np.ndarray, pixel_threshold: float) -> np.ndarray:
    """One image's class scores (n_classes,) from its segmenter maps (n_classes, H, W) and its
    anomaly map (H, W): the maximum of each class's anomalous-feature map, as odds."""
    relative = np.asarray(anomaly_map, np.float64) / pixel_threshold
    product = np.asarray(class_maps, np.float64) * relative[None]
    s = product.reshape(len(product), -1).max(1)
    return s / (1.0 + s)


class GatedSegmenter(SegmenterWithAnomaly):
    """``segmenter``'s masks; each image's class scores from the anomalous-feature maps of
    ``segmenter`` and ``anomaly`` (the scorer loaded from ``anomaly_file``)."""

    kind_name = "gated segmenter"

    def fit(  # type: ignore[override]
        self, images01: Sequence[np.ndarray], masks: Sequence[np.ndarray], **_: Any
    ) -> GatedSegmenter:
        """Choose the thresholds on labelled validation images (int masks, 0 background,
        ``k + 1`` class ``k``); nothing else is fitted."""
        self._choose_thresholds(images01, masks)
        return self

    def predict_all(
        self, images01: Sequence[np.ndarray], *, lows: list[torch.Tensor] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each image's gated class scores (N, n_classes; :func:`gated_scores`) and the
        segmenter's per-class maps."""
        _, maps = self.segmenter.predict_all(images01, lows=lows)
        if not len(images01):
            return np.zeros((0, len(self.classes_)), np.float32), []
        anomaly_maps = self.anomaly.score_maps(images01)
        t = float(self.anomaly.pixel_threshold_)
        scores = np.stack([gated_scores(m, a, t) for m, a in zip(maps, anomaly_maps, strict=True)])
        return scores, maps

    def confidences(self, proba: np.ndarray) -> np.ndarray:
        """The confidence of each call: the sigmoid of how far (in logits) the called class is
        over its threshold, or for a defect-free call how far the closest class stays below its
        own; at least 0.5, 0.5 at the threshold. (The gated scores are odds of a product, not
        probabilities: a Crack call just over Crack's threshold of 0.15 would read 0.15.)"""
        from detection.segmentation.metrics import class_margins

        margins = class_margins(np.asarray(proba), self.image_thresholds_)
        calls = self.calls(proba)
        called = np.array([-row.max() if c == 0 else row[c - 1]
                           for row, c in zip(margins, calls, strict=True)])
        return 1.0 / (1.0 + np.exp(-called))

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, torch.Tensor], path: str | Path):  # type: ignore[no-untyped-def]
        segmenter = segmenter_from_config(config["segmenter"], sub_state(state, "segmenter."), path)
        anomaly, anomaly_file = load_referenced_anomaly(config, path, cls.kind_name)
        gated = cls(segmenter, anomaly, anomaly_file, free_alarm_rate=float(config["free_alarm_rate"]))
        gated.image_thresholds_ = image_thresholds_of(config)
        gated.pixel_threshold_ = float(config["pixel_threshold"])
        return gated
