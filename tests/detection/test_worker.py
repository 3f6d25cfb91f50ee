"""The frame worker asks the classifier for one view per crop (no test-time augmentation)."""

from __future__ import annotations

import numpy as np

from detection.worker import TileDetector


class _Scorer:
    pixel_threshold_ = 0.5

    def score_maps(self, tiles: list[np.ndarray]) -> list[np.ndarray]:
        return [(t < 0.2).astype(np.float32) for t in tiles]  # dark = defect


class _Classifier:
    classes_ = ["hole", "scratch"]
    tta = 8  # chosen on validation for accuracy off line

    def __init__(self) -> None:
        self.views: list[int | None] = []

    def predict_proba(self, crops: list[np.ndarray], tta: int | None = None) -> np.ndarray:
        self.views.append(tta)
        return np.tile([0.9, 0.1], (len(crops), 1))


def test_line_classification_uses_one_view() -> None:
    frame = np.full((300, 520), 0.6, np.float32)
    frame[100:130, 200:240] = 0.05
    clf = _Classifier()
    result = TileDetector(_Scorer(), clf, tile_px=256).detect(frame, {})
    assert [d.label for d in result.detections] == ["hole"]
    assert clf.views == [1]
