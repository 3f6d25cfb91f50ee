"""``coilmap bench ingestion``: vendor-table import end to end, its COPY anchor, frame ingestion.

1. A big SurfSpec ``defects.csv`` (``--rows``, default 1,000,000) on the pieces of a small
   simulated plant's PL-T station, positions between each piece's reference marks. One
   ingestion run of that station (read, validate, map labels, re-register, store, record) is
   timed on SQLite and on PostgreSQL (``--postgres`` or ``COILMAP_TEST_POSTGRES_URL``; a
   schema of its own, dropped afterwards).
2. The anchor: the same rows through a bare binary ``COPY`` into a table without indexes.
3. Frames: ``--frames`` frames of the small plant's CAL-T station through the whole job with
   the default models: tiles per second and where the time goes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd


def _big_table(plant: Path, n_rows: int, seed: int = 0, *, shuffled: bool = False) -> Path:
    """A SurfSpec table as a station writes it: pieces pass one after another, each piece's
    defects in the order the strip passes the camera (head first, time rising with the
    position along), ``DefectNo`` counting up. ``shuffled``: the same rows in random order
    (times, pieces and positions uncorrelated), the worst case for every index."""
    sdir = plant / "stations" / "PL-T"
    marks = pd.read_csv(sdir / "marks.csv")
    edges = pd.read_csv(sdir / "edges.csv")
    span = marks.groupby("piece")["x_obs_mm"].agg(["min", "max"])
    half = (edges.groupby("piece")["os_edge_mm"].median() - edges.groupby("piece")["ds_edge_mm"].median()) / 2
    rng = np.random.default_rng(seed)
    pieces = span.index.to_numpy()
    which = np.sort(rng.integers(0, len(pieces), n_rows))
    lo, hi = span["min"].to_numpy()[which], span["max"].to_numpy()[which]
    w = half.reindex(pieces).to_numpy()[which] * 0.9
    x = np.round(rng.uniform(lo, hi), 1)
    labels = np.array(
        ["Crazing", "Sliver/Inclusion", "Scale patch", "Pits", "Rolled-in scale", "Scratch", "Dirt"]
    )
    speed_mm_per_ms = 3.0  # 180 m/min
    # Piece k enters the station when piece k-1 has left it (plus a minute between coils).
    start_ms = np.r_[0.0, np.cumsum(span["max"].to_numpy() / speed_mm_per_ms + 60_000)[:-1]]
    at_ms = start_ms[which] + (x - lo) / speed_mm_per_ms
    order = rng.permutation(n_rows) if shuffled else np.lexsort((at_ms, which))
    t0 = np.datetime64("2026-01-06T06:00:00.000")
    times = (t0 + at_ms[order].astype(np.int64).astype("timedelta64[ms]")).astype(str)
    which, x, w = which[order], x[order], w[order]
    table = pd.DataFrame(
        {
            "DefectNo": np.arange(1, n_rows + 1),
            "CoilId": pieces[which],
            "Surface": "TOP",
            "MdPos_mm": x,
            "CdPos_mm": np.round(rng.uniform(-w, w), 1),
            "Length_mm": np.round(rng.uniform(2, 200, n_rows), 1),
            "Width_mm": np.round(rng.uniform(2, 80, n_rows), 1),
            "Class": labels[rng.integers(0, len(labels), n_rows)],
            "Confidence": np.round(rng.uniform(0.3, 1, n_rows), 3),
            "RoiFile": "",
            "RoiMmPerPxMd": "",
            "RoiMmPerPxCd": "",
            "Timestamp": np.char.add(times, "Z"),
        }
    )
    out = sdir / "defects.csv"
    table.to_csv(out, sep=";", index=False, lineterminator="\n")
    return out


def _pg_schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def _pg_admin(base: str, sql_text: str) -> None:
    import sqlalchemy as sa

    from coilmap.db import make_engine

    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(sql_text))
    finally:
        admin.dispose()


def _table_run(url: str, cfg, label: str, *, fuse: bool = False) -> dict:  # type: ignore[no-untyped-def]
    """One run of the PL-T job without its fusion step (the import: parse, validate, map,
    store, record); then, with ``fuse``, the fusion step the job would run next, timed apart."""
    from coilmap.db import make_engine
    from coilmap.migrate import upgrade
    from ingestion.job import import_events_files, run_station

    upgrade(url)
    engine = make_engine(url)
    try:
        import_events_files(cfg, engine=engine)
        t = time.perf_counter()
        summary = run_station(replace(cfg, fused_model=None), "PL-T", engine=engine)
        seconds = time.perf_counter() - t
        n = summary.counts.n_observations
        print(
            f"{label:<10} {n:>9} observations in {seconds:6.2f} s = {n / seconds:9,.0f} /s   "
            + ", ".join(f"{k} {v:.2f}" for k, v in summary.seconds.items())
        )
        if summary.status != "ok":
            print(f"  run status {summary.status}: {summary.errors}")
        if fuse and cfg.fused_model is not None:
            _fusion_step(engine, cfg.fused_model)
    finally:
        engine.dispose()
    return {"n": n, "seconds": seconds, "rate": n / seconds, "parts": summary.seconds}


def _fusion_step(engine, model_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fusion.apply import apply_unfused
    from fusion.model_file import load

    t = time.perf_counter()
    n = apply_unfused(engine, load(model_path))
    seconds = time.perf_counter() - t
    print(
        f"{'  fusion':<10} {n:>9} observations fused in {seconds:6.2f} s = {n / seconds:9,.0f} /s"
        "   (the job's next step)"
    )


def _copy_anchor(pg_url: str, n_rows: int) -> float:
    """Rows per second of a bare binary COPY of observation-shaped rows (no index, no checks)."""
    import psycopg

    from ingestion.store import _PG_TYPES

    rng = np.random.default_rng(1)
    cols = [
        np.full(n_rows, 1).tolist(),
        rng.integers(1, 50, n_rows).tolist(),
        ["top"] * n_rows,
        *[rng.uniform(0, 1e5, n_rows).tolist() for _ in range(6)],
        [None] * n_rows,
        rng.uniform(0, 1e5, n_rows).tolist(),
        ["Scratch"] * n_rows,
        rng.uniform(0, 1, n_rows).tolist(),
        ["scratches"] * n_rows,
        [None] * n_rows,
        [None] * n_rows,
        [None] * n_rows,
        (np.datetime64("2026-01-06T06:00:00") + np.arange(n_rows).astype("timedelta64[ms]"))
        .astype("datetime64[us]")
        .tolist(),
        [f"PL-T:{i}" for i in range(n_rows)],
        np.full(n_rows, 1).tolist(),
    ]
    rows = list(zip(*cols, strict=True))
    url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as con, con.cursor() as cur:
        cur.execute("""CREATE TEMP TABLE anchor (station_id integer, piece_id bigint, side varchar(6),
            x_mm double precision, y_mm double precision, x0_mm double precision, y0_mm double precision,
            x1_mm double precision, y1_mm double precision, geometry_wkt text, x_obs_mm double precision,
            station_label varchar(64), station_confidence double precision, plant_class varchar(64),
            anomaly_score double precision, image_ref varchar(1024), heatmap_ref varchar(1024),
            observed_at timestamp, source_key varchar(255), ingestion_run_id bigint)""")
        t = time.perf_counter()
        with cur.copy("COPY anchor FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_PG_TYPES)
            for row in rows:
                copy.write_row(row)
        con.commit()
        seconds = time.perf_counter() - t
    rate = n_rows / seconds
    print(
        f"{'COPY':<10} {n_rows:>9} rows in {seconds:6.2f} s = {rate:9,.0f} /s   (bare binary COPY, no index)"
    )
    return rate


def _table_floor(pg_url: str) -> float:
    """Rows per second of a binary COPY of the stored rows straight back into the coil model's
    ``observations`` table (its indexes, constraints and foreign keys), rolled back: what
    PostgreSQL itself needs per row of this table, with no parsing, validation or mapping."""
    import psycopg

    from ingestion.store import OBS_COLUMNS

    # Column names from the constant tuple (not from input): the COPY statements are fixed.
    cols = ", ".join(OBS_COLUMNS)
    url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as con, con.cursor() as cur:
        buf = bytearray()
        with cur.copy(f"COPY (SELECT {cols} FROM observations) TO STDOUT (FORMAT BINARY)") as copy:
            for block in copy:
                buf += block
        n = cur.execute("SELECT count(*) FROM observations").fetchone()[0]
        cur.execute("TRUNCATE observations CASCADE")
        t = time.perf_counter()
        with cur.copy(f"COPY observations ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(bytes(buf))
        seconds = time.perf_counter() - t
        con.rollback()
    rate = n / seconds
    print(
        f"{'COPY obs':<10} {n:>9} rows in {seconds:6.2f} s = {rate:9,.0f} /s   (the same rows COPYed "
        "straight into observations: indexes, foreign keys)"
    )
    return rate


def _frames(work: Path, n_frames: int) -> None:
    from coilmap.db import make_engine
    from coilmap.migrate import upgrade
    from ingestion.config import config_from_plant
    from ingestion.job import import_events_files, run_station
    from plant.run import simulate_to

    plant = work / "plant_images"
    simulate_to(plant, size="small", seed=1)
    frames = plant / "stations" / "CAL-T" / "frames"
    for p in sorted(frames.glob("*.png"))[n_frames:]:
        p.unlink()
        p.with_suffix(".json").unlink()
    cfg = replace(config_from_plant(plant, image_root=work / "images"), settle_s=0.0)
    url = f"sqlite:///{work / 'frames.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        import_events_files(cfg, engine=engine)
        t = time.perf_counter()
        s = run_station(cfg, "CAL-T", engine=engine)
        seconds = time.perf_counter() - t
    finally:
        engine.dispose()
    print(
        f"frames     {s.counts.n_files - 1} frames, {s.n_tiles} tiles, {s.counts.n_observations} observations"
        f" in {seconds:.2f} s = {s.n_tiles / seconds:.1f} tiles/s ({s.status})"
    )
    total = sum(s.seconds.values())
    for k, v in sorted(s.seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<16} {v:7.2f} s  {100 * v / seconds:5.1f} %")
    print(
        f"  {'other':<16} {seconds - total:7.2f} s  {100 * (seconds - total) / seconds:5.1f} %"
        "  (imports, genealogy and mark lookups, sightings, manifest, claims, run records)"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="coilmap bench ingestion", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--postgres", default=os.environ.get("COILMAP_TEST_POSTGRES_URL"))
    ap.add_argument("--frames", type=int, default=25, help="frames for the frame benchmark (0: skip)")
    ap.add_argument("--no-fusion", dest="fusion", action="store_false", help="skip timing the fusion step")
    ap.add_argument(
        "--shuffled", action="store_true", help="rows in random order (worst case) instead of as written"
    )
    args = ap.parse_args(argv)

    from ingestion.config import config_from_plant
    from plant.run import simulate_to

    work = Path(tempfile.mkdtemp(prefix="coilmap-bench-ingest-"))
    try:
        plant = work / "plant"
        simulate_to(plant, size="small", seed=1, images=False)
        t = time.perf_counter()
        _big_table(plant, args.rows, shuffled=args.shuffled)
        print(
            f"table: {args.rows:,} rows written in {time.perf_counter() - t:.1f} s "
            f"({(plant / 'stations/PL-T/defects.csv').stat().st_size / 1e6:.0f} MB)"
        )
        cfg = config_from_plant(plant, image_root=work / "images")
        cfg = replace(cfg, stations=tuple(s for s in cfg.stations if s.code == "PL-T"), settle_s=0.0)
        results = {"sqlite": _table_run(f"sqlite:///{work / 'bench.sqlite'}", cfg, "SQLite")}
        if args.postgres:
            base = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
            schema, url = _pg_schema_url(base)
            _pg_admin(base, f'CREATE SCHEMA "{schema}"')
            try:
                results["postgresql"] = _table_run(url, cfg, "PostgreSQL", fuse=args.fusion)
                anchor = _copy_anchor(url, args.rows)
                floor = _table_floor(url)
            finally:
                _pg_admin(base, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            pg = results["postgresql"]["rate"]
            print(
                f"PostgreSQL end to end / bare COPY = {pg / anchor:.3f}; "
                f"end to end / COPY into observations = {pg / floor:.2f}; "
                f"SQLite / PostgreSQL = {results['sqlite']['rate'] / pg:.2f}"
            )
        else:
            print("PostgreSQL skipped (give --postgres URL or set COILMAP_TEST_POSTGRES_URL)")
        if args.frames:
            _frames(work, args.frames)
    finally:
        shutil.rmtree(work, ignore_errors=True)
