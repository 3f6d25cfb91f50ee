"""One station's ingestion job: find new exports, claim them in batches, store, record the run.

A run: upsert the configured lines and stations, open a run record, scan the export folder
(files younger than ``settle_s`` may still be being written: skipped, seen again next run),
record new and changed files in the manifest, then claim and process batches until none is
due. Each batch is one transaction that begins with the claim (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, the write lock on SQLite) and ends with the files' new states, so a crash leaves
the whole batch or none of it, and the claim dies with the worker's connection.

What each export file becomes is in :mod:`ingestion.units`. A file that cannot be read is
quarantined (never deleted or touched); records whose piece is not known yet wait (pending)
and are retried by later runs, until the grace period is over.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from coilmap import models as m
from coilmap.db import transaction
from coilmap.errors import CoilmapError, InputError
from ingestion import failpoints
from ingestion import store as st
from ingestion.config import PlantConfig, StationConfig
from ingestion.units import StationContext, UnitOutcome, process_unit, scan_units

log = logging.getLogger("coilmap.ingestion")


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _db_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return (SQLAlchemyError, psycopg.Error)


@dataclass
class RunSummary:
    station: str
    run_id: int | None
    status: str
    counts: st.RunCounts
    errors: list[str] = field(default_factory=list)
    lag_s: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    n_tiles: int = 0
    n_fused: int = 0  # observations the run's fusion step decided (their pieces' included)

    def line(self) -> str:
        c = self.counts
        return (
            f"{self.station}: {self.status}, {c.n_files} files, {c.n_observations} observations, "
            f"{c.n_skipped} skipped, {c.n_quarantined} quarantined, {c.n_pending} pending"
            + (f", {self.n_fused} fused" if self.n_fused else "")
            + (f"; errors: {'; '.join(self.errors)}" if self.errors else "")
        )


def run_station(
    cfg: PlantConfig,
    station: str | StationConfig,
    *,
    engine: Engine,
    worker: str | None = None,
    detector: Any = None,
    max_batches: int | None = None,
) -> RunSummary:
    """Run one station's job once (all due batches); never raises for bad input or a lost
    database: the summary (and the run record, when the database is there) says what
    happened."""
    stc = cfg.station(station) if isinstance(station, str) else station
    worker = worker or default_worker()
    summary = RunSummary(stc.code, None, "failed", st.RunCounts())
    db_errors = _db_errors()
    try:
        with transaction(engine) as s:
            st.lock_for_write(s)
            ids = st.upsert_stations(cfg, session=s)
            st.close_dead_runs(session=s, host=socket.gethostname(), alive=_process_alive)
            line_id = s.scalar(select(m.Station.line_id).where(m.Station.id == ids[stc.code]))
            summary.run_id = st.start_run(session=s, line_id=line_id, station_id=ids[stc.code], worker=worker)
    except db_errors as exc:
        summary.errors.append(f"database unavailable at start: {_short(exc)}")
        log.error("%s: %s", stc.code, summary.errors[-1])
        return summary
    station_id = ids[stc.code]
    ctx = StationContext(
        cfg=cfg, station=stc, station_id=station_id, run_id=summary.run_id, detector=detector
    )
    status = "ok"
    try:
        units, n_unsettled = scan_units(stc, settle_s=cfg.settle_s)
        summary.counts.n_skipped += n_unsettled
        with transaction(engine) as s:
            st.lock_for_write(s)
            st.discover(units, station_id=station_id, session=s)
        tried: list[int] = []
        batches = 0
        while max_batches is None or batches < max_batches:
            with transaction(engine) as s:  # the attempt is counted first, and survives a kill
                st.lock_for_write(s)
                ids = st.count_attempt(
                    station_id=station_id, limit=_batch_size(stc, cfg), session=s, exclude=tried
                )
            if not ids:
                break
            tried += ids
            with transaction(engine) as s:  # the batch: claim, process, store, file states
                st.lock_for_write(s)
                files = st.claim(station_id=station_id, limit=len(ids), session=s, ids=ids)
                outcomes = [_process(ctx, f, s) for f in files]
                failpoints.hit("before_commit")
            batches += 1
            for o in outcomes:
                _add(summary, o)
    except db_errors as exc:
        status = "failed"
        summary.errors.append(f"batch failed, nothing of it stored (database: {_short(exc)})")
    except CoilmapError as exc:  # e.g. no detection model: fix the configuration
        status = "failed"
        summary.errors.append(str(exc))
    if status == "ok" and summary.counts.n_observations and cfg.fused_model is not None:
        started = time.perf_counter()
        _fuse_new(cfg.fused_model, engine, summary, db_errors)
        ctx.tick("fusion", started)
    summary.seconds = ctx.seconds
    summary.n_tiles = ctx.n_tiles
    summary.errors += ctx.errors
    summary.status = status
    try:
        with transaction(engine) as s:
            st.lock_for_write(s)
            newest = st.newest_export_ns(station_id=station_id, session=s)
            if newest is not None:
                summary.lag_s = max(time.time() - newest / 1e9, 0.0)
            st.finish_run(
                summary.run_id,
                session=s,
                counts=summary.counts,
                status=status,
                errors=summary.errors[:50],
                lag_s=summary.lag_s,
            )
    except db_errors as exc:
        summary.errors.append(f"run record not closed: {_short(exc)}")
    log.info("%s", summary.line())
    return summary


def _fuse_new(
    model_path: Path, engine: Engine, summary: RunSummary, db_errors: tuple[type[BaseException], ...]
) -> None:
    """Fuse what this run stored (issue: fusion, run by the ingestion jobs once a model exists).
    A fusion failure is recorded on the run; the stored observations stand."""
    from fusion.apply import apply_unfused
    from fusion.model_file import load

    try:
        summary.n_fused = apply_unfused(engine, load(model_path))
    except (CoilmapError, *db_errors) as exc:
        summary.errors.append(f"fusion not applied: {_short(exc)}")


def _batch_size(stc: StationConfig, cfg: PlantConfig) -> int:
    # A vendor table is one big file: one per batch. Frames are small: several per batch.
    return cfg.batch_files if stc.export == "frames" else 1


def _add(summary: RunSummary, o: UnitOutcome) -> None:
    c = summary.counts
    c.n_files += o.n_files
    c.n_observations += o.n_observations
    c.n_skipped += o.n_skipped
    c.n_quarantined += o.n_quarantined
    c.n_pending += o.n_pending


def _process(ctx: StationContext, f: m.IngestionFile, s: Any) -> UnitOutcome:
    """One claimed file inside the batch's transaction. Bad input is quarantined; a bug in
    the processing of one file is retried ``max_attempts`` times, then the file is
    quarantined too (no crash loop); a database error aborts the whole batch."""
    db_errors = _db_errors()
    if f.attempts > ctx.cfg.max_attempts:  # counted before each try: earlier tries never ended
        why = (
            f"{f.attempts - 1} earlier attempts on this file never finished (the worker died or "
            "the database went away each time)"
        )
        st.quarantine(
            [st.Quarantine(f.path, "error", why)], run_id=ctx.run_id, station_id=ctx.station_id, session=s
        )
        st.mark_file(f.id, session=s, state=st.QUARANTINED, run_id=ctx.run_id, error=why, attempts=f.attempts)
        return UnitOutcome(n_files=1, n_quarantined=1)
    try:
        return process_unit(ctx, f, session=s)
    except db_errors:
        raise
    except InputError as exc:  # a file-level problem found late
        st.quarantine(
            [st.Quarantine(f.path, getattr(exc, "kind", "bad_file"), str(exc))],
            run_id=ctx.run_id,
            station_id=ctx.station_id,
            session=s,
        )
        st.mark_file(f.id, session=s, state=st.QUARANTINED, run_id=ctx.run_id, error=str(exc))
        return UnitOutcome(n_files=1, n_quarantined=1)
    except Exception as exc:  # noqa: BLE001 - a bug must not stop the other files
        attempts = f.attempts or 1  # this try was counted before it started
        why = f"{type(exc).__name__}: {exc}"
        ctx.errors.append(f"{f.path}: {why}")
        log.error("%s %s attempt %d: %s", ctx.station.code, f.path, attempts, traceback.format_exc(limit=5))
        if attempts >= ctx.cfg.max_attempts:
            st.quarantine(
                [st.Quarantine(f.path, "error", f"failed {attempts} times: {why}")],
                run_id=ctx.run_id,
                station_id=ctx.station_id,
                session=s,
            )
            st.mark_file(
                f.id, session=s, state=st.QUARANTINED, run_id=ctx.run_id, error=why, attempts=attempts
            )
            return UnitOutcome(n_files=1, n_quarantined=1)
        st.mark_file(
            f.id,
            session=s,
            state=st.NEW,
            run_id=ctx.run_id,
            error=why,
            attempts=attempts,
            retry_after_s=ctx.station.interval_s,
        )
        return UnitOutcome(n_skipped=1)


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# --- tracking events ------------------------------------------------------------------------


@dataclass
class EventsSummary:
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def import_events_files(cfg: PlantConfig, *, engine: Engine) -> EventsSummary:
    """Import each configured tracking events file not imported before (by content hash),
    one transaction per file (``tracking.store.import_events``). A bad file is reported and
    tried again next time (its pieces' records wait meanwhile); it never stops the others."""
    from sqlalchemy.exc import IntegrityError

    from coilmap.files import file_sha256
    from tracking.events import read_events
    from tracking.store import import_events

    out = EventsSummary()
    for path in cfg.events_files():
        sha = file_sha256(path)
        try:
            with transaction(engine) as s:
                st.lock_for_write(s)
                if s.scalar(select(m.EventImport.id).where(m.EventImport.sha256 == sha)) is not None:
                    out.skipped.append(str(path))
                    continue
                import_events(read_events(path), session=s, source=str(path), sha256=sha)
            out.imported.append(str(path))
        except InputError as exc:
            out.errors.append(str(exc))
        except IntegrityError:
            out.skipped.append(str(path))  # another worker imported it at the same moment
        except _db_errors() as exc:
            out.errors.append(f"{path}: database: {_short(exc)}")
    for e in out.errors:
        log.error("events: %s", e)
    return out


def utcnow() -> datetime:
    return datetime.now(UTC)


def station_paths(cfg: PlantConfig) -> dict[str, Path]:
    return {s.code: s.folder for s in cfg.stations}
