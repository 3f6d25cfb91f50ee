"""A small but realistic coil model for the dashboard's tests and benchmark.

Until the plant simulator and the ingestion jobs fill the demo database, this builds one the
same way they will: migrations, tracking events through :func:`tracking.store.import_events`
(hot coil -> crop -> weld -> trim -> elongate -> cut), stations with vendor label maps,
observations of *physical* defects that persist from line to line (each station sees them
where the genealogy maps put them, with a little position noise) plus pseudo-defects seen once,
small PNG images under an image root, ingestion runs and quarantined records.

``build(url, image_root)`` returns a :class:`SampleInfo` naming what it made, so tests can
assert against known pieces and observations. ``big_coil`` adds one more coil with a given
number of observations (the benchmark's 100,000).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import MetaData, Table, bindparam, insert, select, update

from coilmap import models as m
from coilmap.db import make_engine, transaction
from coilmap.migrate import upgrade
from tracking.events import Operation, parse_events
from tracking.genealogy import Genealogy
from tracking.store import create_observations, create_station, import_events

PLANT_CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
# Each vendor names the plant classes its own way (DOMAIN.md: the mapping is configuration).
VENDOR_LABELS = {
    "hsm": ("CRZ", "INC", "PAT", "PIT", "RIS", "SCR"),
    "cold": ("craze", "incl", "patch", "pit", "scale", "scratch"),
}
# (station, line, side, vendor labels, frame of which piece role it sees)
STATIONS = (
    ("HSM-T", "HSM", "top", "hsm", "hot"),
    ("HSM-B", "HSM", "bottom", "hsm", "hot"),
    ("PL-T", "PL", "top", "cold", "welded"),
    ("TCM-T", "TCM", "top", "cold", "rolled"),
    ("TCM-B", "TCM", "bottom", "cold", "rolled"),
    ("INSP-T", "INSP", "top", "cold", "final"),
    ("INSP-B", "INSP", "bottom", "cold", "final"),
)
# Stations that export images (the detection pipeline scores them and writes heatmaps).
IMAGE_STATIONS = {code for code, _, _, vendor, _ in STATIONS if vendor == "cold"}
START = datetime(2026, 10, 5, 6, 0, tzinfo=UTC)
IMAGE_PX = 64


@dataclass
class SampleInfo:
    """What :func:`build` stored."""

    hot_coils: list[str] = field(default_factory=list)
    final_coils: list[str] = field(default_factory=list)
    n_observations: int = 0
    big_coil: str | None = None
    # A persistent defect seen by several stations: (final coil, observation ids of it).
    shared_defect: tuple[str, list[int]] | None = None


def _events(group: int, at: datetime, hot_length_mm: float) -> list[dict]:
    g = f"G{group}"
    a, b = f"{g}-H1", f"{g}-H2"
    t = lambda h: (at + timedelta(hours=h)).isoformat()  # noqa: E731
    grade = ("DC01", "DC04", "S235")[group % 3]
    welded = f"{g}-S"
    crop_a, crop_b = f"{a}c", f"{b}c"
    length_after = (2 * hot_length_mm - 2 * 3000.0 - 2 * 2000.0) * 2.5
    third = length_after / 3.0
    return [
        {
            "op": "create",
            "piece": a,
            "length_mm": hot_length_mm,
            "width_mm": 1250.0,
            "thickness_mm": 4.0,
            "grade": grade,
            "line": "HSM",
            "at": t(0),
            "coil_no": f"{group}01",
        },
        {
            "op": "create",
            "piece": b,
            "length_mm": hot_length_mm,
            "width_mm": 1240.0,
            "thickness_mm": 4.0,
            "grade": grade,
            "line": "HSM",
            "at": t(1),
            "coil_no": f"{group}02",
        },
        {
            "op": "mark",
            "piece": a,
            "mark": f"{a}-hole1",
            "kind": "hole",
            "x_mm": hot_length_mm * 0.3,
            "y_mm": 400.0,
            "at": t(1),
        },
        {
            "op": "crop",
            "input": a,
            "output": crop_a,
            "head_mm": 3000.0,
            "tail_mm": 2000.0,
            "line": "PL",
            "at": t(20),
        },
        {
            "op": "crop",
            "input": b,
            "output": crop_b,
            "head_mm": 3000.0,
            "tail_mm": 2000.0,
            "line": "PL",
            "at": t(20),
        },
        {"op": "weld", "inputs": [crop_a, crop_b], "output": welded, "line": "PL", "at": t(21)},
        {
            "op": "trim",
            "input": welded,
            "output": f"{welded}t",
            "os_mm": 20.0,
            "ds_mm": 30.0,
            "line": "PL",
            "at": t(21),
        },
        {
            "op": "elongate",
            "input": f"{welded}t",
            "output": f"{welded}e",
            "factor": 2.5,
            "line": "TCM",
            "at": t(40),
        },
        {
            "op": "cut",
            "input": f"{welded}e",
            "line": "INSP",
            "at": t(60),
            "outputs": [
                {"piece": f"{g}-C{k + 1}", "from_mm": k * third, "to_mm": (k + 1) * third - 500.0 * (k == 2)}
                for k in range(3)
            ],
        },
    ]


def _write_png(path: Path, cls_index: int, rng: np.random.Generator) -> None:
    """A grey strip-surface patch with a class-dependent blemish (stripes, blobs, dots...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = rng.normal(128, 12, (IMAGE_PX, IMAGE_PX))
    yy, xx = np.mgrid[0:IMAGE_PX, 0:IMAGE_PX]
    if cls_index in (0, 5):  # crazing, scratches: lines
        img[(xx + cls_index * yy // 5) % 16 < 2] -= 70
    elif cls_index in (1, 2):  # inclusion, patches: a blob
        img[(xx - 32) ** 2 + (yy - 32) ** 2 < (8 + 6 * cls_index) ** 2] += 60
    else:  # pits and scale: dots
        img[rng.random((IMAGE_PX, IMAGE_PX)) < 0.05] -= 80
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L").save(path)


def _setup_stations(session) -> None:  # type: ignore[no-untyped-def]
    for code, line, side, vendor, _ in STATIONS:
        create_station(
            code,
            line=line,
            side=side,
            session=session,
            vendor=vendor,
            export_kind="images" if vendor == "cold" else "defect_table",
            label_map=dict(zip(VENDOR_LABELS[vendor], PLANT_CLASSES, strict=True)),
        )


def build(
    url: str,
    image_root: Path,
    *,
    groups: int = 4,
    defects_per_hot_coil: int = 12,
    pseudo_per_station: int = 8,
    seed: int = 7,
    big_coil: int | None = None,
) -> SampleInfo:
    """Migrate ``url`` and fill it; images go under ``image_root``."""
    rng = np.random.default_rng(seed)
    upgrade(url)
    engine = make_engine(url)
    info = SampleInfo()
    try:
        with transaction(engine) as session:
            _setup_stations(session)
        for g in range(groups):
            at = START + timedelta(days=7 * g)
            recs = _events(g, at, hot_length_mm=80_000.0)
            ops = parse_events([json.dumps(r) for r in recs], source=f"sample-G{g}.jsonl")
            with transaction(engine) as session:
                import_events(ops, session=session, source=f"sample-G{g}.jsonl")
                rows = _observations(ops, at, g, rng, image_root, defects_per_hot_coil, pseudo_per_station)
                info.n_observations += create_observations(rows, session=session)
                _add_heatmaps(session, rows, image_root)
            info.hot_coils += [f"G{g}-H1", f"G{g}-H2"]
            info.final_coils += [f"G{g}-C{k}" for k in (1, 2, 3)]
        with transaction(engine) as session:
            _ingestion(session, groups)
            info.shared_defect = _shared_defect(session)
        if big_coil:
            info.big_coil = add_big_coil(engine, big_coil, rng)
            info.n_observations += big_coil
    finally:
        engine.dispose()
    return info


def _observations(
    ops: list[Operation],
    at: datetime,
    g: int,
    rng: np.random.Generator,
    image_root: Path,
    n_real: int,
    n_pseudo: int,
) -> list[dict]:
    gen = Genealogy.from_operations(ops)
    roles = {
        "hot": [f"G{g}-H1", f"G{g}-H2"],
        "welded": [f"G{g}-S"],
        "rolled": [f"G{g}-Se"],
        "final": [f"G{g}-C{k}" for k in (1, 2, 3)],
    }
    hours = {"hot": 0, "welded": 21, "rolled": 40, "final": 60}
    rows: list[dict] = []
    for hot in roles["hot"]:
        piece = gen.piece(hot)
        x = rng.uniform(0, piece.length_mm, n_real)
        y = rng.uniform(-piece.width_mm / 2 * 0.97, piece.width_mm / 2 * 0.97, n_real)
        cls = rng.integers(0, len(PLANT_CLASSES), n_real)
        top = rng.random(n_real) < 0.6
        for code, _, side, vendor, role in STATIONS:
            for target in [hot] if role == "hot" else roles[role]:
                mapped = gen.map_points(hot, target, x, y, top) if target != hot else None
                for i in range(n_real):
                    if mapped is not None:
                        if not mapped.kept[i]:
                            continue
                        px, py, ptop = mapped.x_mm[i], mapped.y_mm[i], bool(mapped.is_top[i])
                    else:
                        px, py, ptop = x[i], y[i], bool(top[i])
                    if ("top" if ptop else "bottom") != side or rng.random() < 0.15:
                        continue  # other surface, or this station missed it
                    rows.append(
                        _row(
                            code,
                            vendor,
                            target,
                            px + rng.normal(0, 40),
                            py + rng.normal(0, 5),
                            int(cls[i]),
                            f"{hot}#{i}",
                            at + timedelta(hours=hours[role]),
                            rng,
                            image_root,
                            gen,
                        )
                    )
    for code, _, _side, vendor, role in STATIONS:
        for target in roles[role]:
            piece = gen.piece(target)
            for i in range(n_pseudo):
                rows.append(
                    _row(
                        code,
                        vendor,
                        target,
                        rng.uniform(0, piece.length_mm),
                        rng.uniform(-piece.width_mm / 2, piece.width_mm / 2),
                        int(rng.integers(0, 6)),
                        f"pseudo{i}",
                        at + timedelta(hours=hours[role]),
                        rng,
                        image_root,
                        gen,
                        pseudo=True,
                    )
                )
    if g == 0:
        rows += _roll_marks(gen, at + timedelta(hours=hours["rolled"]), rng, image_root)
    return rows


ROLL_PERIOD_MM = 1508.0


def _roll_marks(gen: Genealogy, when: datetime, rng: np.random.Generator, image_root: Path) -> list[dict]:
    """A damaged work roll of the cold mill: the same imprint every revolution on the rolled
    strip's top surface, seen by the mill's station and again by the final inspection."""
    x = 10_000.0 + ROLL_PERIOD_MM * np.arange(14)
    y = np.full(len(x), 210.0)
    rows = []
    for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
        rows.append(
            _row(
                "TCM-T",
                "cold",
                "G0-Se",
                xi + rng.normal(0, 4),
                yi,
                2,
                f"roll#{i}",
                when,
                rng,
                image_root,
                gen,
            )
        )
    for final in ("G0-C1",):
        mapped = gen.map_points("G0-Se", final, x, y, np.ones(len(x), dtype=bool))
        for i in np.flatnonzero(mapped.kept):
            rows.append(
                _row(
                    "INSP-T",
                    "cold",
                    final,
                    mapped.x_mm[i] + rng.normal(0, 4),
                    mapped.y_mm[i],
                    2,
                    f"roll#{i}",
                    when + timedelta(hours=20),
                    rng,
                    image_root,
                    gen,
                )
            )
    return rows


def _row(
    station: str,
    vendor: str,
    piece: str,
    x: float,
    y: float,
    cls: int,
    tag: str,
    when: datetime,
    rng: np.random.Generator,
    image_root: Path,
    gen: Genealogy,
    pseudo: bool = False,
) -> dict:
    p = gen.piece(piece)
    x = float(np.clip(x, 0, p.length_mm))
    y = float(np.clip(y, -p.width_mm / 2, p.width_mm / 2))
    half_x, half_y = float(rng.uniform(5, 60)), float(rng.uniform(3, 25))
    key = f"{station}/{piece}/{tag}"
    ref = f"{station}/{piece}/{tag.replace('#', '_')}.png"
    _write_png(image_root / ref, cls, rng)
    return {
        "station": station,
        "piece": piece,
        "side": next(s[2] for s in STATIONS if s[0] == station),
        "x_mm": x,
        "y_mm": y,
        "x0_mm": max(0.0, x - half_x),
        "x1_mm": min(p.length_mm, x + half_x),
        "y0_mm": max(-p.width_mm / 2, y - half_y),
        "y1_mm": min(p.width_mm / 2, y + half_y),
        "x_obs_mm": x * 1.002 + 15.0,
        "station_label": VENDOR_LABELS[vendor][cls],
        "station_confidence": float(rng.uniform(0.3, 0.7) if pseudo else rng.uniform(0.55, 0.99)),
        "plant_class": PLANT_CLASSES[cls],
        "anomaly_score": float(rng.uniform(0.1, 0.5) if pseudo else rng.uniform(0.4, 1.0)),
        "image_ref": ref,
        "observed_at": when + timedelta(seconds=float(rng.uniform(0, 3600))),
        "source_key": key,
    }


def _add_heatmaps(session, rows: list[dict], image_root: Path) -> None:  # type: ignore[no-untyped-def]
    """Anomaly heatmaps for the stations that export images (we detect there): a bright blob
    where the image's blemish is. Only where the schema has ``observations.heatmap_ref``."""
    obs = Table("observations", MetaData(), autoload_with=session.connection())
    if "heatmap_ref" not in obs.c:
        return
    params = []
    for r in rows:
        if r["station"] in IMAGE_STATIONS and r["image_ref"]:
            ref = r["image_ref"].replace(".png", "_heat.png")
            yy, xx = np.mgrid[0:IMAGE_PX, 0:IMAGE_PX]
            heat = 255 * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / 200.0)
            Image.fromarray(heat.astype(np.uint8), mode="L").save(image_root / ref)
            params.append({"k": r["source_key"], "h": ref})
    if params:
        session.execute(
            update(obs).where(obs.c.source_key == bindparam("k")).values(heatmap_ref=bindparam("h")), params
        )


def _shared_defect(session) -> tuple[str, list[int]] | None:  # type: ignore[no-untyped-def]
    """A physical defect of the first hot coil that both a hot-mill and the final station saw."""
    obs = m.Observation.__table__
    rows = session.execute(select(obs.c.id, obs.c.source_key)).all()
    by_tag: dict[str, list[tuple[int, str]]] = {}
    for oid, key in rows:
        station, piece, tag = key.split("/", 2)
        if "#" in tag:
            by_tag.setdefault(tag, []).append((oid, f"{station}/{piece}"))
    for _tag, seen in sorted(by_tag.items()):
        finals = [sp.split("/")[1] for _, sp in seen if sp.startswith("INSP")]
        if len(seen) >= 3 and finals and any(sp.startswith("HSM") for _, sp in seen):
            return finals[0], [oid for oid, _ in seen]
    return None


def _ingestion(session, groups: int) -> None:  # type: ignore[no-untyped-def]
    stations = session.execute(select(m.Station.id, m.Station.code, m.Station.line_id)).all()
    for sid, code, line_id in stations:
        for g in range(groups):
            started = START + timedelta(days=7 * g, hours=70)
            failed = code == "PL-T" and g == groups - 1
            run_id = session.execute(
                insert(m.IngestionRun)
                .values(
                    line_id=line_id,
                    station_id=sid,
                    started_at=started,
                    finished_at=started + timedelta(minutes=3),
                    status="failed" if failed else "ok",
                    n_files=40,
                    n_observations=0 if failed else 35,
                    n_skipped=3,
                    n_quarantined=2 if g % 2 else 0,
                    lag_s=180.0 + 60 * g,
                    errors=["export folder unreadable: permission denied"] if failed else [],
                    worker="ingest-host:4711",
                    n_pending=1 if code == "INSP-T" else 0,
                )
                .returning(m.IngestionRun.id)
            ).scalar_one()
            if g % 2:
                session.execute(
                    insert(m.QuarantinedRecord),
                    [
                        {
                            "run_id": run_id,
                            "station_id": sid,
                            "path": f"/exports/{code}/batch{g}.csv",
                            "line_no": 17,
                            "field": "x_mm",
                            "reason": "x_mm: must be a number, got 'n/a'",
                            "at": started,
                            "kind": "bad_value",
                        },
                        {
                            "run_id": run_id,
                            "station_id": sid,
                            "path": f"/exports/{code}/img{g}_042.png",
                            "line_no": None,
                            "field": None,
                            "reason": "image truncated (PNG CRC error)",
                            "at": started,
                            "kind": "corrupt_image",
                        },
                    ],
                )


def add_big_coil(engine, n_observations: int, rng: np.random.Generator) -> str:  # type: ignore[no-untyped-def]
    """A hot coil cropped into a final coil with ``n_observations`` across three stations."""
    recs = [
        {
            "op": "create",
            "piece": "BIG-H",
            "length_mm": 1_200_000.0,
            "width_mm": 1500.0,
            "grade": "DC04",
            "line": "HSM",
            "at": START.isoformat(),
        },
        {
            "op": "crop",
            "input": "BIG-H",
            "output": "BIG-C",
            "head_mm": 5000.0,
            "tail_mm": 5000.0,
            "line": "INSP",
            "at": (START + timedelta(days=2)).isoformat(),
        },
    ]
    ops = parse_events([json.dumps(r) for r in recs], source="sample-big.jsonl")
    with transaction(engine) as session:
        import_events(ops, session=session, source="sample-big.jsonl")
        keys = dict(session.execute(select(m.Piece.piece_id, m.Piece.id)).all())
        sids = dict(session.execute(select(m.Station.code, m.Station.id)).all())
        plan = [("HSM-T", "BIG-H", "top"), ("HSM-B", "BIG-H", "bottom"), ("INSP-T", "BIG-C", "top")]
        n = n_observations
        which = rng.integers(0, len(plan), n)
        x = rng.uniform(0, 1_190_000.0, n)
        y = rng.uniform(-740, 740, n)
        cls = rng.integers(0, len(PLANT_CLASSES), n)
        conf = rng.uniform(0.3, 1.0, n)
        rows = []
        for i in range(n):
            code, piece, side = plan[which[i]]
            xi = float(x[i]) + (5000.0 if piece == "BIG-H" else 0.0)
            rows.append(
                {
                    "station_id": sids[code],
                    "piece_id": keys[piece],
                    "side": side,
                    "x_mm": xi,
                    "y_mm": float(y[i]),
                    "x0_mm": xi - 10,
                    "y0_mm": float(y[i]) - 5,
                    "x1_mm": xi + 10,
                    "y1_mm": float(y[i]) + 5,
                    "station_label": PLANT_CLASSES[cls[i]],
                    "station_confidence": float(conf[i]),
                    "plant_class": PLANT_CLASSES[cls[i]],
                    "anomaly_score": float(conf[i]),
                    "image_ref": None,
                    "observed_at": START + timedelta(days=int(which[i])),
                    "source_key": f"big/{i}",
                }
            )
        for k in range(0, n, 20_000):
            session.execute(insert(m.Observation), rows[k : k + 20_000])
    return "BIG-C"
