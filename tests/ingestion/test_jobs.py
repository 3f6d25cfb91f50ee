"""The ingestion jobs end to end on SQLite and PostgreSQL: a plant in, the coil model out,
exactly once, whatever runs twice, concurrently or under a scheduler."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from coilmap import models as m
from coilmap.db import make_engine
from ingestion.job import run_station
from ingestion.plant import ingest_plant
from tests.ingestion.helpers import copy_plant, count, observation_keys, plant_config

pytestmark = pytest.mark.db

TABLES = ["PL-T", "PL-B", "SL-T"]


def _truth_keys(plant: Path, stations: list[str]) -> set[str]:
    t = pd.read_csv(plant / "truth" / "observations.csv")
    return set(t[t["station"].isin(stations) & t["seen"].astype(bool)]["obs_key"])


def _rows(engine) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        rows = c.execute(
            select(
                m.Observation.source_key,
                m.Piece.piece_id,
                m.Observation.side,
                m.Observation.x_mm,
                m.Observation.y_mm,
                m.Observation.x1_mm,
                m.Observation.plant_class,
                m.Observation.image_ref,
                m.Observation.heatmap_ref,
                m.Observation.anomaly_score,
            ).join(m.Piece, m.Piece.id == m.Observation.piece_id)
        ).all()
    df = pd.DataFrame(rows, columns=["key", "piece", "side", "x", "y", "x1", "cls", "img", "heat", "score"])
    return df.sort_values("key").reset_index(drop=True).round(6)


def test_plant_once_twice_and_positions(engine, plant_src: Path, detector, tmp_path: Path) -> None:
    plant = copy_plant(plant_src, tmp_path / "plant", stations=[*TABLES, "CAL-T"], max_frames=4)
    cfg = plant_config(plant, tmp_path / "images")
    first = ingest_plant(cfg, engine=engine, detector=detector)
    assert first.events.imported and all(r.status == "ok" for r in first.runs), first.text()
    keys = observation_keys(engine)
    table_keys = {k for k in keys if k.split(":")[0] in TABLES}
    assert table_keys == _truth_keys(plant_src, TABLES)
    assert any(k.startswith("CAL-T:") for k in keys), "the frames gave no detection"

    again = ingest_plant(cfg, engine=engine, detector=detector)
    assert again.n_observations == 0 and again.events.skipped and not again.events.imported
    assert observation_keys(engine) == keys

    # Re-registered through the marks: within a few mm of where the defect really is.
    truth = pd.read_csv(plant_src / "truth" / "observations.csv").set_index("obs_key")
    got = _rows(engine).set_index("key").loc[sorted(table_keys)]
    dx = np.abs(got["x"] - truth.loc[got.index, "x_true_mm"])
    dy = np.abs(got["y"] - truth.loc[got.index, "y_true_mm"])
    assert dx.max() < 25.0 and dy.max() < 10.0, (dx.max(), dy.max())
    # Images land in the store under stable relative paths; frames also get heatmaps.
    rows = _rows(engine)
    for ref in rows["img"].dropna().tolist() + rows["heat"].dropna().tolist():
        assert (tmp_path / "images" / ref).is_file(), ref
    frames = rows[rows["key"].str.startswith("CAL-T:")]
    assert frames["heat"].notna().all() and frames["score"].notna().all()
    assert count(engine, m.MarkSighting) > 0
    # Nothing in the export folders changed.
    for code in TABLES:
        src, dst = plant_src / "stations" / code, plant / "stations" / code
        assert sorted(p.name for p in dst.iterdir()) == sorted(p.name for p in src.iterdir())


def test_pending_until_events_arrive(engine, plant_src: Path, tmp_path: Path) -> None:
    """Exports that come before their pieces' tracking events wait, then go in."""
    plant = copy_plant(plant_src, tmp_path / "plant", stations=["PL-T"])
    cfg = replace(plant_config(plant, tmp_path / "images"), events=())
    early = run_station(cfg, "PL-T", engine=engine)
    assert early.status == "ok" and early.counts.n_observations == 0 and early.counts.n_pending > 0
    assert count(engine, m.PendingRecord) == early.counts.n_pending
    assert count(engine, m.QuarantinedRecord) == 0
    with_events = replace(cfg, events=(str(plant / "events.jsonl"),))
    summary = ingest_plant(with_events, engine=engine)
    # Retried no earlier than the station's interval: run again once it has passed.
    time.sleep(1.1)
    summary = ingest_plant(with_events, engine=engine)
    assert summary.runs[0].counts.n_pending == 0, summary.text()
    assert set(observation_keys(engine)) == _truth_keys(plant_src, ["PL-T"])
    assert count(engine, m.PendingRecord) == 0


def test_three_workers_no_duplicate_no_loss(
    db_url: str, engine, plant_src: Path, detector, tmp_path: Path
) -> None:
    plant = copy_plant(plant_src, tmp_path / "plant", stations=[*TABLES, "CAL-T"], max_frames=4)
    cfg = replace(plant_config(plant, tmp_path / "images"), batch_files=1)
    ingest_plant(replace(cfg, stations=()), engine=engine)  # the events
    engines = [make_engine(db_url) for _ in range(3)]
    errors: list[BaseException] = []
    summaries = []

    def worker(i: int) -> None:
        try:
            for code in [s.code for s in cfg.stations][i:] + [s.code for s in cfg.stations][:i]:
                summaries.append(run_station(cfg, code, engine=engines[i], worker=f"w{i}", detector=detector))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        for e in engines:
            e.dispose()
    assert not errors and all(s.status == "ok" for s in summaries), [s.line() for s in summaries]
    n_units = count(engine, m.IngestionFile)
    # Every file was processed by exactly one worker, and every observation stored once.
    assert sum(s.counts.n_files for s in summaries) == n_units
    with engine.connect() as c:
        states = set(c.scalars(select(m.IngestionFile.state)))
    assert states == {"done"}
    keys = observation_keys(engine)
    assert len(keys) == len(set(keys)) == sum(s.counts.n_observations for s in summaries)
    assert {k for k in keys if k.split(":")[0] in TABLES} == _truth_keys(plant_src, TABLES)
    assert len({s.run_id for s in summaries}) == len(summaries) == 3 * len(cfg.stations)


def _quiet(engine, n_expected: int) -> bool:  # type: ignore[no-untyped-def]
    """Everything expected is stored and no file waits."""
    with engine.connect() as c:
        waiting = c.scalar(
            select(func.count())
            .select_from(m.IngestionFile)
            .where(m.IngestionFile.state.in_(["new", "pending"]))
        )
        n = c.scalar(select(func.count()).select_from(m.Observation))
    return waiting == 0 and n >= n_expected


def test_scheduler_equals_one_shot(db_url: str, engine, plant_src: Path, detector, tmp_path: Path) -> None:
    """The scheduler, its jobs on their intervals in threads, ends where a one-shot run ends."""
    from coilmap.migrate import upgrade
    from ingestion.scheduler import build_scheduler

    plant = copy_plant(plant_src, tmp_path / "plant", stations=[*TABLES, "CAL-T"], max_frames=3)
    cfg = plant_config(plant, tmp_path / "images")
    ref_url = f"sqlite:///{tmp_path / 'one_shot.sqlite'}"
    upgrade(ref_url)
    ref = make_engine(ref_url)
    try:
        ingest_plant(cfg, engine=ref, detector=detector)
        expected = _rows(ref)
    finally:
        ref.dispose()
    sched = build_scheduler(cfg, engine=engine, detector=detector)
    sched.start()
    try:
        deadline = time.monotonic() + 90
        while not _quiet(engine, len(expected)) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.5)  # a few more runs on an idle plant store nothing
    finally:
        sched.shutdown(wait=True)
    with engine.connect() as c:
        runs = c.execute(select(m.IngestionRun.status, m.IngestionRun.errors)).all()
    got = _rows(engine)
    pd.testing.assert_frame_equal(
        got.drop(columns=["score"]), expected.drop(columns=["score"]), obj=f"observations (runs: {runs})"
    )
    np.testing.assert_allclose(got["score"].fillna(-1), expected["score"].fillna(-1), rtol=1e-5)
    assert len(runs) > len(cfg.stations) and {r.status for r in runs} == {"ok"}, runs


def test_file_being_written_then_grown(engine, plant_src: Path, tmp_path: Path) -> None:
    """A file younger than ``settle_s`` is left for the next run; a table that grows later is
    read again and only its new rows are stored."""
    import os

    plant = copy_plant(plant_src, tmp_path / "plant", stations=["PL-T"])
    table = plant / "stations" / "PL-T" / "defects.csv"
    old = time.time() - 60
    for f in (plant / "stations" / "PL-T").rglob("*"):
        os.utime(f, (old, old))
    os.utime(table)  # just written
    cfg = replace(plant_config(plant, tmp_path / "images"), settle_s=30.0)
    first = ingest_plant(cfg, engine=engine)
    assert first.runs[0].counts.n_skipped == 1 and first.n_observations == 0, first.text()
    os.utime(table, (old, old))
    second = ingest_plant(cfg, engine=engine)
    n_rows = len(table.read_text().splitlines()) - 1
    assert second.n_observations == n_rows, second.text()

    lines = table.read_text().splitlines()
    last = lines[-1].split(";")
    grown = [";".join([str(int(last[0]) + k), *last[1:]]) for k in (1, 2)]
    table.write_text("\n".join([*lines, *grown]) + "\n")
    os.utime(table, (old + 1, old + 1))
    third = ingest_plant(cfg, engine=engine)
    assert third.runs[0].counts.n_files == 1 and third.n_observations == 2, third.text()
    assert len(observation_keys(engine)) == n_rows + 2


def test_file_that_kills_its_workers_is_quarantined(engine, plant_src: Path, tmp_path: Path) -> None:
    """Every try is counted before it starts: a file whose tries never finished (the worker
    was killed each time) is quarantined after ``max_attempts`` instead of killing forever."""
    from sqlalchemy import update

    plant = copy_plant(plant_src, tmp_path / "plant", stations=["PL-T"])
    cfg = replace(plant_config(plant, tmp_path / "images"), max_attempts=3)
    ingest_plant(cfg, engine=engine)
    with engine.begin() as c:  # as if three workers had died on it after the table grew
        c.execute(
            update(m.IngestionFile)
            .where(m.IngestionFile.path == "defects.csv")
            .values(state="new", attempts=3)
        )
        attempts = c.scalar(select(m.IngestionFile.attempts).where(m.IngestionFile.path == "marks.csv"))
    assert attempts == 0  # a file that came through counts anew
    summary = ingest_plant(cfg, engine=engine)
    assert summary.runs[0].status == "ok" and summary.n_quarantined == 1, summary.text()
    with engine.connect() as c:
        q = c.execute(select(m.QuarantinedRecord.kind, m.QuarantinedRecord.reason)).one()
        state = c.scalar(select(m.IngestionFile.state).where(m.IngestionFile.path == "defects.csv"))
    assert q.kind == "error" and "3 earlier attempts" in q.reason and state == "quarantined"
