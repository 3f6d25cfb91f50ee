"""A corpus of bad exports (63 inputs, 13 kinds) beside good ones: every bad input is
quarantined with its reason, every good record beside it is stored, nothing in the export
folders changes, and the job never fails."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from coilmap import models as m
from coilmap.db import make_engine
from coilmap.migrate import upgrade
from ingestion.plant import ingest_plant
from tests.ingestion.helpers import copy_plant, observation_keys, plant_config

pytestmark = pytest.mark.db

STATIONS = ["PL-T", "SL-T", "CAL-T"]


def _bad_rows(good: pd.DataFrame, roi_dir: Path) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """A SurfSpec table: 3 good rows and 35 bad ones; expected kind by source key."""
    rows, expected, good_keys = [], {}, []
    no = 9000
    base = good.iloc[0].to_dict()

    def add(kind: str | None, **change: object) -> None:
        nonlocal no
        no += 1
        r = {**base, "DefectNo": no, **change}
        rows.append(r)
        if kind:
            expected[f"PL-T:{r['DefectNo']}"] = kind
        else:
            good_keys.append(f"PL-T:{no}")

    for i in range(3):
        add(None, MdPos_mm=good.iloc[i]["MdPos_mm"], CoilId=good.iloc[i]["CoilId"], RoiFile="")
    for v in ("abc", "1,5", "--3"):
        add("bad_value", MdPos_mm=v)
    for v in ("nan", "inf", ""):
        add("bad_value", CdPos_mm=v)
    for v in (-1.0, -500.0, -1e6):
        add("bad_position", MdPos_mm=v)
    for v in (1e9, 5e8, 2e9):
        add("beyond_piece", MdPos_mm=v)
    for p in ("ZZ001", "ZZ002", "ZZ003"):
        add("unknown_piece", CoilId=p)
    for c in ("Alien", "crazing ", "Scratches"):
        add("unknown_class", Class=c)
    for s in ("BOTTOM", "BOTTOM", "B"):
        add("wrong_side", Surface=s)
    for t in ("yesterday", "2026-13-45T00:00:00Z", "noon"):
        add("bad_value", Timestamp=t)
    for c in (7, -0.5, 1.5):
        add("bad_value", Confidence=c)
    for i in range(3):  # a duplicate record number in the same file (of a good row)
        rows.append({**rows[i], "Class": "Scratch"})
        expected[f"PL-T:{rows[i]['DefectNo']}:dup@{len(rows) + 1}"] = "duplicate"
    for i in range(3):  # corrupt ROI images: the record is kept, its image quarantined
        name = f"roi/bad{i}.png"
        (roi_dir / f"bad{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(50)) if i else b"garbage")
        add(None, RoiFile=name)
        expected[f"PL-T:{no}:roi"] = "corrupt_image"
    for i in range(2):
        add(None, RoiFile=f"roi/missing{i}.png")
        expected[f"PL-T:{no}:roi"] = "missing_image"
    return pd.DataFrame(rows), expected, good_keys


def _bad_frames(fdir: Path, src: Path) -> dict[str, str]:
    """Bad frames beside the good ones: expected kind by frame file name."""
    png = sorted(src.glob("*.png"))[0]
    meta = json.loads(png.with_suffix(".json").read_text())
    data = png.read_bytes()
    expected = {}

    def frame(name: str, kind: str, image: bytes | None, sidecar: object) -> None:
        if image is not None:
            (fdir / f"{name}.png").write_bytes(image)
        if sidecar is not None:
            text = sidecar if isinstance(sidecar, str) else json.dumps(sidecar)
            (fdir / f"{name}.json").write_text(text)
        expected[f"frames/{name}.png"] = kind

    for i in range(3):
        frame(f"bad_corrupt{i}", "corrupt_image", bytes(range(200)) * (i + 1), meta)
        frame(f"bad_truncated{i}", "corrupt_image", data[: len(data) // (i + 2)], meta)
        frame(f"bad_nosidecar{i}", "missing_sidecar", data, None)
        frame(f"bad_json{i}", "bad_sidecar", data, '{"piece": "A00001", "x0_obs_mm": ' + "1" * i)
        frame(f"bad_station{i}", "unknown_station", data, {**meta, "station": f"XX-{i}"})
    for i in range(2):
        frame(
            f"bad_field{i}",
            "bad_sidecar",
            data,
            {k: v for k, v in meta.items() if k != ("rows", "mm_per_px_x")[i]},
        )
        frame(f"bad_negative{i}", "bad_position", data, {**meta, "x0_obs_mm": -100.0 * (i + 1)})
        frame(f"bad_beyond{i}", "beyond_piece", data, {**meta, "x0_obs_mm": 5e8 * (i + 1)})
        frame(f"bad_piece{i}", "unknown_piece", data, {**meta, "piece": f"NOPE{i}"})
    return expected


def test_bad_corpus_quarantined_good_stored(engine, plant_src: Path, detector, tmp_path: Path) -> None:
    clean = copy_plant(plant_src, tmp_path / "clean", stations=STATIONS, max_frames=4)
    ref_url = f"sqlite:///{tmp_path / 'ref.sqlite'}"
    upgrade(ref_url)
    ref = make_engine(ref_url)
    try:
        ingest_plant(plant_config(clean, tmp_path / "ref_images"), engine=ref, detector=detector)
        clean_keys = set(observation_keys(ref))
    finally:
        ref.dispose()

    plant = copy_plant(plant_src, tmp_path / "plant", stations=STATIONS, max_frames=4)
    pl = plant / "stations" / "PL-T"
    table, expected_rows, good_keys = _bad_rows(pd.read_csv(pl / "defects.csv", sep=";"), pl / "roi")
    table.to_csv(pl / "defects_extra.csv", sep=";", index=False)
    header = (pl / "defects.csv").read_text().splitlines()[0]
    expected_files = {}
    for name, text in (
        ("defects_nocoil.csv", header.replace("CoilId;", "")),
        ("defects_noclass.csv", header.replace("Class;", "")),
        ("defects_empty.csv", ""),
    ):
        (pl / name).write_text(text + "\n")
        expected_files[f"PL-T/{name}"] = "bad_table"
    sl = plant / "stations" / "SL-T"
    (sl / "garbage.sqlite").write_bytes(b"this is not a database" * 50)
    con = sqlite3.connect(sl / "empty.sqlite")
    con.execute("CREATE TABLE other (x)")
    con.commit()
    con.close()
    expected_files.update({"SL-T/garbage.sqlite": "bad_table", "SL-T/empty.sqlite": "bad_table"})
    expected_frames = _bad_frames(
        plant / "stations" / "CAL-T" / "frames", plant_src / "stations" / "CAL-T" / "frames"
    )
    n_bad = len(expected_rows) + len(expected_files) + len(expected_frames)
    kinds = set(expected_rows.values()) | set(expected_files.values()) | set(expected_frames.values())
    assert n_bad >= 50 and len(kinds) >= 10, (n_bad, kinds)
    before = {p: p.stat().st_mtime_ns for p in (plant / "stations").rglob("*")}

    cfg = replace(plant_config(plant, tmp_path / "images"), pending_grace_s=0.0)
    first = ingest_plant(cfg, engine=engine, detector=detector)
    assert all(r.status == "ok" for r in first.runs), first.text()
    time.sleep(1.1)  # unknown pieces waited; past the grace period they are quarantined
    second = ingest_plant(cfg, engine=engine, detector=detector)
    assert all(r.status == "ok" for r in second.runs), second.text()

    with engine.connect() as c:
        q = c.execute(
            select(
                m.QuarantinedRecord.path,
                m.QuarantinedRecord.source_key,
                m.QuarantinedRecord.kind,
                m.QuarantinedRecord.reason,
                m.Station.code,
            ).join(m.Station, m.Station.id == m.QuarantinedRecord.station_id)
        ).all()
    by_key = {r.source_key: r for r in q if r.source_key}
    for key, kind in expected_rows.items():
        assert key in by_key, f"{key} ({kind}) not quarantined"
        assert by_key[key].kind == kind and by_key[key].reason, (key, by_key[key])
    by_file = {f"{r.code}/{r.path}": r for r in q}
    for path, kind in {**expected_files, **{f"CAL-T/{p}": k for p, k in expected_frames.items()}}.items():
        assert path in by_file, f"{path} ({kind}) not quarantined"
        assert by_file[path].kind == kind and by_file[path].reason, (path, by_file[path])
    assert len(q) == n_bad, sorted((r.code, r.path, r.kind) for r in q)

    keys = set(observation_keys(engine))
    assert clean_keys <= keys
    assert keys - clean_keys == set(good_keys)
    assert {p: p.stat().st_mtime_ns for p in (plant / "stations").rglob("*")} == before
    shutil.rmtree(tmp_path / "images", ignore_errors=True)
