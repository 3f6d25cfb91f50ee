"""The ingestion jobs' SQL: stations, the file manifest and its claims, bulk observation
inserts, quarantine, pending records and run records.

Every function takes ``session=`` and never commits: the job owns the transaction (one batch
= one transaction). Inserts that may meet a row stored before (a rerun, a grown vendor table)
use ``ON CONFLICT DO NOTHING`` on the unique source key, so nothing is ever stored twice.
Observations go in bulk: PostgreSQL ``COPY`` (binary) into a temporary table, then one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``; SQLite one ``executemany``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from coilmap import models as m
from ingestion.config import PlantConfig

# Manifest states.
NEW, PENDING, DONE, QUARANTINED = "new", "pending", "done", "quarantined"


def now_utc() -> datetime:
    return datetime.now(UTC)


def _insert(session: Session):  # type: ignore[no-untyped-def]
    """The dialect's INSERT (with ``on_conflict_do_nothing``)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def insert_ignore(
    session: Session, table: Any, rows: Sequence[Mapping[str, Any]], *, key: Sequence[str]
) -> int:
    """Insert ``rows``, skipping those whose ``key`` columns are stored already; how many
    were new."""
    if not rows:
        return 0
    core = getattr(table, "__table__", table)
    stmt = _insert(session)(core).on_conflict_do_nothing(index_elements=list(key)).returning(core.c.id)
    return len(session.execute(stmt, list(rows)).all())


def lock_for_write(session: Session) -> None:
    """SQLite: take the database's write lock now, waiting (busy timeout) for other writers.

    A transaction that reads first and writes later fails at once with SQLITE_BUSY when
    another writer committed in between (WAL snapshot rules); taking the lock first makes
    every batch wait its turn instead. PostgreSQL locks rows, so nothing to do there.
    """
    if session.get_bind().dialect.name == "sqlite":
        raw = session.connection().connection.driver_connection
        if not raw.in_transaction:
            # A big page cache: observations carry five indexes, and bulk inserts into them
            # with SQLite's default 2 MB cache spend their time re-reading index pages.
            raw.execute("PRAGMA cache_size=-262144")
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")


# --- lines and stations ---------------------------------------------------------------------


def upsert_stations(cfg: PlantConfig, *, session: Session) -> dict[str, int]:
    """Lines and stations of the configuration in the coil model (created or updated); the
    database key of each station code."""
    insert_ignore(
        session, m.Line, [{"code": line.code, "unwind": line.unwind} for line in cfg.lines], key=["code"]
    )
    for line in cfg.lines:
        if line.unwind:
            session.execute(
                update(m.Line)
                .where(m.Line.code == line.code, m.Line.unwind.is_distinct_from(line.unwind))
                .values(unwind=line.unwind)
            )
    line_ids = dict(session.execute(select(m.Line.code, m.Line.id)).all())
    rows = [
        {
            "code": st.code,
            "line_id": line_ids[st.line],
            "side": st.side,
            "vendor": st.vendor,
            "export_kind": st.export,
            "label_map": dict(st.label_map),
            "calibration": {
                "y_axis_toward": st.y_axis_toward,
                "inspects": st.inspects,
                "folder": str(st.folder),
            },
        }
        for st in cfg.stations
    ]
    insert_ignore(session, m.Station, rows, key=["code"])
    ids = dict(
        session.execute(
            select(m.Station.code, m.Station.id).where(m.Station.code.in_([st.code for st in cfg.stations]))
        ).all()
    )
    names = ("line_id", "side", "vendor", "export_kind", "label_map", "calibration")
    stored = {
        r.code: r
        for r in session.execute(
            select(m.Station.code, *(getattr(m.Station, n) for n in names)).where(
                m.Station.code.in_(list(ids))
            )
        )
    }
    for row in rows:
        # Only a changed station is written: every run calls this, and an idle write would
        # make concurrent workers queue behind each other's row locks.
        if any(getattr(stored[row["code"]], n) != row[n] for n in names):
            session.execute(
                update(m.Station).where(m.Station.id == ids[row["code"]]).values(**{n: row[n] for n in names})
            )
    return ids


# --- runs ---------------------------------------------------------------------------------


def start_run(*, session: Session, line_id: int | None, station_id: int | None, worker: str) -> int:
    run = m.IngestionRun(
        line_id=line_id,
        station_id=station_id,
        started_at=now_utc(),
        status="running",
        worker=worker,
        errors=[],
    )
    session.add(run)
    session.flush()
    return run.id


def close_dead_runs(*, session: Session, host: str, alive: Callable[[int], bool]) -> list[int]:
    """Runs left ``running`` by a worker of ``host`` whose process is gone (killed, the
    machine rebooted): recorded as ``killed``, so ``coilmap ingest status`` does not show them
    running for ever. Their batches were rolled back with the worker's connection and are
    taken again by the next run. Returns the ids closed."""
    R = m.IngestionRun
    dead = []
    for run_id, worker in session.execute(
        select(R.id, R.worker).where(R.status == "running", R.worker.like(f"{host}:%"))
    ):
        pid = worker.rpartition(":")[2]
        if pid.isdigit() and not alive(int(pid)):
            dead.append(run_id)
    if dead:
        session.execute(
            update(R)
            .where(R.id.in_(dead), R.status == "running")
            .values(
                status="killed",
                finished_at=now_utc(),
                errors=["the worker process ended without closing this run (killed?); its open batch "
                        "was rolled back and is taken again by the next run"],
            )
        )  # fmt: skip
    return dead


@dataclass
class RunCounts:
    n_files: int = 0
    n_observations: int = 0
    n_skipped: int = 0
    n_quarantined: int = 0
    n_pending: int = 0


def finish_run(
    run_id: int, *, session: Session, counts: RunCounts, status: str, errors: list[str], lag_s: float | None
) -> None:
    session.execute(
        update(m.IngestionRun)
        .where(m.IngestionRun.id == run_id)
        .values(
            finished_at=now_utc(),
            status=status,
            n_files=counts.n_files,
            n_observations=counts.n_observations,
            n_skipped=counts.n_skipped,
            n_quarantined=counts.n_quarantined,
            n_pending=counts.n_pending,
            errors=errors,
            lag_s=lag_s,
        )
    )


# --- the manifest -------------------------------------------------------------------------


@dataclass(frozen=True)
class FileStat:
    path: str  # relative to the station's folder
    size_bytes: int
    mtime_ns: int


def discover(files: Sequence[FileStat], *, station_id: int, session: Session) -> tuple[int, int]:
    """Record new export files and re-queue changed ones (a vendor table that grew); returns
    ``(new, changed)``. Rows another worker holds are left alone (``SKIP LOCKED``)."""
    F = m.IngestionFile
    known = {
        row.path: row
        for row in session.execute(
            select(F.id, F.path, F.size_bytes, F.mtime_ns, F.state).where(F.station_id == station_id)
        )
    }
    at = now_utc()
    new = [
        {
            "station_id": station_id,
            "path": f.path,
            "size_bytes": f.size_bytes,
            "mtime_ns": f.mtime_ns,
            "state": NEW,
            "attempts": 0,
            "discovered_at": at,
            "n_observations": 0,
        }
        for f in files
        if f.path not in known
    ]
    n_new = insert_ignore(session, F, new, key=["station_id", "path"])
    changed = [
        (known[f.path].id, f)
        for f in files
        if f.path in known
        and (known[f.path].size_bytes, known[f.path].mtime_ns) != (f.size_bytes, f.mtime_ns)
    ]
    n_changed = 0
    for file_id, f in changed:
        free = session.scalar(select(F.id).where(F.id == file_id).with_for_update(skip_locked=True))
        if free is None:
            continue  # being processed right now; the next run sees it again
        session.execute(
            update(F)
            .where(F.id == file_id)
            .values(size_bytes=f.size_bytes, mtime_ns=f.mtime_ns, state=NEW, attempts=0, next_try_at=None)
        )
        n_changed += 1
    return n_new, n_changed


def claim(
    *,
    station_id: int,
    limit: int,
    session: Session,
    exclude: Iterable[int] = (),
    ids: Iterable[int] | None = None,
) -> list[m.IngestionFile]:
    """Up to ``limit`` files of the station that are due, locked for this transaction.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers take disjoint batches and a
    killed worker's rows are free again the moment its connection drops. SQLite: the caller
    holds the database's write lock (:func:`lock_for_write`), so batches are serialised.
    """
    F = m.IngestionFile
    at = now_utc()
    stmt = (
        select(F)
        .where(
            F.station_id == station_id,
            F.state.in_([NEW, PENDING]),
            or_(F.next_try_at.is_(None), F.next_try_at <= at),
        )
        .order_by(F.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    excluded = list(exclude)
    if excluded:
        stmt = stmt.where(F.id.not_in(excluded))
    if ids is not None:
        stmt = stmt.where(F.id.in_(list(ids)))
    return list(session.scalars(stmt))


def count_attempt(*, station_id: int, limit: int, session: Session, exclude: Iterable[int] = ()) -> list[int]:
    """Count one more attempt on up to ``limit`` due files and return their ids, in a
    transaction of its own that commits *before* the batch runs: a worker killed by a file
    (out of memory in detection, a segfault) leaves the count behind, so a file that kills
    every worker is quarantined after ``max_attempts`` instead of looping forever. The batch
    then claims the same ids again (:func:`claim`); a file another worker took meanwhile is
    simply skipped."""
    ids = [f.id for f in claim(station_id=station_id, limit=limit, session=session, exclude=exclude)]
    if ids:
        F = m.IngestionFile
        session.execute(update(F).where(F.id.in_(ids)).values(attempts=F.attempts + 1))
    return ids


def mark_file(
    file_id: int,
    *,
    session: Session,
    state: str,
    run_id: int,
    size_bytes: int | None = None,
    mtime_ns: int | None = None,
    n_observations: int = 0,
    error: str | None = None,
    retry_after_s: float | None = None,
    attempts: int | None = None,
) -> None:
    values: dict[str, Any] = {"state": state, "run_id": run_id, "last_error": error}
    if size_bytes is not None:
        values.update(size_bytes=size_bytes, mtime_ns=mtime_ns)
    if state in (DONE, QUARANTINED):
        values["done_at"] = now_utc()
    values["next_try_at"] = now_utc() + timedelta(seconds=retry_after_s) if retry_after_s else None
    # A file that came through (stored, waiting, quarantined, deferred) starts counting anew.
    values["attempts"] = attempts if attempts is not None else 0
    values["n_observations"] = m.IngestionFile.n_observations + n_observations
    session.execute(update(m.IngestionFile).where(m.IngestionFile.id == file_id).values(**values))


def newest_export_ns(*, station_id: int, session: Session) -> int | None:
    return session.scalar(
        select(func.max(m.IngestionFile.mtime_ns)).where(m.IngestionFile.station_id == station_id)
    )


# --- quarantine and pending -----------------------------------------------------------------


@dataclass(frozen=True)
class Quarantine:
    path: str
    kind: str
    reason: str
    line_no: int | None = None
    field: str | None = None
    source_key: str | None = None


def quarantine(
    records: Sequence[Quarantine], *, run_id: int, station_id: int | None, session: Session
) -> int:
    """Record bad input with its reason; a record with a source key is kept once."""
    at = now_utc()
    rows = [
        {
            "run_id": run_id,
            "station_id": station_id,
            "path": q.path[:1024],
            "line_no": q.line_no,
            "field": q.field,
            "reason": q.reason,
            "at": at,
            "kind": q.kind,
            "source_key": q.source_key,
        }
        for q in records
    ]
    keyed = [r for r in rows if r["source_key"] is not None]
    plain = [r for r in rows if r["source_key"] is None]
    n = insert_ignore(session, m.QuarantinedRecord, keyed, key=["source_key"])
    if plain:
        session.execute(m.QuarantinedRecord.__table__.insert(), plain)
    # Quarantined for good: nothing of these waits any more.
    if keyed:
        clear_pending([r["source_key"] for r in keyed], session=session)
    return n + len(plain)


def set_pending(
    records: Sequence[tuple[str, str, str, datetime]], *, station_id: int, file_id: int, session: Session
) -> None:
    """``(source_key, piece, reason, first_seen_at)`` of records that wait for their piece."""
    if not records:
        return
    at = now_utc()
    rows = [
        {
            "station_id": station_id,
            "file_id": file_id,
            "source_key": k,
            "piece": p[:64],
            "reason": r,
            "first_seen_at": first,
            "last_seen_at": at,
        }
        for k, p, r, first in records
    ]
    stmt = _insert(session)(m.PendingRecord.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source_key"],
        set_={"last_seen_at": stmt.excluded.last_seen_at, "reason": stmt.excluded.reason},
    )
    session.execute(stmt, rows)


def pending_since(keys: Sequence[str], *, session: Session) -> dict[str, datetime]:
    """When each of ``keys`` was first seen waiting (absent keys never waited)."""
    out: dict[str, datetime] = {}
    for start in range(0, len(keys), 5000):
        chunk = list(keys[start : start + 5000])
        for key, first in session.execute(
            select(m.PendingRecord.source_key, m.PendingRecord.first_seen_at).where(
                m.PendingRecord.source_key.in_(chunk)
            )
        ):
            out[key] = first if first.tzinfo else first.replace(tzinfo=UTC)
    return out


def clear_pending(keys: Sequence[str], *, session: Session) -> None:
    for start in range(0, len(keys), 5000):
        chunk = list(keys[start : start + 5000])
        session.execute(m.PendingRecord.__table__.delete().where(m.PendingRecord.source_key.in_(chunk)))


def clear_file_pending(file_id: int, *, session: Session) -> None:
    session.execute(m.PendingRecord.__table__.delete().where(m.PendingRecord.file_id == file_id))


# --- observations and mark sightings --------------------------------------------------------

OBS_COLUMNS = (
    "station_id",
    "piece_id",
    "side",
    "x_mm",
    "y_mm",
    "x0_mm",
    "y0_mm",
    "x1_mm",
    "y1_mm",
    "geometry_wkt",
    "x_obs_mm",
    "station_label",
    "station_confidence",
    "plant_class",
    "anomaly_score",
    "image_ref",
    "heatmap_ref",
    "observed_at",
    "source_key",
    "ingestion_run_id",
)
_NULLABLE_FLOATS = ("station_confidence", "anomaly_score", "x_obs_mm")

# PostgreSQL: COPY into a temporary table (binary, no text formatting of floats), then one
# insert that skips what is stored already. The statements are constants.
_PG_TEMP = """
CREATE TEMP TABLE ingest_obs (
    station_id integer, piece_id bigint, side varchar(6), x_mm double precision,
    y_mm double precision, x0_mm double precision, y0_mm double precision,
    x1_mm double precision, y1_mm double precision, geometry_wkt text, x_obs_mm double precision,
    station_label varchar(64), station_confidence double precision, plant_class varchar(64),
    anomaly_score double precision, image_ref varchar(1024), heatmap_ref varchar(1024),
    observed_at timestamp, source_key varchar(255), ingestion_run_id bigint
) ON COMMIT DROP
"""
_PG_TYPES = [
    "int4",
    "int8",
    "text",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "text",
    "float8",
    "text",
    "float8",
    "text",
    "float8",
    "text",
    "text",
    "timestamp",
    "text",
    "int8",
]
_PG_COPY = (
    "COPY ingest_obs (station_id, piece_id, side, x_mm, y_mm, x0_mm, y0_mm, x1_mm, y1_mm, geometry_wkt,"
    " x_obs_mm, station_label, station_confidence, plant_class, anomaly_score, image_ref, heatmap_ref,"
    " observed_at, source_key, ingestion_run_id) FROM STDIN (FORMAT BINARY)"
)
# Straight into the table. ``observed_at`` goes as binary ``timestamp`` into a ``timestamptz``
# column: both types have one binary format (microseconds since 2000-01-01), read as UTC, and
# the values are naive UTC.
_PG_COPY_DIRECT = _PG_COPY.replace("COPY ingest_obs", "COPY observations")
_PG_MOVE = """
INSERT INTO observations (station_id, piece_id, side, x_mm, y_mm, x0_mm, y0_mm, x1_mm, y1_mm,
    geometry_wkt, x_obs_mm, station_label, station_confidence, plant_class, anomaly_score, image_ref,
    heatmap_ref, observed_at, source_key, ingestion_run_id)
SELECT station_id, piece_id, side, x_mm, y_mm, x0_mm, y0_mm, x1_mm, y1_mm, geometry_wkt, x_obs_mm,
    station_label, station_confidence, plant_class, anomaly_score, image_ref, heatmap_ref,
    observed_at AT TIME ZONE 'UTC', source_key, ingestion_run_id
FROM ingest_obs
ON CONFLICT (source_key) DO NOTHING
"""
_SQLITE_INSERT = """
INSERT INTO observations (station_id, piece_id, side, x_mm, y_mm, x0_mm, y0_mm, x1_mm, y1_mm,
    geometry_wkt, x_obs_mm, station_label, station_confidence, plant_class, anomaly_score, image_ref,
    heatmap_ref, observed_at, source_key, ingestion_run_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source_key) DO NOTHING
"""


def _column_list(name: str, value: Any, n: int) -> list[Any]:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and name in _NULLABLE_FLOATS:
            return [None if v != v else v for v in value.tolist()]
        return value.tolist()
    if isinstance(value, list):
        return value
    return [value] * n


def store_observations(columns: Mapping[str, Any], *, session: Session) -> int:
    """Insert observations given as columns (arrays, lists or one value for all), keys of
    :data:`OBS_COLUMNS` (``observed_at``: naive UTC ``datetime``/``datetime64``); rows whose
    source key is stored already are skipped. Returns how many were new."""
    n = len(columns["source_key"])
    if n == 0:
        return 0
    lists = []
    for name in OBS_COLUMNS:
        value = columns.get(name)
        if name == "observed_at" and isinstance(value, np.ndarray):
            value = value.astype("datetime64[us]").tolist()  # naive datetimes, UTC
        lists.append(_column_list(name, value, n))
    raw = session.connection().connection.driver_connection
    if session.get_bind().dialect.name == "postgresql":
        return _store_postgresql(raw, lists)
    rows = zip(*lists, strict=True)
    cur = raw.cursor()
    try:
        before = raw.total_changes
        cur.executemany(_SQLITE_INSERT, rows)
        return int(raw.total_changes - before)
    finally:
        cur.close()


def _store_postgresql(raw: Any, lists: list[list[Any]]) -> int:
    """New rows straight into ``observations`` by ``COPY``; when any of them is stored already
    (a rerun, a vendor table that grew), the unique source key refuses the ``COPY``, which is
    rolled back to its savepoint, and the rows go the slower way that skips the stored ones.

    Straight in saves the temporary table and the per-row conflict check of ``ON CONFLICT``:
    about a tenth of a million-row import (``coilmap bench ingestion``). A file is claimed by
    one worker at a time, so a refusal means the rows were stored by an earlier run."""
    import psycopg

    with raw.cursor() as cur:
        cur.execute("SAVEPOINT ingest_copy")
        try:
            _copy_rows(cur, _PG_COPY_DIRECT, lists)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT ingest_copy")
        else:
            cur.execute("RELEASE SAVEPOINT ingest_copy")
            return len(lists[0])
        cur.execute(_PG_TEMP)
        _copy_rows(cur, _PG_COPY, lists)
        cur.execute(_PG_MOVE)
        stored = cur.rowcount
        cur.execute("DROP TABLE ingest_obs")
    return int(stored)


def _copy_rows(cur: Any, statement: str, lists: list[list[Any]]) -> None:
    with cur.copy(statement) as copy:
        copy.set_types(_PG_TYPES)
        for row in zip(*lists, strict=True):
            copy.write_row(row)


def store_mark_sightings(rows: Sequence[Mapping[str, Any]], *, session: Session) -> int:
    return insert_ignore(session, m.MarkSighting, rows, key=["source_key"])


def piece_rows(piece_ids: Iterable[str], *, session: Session) -> dict[str, tuple[int, float, float]]:
    """``piece_id -> (key, length_mm, width_mm)`` of the stored pieces among ``piece_ids``."""
    ids = sorted(set(piece_ids))
    out: dict[str, tuple[int, float, float]] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        for pid, key, length, width in session.execute(
            select(m.Piece.piece_id, m.Piece.id, m.Piece.length_mm, m.Piece.width_mm).where(
                m.Piece.piece_id.in_(chunk)
            )
        ):
            out[pid] = (key, float(length), float(width))
    return out
