"""Benchmark: the central coil map query of a piece with 100,000 observations.

The plant: two hot coils (HSM, top and bottom stations) are cropped and welded into one pickled
strip (PL, top station), cold rolled 2.5 times longer (TCM, top and bottom stations), turned
over on the annealing line's payoff reel, edge-trimmed (inspection line, top station) and cut
into two final coils. The coil map of the first final coil reads every observation of its
ancestors: 6 stations, pieces on 4 generations above it, 100,000 observations (those on the
part that went to the second coil come back as ``removed:cut``).

Each timed run opens a session, reads the genealogy and the observations and maps them into
the final coil's frame (``tracking.coil_map.coil_map``), exactly as ``coilmap coil map`` does.

    .venv/bin/python benchmarks/bench_coil_map_query.py \\
        --url sqlite:////tmp/bench.sqlite --url postgresql://postgres@127.0.0.1:5432/test

A PostgreSQL URL gets a schema of its own for the run (dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np
import sqlalchemy as sa

from coilmap.db import make_engine, session_factory, transaction
from coilmap.migrate import upgrade
from tracking.coil_map import build_coil_map
from tracking.events import parse_events
from tracking.store import create_observations, create_station, import_events, load_genealogy

CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
TARGET = "F1"

# (station, line, side, piece it inspects, share of the observations)
STATIONS = (
    ("HSM-T", "HSM", "top", "H1", 0.10),
    ("HSM-B", "HSM", "bottom", "H2", 0.10),
    ("PL-T", "PL", "top", "P1", 0.20),
    ("TCM-T", "TCM", "top", "C1", 0.20),
    ("TCM-B", "TCM", "bottom", "C1", 0.20),
    ("INS-T", "INS", "top", "A1", 0.20),
)


def plant_events() -> list[str]:
    events = [
        {"op": "create", "piece": "H1", "length_mm": 420_000, "width_mm": 1250, "thickness_mm": 3.5,
         "grade": "DC04", "line": "HSM", "at": "2026-11-01T06:00:00Z"},
        {"op": "create", "piece": "H2", "length_mm": 380_000, "width_mm": 1250, "thickness_mm": 3.5,
         "grade": "DC04", "line": "HSM", "at": "2026-11-01T06:05:00Z"},
        {"op": "crop", "input": "H1", "output": "H1c", "head_mm": 2500, "tail_mm": 1800, "line": "PL"},
        {"op": "crop", "input": "H2", "output": "H2c", "head_mm": 2200, "tail_mm": 1500, "line": "PL"},
        {"op": "weld", "inputs": ["H1c", "H2c"], "output": "P1", "line": "PL"},
        {"op": "elongate", "input": "P1", "output": "C1", "factor": 2.5, "line": "TCM"},
        {"op": "orient", "input": "C1", "output": "C1o", "how": "flip_cross", "line": "CAL"},
        {"op": "trim", "input": "C1o", "output": "A1", "os_mm": 20, "ds_mm": 25, "line": "INS"},
    ]
    a1_length_mm = (415_700 + 376_300) * 2.5
    split_mm = round(a1_length_mm * 0.55)
    events.append(
        {"op": "cut", "input": "A1", "line": "CTL",
         "outputs": [{"piece": "F1", "from_mm": 0, "to_mm": split_mm},
                     {"piece": "F2", "from_mm": split_mm, "to_mm": a1_length_mm}]}
    )
    return [json.dumps(e) for e in events]


def observations(n_total: int, lengths_mm: dict[str, tuple[float, float]], seed: int = 7):
    """``n_total`` synthetic observations spread over the stations; half of them boxes."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    counts = [int(round(share * n_total)) for *_, share in STATIONS]
    counts[-1] += n_total - sum(counts)
    for (code, _line, side, piece, _share), n in zip(STATIONS, counts, strict=True):
        length_mm, width_mm = lengths_mm[piece]
        x = rng.uniform(0.0, length_mm, n)
        y = rng.uniform(-width_mm / 2 + 5, width_mm / 2 - 5, n)
        is_box = rng.random(n) < 0.5
        dx = np.where(is_box, rng.uniform(2.0, 40.0, n), 0.0)
        dy = np.where(is_box, rng.uniform(2.0, 20.0, n), 0.0)
        labels = rng.integers(0, len(CLASSES), n)
        conf = rng.uniform(0.3, 1.0, n)
        score = rng.uniform(0.0, 5.0, n)
        for i in range(n):
            yield {
                "station": code, "piece": piece, "side": side,
                "x_mm": float(x[i]), "y_mm": float(y[i]),
                "x0_mm": float(x[i] - dx[i]), "x1_mm": float(x[i] + dx[i]),
                "y0_mm": float(y[i] - dy[i]), "y1_mm": float(y[i] + dy[i]),
                "station_label": f"V{labels[i]}", "station_confidence": float(conf[i]),
                "plant_class": CLASSES[labels[i]], "anomaly_score": float(score[i]),
                "image_ref": f"{code}/20261101/{piece}_{i:06d}.png",
                "observed_at": t0 + timedelta(seconds=float(x[i]) / 1000.0),
                "source_key": f"{code}:{piece}:{i}",
            }  # fmt: skip


def storage_mb(engine: sa.Engine) -> dict[str, float]:
    """Size of the observations table and of the coil map's covering index (MB)."""
    names = ("observations", "ix_observations_coil_map")
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            stmt = sa.text("SELECT name, SUM(pgsize) FROM dbstat WHERE name IN :names GROUP BY name")
            stmt = stmt.bindparams(sa.bindparam("names", expanding=True))
            sizes = dict(conn.execute(stmt, {"names": list(names)}).all())
        else:
            stmt = sa.text("SELECT pg_relation_size(CAST(:name AS regclass))")
            sizes = {name: conn.execute(stmt, {"name": name}).scalar_one() for name in names}
    return {f"{name}_mb": round(sizes[name] / 1e6, 1) for name in names}


@contextmanager
def own_database(url: str) -> Iterator[str]:
    """``url`` itself for SQLite (the file is replaced); a fresh schema on PostgreSQL."""
    if url.startswith("sqlite:///") and url != "sqlite://":
        path = Path(url[len("sqlite:///"):])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.schema.CreateSchema(schema))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.schema.DropSchema(schema, cascade=True))
        admin.dispose()


def run(url: str, *, n_observations: int, repeats: int) -> dict[str, object]:
    with own_database(url) as db_url:
        upgrade(db_url)
        engine = make_engine(db_url)
        try:
            t = time.perf_counter()
            with transaction(engine) as session:
                ops = parse_events(plant_events(), "bench.jsonl")
                import_events(ops, session=session, source="bench.jsonl")
                for code, line, side, _piece, _share in STATIONS:
                    create_station(code, line=line, side=side, session=session)
            with session_factory(engine)() as session:
                g = load_genealogy(TARGET, session=session, descendants=False)
            lengths = {p: (g.pieces[p].length_mm, g.pieces[p].width_mm) for p in g.pieces}
            rows = list(observations(n_observations, lengths))
            with transaction(engine) as session:
                create_observations(rows, session=session)
            store_s = time.perf_counter() - t
            if engine.dialect.name == "postgresql":
                # What autovacuum does soon after a bulk load: statistics for the planner and
                # the visibility map that lets the coil map read the covering index alone.
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(sa.text("VACUUM ANALYZE observations"))

            timings: dict[bool, list[float]] = {False: [], True: []}
            cpu_ms: list[float] = []
            steps: dict[str, list[float]] = {}
            for with_images in (False, True):
                for _ in range(repeats if not with_images else max(3, repeats // 3)):
                    t, c = time.perf_counter(), time.process_time()
                    with session_factory(engine)() as session:
                        cmap = build_coil_map(TARGET, session=session, with_images=with_images)
                    timings[with_images].append((time.perf_counter() - t) * 1000.0)
                    if not with_images:
                        cpu_ms.append((time.process_time() - c) * 1000.0)
                        for step, ms in cmap.timings_ms.items():
                            steps.setdefault(step, []).append(ms)
                    frame = cmap.observations
                    assert len(frame) == n_observations, len(frame)
            status = {str(k): int(v) for k, v in frame["status"].value_counts().items()}
            sizes = storage_mb(engine)
        finally:
            engine.dispose()
    arr = np.array(timings[False])
    images = np.array(timings[True])
    return {
        "backend": make_engine(url).dialect.name,
        "observations": n_observations,
        "stations": len(STATIONS),
        "store_s": round(store_s, 2),
        "repeats": repeats,
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p95_ms": round(float(np.percentile(arr, 95)), 1),
        "max_ms": round(float(arr.max()), 1),
        "first_ms": round(float(arr[0]), 1),
        # CPU time of this process alone (the database server's work on PostgreSQL excluded):
        # what the query costs the client when it does not wait for a busy machine.
        "client_cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 1),
        "steps_p50_ms": {step: round(float(np.median(ms)), 1) for step, ms in steps.items()},
        "with_images_p50_ms": round(float(np.percentile(images, 50)), 1),
        "with_images_p95_ms": round(float(np.percentile(images, 95)), 1),
        "status": status,
        **sizes,
        "load_avg_1min": round(os.getloadavg()[0], 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True, help="database URL (repeatable)")
    parser.add_argument("--observations", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    print(f"# {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
          f"sqlalchemy {sa.__version__}")
    for url in args.url:
        result = run(url, n_observations=args.observations, repeats=args.repeats)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
