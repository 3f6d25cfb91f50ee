"""Saving and loading a trained scorer as a versioned artefact (file I/O, the shell).

One ``torch.save`` of a plain dict: format name and version, scorer kind, constructor
parameters, learned state, thresholds and a description of the training data, plus a JSON
manifest beside it (``model.pt`` -> ``model.json``) saying which command, data, splits and
metrics produced it. ``torch.load(weights_only=True)`` is used, so loading a model never runs
code from the file.
"""

from __future__ import annotations

import json
import pickle
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coilmap.errors import InputError
from detection.anomaly.base import AnomalyScorer

FORMAT = "coilmap-anomaly-scorer"
FORMAT_VERSION = 1


def scorer_classes() -> dict[str, type[AnomalyScorer]]:
    """Every scorer kind by name (imported lazily: each pulls its own torch modules)."""
    from detection.anomaly.draem.scorer import DraemScorer
    from detection.anomaly.ensemble.scorer import EnsembleScorer
    from detection.anomaly.ocsvm.scorer import OcsvmScorer
    from detection.anomaly.patchcore.pyramid import PatchCorePyramid
    from detection.anomaly.patchcore.scorer import PatchCoreScorer
    from detection.anomaly.ssim_ae.scorer import SsimAeScorer

    return {c.kind: c for c in (DraemScorer, PatchCoreScorer, SsimAeScorer, OcsvmScorer,
                                EnsembleScorer, PatchCorePyramid)}


def plain_params(scorer: AnomalyScorer) -> dict[str, Any]:
    """Constructor parameters without learned modules (those travel in the state)."""
    return {k: v for k, v in scorer.get_params(deep=False).items() if not isinstance(v, nn.Module)}


def to_dict(scorer: AnomalyScorer, training_data: dict[str, Any]) -> dict[str, Any]:
    scorer._check_fitted()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": scorer.kind,
        "params": plain_params(scorer),
        "state": scorer._get_state(),
        "threshold": scorer.threshold_,
        "pixel_threshold": scorer.pixel_threshold_,
        "training_data": training_data,
    }


def from_dict(blob: Any, source: str) -> AnomalyScorer:
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError("not a coilmap anomaly-scorer model file", source=source)
    version = blob.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(
            f"model file format version {version!r}, this coilmap reads version {FORMAT_VERSION};"
            " retrain it with `coilmap detect train-anomaly`",
            source=source,
        )
    classes = scorer_classes()
    kind = blob.get("kind")
    if kind not in classes:
        raise InputError(f"unknown scorer kind {kind!r} (known: {sorted(classes)})", source=source)
    scorer = classes[kind](**blob["params"])
    scorer._set_state(blob["state"])
    scorer.threshold_ = float(blob["threshold"])
    scorer.pixel_threshold_ = float(blob["pixel_threshold"])
    scorer.training_data_ = blob["training_data"]
    return scorer


def save(scorer: AnomalyScorer, path: str | Path, *, training_data: dict[str, Any],
         manifest: dict[str, Any]) -> Path:
    """Write ``path`` (.pt) and its manifest (.json); returns the manifest path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(to_dict(scorer, training_data), path)
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": scorer.kind,
        "params": plain_params(scorer),
        "threshold": scorer.threshold_,
        "pixel_threshold": scorer.pixel_threshold_,
        "training_data": training_data,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "size_bytes": path.stat().st_size,
        **manifest,
    }
    manifest_path = path.with_suffix(".json")
    manifest_path.write_text(json.dumps(full, indent=2, default=str) + "\n")
    return manifest_path


def load(path: str | Path) -> AnomalyScorer:
    """The scorer saved at ``path``; a clear :class:`InputError` for any bad or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such model file", source=str(path))
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise InputError(f"not a readable model file ({str(exc).splitlines()[0]})",
                         source=str(path)) from exc
    try:
        return from_dict(blob, str(path))
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"model file is damaged or incomplete ({exc})", source=str(path)) from exc
