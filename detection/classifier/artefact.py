"""Model files: a versioned ``torch.save`` dict plus a JSON manifest beside it.

The file holds ``format`` (name and version), ``kind`` (``classifier`` / ``segmenter``), the
architecture config, the ``state_dict`` (stored as float16 to keep default models small), the
class list, input size, normalisation and a description of the training data. The manifest
(``MODEL.json``) repeats the description for people: command, data, splits, metrics, date,
torch version. Loading anything else (another format version, a file that is not a model, a
model of another kind) is an :class:`~coilmap.errors.InputError`.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from coilmap.errors import InputError

FORMAT_NAME = "coilmap-detection-model"
FORMAT_VERSION = 1


def save_model(
    path: str | Path,
    *,
    kind: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    manifest: dict[str, Any],
) -> Path:
    """Write the model file and its ``.json`` manifest; returns the manifest's path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # float32 weights are kept as float16 (small files); float64 arrays (a fitted head) exactly
    compact = {
        k: v.detach().to(torch.float16).contiguous() if v.dtype == torch.float32 else v.detach()
        for k, v in state_dict.items()
    }
    blob = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": config,
        "state_dict": compact,
        "data": manifest.get("data"),
    }
    torch.save(blob, path)
    full = {
        "model": path.name,
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        **manifest,
        "config": config,
    }
    mpath = manifest_path(path)
    mpath.write_text(json.dumps(full, indent=2, default=_jsonable) + "\n")
    return mpath


def manifest_path(path: str | Path) -> Path:
    """``MODEL.pt`` -> ``MODEL.json``."""
    return Path(path).with_suffix(".json")


def model_kind(path: str | Path) -> str:
    """The kind (``classifier`` / ``segmenter``) of a valid model file."""
    return str(_read(Path(path))["kind"])


def load_model(path: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The config and float32 state_dict of a model file of ``kind``; clear errors otherwise."""
    path = Path(path)
    blob = _read(path)
    if blob.get("kind") != kind:
        raise InputError(f"a {blob.get('kind')} model, not a {kind}", source=str(path))
    state = {k: v.to(torch.float32) if v.dtype == torch.float16 else v for k, v in blob["state_dict"].items()}
    return blob["config"], state


@contextmanager
def config_fits(path: str | Path) -> Iterator[None]:
    """Turns a model file whose config does not fit this version's estimator (a missing key,
    a wrong type or value while rebuilding it) into one clear :class:`InputError`."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"the model file's config does not fit this coilmap ({type(exc).__name__}: {exc}); "
            "retrain it with this version",
            source=str(path),
        ) from exc


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("no such model file", source=str(path))
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    # A file that is not a torch archive fails in many ways (UnpicklingError, BadZipFile,
    # KeyError on a stray opcode, EOFError...): each means the same thing to the user.
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, Exception) as exc:
        raise InputError(f"not a coilmap model file ({type(exc).__name__})", source=str(path)) from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT_NAME:
        raise InputError("not a coilmap detection model file", source=str(path))
    version = blob.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(
            f"model file format version {version!r}; this coilmap reads version {FORMAT_VERSION} "
            "(retrain it with this version)",
            source=str(path),
        )
    if not isinstance(blob.get("state_dict"), dict) or not isinstance(blob.get("config"), dict):
        raise InputError("a model file without weights or config", source=str(path))
    return blob


def _jsonable(o: object) -> object:
    if hasattr(o, "tolist"):
        return o.tolist()  # type: ignore[union-attr]
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
