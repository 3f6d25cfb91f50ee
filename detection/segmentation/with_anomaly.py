"""A segmenter model that reads an anomaly scorer (gated, stacked): the shared half.

The anomaly scorer's file (several MB) stays where it is; the segmenter's model file holds its
path relative to itself and its SHA-256, and loading refuses a missing or a changed one by name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coilmap.errors import InputError
from coilmap.files import file_sha256
from detection.anomaly.base import AnomalyScorer
from detection.classifier.artefact import save_model
from detection.segmentation.estimator import DefectSegmenter


def anomaly_reference(anomaly_file: str | Path, model_path: str | Path) -> dict[str, str]:
    """The config entries naming ``anomaly_file`` from a model saved at ``model_path``."""
    return {
        "anomaly_file": os.path.relpath(Path(anomaly_file).resolve(), Path(model_path).resolve().parent),
        "anomaly_sha256": file_sha256(Path(anomaly_file)),
    }


def load_referenced_anomaly(
    config: dict[str, Any], path: str | Path, what: str
) -> tuple[AnomalyScorer, Path]:
    """The anomaly scorer a model file's ``config`` names (``what``: the model's kind, for the
    messages) and its resolved path; a clear error where it is missing or is another file."""
    from detection.anomaly import artefact

    anomaly_file = (Path(path).resolve().parent / config["anomaly_file"]).resolve()
    if not anomaly_file.is_file():
        raise InputError(f"the {what} reads the anomaly model {anomaly_file}, which is not there "
                         "(keep the two files where they were saved)", source=str(path))
    if file_sha256(anomaly_file) != config["anomaly_sha256"]:
        raise InputError(f"the anomaly model {anomaly_file} is not the one this {what} was made "
                         "with (its SHA-256 differs); make it again", source=str(path))
    return artefact.load(anomaly_file), anomaly_file


class SegmenterWithAnomaly(DefectSegmenter):
    """A trained segmenter, whose masks it draws, and a trained anomaly scorer named by its file:
    what the gated and the stacked models share. Subclasses score the images' classes
    (``predict_all``) and add their own entries to :meth:`config_for` and :meth:`weights`."""

    kind_name = "segmenter reading an anomaly scorer"  # for messages

    def __init__(self, segmenter: DefectSegmenter, anomaly: AnomalyScorer, anomaly_file: str | Path, *,
                 free_alarm_rate: float = 0.05) -> None:
        segmenter._check_fitted()
        super().__init__(scale=segmenter.scale, pool=segmenter.pool, free_alarm_rate=free_alarm_rate)
        self.segmenter = segmenter
        self.anomaly = anomaly
        self.anomaly_file = Path(anomaly_file)
        # fitted state for DefectSegmenter's methods (a subclass's fit may choose its own thresholds)
        self.classes_ = list(segmenter.classes_)
        self.net_ = segmenter.net_
        self.image_thresholds_ = list(segmenter.image_thresholds_)
        self.pixel_threshold_ = segmenter.pixel_threshold_
        self.history_: list[dict[str, Any]] = []
        self.best_epoch_ = segmenter.best_epoch_

    def low_res_logits(self, images01: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """The segmenter's (so the printed selection criterion is the segmenter's own)."""
        return self.segmenter.low_res_logits(images01)

    def predict_proba(self, images01: Sequence[np.ndarray]) -> np.ndarray:
        return self.predict_all(images01)[0]

    def predict_masks(self, images01: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.segmenter.predict_masks(images01)

    def selection_criterion(self, images, masks, lows=None):  # type: ignore[no-untyped-def]
        return self.segmenter.selection_criterion(images, masks, lows=lows)

    def config(self) -> dict[str, Any]:
        raise InputError(f"a {self.kind_name} names its anomaly model relative to its own file: "
                         "save it with save(path); it cannot be a member of another model")

    def config_for(self, model_path: str | Path) -> dict[str, Any]:
        """The model file's config: the segmenter's, the anomaly model's name and hash, and the
        thresholds (a subclass adds its own)."""
        self._check_fitted()
        return {
            "architecture": type(self).__name__,
            "segmenter": self.segmenter.config(),
            **anomaly_reference(self.anomaly_file, model_path),
            "free_alarm_rate": self.free_alarm_rate,
            "classes": list(self.classes_),
            "image_thresholds": list(self.image_thresholds_),
            "pixel_threshold": self.pixel_threshold_,
        }

    def weights(self) -> dict[str, torch.Tensor]:
        return {f"segmenter.{k}": v for k, v in self.segmenter.weights().items()}

    def save(self, path: str | Path, manifest: dict[str, Any]) -> Path:
        return save_model(path, kind="segmenter", config=self.config_for(path), state_dict=self.weights(),
                          manifest=manifest)
