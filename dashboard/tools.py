"""The fusion area's data tools as the dashboard finds them: the training-set audit report
(JSON written by ``coilmap dataset audit --json``) and the similar-image index (a folder
written by ``coilmap dataset index``, searched with ``fusion.search``). Both are optional: the
page says which command makes what is missing. No streamlit here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboard.images import ImagePathError, resolve_image

SEARCH_INDEX_ENV = "COILMAP_SEARCH_INDEX"
SEARCH_INDEX_DIR = "search-index"


def search_available() -> bool:
    """Whether the fusion area's similar-image search (and faiss under it) is installed."""
    try:
        return (
            importlib.util.find_spec("fusion.search") is not None
            and importlib.util.find_spec("faiss") is not None
        )
    except ModuleNotFoundError:
        return False


def search_index_dir(image_root: Path) -> Path:
    """``COILMAP_SEARCH_INDEX`` (as ``coilmap dataset search`` reads it), else
    ``search-index/`` under the image root."""
    env = os.environ.get(SEARCH_INDEX_ENV)
    return Path(env) if env else image_root / SEARCH_INDEX_DIR


def load_index(folder: Path) -> tuple[Any, dict]:
    from fusion.search import SimilarityIndex

    return SimilarityIndex.load(folder)


def query_vector(
    index: Any, info: dict, observation_id: int, image: Path | None
) -> tuple[np.ndarray, list[int]]:
    """The query of an observation: its own vector when the index holds it (then excluded
    from the hits), else its image embedded the way the index was built."""
    row = index.row_of(str(observation_id))
    if row is not None:
        return index.vector(row)[None, :], [row]
    if image is None:
        raise ImagePathError(f"observation {observation_id} is not in the index and has no image")
    from detection.images import load_gray
    from fusion.embeddings import embedder_for_index

    emb = embedder_for_index(str(info.get("embedder", "")), info.get("model"))
    same = index.row_of(str(image.resolve()))
    return emb.embed([load_gray(image)]), [same] if same is not None else []


def search(
    index: Any, query: np.ndarray, exclude: list[int], k: int, **filters: tuple[str, ...]
) -> pd.DataFrame:
    from fusion.search import Filters

    return index.search(query, k=k, filters=Filters(**filters), exclude_rows=[exclude])


def hit_image(root: Path, path: object) -> Path:
    """The file of a hit, only when it lies under the image root (an index built from a folder
    stores absolute paths, one built from the coil model the observations' references)."""
    if not isinstance(path, str) or not path:
        raise ImagePathError("the hit has no image")
    p = Path(path)
    if p.is_absolute():
        base = root.resolve()
        if not p.resolve().is_relative_to(base):
            raise ImagePathError(f"{path} is outside the image root; not shown")
        return resolve_image(base, p.resolve().relative_to(base).as_posix())
    return resolve_image(root, path)


def report_sections(report: dict) -> tuple[dict[str, Any], dict[str, pd.DataFrame], dict[str, Any]]:
    """Split an audit report into headline numbers, tables (lists of records) and the rest.

    >>> s, t, o = report_sections({"n_images": 1800, "per_class": [{"label": "crazing", "n": 300}],
    ...                            "leakage": {"verdict": "no alarm"}})
    >>> s, list(t), o
    ({'n_images': 1800}, ['per_class'], {'leakage': {'verdict': 'no alarm'}})
    """
    scalars: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    other: dict[str, Any] = {}
    for key, value in report.items():
        if isinstance(value, str | int | float | bool) or value is None:
            scalars[key] = value
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables[key] = pd.json_normalize(value)
        else:
            other[key] = value
    return scalars, tables, other
