"""Crashes: a worker killed with SIGKILL in the middle of a batch, the database going away
in the middle of a batch. Afterwards exactly the expected observations are stored, once."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from coilmap import models as m
from coilmap.db import make_engine
from coilmap.migrate import upgrade
from ingestion import failpoints
from ingestion.job import run_station
from ingestion.plant import ingest_plant
from tests.ingestion.helpers import copy_plant, observation_keys, plant_config

pytestmark = pytest.mark.db
REPO = Path(__file__).resolve().parents[2]
STATIONS = ["PL-T", "CAL-T"]

WORKER = """
import sys
from dataclasses import replace
from pathlib import Path
from coilmap.db import make_engine
from ingestion.plant import ingest_plant
from tests.ingestion.helpers import plant_config, tiny_detector
url, plant, images, frames = sys.argv[1:5]
cfg = replace(plant_config(Path(plant), Path(images)), batch_files=2)
det = tiny_detector(Path(frames))
print(ingest_plant(cfg, engine=make_engine(url), detector=det).text())
"""


def _reference_keys(plant: Path, detector, tmp_path: Path) -> set[str]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    upgrade(url)
    ref = make_engine(url)
    try:
        ingest_plant(plant_config(plant, tmp_path / "ref_images"), engine=ref, detector=detector)
        return set(observation_keys(ref))
    finally:
        ref.dispose()


def _consistent(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(observations stored, observations the manifest's done files account for)."""
    with engine.connect() as c:
        stored = c.scalar(select(func.count()).select_from(m.Observation))
        done = c.scalar(select(func.coalesce(func.sum(m.IngestionFile.n_observations), 0)))
    return int(stored), int(done)


def test_kill_9_mid_batch_then_restart(
    db_url: str, engine, plant_src: Path, detector, tmp_path: Path
) -> None:
    plant = copy_plant(plant_src, tmp_path / "plant", stations=STATIONS, max_frames=4)
    expected = _reference_keys(plant, detector, tmp_path)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COILMAP_FAILPOINTS": "before_commit=kill@3"}
    args = [
        sys.executable,
        str(script),
        db_url,
        str(plant),
        str(tmp_path / "images"),
        str(plant_src / "stations" / "HSM-T" / "frames"),
    ]
    proc = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    # Two batches were committed, the third died with its worker: the store holds whole
    # batches only, and the manifest agrees with it.
    stored, done = _consistent(engine)
    assert stored == done and set(observation_keys(engine)) < expected
    with engine.connect() as c:
        assert "running" in set(c.scalars(select(m.IngestionRun.status)))  # the killed run, as it was

    summary = ingest_plant(
        replace(plant_config(plant, tmp_path / "images"), batch_files=2), engine=engine, detector=detector
    )
    assert all(r.status == "ok" for r in summary.runs), summary.text()
    keys = observation_keys(engine)
    assert len(keys) == len(set(keys)) and set(keys) == expected
    assert _consistent(engine)[0] == len(expected)
    # The next run on this host saw that the killed worker's process is gone and closed its run.
    with engine.connect() as c:
        statuses = list(c.execute(select(m.IngestionRun.status, m.IngestionRun.errors)))
    assert "running" not in {st for st, _ in statuses}
    assert any(st == "killed" and "ended without closing" in errors[0] for st, errors in statuses)


# --- the database going away ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture
def throwaway_postgres() -> Iterator[tuple[str, object, object]]:
    """A PostgreSQL cluster of our own (initdb + pg_ctl on a free loopback port): the test
    may stop and start it. Never the shared server."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not bins:
        pytest.skip("no PostgreSQL server binaries (pg_ctl) on this machine")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="coilmap-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()

    def run(*a: str) -> None:
        subprocess.run(
            _as_postgres([str(bindir / a[0]), *a[1:]]),
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )

    run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start() -> None:
        run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start")

    def stop() -> None:
        run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")

    try:
        start()
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", start, stop
    finally:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_database_goes_away_mid_batch(throwaway_postgres, plant_src: Path, detector, tmp_path: Path) -> None:
    url, start, stop = throwaway_postgres
    plant = copy_plant(plant_src, tmp_path / "plant", stations=STATIONS, max_frames=3)
    expected = _reference_keys(plant, detector, tmp_path)
    cfg = replace(plant_config(plant, tmp_path / "images"), batch_files=2)
    upgrade(url)
    engine = make_engine(url)
    outage: list[float] = []

    def go_away() -> None:  # in the middle of the second batch: stop the server, start it again
        if len(outage) == 1:
            t = time.monotonic()
            stop()
            time.sleep(3.0)
            start()
            outage.append(time.monotonic() - t)
        else:
            outage.append(0.0)

    try:
        failpoints.arm("before_commit", go_away)
        try:
            first = ingest_plant(cfg, engine=engine, detector=detector)
        finally:
            failpoints.disarm("before_commit")
        failed = [r for r in first.runs if r.status == "failed"]
        assert len(failed) == 1 and "nothing of it stored" in " ".join(failed[0].errors), first.text()
        stored, done = _consistent(engine)
        assert stored == done and set(observation_keys(engine)) < expected

        # Down at the start of a run: the run says so and stops; no exception, no crash loop.
        stop()
        try:
            down = run_station(cfg, "PL-T", engine=engine)
        finally:
            start()
        assert down.status == "failed" and "database unavailable" in down.errors[0]

        again = ingest_plant(cfg, engine=engine, detector=detector)
        assert all(r.status == "ok" for r in again.runs), again.text()
        keys = observation_keys(engine)
        assert len(keys) == len(set(keys)) and set(keys) == expected
    finally:
        engine.dispose()
