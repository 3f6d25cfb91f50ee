"""Small builders for tracking tests."""

from __future__ import annotations

import json

import numpy as np

from tracking.events import parse_events
from tracking.genealogy import Genealogy


def genealogy(*records: dict) -> Genealogy:
    return Genealogy.from_operations(parse_events([json.dumps(r) for r in records], "test.jsonl"))


def points(g: Genealogy, src: str, dst: str, x, y, top=True):  # type: ignore[no-untyped-def]
    x = np.atleast_1d(np.asarray(x, dtype=float))
    x, y = np.broadcast_arrays(x, np.asarray(y, dtype=float))
    return g.map_points(src, dst, x, y, np.full(x.shape, top))


def create(piece: str, length: float, width: float, **extra) -> dict:  # type: ignore[no-untyped-def]
    return {"op": "create", "piece": piece, "length_mm": length, "width_mm": width, **extra}
