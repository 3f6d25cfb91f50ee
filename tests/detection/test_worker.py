"""The frame worker asks the classifier for one view per crop (no test-time augmentation), and
its scorer for the configured number of workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coilmap.errors import InputError
from detection.worker import TileDetector
from ingestion.config import dumps_config, parse_config


class _Scorer:
    pixel_threshold_ = 0.5

    def __init__(self) -> None:
        self.workers: list[int] = []

    def score_maps(self, tiles: list[np.ndarray], workers: int = 1) -> list[np.ndarray]:
        self.workers.append(workers)
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


def test_the_frame_tiles_are_scored_with_the_configured_workers(tmp_path: Path) -> None:
    frame = np.full((300, 520), 0.6, np.float32)
    scorer = _Scorer()
    TileDetector(scorer, None, tile_px=256).detect(frame, {})
    TileDetector(scorer, None, tile_px=256, workers=2).detect(frame, {})
    assert scorer.workers == [1, 2]
    raw = {"detector": {"workers": 2}, "stations": []}
    cfg = parse_config(raw, base_dir=tmp_path)
    assert cfg.scoring_workers == 2
    assert parse_config(dumps_config(cfg), base_dir=tmp_path).scoring_workers == 2
    assert parse_config({"stations": []}, base_dir=tmp_path).scoring_workers == 1
    with pytest.raises(InputError, match="workers"):
        parse_config({"detector": {"workers": 0}, "stations": []}, base_dir=tmp_path)
