"""The central coil map: every station's observations of a piece and of all its ancestors, in
the piece's own frame, each kept or removed (with the operation that removed it).

Speed matters (a final coil can carry 100,000 observations of a dozen stations), so:

- one Core query selects only the needed columns; the rows go from the driver's cursor
  straight into a numpy structured array (one C loop), never through ORM objects or
  per-row Python code;
- the index ``ix_observations_coil_map`` covers the query, so the database reads the index
  alone;
- each source piece's observations are mapped with one vectorised call of the exact genealogy
  maps (:meth:`tracking.genealogy.Genealogy.map_boxes`), never per row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from coilmap import models as m
from tracking.genealogy import Genealogy
from tracking.store import ancestor_keys, genealogy_of_keys, get_piece

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

_OBS = m.Observation.__table__
# (column, numpy type) read for every observation; "O" is a Python object (str or None).
_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "i8"),
    ("station_id", "i8"),
    ("piece_id", "i8"),
    ("is_top", "?"),  # side = 'top': a small int or bool per row, not a new string
    ("x_mm", "f8"),
    ("y_mm", "f8"),
    ("x0_mm", "f8"),
    ("y0_mm", "f8"),
    ("x1_mm", "f8"),
    ("y1_mm", "f8"),
    ("plant_class", "O"),
    ("station_label", "O"),
    ("station_confidence", "f8"),  # nullable: read as _NULL_F8, then NaN
    ("anomaly_score", "f8"),
)
_DTYPE = np.dtype([(name, kind) for name, kind in _FIELDS])
_ID_TEXT = np.dtype([("id", "i8"), ("text", "O")])
# Stands in for NULL in nullable float columns while reading, so they arrive as floats, not as
# Python objects to convert (neither database has a NaN both can return for NULL). No
# confidence or anomaly score is ever -1e300.
_NULL_F8 = -1.0e300
_NULLABLE_F8 = ("station_confidence", "anomaly_score")


def _read_column(name: str):  # type: ignore[no-untyped-def]
    if name == "is_top":
        return (_OBS.c.side == "top").label(name)
    if name in _NULLABLE_F8:
        return func.coalesce(_OBS.c[name], _NULL_F8).label(name)
    return _OBS.c[name]


@dataclass(frozen=True)
class CoilMap:
    """A piece's coil map: the piece, its genealogy and one row per observation."""

    piece_id: str
    length_mm: float
    width_mm: float
    genealogy: Genealogy
    observations: pd.DataFrame
    # Wall-clock ms of each step: genealogy (ancestors and their operations), read (the
    # observations from the database), map (into the piece's frame, and the frame built),
    # images (when asked for).
    timings_ms: dict[str, float] = field(default_factory=dict)


def coil_map(piece_id: str, *, session: Session, with_images: bool = False) -> pd.DataFrame:
    """Every observation of ``piece_id`` and of all its ancestors in the piece's frame.

    One row per observation, columns :data:`COLUMNS`, sorted by side and ``x_mm``. ``status``
    is ``kept`` or ``removed:<op>`` (``removed_at`` names the piece that operation acted
    on). A box cut by a crop, trim, cut or slit keeps its surviving part; the centre is the
    stated one where it survives, else the centre of what is left. A removed observation is
    placed where it would be had the material not been removed (off the piece, or in the
    trimmed edge). Polygons (``geometry_wkt``) are clipped and mapped exactly.

    ``image_ref`` is read only ``with_images`` (images are shown on demand; the column is
    outside the index that makes the map fast).
    """
    return build_coil_map(piece_id, session=session, with_images=with_images).observations


def build_coil_map(piece_id: str, *, session: Session, with_images: bool = False) -> CoilMap:
    clock = _Stopwatch()
    piece = get_piece(piece_id, session=session)
    keys = {piece.id} | ancestor_keys(piece.id, session=session)
    genealogy, names = genealogy_of_keys(keys, session=session)
    stations = {
        sid: (code, line)
        for sid, code, line in session.execute(
            select(m.Station.id, m.Station.code, m.Line.code).join(m.Line, m.Line.id == m.Station.line_id)
        )
    }
    clock.lap("genealogy")
    on_keys = _OBS.c.piece_id.in_(sorted(keys))
    raw = _fetch(select(*(_read_column(name) for name, _ in _FIELDS)).where(on_keys), _DTYPE, session)
    polygons = _fetch(
        select(_OBS.c.id, _OBS.c.geometry_wkt).where(on_keys, _OBS.c.geometry_wkt.is_not(None)),
        _ID_TEXT,
        session,
    )
    clock.lap("read")
    frame = _map_into(raw, _by_id(raw["id"], polygons), names, stations, piece_id, genealogy)
    clock.lap("map")
    if with_images:
        images = _fetch(select(_OBS.c.id, _OBS.c.image_ref).where(on_keys), _ID_TEXT, session)
        frame["image_ref"] = _by_id(frame["observation_id"].to_numpy(), images)
        clock.lap("images")
    return CoilMap(
        piece_id=piece_id,
        length_mm=piece.length_mm,
        width_mm=piece.width_mm,
        genealogy=genealogy,
        observations=frame,
        timings_ms=clock.laps_ms,
    )


class _Stopwatch:
    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps_ms: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps_ms[name] = (now - self._last) * 1000.0
        self._last = now


def _by_id(ids: np.ndarray, id_text: np.ndarray) -> np.ndarray:
    """The text of each of ``ids`` (``None`` where ``id_text`` has none)."""
    out = np.full(ids.shape, None, dtype=object)
    if id_text.size:
        order = np.argsort(id_text["id"])
        keys = id_text["id"][order]
        pos = np.clip(np.searchsorted(keys, ids), 0, keys.size - 1)
        found = keys[pos] == ids
        out[found] = id_text["text"][order][pos[found]]
    return out


def _fetch(stmt: Select, dtype: np.dtype, session: Session) -> np.ndarray:  # type: ignore[type-arg]
    """The rows of ``stmt`` as a structured array of ``dtype``.

    The statement is compiled by SQLAlchemy (bound parameters, no SQL text built here) and run
    on the driver's cursor: its plain tuples fill the array in one C loop. Going through
    SQLAlchemy's Row objects and transposing them costs more than the query itself at 100,000
    rows. The selected types (integers, floats, strings) need no result processing on either
    backend.
    """
    connection = session.connection()
    compiled = stmt.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    args: Sequence[object] | dict[str, object] = (
        [params[name] for name in compiled.positiontup or ()] if compiled.positional else params
    )
    driver = connection.connection.driver_connection
    # psycopg: binary rows skip formatting and parsing every float as text.
    binary = {"binary": True} if connection.dialect.name == "postgresql" else {}
    cursor = driver.cursor(**binary)  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), args)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return np.array(rows, dtype=dtype)


def _categorical(codes: np.ndarray, labels: dict[int, str]) -> pd.Categorical:
    """Integer keys to a categorical of their labels without hashing a string per row.

    >>> _categorical(np.array([7, 3, 7, 9]), {3: "PL", 7: "TCM", 8: "TCM"}).tolist()
    ['TCM', 'PL', 'TCM', nan]
    """
    keys = np.array(sorted(labels), dtype=np.int64)
    categories = list(dict.fromkeys(labels[int(k)] for k in keys))
    if not keys.size:
        return pd.Categorical.from_codes(np.full(codes.shape, -1), categories=categories)
    label_code = np.array([categories.index(labels[int(k)]) for k in keys])
    pos = np.clip(np.searchsorted(keys, codes), 0, keys.size - 1)
    return pd.Categorical.from_codes(np.where(keys[pos] == codes, label_code[pos], -1), categories=categories)


def _map_into(
    raw: np.ndarray,
    polygon_wkt: np.ndarray,
    names: dict[int, str],
    stations: dict[int, tuple[str, str]],
    dst: str,
    g: Genealogy,
) -> pd.DataFrame:
    n = len(raw)
    x_mm = np.full(n, np.nan)
    y_mm = np.full(n, np.nan)
    box = {name: np.full(n, np.nan) for name in ("x0_mm", "y0_mm", "x1_mm", "y1_mm")}
    is_top = np.zeros(n, dtype=bool)
    geometry = np.full(n, None, dtype=object)
    # Status and the piece that lost the material as codes into these label lists, so no
    # string is made or hashed per observation.
    status_labels: list[str] = ["kept"]
    removed_at_labels: list[str] = [""]
    status_code = np.zeros(n, dtype=np.int64)
    removed_at_code = np.zeros(n, dtype=np.int64)

    # Grouped by source piece (the index already returns them so; one gather otherwise), then
    # contiguous columns: each piece is a slice, and arithmetic on views is cheap.
    if n and np.any(np.diff(raw["piece_id"]) < 0):
        grouping = np.argsort(raw["piece_id"], kind="stable")
        raw, polygon_wkt = raw[grouping], polygon_wkt[grouping]
    col = {name: np.ascontiguousarray(raw[name]) for name in raw.dtype.names}
    src_top = col["is_top"]
    piece_key = col["piece_id"]
    with_polygon = np.flatnonzero(polygon_wkt != None)  # noqa: E711 (element-wise)
    cuts = np.flatnonzero(np.diff(piece_key)) + 1
    starts, ends = ([0, *cuts], [*cuts, n]) if n else ([], [])
    for lo, hi in zip(starts, ends, strict=True):
        rows = slice(lo, hi)
        src = names[int(piece_key[lo])]
        top = src_top[rows]
        boxes = g.map_boxes(
            src, dst, col["x0_mm"][rows], col["y0_mm"][rows], col["x1_mm"][rows], col["y1_mm"][rows], top
        )
        centres = g.map_points(src, dst, col["x_mm"][rows], col["y_mm"][rows], top)
        use_centre = centres.kept | ~boxes.kept
        x_mm[rows] = np.where(use_centre, centres.x_mm, boxes.x_mm)
        y_mm[rows] = np.where(use_centre, centres.y_mm, boxes.y_mm)
        for name, values in box.items():
            values[rows] = getattr(boxes, name)
        is_top[rows] = boxes.is_top
        status_of_gate = np.array([0] + [_code(status_labels, f"removed:{gt.op}") for gt in boxes.gates])
        piece_of_gate = np.array([0] + [_code(removed_at_labels, gt.at_piece) for gt in boxes.gates])
        status_code[rows] = status_of_gate[boxes.removed_gate + 1]
        removed_at_code[rows] = piece_of_gate[boxes.removed_gate + 1]
        poly_rows = with_polygon[(with_polygon >= lo) & (with_polygon < hi)]
        if poly_rows.size:
            mapped, _ = g.map_geometries(src, dst, shapely.from_wkt(polygon_wkt[poly_rows]))
            geometry[poly_rows] = shapely.to_wkt(mapped, rounding_precision=3)

    # Sorted along the piece, top surface first.
    # Two stable argsorts of halves cost a third of one three-key lexsort.
    top_rows, bottom_rows = np.flatnonzero(is_top), np.flatnonzero(~is_top)
    order = np.concatenate(
        (
            top_rows[np.argsort(x_mm[top_rows], kind="stable")],
            bottom_rows[np.argsort(x_mm[bottom_rows], kind="stable")],
        )
    )
    station_ids = col["station_id"][order]
    sides = pd.CategoricalDtype(list(m.SIDES))
    frame = pd.DataFrame(
        {
            "observation_id": col["id"][order],
            "station": _categorical(station_ids, {k: v[0] for k, v in stations.items()}),
            "line": _categorical(station_ids, {k: v[1] for k, v in stations.items()}),
            "source_piece": _categorical(piece_key[order], names),
            "side": pd.Categorical.from_codes(np.where(is_top[order], 0, 1), dtype=sides),
            "x_mm": x_mm[order],
            "y_mm": y_mm[order],
            **{name: values[order] for name, values in box.items()},
            # Plain object columns: converting 100,000 strings to another dtype costs more
            # than the whole mapping.
            "plant_class": pd.Series(col["plant_class"][order], dtype=object, copy=False),
            "station_label": pd.Series(col["station_label"][order], dtype=object, copy=False),
            **{name: _null_to_nan(col[name][order]) for name in _NULLABLE_F8},
            "status": pd.Categorical.from_codes(
                status_code[order], categories=status_labels
            ).remove_unused_categories(),
            "removed_at": pd.Categorical.from_codes(
                removed_at_code[order], categories=removed_at_labels
            ).remove_unused_categories(),
            "source_side": pd.Categorical.from_codes(np.where(src_top[order], 0, 1), dtype=sides),
            "source_x_mm": col["x_mm"][order],
            "source_y_mm": col["y_mm"][order],
            "image_ref": pd.Series(np.full(n, None, dtype=object), dtype=object, copy=False),
            "geometry_wkt": pd.Series(geometry[order], dtype=object, copy=False),
        },
        columns=list(COLUMNS),
    )
    return frame


def _null_to_nan(values: np.ndarray) -> np.ndarray:
    return np.where(values == _NULL_F8, np.nan, values)


def _code(labels: list[str], label: str) -> int:
    if label not in labels:
        labels.append(label)
    return labels.index(label)
