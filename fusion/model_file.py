"""The fused classifier's artefact: a versioned file plus a JSON manifest beside it."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sklearn

from coilmap.errors import InputError
from fusion.evidence import MatchTolerance
from fusion.fused import FusedClassifier

FORMAT = "coilmap-fused-classifier"
FORMAT_VERSION = 1
DEFAULT_MODEL = Path(__file__).resolve().parent / "default_models" / "fused.pkl"


@dataclass
class FusedModel:
    estimator: FusedClassifier
    feature_names: list[str]
    grades: list[str]
    tolerance: MatchTolerance
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unknown"))


def save(model: FusedModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sklearn": sklearn.__version__,
        "estimator": model.estimator,
        "feature_names": model.feature_names,
        "grades": model.grades,
        "tolerance": vars(model.tolerance),
        "manifest": model.manifest,
    }
    with path.open("wb") as fh:
        pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
    path.with_suffix(".json").write_text(
        json.dumps(model.manifest, indent=2, default=str) + "\n", encoding="utf-8"
    )


def load(path: Path | None = None) -> FusedModel:
    path = Path(path) if path else DEFAULT_MODEL
    if not path.is_file():
        raise InputError(
            "no fused model: train one with `coilmap fuse train --labels ... --out ...`", source=str(path)
        )
    try:
        with path.open("rb") as fh:
            payload = pickle.load(fh)  # noqa: S301 - our own artefact, from the repository or our command
    except (pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError, ValueError) as exc:
        raise InputError(f"not a fused-classifier file ({exc})", source=str(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError("not a fused-classifier file", source=str(path))
    if payload.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"fused-classifier format {payload.get('format_version')}, "
            f"this coilmap reads {FORMAT_VERSION}: retrain it",
            source=str(path),
        )
    return FusedModel(
        payload["estimator"],
        list(payload["feature_names"]),
        list(payload["grades"]),
        MatchTolerance(**payload["tolerance"]),
        dict(payload["manifest"]),
    )


def new_version() -> str:
    return datetime.now(UTC).strftime("fused-%Y%m%dT%H%M%SZ")
