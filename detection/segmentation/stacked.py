"""A trained segmenter and a trained anomaly scorer, read together by a logistic head.

The segmenter draws the masks; the image's class comes from a multinomial logistic head over
:mod:`detection.segmentation.evidence` (the segmenter's margins, the anomaly score, the anomaly
map's blob statistics and the anomaly scorer's encoder activations). Masks are the segmenter's
channel of the class the head calls, where it reaches the segmenter's pixel threshold. With
``flips`` the head fits on each image's four mirror views and averages them when it predicts
(the surface has no preferred orientation; a head fitted on one view learns one).

Nothing is trained by gradient: the head is fitted on the evidence of labelled images (the
train and val parts), its strength chosen by cross-validated mAP (folds by tile where the
tiles are known). On the magnetic tile test part, whose tiles the training parts show under
other exposures, this lifts the segmenter's mAP from 77.6 to 95.8; cross-validated by tile it
scores 65, below the segmenter alone, so it is not the default
(docs/detection-classification.md, "Stacked on the anomaly scorer").

The anomaly scorer's file (several MB) is not copied into the model file: the model names it,
relative to itself, with its SHA-256, and loading checks both.

>>> StackedSegmenter.n_evidence(n_classes=5, encoder_width=384)
1965
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from coilmap.errors import InputError
from detection.anomaly.base import AnomalyScorer
from detection.segmentation.estimator import DefectSegmenter, segmenter_from_config, sub_state
from detection.segmentation.evidence import (
    BLOB_FEATURES,
    BORDER_FEATURES,
    ENCODER_SCALES,
    SEGMENTER_FEATURES,
    encoder_statistics,
    evidence_row,
    peak_position,
    segmenter_statistics,
)
from detection.segmentation.head import LogisticHead, fit_head, mean_proba
from detection.segmentation.metrics import class_margins
from detection.segmentation.with_anomaly import SegmenterWithAnomaly, load_referenced_anomaly


def anomaly_extractor(scorer: AnomalyScorer) -> nn.Module:
    """The learned feature extractor inside ``scorer``: a PatchCore scorer's, or the first one
    found in an ensemble's (or pyramid's) members."""
    model = getattr(scorer, "model_", None)
    extractor = getattr(model, "feature_extractor", None)
    if extractor is not None and hasattr(extractor, "features"):
        return extractor
    for member in getattr(scorer, "members_", []):
        try:
            return anomaly_extractor(member)
        except InputError:
            continue
    raise InputError(f"the anomaly scorer ({scorer.kind}) holds no PatchCore feature extractor; "
                     "a stacked segmenter reads the encoders of a PatchCore scorer or pyramid")


class StackedSegmenter(SegmenterWithAnomaly):
    """``segmenter``'s masks; each image's class from a logistic head over the evidence of
    ``segmenter`` and ``anomaly`` (the scorer loaded from ``anomaly_file``)."""

    kind_name = "stacked segmenter"

    def __init__(self, segmenter: DefectSegmenter, anomaly: AnomalyScorer, anomaly_file: str | Path, *,
                 c_grid: Sequence[float] = (0.3, 1.0, 3.0), folds: int = 5, seed: int = 0,
                 flips: bool = False) -> None:
        super().__init__(segmenter, anomaly, anomaly_file)
        self.c_grid = [float(c) for c in c_grid]
        self.folds = folds
        self.seed = seed
        self.flips = flips
        self.extractor_ = anomaly_extractor(anomaly)
        self.best_epoch_ = None

    @staticmethod
    def n_evidence(n_classes: int, encoder_width: int) -> int:
        """The length of an evidence vector: margins, log score, blob and encoder statistics."""
        return (n_classes * (1 + len(SEGMENTER_FEATURES)) + 1 + len(BLOB_FEATURES) + len(BORDER_FEATURES)
                + encoder_width * (2 * len(ENCODER_SCALES) + 1))

    # ---------------------------------------------------------------------------- evidence
    def evidence(
        self, images01: Sequence[np.ndarray], *, lows: list[torch.Tensor] | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Each image's evidence (V, N, F): one view, or with ``flips`` four (as it is, mirrored
        left-right, up-down, both); with the segmenter's probabilities and maps. The
        segmenter's margins are read once, from the image as it is (a segmenter averaged over
        mirror views gives every view the same); the anomaly scorer and its encoders see each view."""
        seg_proba, seg_maps = self.segmenter.predict_all(images01, lows=lows)
        if not len(images01):
            return np.zeros((1, 0, 0)), seg_proba, seg_maps
        margins = class_margins(seg_proba, self.segmenter.image_thresholds_)
        views = [()] + ([(1,), (0,), (0, 1)] if self.flips else [])
        out = []
        for axes in views:
            images = [np.ascontiguousarray(np.flip(im, axes)) if axes else im for im in images01]
            class_maps = [np.flip(m, tuple(a + 1 for a in axes)) if axes else m for m in seg_maps]
            anomaly_maps, anomaly_scores = self.anomaly.score_maps_and_samples(images)
            rows = []
            for im, margin, score, amap, cmap in zip(images, margins, anomaly_scores, anomaly_maps,
                                                     class_maps, strict=True):
                peak = peak_position(amap)
                rows.append(evidence_row(
                    margin, score, amap, self.anomaly.pixel_threshold_,
                    encoder_statistics(self.extractor_, im, peak),
                    segmenter_statistics(cmap, self.segmenter.pixel_threshold_, peak)))
            out.append(np.vstack(rows))
        return np.stack(out), seg_proba, seg_maps

    def fit(  # type: ignore[override]
        self, images01: Sequence[np.ndarray], calls: np.ndarray, groups: np.ndarray | None = None
    ) -> StackedSegmenter:
        """Fit the head on labelled images: ``calls`` 0 for defect-free, ``k + 1`` for class
        ``k``; its strength by ``folds``-fold cross-validated mAP over ``c_grid`` (with
        ``flips``, on every view of each image, a held-out image scored by its views' mean;
        with ``groups``, e.g. the tile each image shows, the folds never split a group)."""
        y = np.asarray(calls, dtype=int)
        if len(y) != len(images01):
            raise InputError(f"{len(images01)} images but {len(y)} labels")
        X, _, _ = self.evidence(images01)
        self.head_, self.cv_map_ = fit_head(X, y, len(self.classes_) + 1, c_grid=self.c_grid,
                                            folds=self.folds, seed=self.seed, groups=groups)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise InputError("the stacked segmenter's head is not fitted (call fit or load a model file)")

    # ---------------------------------------------------------------------------- inference
    def predict_all(
        self, images01: Sequence[np.ndarray], *, lows: list[torch.Tensor] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The head's probability of each defect class (N, n_classes; the defect-free one is
        1 minus their sum) and the segmenter's per-class maps."""
        self._check_fitted()
        X, _, maps = self.evidence(images01, lows=lows)
        if not len(images01):
            return np.zeros((0, len(self.classes_)), np.float32), []
        return mean_proba(self.head_, X)[:, 1:], maps

    @staticmethod
    def _with_free(proba: np.ndarray) -> np.ndarray:
        p = np.asarray(proba, dtype=np.float64)
        return np.column_stack([np.clip(1.0 - p.sum(1), 0.0, 1.0), p])

    def calls(self, proba: np.ndarray) -> np.ndarray:
        """The most probable class, the defect-free one included."""
        return self._with_free(proba).argmax(1)

    def free_scores(self, proba: np.ndarray) -> np.ndarray:
        return self._with_free(proba)[:, 0]

    def confidences(self, proba: np.ndarray) -> np.ndarray:
        return self._with_free(proba).max(1)

    # ---------------------------------------------------------------------------- files
    def config_for(self, model_path: str | Path) -> dict[str, Any]:
        return {**super().config_for(model_path), "head_c": self.head_.c,
                "cv_map": {str(c): v for c, v in self.cv_map_.items()},
                "c_grid": self.c_grid, "folds": self.folds, "seed": self.seed, "flips": self.flips}

    def weights(self) -> dict[str, torch.Tensor]:
        return {**super().weights(), **{f"head.{k}": v for k, v in self.head_.state().items()}}

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, torch.Tensor], path: str | Path):  # type: ignore[no-untyped-def]
        segmenter = segmenter_from_config(config["segmenter"], sub_state(state, "segmenter."), path)
        anomaly, anomaly_file = load_referenced_anomaly(config, path, cls.kind_name)
        stacked = cls(segmenter, anomaly, anomaly_file, c_grid=config["c_grid"],
                      folds=int(config["folds"]), seed=int(config["seed"]),
                      flips=bool(config.get("flips", False)))
        try:
            stacked.head_ = LogisticHead.from_state(sub_state(state, "head."), config["head_c"])
        except KeyError as exc:
            raise InputError(f"the model file holds no head array {exc}", source=str(path)) from exc
        stacked.cv_map_ = {float(c): float(v) for c, v in config["cv_map"].items()}
        return stacked
