"""The dashboard's one way to the coil model: every query of every page is here.

The engine is a ``st.cache_resource`` (one per URL, read-only: ``PRAGMA query_only`` on
SQLite, read-only transactions on PostgreSQL, on top of the read-only role of
docs/dashboard.md); queries are ``st.cache_data`` functions whose arguments become bound
parameters, never SQL text. Outside a Streamlit run (tests, the benchmark) the caches are
plain in-memory caches.

What later migrations add (``fusion_results``, ``observations.heatmap_ref``) is found by
inspecting the schema once (:func:`features`), the fusion area's roll-mark search by importing
it; each page says plainly what is missing and which command produces it.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy import Engine, MetaData, Table, and_, event, exists, func, inspect, select
from sqlalchemy.orm import Session, aliased

from coilmap import models as m
from coilmap.db import make_engine
from coilmap.errors import CoilmapError
from dashboard import coil_view as cv
from tracking.coil_map import build_coil_map
from tracking.store import ancestor_keys, get_piece, load_genealogy

TTL_S = 60
UNCLASSIFIED = "unclassified"
# The most rows the history page reads at once (its table says when it was cut there).
HISTORY_MAX_ROWS = 500_000

MISSING_FUSION = (
    "No fused classification yet: run `coilmap fuse apply` (colours show the stations' plant classes)."
)
MISSING_HEATMAP = (
    "This database has no anomaly heatmaps (observations.heatmap_ref): run `coilmap db upgrade`."
)
MISSING_ROLL_MARKS = "Roll-mark search not installed: it comes with the fusion area (`fusion.roll_marks`)."
ROLL_MARK_MAX_GROUP = 3000


def _read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor.execute("PRAGMA query_only=ON")
    else:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        dbapi_connection.commit()
    cursor.close()


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """The read-only engine of ``url`` (one per process)."""
    eng = make_engine(url, pool_pre_ping=True)
    event.listen(eng, "connect", _read_only)
    return eng


@dataclass(frozen=True)
class Features:
    """What the schema holds beyond the first revision."""

    fusion_results: bool
    heatmap_ref: bool
    migrated: bool


@st.cache_data(ttl=TTL_S, show_spinner=False)
def features(url: str) -> Features:
    insp = inspect(engine(url))
    tables = set(insp.get_table_names())
    obs_cols = {c["name"] for c in insp.get_columns("observations")} if "observations" in tables else set()
    fused = False
    if "fusion_results" in tables:
        # The table comes with the schema; the dashboard uses it once `coilmap fuse apply` filled it.
        with engine(url).connect() as conn:
            fused = conn.execute(select(_table(url, "fusion_results").c.id).limit(1)).first() is not None
    return Features(
        fusion_results=fused,
        heatmap_ref="heatmap_ref" in obs_cols,
        migrated="observations" in tables,
    )


@st.cache_resource(ttl=TTL_S, show_spinner=False)
def _table(url: str, name: str) -> Table:
    """The table as the database has it (columns later migrations added included)."""
    return Table(name, MetaData(), autoload_with=engine(url))


def _session(url: str) -> Session:
    return Session(engine(url))


def _frame(url: str, stmt: Any) -> pd.DataFrame:
    with engine(url).connect() as conn:
        return _to_frame(conn.execute(stmt))


def _to_frame(result: Any) -> pd.DataFrame:
    """A result as columns (pandas probes every Row object for attributes when it is handed
    rows: ten times slower at 100,000 rows)."""
    keys = list(result.keys())
    rows = result.fetchall()
    if not rows:
        return pd.DataFrame(columns=keys)
    return pd.DataFrame(dict(zip(keys, (list(c) for c in zip(*rows, strict=True)), strict=True)))


# --- pick lists ------------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def filter_options(url: str) -> dict[str, list[str]]:
    """Lines, stations, grades and classes present, for the filters' choices."""
    if not features(url).migrated:
        return {"lines": [], "stations": [], "grades": [], "classes": []}
    with engine(url).connect() as conn:
        lines = list(conn.scalars(select(m.Line.code).order_by(m.Line.code)))
        stations = list(conn.scalars(select(m.Station.code).order_by(m.Station.code)))
        grades = list(conn.scalars(select(m.Piece.grade).where(m.Piece.grade.is_not(None)).distinct()))
        classes = set(conn.scalars(select(m.Observation.plant_class).distinct()))
        if features(url).fusion_results:
            fr = _table(url, "fusion_results")
            classes |= set(conn.scalars(select(fr.c.fused_class).distinct()))
    return {
        "lines": lines,
        "stations": stations,
        "grades": sorted(grades),
        "classes": sorted(c for c in classes if c) + ([UNCLASSIFIED] if None in classes else []),
    }


@st.cache_data(ttl=TTL_S, show_spinner=False)
def search_pieces(
    url: str,
    text: str = "",
    grade: str | None = None,
    line: str | None = None,
    made_from: date | None = None,
    made_to: date | None = None,
    final_only: bool = True,
    limit: int = 500,
) -> pd.DataFrame:
    """Pieces matching the search, newest first, with their number of own observations."""
    cols = ["piece_id", "grade", "line", "length_m", "width_mm", "made_at", "final", "observations"]
    if not features(url).migrated:
        return pd.DataFrame(columns=cols)
    p, edge = m.Piece, m.GenealogyEdge
    consumed = exists().where(edge.parent_id == p.id)
    n_obs = select(func.count()).where(m.Observation.piece_id == p.id).scalar_subquery()
    stmt = (
        select(
            p.piece_id,
            p.grade,
            m.Line.code.label("line"),
            (p.length_mm / 1000.0).label("length_m"),
            p.width_mm,
            p.made_at,
            (~consumed).label("final"),
            n_obs.label("observations"),
        )
        .outerjoin(m.Line, m.Line.id == p.line_id)
        .order_by(p.made_at.desc().nulls_last(), p.piece_id)
        .limit(limit)
    )
    if text:
        stmt = stmt.where(
            p.piece_id.icontains(text.strip(), autoescape=True)
            | p.coil_no.icontains(text.strip(), autoescape=True)
        )
    if grade:
        stmt = stmt.where(p.grade == grade)
    if line:
        stmt = stmt.where(m.Line.code == line)
    if made_from:
        stmt = stmt.where(p.made_at >= _start(made_from))
    if made_to:
        stmt = stmt.where(p.made_at < _start(made_to) + timedelta(days=1))
    if final_only:
        stmt = stmt.where(~consumed)
    frame = _frame(url, stmt)
    return frame.reindex(columns=cols)


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


# --- the coil map ----------------------------------------------------------------------------


# A resource, not data: the view of a big coil is 100,000 rows that every rerun would
# otherwise unpickle again; pages only read it (filters make new frames).
@st.cache_resource(
    ttl=TTL_S, show_spinner="Mapping every station's observations into the coil...", max_entries=8
)
def coil_view(url: str, piece_id: str, margin_fraction: float = 0.05) -> cv.CoilView:
    """The coil map of ``piece_id``: its observations and its ancestors' in its frame, with
    class (fused when available), severity, the outline, marks, cut lines and removed bands."""
    feats = features(url)
    with _session(url) as session:
        cmap = build_coil_map(piece_id, session=session)
        piece = get_piece(piece_id, session=session)
        line = (
            session.scalar(select(m.Line.code).where(m.Line.id == piece.line_id)) if piece.line_id else None
        )
        keys = sorted({piece.id} | ancestor_keys(piece.id, session=session))
        extra = _fused(url, keys, session) if feats.fusion_results else pd.DataFrame()
    obs = cmap.observations
    if not extra.empty:
        obs = obs.merge(extra, on="observation_id", how="left")
    elif feats.fusion_results:
        obs = obs.assign(fused_class=None, fused_probability=np.nan, real_probability=np.nan)
    obs = _with_class_and_severity(obs)
    g = cmap.genealogy
    rolls = roll_mark_series(obs, g, piece_id)
    margin = margin_fraction * cmap.length_mm
    return cv.CoilView(
        piece_id=piece_id,
        length_mm=cmap.length_mm,
        width_mm=cmap.width_mm,
        grade=piece.grade,
        line=line,
        outline=[tuple(s) for s in g.piece(piece_id).outline.segments()],
        observations=obs,
        marks=cv.marks(g, piece_id),
        cut_lines=cv.cut_lines(g, piece_id, margin),
        removed_regions=cv.removed_regions(g, piece_id, margin),
        roll_marks=rolls,
        roll_marks_skipped=roll_mark_skipped(obs),
        ancestors=g.ancestors(piece_id),
        length_scale=cv.length_scales(g, piece_id),
    )


def _fused(url: str, keys: list[int], session: Session) -> pd.DataFrame:
    """The fused decisions on the observations of the pieces ``keys``."""
    obs, fr = _table(url, "observations"), _table(url, "fusion_results")
    stmt = (
        select(fr.c.observation_id, fr.c.fused_class, fr.c.fused_probability, fr.c.real_probability)
        .join(obs, obs.c.id == fr.c.observation_id)
        .where(obs.c.piece_id.in_(keys))
    )
    return _to_frame(session.execute(stmt))


def _with_class_and_severity(obs: pd.DataFrame) -> pd.DataFrame:
    obs = obs.copy()
    for name in obs.columns:  # the coil map may hand labels over as categoricals
        if isinstance(obs[name].dtype, pd.CategoricalDtype):
            obs[name] = obs[name].astype(object).where(obs[name].notna(), None)
    fused = obs["fused_class"] if "fused_class" in obs else pd.Series(None, index=obs.index, dtype=object)
    obs["class"] = fused.fillna(obs["plant_class"]).fillna(UNCLASSIFIED)
    severity = pd.Series(np.nan, index=obs.index)
    if "real_probability" in obs:
        severity = pd.to_numeric(obs["real_probability"], errors="coerce")
    obs["severity"] = (
        severity.fillna(obs["anomaly_score"]).fillna(obs["station_confidence"]).fillna(0.0).astype(float)
    )
    return obs


def roll_marks_available() -> bool:
    return importlib.util.find_spec("fusion.roll_marks") is not None


def roll_mark_skipped(obs: pd.DataFrame) -> list[dict]:
    """The surface-and-class groups too big for the roll-mark search (``side``, ``class``,
    ``n``), so the page can say where it did not look."""
    if obs.empty:
        return []
    sizes = obs[obs["status"] == "kept"].groupby(["side", "class"], sort=True).size()
    return [
        {"side": side, "class": cls, "n": int(n)}
        for (side, cls), n in sizes.items()
        if n > ROLL_MARK_MAX_GROUP
    ]


def roll_mark_series(obs: pd.DataFrame, g: Any, piece_id: str) -> list[dict]:
    """Roll-mark series among the observations kept on the piece, per surface and class, found
    by the fusion area's search (``fusion.roll_marks``) in the piece's frame and in the frame of
    every ancestor that left a roll; a series several stations saw is one series (fusion's
    ``also_seen``). 49 shuffles (p >= 0.02) keep a coil's first view fast; groups above
    ``ROLL_MARK_MAX_GROUP`` observations are not searched (the search compares every pair of
    lags)."""
    if not roll_marks_available() or obs.empty:
        return []
    from fusion.roll_marks import find_roll_marks

    kept = obs[obs["status"] == "kept"]
    out: list[dict] = []
    for (side, cls), part in kept.groupby(["side", "class"], sort=True):
        if not 4 <= len(part) <= ROLL_MARK_MAX_GROUP:
            continue
        x = part["x_mm"].to_numpy(dtype=np.float64)
        y = part["y_mm"].to_numpy(dtype=np.float64)
        stations = part["station"].to_numpy(dtype=object)
        try:
            found = find_roll_marks(x, y, g, piece_id, n_null=49, alpha=0.02)
        except CoilmapError:
            continue
        for frame, series in found:
            members = np.asarray(series.members, dtype=np.int64)
            seen = np.concatenate([members, np.asarray(getattr(series, "also_seen", []), dtype=np.int64)])
            out.append(
                {
                    "side": side,
                    "class": cls,
                    "stations": sorted({str(s) for s in stations[seen]}),
                    "x_mm": np.sort(x[members]).tolist(),
                    "y_mm": float(np.median(y[members])),
                    "period_mm": float(series.period_mm),
                    # The period on this piece (the search may report it in an ancestor's frame).
                    "period_here_mm": float(
                        abs(np.polyfit(series.repeat_index, x[members], 1)[0])
                        if len(members) > 1
                        else series.period_mm
                    ),
                    "frame": frame,
                    "p_value": float(series.p_value),
                }
            )
    return out


@st.cache_data(ttl=TTL_S, show_spinner=False)
def observations_by_id(url: str, ids: tuple[int, ...]) -> pd.DataFrame:
    """Observations as stored (own piece frame), with station, line, piece and image refs."""
    feats = features(url)
    obs = _table(url, "observations")
    cols: list[Any] = [
        obs.c.id.label("observation_id"),
        m.Station.code.label("station"),
        m.Line.code.label("line"),
        m.Piece.piece_id.label("piece"),
        obs.c.side,
        obs.c.x_mm,
        obs.c.y_mm,
        obs.c.plant_class,
        obs.c.station_label,
        obs.c.station_confidence,
        obs.c.anomaly_score,
        obs.c.image_ref,
        obs.c.observed_at,
    ]
    if feats.heatmap_ref:
        cols.append(obs.c.heatmap_ref)
    stmt = (
        select(*cols)
        .join(m.Station, m.Station.id == obs.c.station_id)
        .join(m.Line, m.Line.id == m.Station.line_id)
        .join(m.Piece, m.Piece.id == obs.c.piece_id)
        .where(obs.c.id.in_(list(ids)))
        .order_by(obs.c.observed_at, obs.c.id)
    )
    return _frame(url, stmt)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def fusion_decision(url: str, observation_id: int) -> dict | None:
    """The fused decision on one observation with its upstream evidence, or None."""
    if not features(url).fusion_results:
        return None
    fr = _table(url, "fusion_results")
    with engine(url).connect() as conn:
        row = conn.execute(select(fr).where(fr.c.observation_id == observation_id)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    evidence = out.get("evidence")
    if isinstance(evidence, str):
        evidence = json.loads(evidence)
    out["evidence"] = list(evidence or [])
    return out


# --- genealogy -------------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def genealogy_graph(url: str, piece_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes (pieces with outline and attributes) and edges (operation with its parameters) of
    everything related to ``piece_id``: its ancestors, itself and its descendants."""
    with _session(url) as session:
        g = load_genealogy(piece_id, session=session, descendants=True)
    related = {piece_id, *g.ancestors(piece_id), *g.descendants(piece_id)}
    nodes = pd.DataFrame(
        [
            {
                "piece_id": p.piece_id,
                "length_m": p.length_mm / 1000.0,
                "width_mm": p.width_mm,
                "thickness_mm": p.thickness_mm,
                "grade": p.grade,
                "line": p.line,
                "final": not g.children(p.piece_id),
                "selected": p.piece_id == piece_id,
            }
            for p in g.pieces.values()
            if p.piece_id in related
        ]
    )
    edges = []
    for op in g.operations:
        if op.kind in ("create", "mark"):
            continue
        params = {k: v for k, v in op.record.items() if k not in ("op", "input", "inputs", "output")}
        if "outputs" in params:
            params["outputs"] = len(params["outputs"])
        for parent in op.inputs:
            for child in op.outputs:
                if parent in related and child in related:
                    edges.append({"parent": parent, "child": child, "operation": op.kind, "params": params})
    return nodes, pd.DataFrame(edges, columns=["parent", "child", "operation", "params"])


# --- defect history ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryFilter:
    """The history page's filters; empty tuples mean no restriction."""

    classes: tuple[str, ...] = ()
    grades: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    stations: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    # Position band along the length as a fraction of the piece's length from its head, and
    # across the width in mm from the centreline (positive toward the operator side).
    along_from: float = 0.0
    along_to: float = 1.0
    across_from_mm: float | None = None
    across_to_mm: float | None = None


HISTORY_COLUMNS = [
    "observation_id",
    "observed_at",
    "line",
    "station",
    "side",
    "piece",
    "grade",
    "class",
    "plant_class",
    "station_label",
    "station_confidence",
    "anomaly_score",
    "x_mm",
    "y_mm",
    "along",
    "length_mm",
    "width_mm",
    "image_ref",
]


@st.cache_data(ttl=TTL_S, show_spinner="Querying the defect history...")
def history(url: str, f: HistoryFilter, limit: int = HISTORY_MAX_ROWS) -> pd.DataFrame:
    """Observations matching ``f`` (each in the frame of the piece it was recorded on)."""
    feats = features(url)
    if not feats.migrated:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    o, p, s, ln = m.Observation.__table__, m.Piece, m.Station, m.Line
    fr = _table(url, "fusion_results") if feats.fusion_results else None
    cls = func.coalesce(fr.c.fused_class, o.c.plant_class) if fr is not None else o.c.plant_class
    stmt = (
        select(
            o.c.id.label("observation_id"),
            o.c.observed_at,
            ln.code.label("line"),
            s.code.label("station"),
            o.c.side,
            p.piece_id.label("piece"),
            p.grade,
            cls.label("class"),
            o.c.plant_class,
            o.c.station_label,
            o.c.station_confidence,
            o.c.anomaly_score,
            o.c.x_mm,
            o.c.y_mm,
            (o.c.x_mm / p.length_mm).label("along"),
            p.length_mm,
            p.width_mm,
            o.c.image_ref,
        )
        .join(s, s.id == o.c.station_id)
        .join(ln, ln.id == s.line_id)
        .join(p, p.id == o.c.piece_id)
        .order_by(o.c.observed_at, o.c.id)
        .limit(limit)
    )
    if fr is not None:
        stmt = stmt.outerjoin(fr, fr.c.observation_id == o.c.id)
    stmt = stmt.where(*_history_where(f, o, p, s, ln, cls))
    frame = _frame(url, stmt)
    frame["class"] = frame["class"].fillna(UNCLASSIFIED)
    # SQLite hands back naive UTC, PostgreSQL aware: one kind for every page and the CSV.
    frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
    return frame


def _history_where(f: HistoryFilter, o: Any, p: Any, s: Any, ln: Any, cls: Any) -> list[Any]:
    where: list[Any] = []
    if f.classes:
        named = [c for c in f.classes if c != UNCLASSIFIED]
        cond = cls.in_(named)
        where.append(cond | cls.is_(None) if UNCLASSIFIED in f.classes else cond)
    if f.grades:
        where.append(p.grade.in_(list(f.grades)))
    if f.lines:
        where.append(ln.code.in_(list(f.lines)))
    if f.stations:
        where.append(s.code.in_(list(f.stations)))
    if f.date_from:
        where.append(o.c.observed_at >= _start(f.date_from))
    if f.date_to:
        where.append(o.c.observed_at < _start(f.date_to) + timedelta(days=1))
    if f.along_from > 0.0:
        where.append(o.c.x_mm >= f.along_from * p.length_mm)
    if f.along_to < 1.0:
        where.append(o.c.x_mm <= f.along_to * p.length_mm)
    if f.across_from_mm is not None:
        where.append(o.c.y_mm >= f.across_from_mm)
    if f.across_to_mm is not None:
        where.append(o.c.y_mm <= f.across_to_mm)
    return where


@st.cache_data(ttl=TTL_S, show_spinner=False)
def inspected_km_per_week(url: str, f: HistoryFilter) -> pd.DataFrame:
    """Kilometres of strip that left the lines in question per week (the lines of the filtered
    stations, else the filtered lines, else every line with a station): the length of every
    piece made on such a line that no later operation on the same line consumed, in the week
    it was made. Columns ``week``, ``km``."""
    if not features(url).migrated:
        return pd.DataFrame(columns=["week", "km"])
    p, ln, edge = m.Piece, m.Line, m.GenealogyEdge
    child = aliased(m.Piece)
    same_line_next = exists().where(
        and_(edge.parent_id == p.id, edge.child_id == child.id, child.line_id == p.line_id)
    )
    stmt = (
        select(p.made_at, p.length_mm)
        .join(ln, ln.id == p.line_id)
        .where(p.made_at.is_not(None), ~same_line_next)
    )
    if f.stations:
        lines = select(m.Station.line_id).where(m.Station.code.in_(list(f.stations)))
        stmt = stmt.where(p.line_id.in_(lines.scalar_subquery()))
    elif f.lines:
        stmt = stmt.where(ln.code.in_(list(f.lines)))
    else:
        stmt = stmt.where(p.line_id.in_(select(m.Station.line_id).scalar_subquery()))
    if f.grades:
        stmt = stmt.where(p.grade.in_(list(f.grades)))
    if f.date_from:
        stmt = stmt.where(p.made_at >= _start(f.date_from))
    if f.date_to:
        stmt = stmt.where(p.made_at < _start(f.date_to) + timedelta(days=1))
    frame = _frame(url, stmt)
    if frame.empty:
        return pd.DataFrame(columns=["week", "km"])
    frame["week"] = week_start(frame["made_at"])
    out = frame.groupby("week", as_index=False)["length_mm"].sum()
    out["km"] = out["length_mm"] / 1e6
    return out[["week", "km"]]


def week_start(times: pd.Series) -> pd.Series:
    """Monday 00:00 UTC of each time's ISO week (naive UTC timestamps)."""
    t = pd.to_datetime(times, utc=True).dt.tz_localize(None)
    return (t - pd.to_timedelta(t.dt.day_of_week, unit="D")).dt.normalize()


# --- ingestion -------------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def ingestion_status(url: str) -> pd.DataFrame:
    """The last run of every line and station with its counts and lag, newest first."""
    cols = [
        "line",
        "station",
        "started_at",
        "finished_at",
        "status",
        "lag_s",
        "n_files",
        "n_observations",
        "n_skipped",
        "n_quarantined",
        "errors",
        "runs",
        "failed_runs",
    ]
    if not features(url).migrated:
        return pd.DataFrame(columns=cols)
    r = m.IngestionRun.__table__
    ranked = select(
        r,
        func.row_number()
        .over(partition_by=(r.c.line_id, r.c.station_id), order_by=r.c.started_at.desc())
        .label("rn"),
        func.count().over(partition_by=(r.c.line_id, r.c.station_id)).label("runs"),
    ).subquery()
    failed = (
        select(r.c.line_id, r.c.station_id, func.count().label("failed_runs"))
        .where(r.c.status == "failed")
        .group_by(r.c.line_id, r.c.station_id)
        .subquery()
    )
    st_line = aliased(m.Line)
    stmt = (
        select(
            func.coalesce(m.Line.code, st_line.code).label("line"),
            m.Station.code.label("station"),
            ranked.c.started_at,
            ranked.c.finished_at,
            ranked.c.status,
            ranked.c.lag_s,
            ranked.c.n_files,
            ranked.c.n_observations,
            ranked.c.n_skipped,
            ranked.c.n_quarantined,
            ranked.c.n_pending,
            ranked.c.errors,
            ranked.c.worker,
            ranked.c.runs,
            func.coalesce(failed.c.failed_runs, 0).label("failed_runs"),
        )
        .outerjoin(m.Station, m.Station.id == ranked.c.station_id)
        .outerjoin(st_line, st_line.id == m.Station.line_id)
        .outerjoin(m.Line, m.Line.id == ranked.c.line_id)
        .outerjoin(
            failed,
            and_(
                failed.c.line_id.is_not_distinct_from(ranked.c.line_id),
                failed.c.station_id.is_not_distinct_from(ranked.c.station_id),
            ),
        )
        .where(ranked.c.rn == 1)
        .order_by(ranked.c.started_at.desc())
    )
    return _frame(url, stmt)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def quarantined(
    url: str, line: str | None = None, station: str | None = None, limit: int = 1000
) -> pd.DataFrame:
    """Quarantined inputs with their reasons, newest first."""
    cols = ["at", "line", "station", "kind", "path", "line_no", "field", "reason", "run_id"]
    if not features(url).migrated:
        return pd.DataFrame(columns=cols)
    q, r = m.QuarantinedRecord.__table__, m.IngestionRun.__table__
    st_ = aliased(m.Station)
    ln = aliased(m.Line)
    stmt = (
        select(
            q.c.at,
            ln.code.label("line"),
            st_.code.label("station"),
            q.c.kind,
            q.c.path,
            q.c.line_no,
            q.c.field,
            q.c.reason,
            q.c.run_id,
        )
        .join(r, r.c.id == q.c.run_id)
        .outerjoin(st_, st_.id == func.coalesce(q.c.station_id, r.c.station_id))
        .outerjoin(ln, ln.id == func.coalesce(r.c.line_id, st_.line_id))
        .order_by(q.c.at.desc(), q.c.id.desc())
        .limit(limit)
    )
    if line:
        stmt = stmt.where(ln.code == line)
    if station:
        stmt = stmt.where(st_.code == station)
    return _frame(url, stmt)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def file_backlog(url: str) -> pd.DataFrame:
    """Export files per station and state (new, pending, done, quarantined) in the ingestion
    manifest, with the oldest file still waiting."""
    cols = ["station", "state", "files", "oldest_discovered_at"]
    if not features(url).migrated or "ingestion_files" not in inspect(engine(url)).get_table_names():
        return pd.DataFrame(columns=cols)
    f = m.IngestionFile.__table__
    stmt = (
        select(
            m.Station.code.label("station"),
            f.c.state,
            func.count().label("files"),
            func.min(f.c.discovered_at).label("oldest_discovered_at"),
        )
        .join(m.Station, m.Station.id == f.c.station_id)
        .group_by(m.Station.code, f.c.state)
        .order_by(m.Station.code, f.c.state)
    )
    return _frame(url, stmt)


# --- data tools ------------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def audit_report(path: str, mtime: float) -> dict:
    """The training-set audit report (``mtime`` only keys the cache to the file's version)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@st.cache_data(ttl=TTL_S, show_spinner="Preparing the CSV...")
def history_csv(url: str, f: HistoryFilter) -> bytes:
    """The defects matching ``f`` as CSV (UTF-8, one row per observation)."""
    return history(url, f).to_csv(index=False).encode("utf-8")


@st.cache_resource(ttl=TTL_S, show_spinner="Loading the similar-image index...")
def search_index(folder: str, mtime: float) -> tuple[Any, dict]:
    """The similar-image index in ``folder`` (``mtime`` keys the cache to its version)."""
    from dashboard.tools import load_index

    return load_index(Path(folder))
