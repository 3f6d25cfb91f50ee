"""The frame detection worker: one strip frame in, defect detections in camera mm out.

The ingestion job sees detection only through :class:`Detector`: ``detect(image01, sidecar)``
returns a :class:`FrameResult` (the detections in pixels, the anomaly heatmap, the tile count
and where the time went). :class:`TileDetector` is the default: the frame is cut into tiles
(:mod:`detection.tiling`), each tile scored by an anomaly scorer, the score map put back
together, thresholded into blobs (:mod:`detection.anomaly.blobs`), and each blob's crop
classified by the defect classifier (``predict_proba``). :func:`frame_readings` turns the
detections into the station's own frame (encoder ``x_obs``, camera ``y``) with the sidecar;
re-registration into the piece frame is the ingestion job's.

>>> det = Detection(box_px=(10, 20, 30, 60), anomaly_score=2.0, label="scratches", confidence=0.9)
>>> r = frame_readings([det], {"x0_obs_mm": 1000.0, "y0_cam_mm": -512.0, "mm_per_px_x": 1.0,
...                            "mm_per_px_y": 2.0, "cols": 512})
>>> r["x_obs_mm"].tolist(), r["y_obs_mm"].tolist(), r["length_mm"].tolist(), r["width_mm"].tolist()
([1020.0], [-432.0], [20.0], [80.0])
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import shapely

from detection.anomaly.blobs import extract_blobs, px_to_mm
from detection.images import crop_box
from detection.tiling import make_grid, tile, untile

# Blobs of one frame closer than about twice this many pixels are one detection (a long defect
# whose map dips under the threshold along it): docs/detection-plant-frames.md.
JOIN_GAP_PX = 16


@dataclass(frozen=True)
class Detection:
    """One defect found in a frame, in pixels (rows along the strip, columns across)."""

    box_px: tuple[int, int, int, int]  # (row0, col0, row1, col1), end exclusive
    anomaly_score: float
    label: str | None = None
    confidence: float | None = None
    polygon_px: shapely.Polygon | None = None  # (x=col, y=row) pixel-edge coordinates


@dataclass(frozen=True)
class FrameResult:
    detections: list[Detection]
    heatmap01: np.ndarray | None = None  # the anomaly map scaled to [0, 1] (0.5 = threshold)
    n_tiles: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


class Detector(Protocol):
    def detect(self, image01: np.ndarray, sidecar: Mapping[str, Any]) -> FrameResult: ...


class TileDetector:
    """Anomaly scorer over tiles, blobs above the scorer's pixel threshold, classifier per blob.

    ``scorer``: any fitted :class:`detection.anomaly.base.AnomalyScorer`; ``classifier``: any
    object with ``classes_`` and ``predict_proba(list of images)`` (or None: no class).
    ``classifier_views``: the symmetries a :class:`DefectClassifier` averages per crop on the
    line (1: no test-time augmentation, the cheapest; its file may say 8, chosen for accuracy
    off line). ``join_gap_px``: blobs closer than about twice this are one detection
    (:func:`detection.anomaly.blobs.extract_blobs`; 0 keeps every connected region apart).
    ``workers``: a frame's tiles scored as that many runs at once, one torch thread each
    (:meth:`~detection.anomaly.base.AnomalyScorer.score_maps_and_samples`; ``[detector]
    workers`` in the plant configuration).
    """

    def __init__(
        self,
        scorer: Any,
        classifier: Any | None = None,
        *,
        tile_px: int = 256,
        threshold: float | None = None,
        opening_radius_px: int = 2,
        min_area_px: int = 16,
        crop_margin_px: int = 8,
        max_detections: int = 50,
        classifier_views: int = 1,
        join_gap_px: int = JOIN_GAP_PX,
        workers: int = 1,
    ) -> None:
        self.scorer = scorer
        self.classifier = classifier
        self.tile_px = tile_px
        self.threshold = threshold
        self.opening_radius_px = opening_radius_px
        self.min_area_px = min_area_px
        self.crop_margin_px = crop_margin_px
        self.max_detections = max_detections
        self.classifier_views = classifier_views
        self.join_gap_px = join_gap_px
        self.workers = workers  # a frame's tiles scored as this many runs at once (score_maps)

    def _threshold(self) -> float:
        return float(self.threshold if self.threshold is not None else self.scorer.pixel_threshold_)

    def detect(self, image01: np.ndarray, sidecar: Mapping[str, Any]) -> FrameResult:
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        grid = make_grid(image01.shape, tile=self.tile_px)
        tiles = tile(np.asarray(image01, dtype=np.float32), grid)
        maps = self.scorer.score_maps(list(tiles), workers=self.workers)
        score_map = untile(np.stack(maps).astype(np.float32), grid)
        t1 = time.perf_counter()
        seconds["score"] = t1 - t0
        thr = self._threshold()
        blobs = extract_blobs(
            score_map,
            thr,
            opening_radius_px=self.opening_radius_px,
            min_area_px=self.min_area_px,
            join_gap_px=self.join_gap_px,
        )[: self.max_detections]
        t2 = time.perf_counter()
        seconds["blobs"] = t2 - t1
        labels: list[str | None] = [None] * len(blobs)
        confs: list[float | None] = [None] * len(blobs)
        if blobs and self.classifier is not None:
            crops = [crop(image01, b.box_px, self.crop_margin_px) for b in blobs]
            if hasattr(self.classifier, "tta"):  # a DefectClassifier: views set for line use
                proba = np.asarray(self.classifier.predict_proba(crops, tta=self.classifier_views))
            else:
                proba = np.asarray(self.classifier.predict_proba(crops))
            best = proba.argmax(axis=1)
            labels = [str(self.classifier.classes_[i]) for i in best]
            confs = [float(p[i]) for p, i in zip(proba, best, strict=True)]
        seconds["classify"] = time.perf_counter() - t2
        scale = 2.0 * thr if thr > 0 else float(score_map.max() or 1.0)
        heat = np.clip(score_map / scale, 0.0, 1.0)
        dets = [
            Detection(b.box_px, b.max_score, lab, conf, b.polygon_px)
            for b, lab, conf in zip(blobs, labels, confs, strict=True)
        ]
        return FrameResult(dets, heat, grid.n_tiles, seconds)


def crop(image01: np.ndarray, box_px: tuple[int, int, int, int], margin_px: int) -> np.ndarray:
    """The box with a margin, clipped to the image, at least 2 x 2 pixels (:func:`crop_box`)."""
    r0, c0, r1, c1 = crop_box(image01.shape, box_px, margin_px)
    return np.ascontiguousarray(image01[r0:r1, c0:c1])


def frame_readings(detections: Sequence[Detection], sidecar: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Centre and size of each detection in the station's frame: ``x_obs_mm`` (encoder, along
    the strip), ``y_obs_mm`` (camera, across), ``length_mm``, ``width_mm``."""
    boxes = np.array([d.box_px for d in detections], dtype=np.float64).reshape(-1, 4)
    cols = float(sidecar["cols"])
    mm_y = float(sidecar["mm_per_px_y"])
    kw = {
        "x_first_row_mm": float(sidecar["x0_obs_mm"]),
        "mm_per_px_along": float(sidecar["mm_per_px_x"]),
        "mm_per_px_across": mm_y,
        "y_centre_offset_mm": float(sidecar["y0_cam_mm"]) + cols / 2 * mm_y,
        "image_width_px": int(cols),
    }
    x_obs, y_obs = px_to_mm((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, **kw)
    return {
        "x_obs_mm": x_obs,
        "y_obs_mm": y_obs,
        "length_mm": (boxes[:, 2] - boxes[:, 0]) * float(sidecar["mm_per_px_x"]),
        "width_mm": (boxes[:, 3] - boxes[:, 1]) * mm_y,
    }


def load_detector(
    anomaly_model: str | Path, classifier_model: str | Path | None = None, **kwargs: Any
) -> TileDetector:
    """A :class:`TileDetector` from model files (``coilmap detect`` writes them)."""
    from detection.anomaly.artefact import load as load_scorer

    scorer = load_scorer(anomaly_model)
    classifier = None
    if classifier_model is not None:
        from detection.classifier.estimator import DefectClassifier

        classifier = DefectClassifier.load(classifier_model)
    return TileDetector(scorer, classifier, **kwargs)
