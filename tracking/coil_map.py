"""The central coil map: every station's observations of a piece and of all its ancestors, in
the piece's own frame, each kept or removed (with the operation that removed it).

The observations are read with one Core query (columns only, no ORM objects) and mapped with
the exact genealogy maps, one vectorised call per source piece, never per row: 100,000
observations take a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from coilmap import models as m
from tracking.genealogy import Genealogy
from tracking.store import ancestor_keys, get_piece, load_genealogy

# Columns of the coil map, in order (positions in mm in the piece's frame).
COLUMNS = (
    "observation_id",
    "station",
    "line",
    "source_piece",
    "side",
    "x_mm",
    "y_mm",
    "x0_mm",
    "y0_mm",
    "x1_mm",
    "y1_mm",
    "plant_class",
    "station_label",
    "station_confidence",
    "anomaly_score",
    "status",
    "removed_at",
    "source_side",
    "source_x_mm",
    "source_y_mm",
    "image_ref",
    "geometry_wkt",
)


@dataclass(frozen=True)
class CoilMap:
    """A piece's coil map: the piece, its genealogy and one row per observation."""

    piece_id: str
    length_mm: float
    width_mm: float
    genealogy: Genealogy
    observations: pd.DataFrame


def coil_map(piece_id: str, *, session: Session) -> pd.DataFrame:
    """Every observation of ``piece_id`` and of all its ancestors in the piece's frame.

    One row per observation, columns :data:`COLUMNS`, sorted by side and ``x_mm``. ``status``
    is ``kept`` or ``removed:<op>`` (``removed_at`` names the piece that operation acted
    on); the box is clipped to what survives, and a removed observation is placed where it
    would be had the material not been removed (off the piece, or in the trimmed edge).
    """
    return build_coil_map(piece_id, session=session).observations


def build_coil_map(piece_id: str, *, session: Session) -> CoilMap:
    piece = get_piece(piece_id, session=session)
    genealogy = load_genealogy(piece_id, session=session, descendants=False)
    keys = sorted({piece.id} | ancestor_keys(piece.id, session=session))
    names = dict(session.execute(select(m.Piece.id, m.Piece.piece_id).where(m.Piece.id.in_(keys))).all())
    raw = _read_observations(keys, session)
    return CoilMap(
        piece_id=piece_id,
        length_mm=piece.length_mm,
        width_mm=piece.width_mm,
        genealogy=genealogy,
        observations=_map_into(raw, names, piece_id, genealogy),
    )


def _read_observations(piece_keys: list[int], session: Session) -> pd.DataFrame:
    obs = m.Observation.__table__
    station_rows = session.execute(
        select(m.Station.id, m.Station.code, m.Line.code).join(m.Line, m.Line.id == m.Station.line_id)
    ).all()
    cols = (
        obs.c.id,
        obs.c.station_id,
        obs.c.piece_id,
        obs.c.side,
        obs.c.x_mm,
        obs.c.y_mm,
        obs.c.x0_mm,
        obs.c.y0_mm,
        obs.c.x1_mm,
        obs.c.y1_mm,
        obs.c.plant_class,
        obs.c.station_label,
        obs.c.station_confidence,
        obs.c.anomaly_score,
        obs.c.image_ref,
        obs.c.geometry_wkt,
    )
    result = session.execute(select(*cols).where(obs.c.piece_id.in_(piece_keys)))
    frame = pd.DataFrame(result.all(), columns=[c.name for c in cols])
    station_code = {sid: code for sid, code, _ in station_rows}
    station_line = {sid: line for sid, _, line in station_rows}
    frame["station"] = frame["station_id"].map(station_code)
    frame["line"] = frame["station_id"].map(station_line)
    return frame


def _map_into(raw: pd.DataFrame, names: dict[int, str], dst: str, g: Genealogy) -> pd.DataFrame:
    n = len(raw)
    out: dict[str, np.ndarray] = {
        "x_mm": np.full(n, np.nan),
        "y_mm": np.full(n, np.nan),
        "x0_mm": np.full(n, np.nan),
        "y0_mm": np.full(n, np.nan),
        "x1_mm": np.full(n, np.nan),
        "y1_mm": np.full(n, np.nan),
        "is_top": np.zeros(n, dtype=bool),
        "status": np.full(n, "kept", dtype=object),
        "removed_at": np.full(n, "", dtype=object),
        "geometry_wkt": np.full(n, None, dtype=object),
    }
    piece_key = raw["piece_id"].to_numpy()
    src_top = (raw["side"] == "top").to_numpy()
    for key in np.unique(piece_key):
        rows = np.flatnonzero(piece_key == key)
        src = names[int(key)]
        part = raw.iloc[rows]
        boxes = g.map_boxes(
            src,
            dst,
            part["x0_mm"].to_numpy(dtype=np.float64),
            part["y0_mm"].to_numpy(dtype=np.float64),
            part["x1_mm"].to_numpy(dtype=np.float64),
            part["y1_mm"].to_numpy(dtype=np.float64),
            src_top[rows],
        )
        centres = g.map_points(
            src,
            dst,
            part["x_mm"].to_numpy(dtype=np.float64),
            part["y_mm"].to_numpy(dtype=np.float64),
            src_top[rows],
        )
        # The stated centre where it survives; where a clip removed it, the centre of what is
        # left of the box.
        use_centre = centres.kept | ~boxes.kept
        out["x_mm"][rows] = np.where(use_centre, centres.x_mm, boxes.x_mm)
        out["y_mm"][rows] = np.where(use_centre, centres.y_mm, boxes.y_mm)
        for name in ("x0_mm", "y0_mm", "x1_mm", "y1_mm"):
            out[name][rows] = getattr(boxes, name)
        out["is_top"][rows] = boxes.is_top
        out["status"][rows] = boxes.status
        out["removed_at"][rows] = boxes.removed_at
        wkt = part["geometry_wkt"].to_numpy(dtype=object)
        has = np.flatnonzero(pd.notna(wkt))
        if has.size:
            mapped, _ = g.map_geometries(src, dst, shapely.from_wkt(wkt[has]))
            out["geometry_wkt"][rows[has]] = shapely.to_wkt(mapped, rounding_precision=3)

    frame = pd.DataFrame(
        {
            "observation_id": raw["id"].to_numpy(),
            "station": raw["station"].to_numpy(),
            "line": raw["line"].to_numpy(),
            "source_piece": raw["piece_id"].map(names).to_numpy(),
            "side": np.where(out["is_top"], "top", "bottom"),
            "x_mm": out["x_mm"],
            "y_mm": out["y_mm"],
            "x0_mm": out["x0_mm"],
            "y0_mm": out["y0_mm"],
            "x1_mm": out["x1_mm"],
            "y1_mm": out["y1_mm"],
            "plant_class": raw["plant_class"].to_numpy(),
            "station_label": raw["station_label"].to_numpy(),
            "station_confidence": raw["station_confidence"].to_numpy(dtype=np.float64),
            "anomaly_score": raw["anomaly_score"].to_numpy(dtype=np.float64),
            "status": out["status"],
            "removed_at": out["removed_at"],
            "source_side": raw["side"].to_numpy(),
            "source_x_mm": raw["x_mm"].to_numpy(dtype=np.float64),
            "source_y_mm": raw["y_mm"].to_numpy(dtype=np.float64),
            "image_ref": raw["image_ref"].to_numpy(),
            "geometry_wkt": out["geometry_wkt"],
        },
        columns=list(COLUMNS),
    )
    return frame.sort_values(["side", "x_mm", "observation_id"], kind="stable", ignore_index=True)
