"""A segmenter model that reads an anomaly scorer names its file instead of copying it.

The anomaly scorer's file (several MB) stays where it is; the segmenter's model file holds its
path relative to itself and its SHA-256, and loading refuses a missing or a changed one by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from coilmap.errors import InputError
from coilmap.files import file_sha256
from detection.anomaly.base import AnomalyScorer


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
