"""APScheduler 3: one interval job per configured station, one for the tracking events.

Several scheduler processes (one host or many) may point at the same database: they share
the work through the manifest's row locks (:mod:`ingestion.store`), not through each other.
Every job has ``max_instances=1`` and ``coalesce=True`` (a late job runs once, not a burst),
and starts at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from ingestion.config import PlantConfig
from ingestion.job import import_events_files, run_station

log = logging.getLogger("coilmap.ingestion")


def build_scheduler(
    cfg: PlantConfig,
    *,
    engine: Engine,
    lines: Sequence[str] | None = None,
    detector: Any = None,
    worker: str | None = None,
    stations: Sequence[str] | None = None,
) -> BackgroundScheduler:
    """A scheduler (not started) with the jobs of ``lines`` and ``stations`` (neither: every
    station)."""
    chosen = [
        s
        for s in cfg.stations
        if (not lines and not stations) or s.line in (lines or ()) or s.code in (stations or ())
    ]
    sched = BackgroundScheduler(
        timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    )
    start = datetime.now(UTC)
    if cfg.events:
        sched.add_job(
            import_events_files,
            "interval",
            seconds=cfg.events_interval_s,
            args=[cfg],
            kwargs={"engine": engine},
            id="events",
            name="tracking events",
            next_run_time=start,
        )
    for s in chosen:
        sched.add_job(
            run_station,
            "interval",
            seconds=s.interval_s,
            args=[cfg, s.code],
            kwargs={"engine": engine, "detector": detector, "worker": worker},
            id=f"station:{s.code}",
            name=f"ingest {s.line}/{s.code}",
            next_run_time=start,
        )
    return sched


def run_scheduler(
    cfg: PlantConfig,
    *,
    engine: Engine,
    lines: Sequence[str] | None = None,
    run_for_s: float | None = None,
    detector: Any = None,
    stations: Sequence[str] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or ``run_for_s``), then let running jobs finish."""
    sched = build_scheduler(cfg, engine=engine, lines=lines, detector=detector, stations=stations)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    sched.start()
    log.info("scheduler started: %s", ", ".join(j.name for j in sched.get_jobs()))
    try:
        stop.wait(run_for_s)
    finally:
        sched.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
