"""The central coil map from the database: ancestors' observations in the piece's frame."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import Engine

from coilmap.db import session_factory, transaction
from coilmap.errors import NotFoundError
from tracking.coil_map import COLUMNS, coil_map
from tracking.events import parse_events
from tracking.store import create_observations, create_station, import_events

from .plant_fixture import EVENTS, OBSERVATIONS, STATIONS, observation

pytestmark = pytest.mark.db


@pytest.fixture
def plant(engine: Engine) -> Engine:
    with transaction(engine) as session:
        import_events(parse_events(EVENTS, "plant.jsonl"), session=session, source="plant.jsonl")
        for code, line, side in STATIONS:
            create_station(code, line=line, side=side, vendor="acme", session=session)
        create_observations(
            [
                observation(st, piece, key, x, y, side, **kw)
                for (st, piece, key, x, y, side, kw), _ in OBSERVATIONS
            ],
            session=session,
        )
    return engine


def test_coil_map_places_every_ancestor_observation(plant: Engine) -> None:
    with session_factory(plant)() as session:
        frame = coil_map("F2", session=session)
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == len(OBSERVATIONS)
    # None of them has a confidence or an anomaly score: NULL reads as NaN.
    assert frame.station_confidence.isna().all() and frame.anomaly_score.isna().all()
    by_key = {
        key: row
        for key, row in zip(
            [o[0][2] for o in OBSERVATIONS], [_row(frame, o[0]) for o in OBSERVATIONS], strict=True
        )
    }
    for (station, piece, key, *_), (x, y, side, status, removed_at) in OBSERVATIONS:
        row = by_key[key]
        assert (row.station, row.source_piece) == (station, piece)
        assert (row.side, row.status, row.removed_at) == (side, status, removed_at), key
        if x is not None:
            assert (row.x_mm, row.y_mm) == pytest.approx((x, y)), key


def _row(frame: pd.DataFrame, obs: tuple) -> pd.Series:  # type: ignore[type-arg]
    station, piece, _key, x, y, side, _kw = obs
    hit = frame[
        (frame.station == station)
        & (frame.source_piece == piece)
        & (frame.source_x_mm == x)
        & (frame.source_y_mm == y)
    ]
    assert len(hit) == 1
    return hit.iloc[0]


def test_clipped_box_keeps_its_surviving_part(plant: Engine) -> None:
    with session_factory(plant)() as session:
        frame = coil_map("F2", session=session)
    row = frame[(frame.source_piece == "H1") & (frame.source_x_mm == 900.0)].iloc[0]
    # H1 [700, 1100] -> crop keeps [1000, 1100] -> H1c [0, 100] -> flipped [8400, 8500]
    # -> rolled [16800, 17000] -> F2 [8800, 9000].
    assert (row.x0_mm, row.x1_mm, row.y0_mm, row.y1_mm) == pytest.approx((8800.0, 9000.0, -10.0, 10.0))


def test_coil_map_of_the_ancestor_does_not_see_descendants(plant: Engine) -> None:
    with session_factory(plant)() as session:
        frame = coil_map("T1", session=session)
    assert set(frame.source_piece) == {"H1", "T1"}
    # H1 2000 -> T1 2 * (8500 - 1000) = 15000; H1 6000 -> 7000 (F1's part, kept on T1); the
    # cropped box's remains [16800, 17000]; T1's own 9000. H1 500 was cropped.
    kept = frame[frame.status == "kept"]
    assert sorted(kept.x_mm.round(6)) == [7000.0, 9000.0, 15000.0, 16900.0]
    assert list(frame[frame.status != "kept"].removed_at) == ["H1"]


def test_unknown_piece(plant: Engine) -> None:
    with session_factory(plant)() as session, pytest.raises(NotFoundError, match="NOPE"):
        coil_map("NOPE", session=session)


def test_cli_coil_map_csv_and_text(plant: Engine, db_url: str, tmp_path: Path) -> None:
    from tracking.cli_store import CSV_COLUMNS, coil_map_cmd

    runner = CliRunner()
    result = runner.invoke(coil_map_cmd, ["F2", "--url", db_url])
    assert result.exit_code == 0, result.output
    csv = pd.read_csv(io.StringIO(result.output))
    assert list(csv.columns) == list(CSV_COLUMNS)
    assert len(csv) == len(OBSERVATIONS)
    assert sorted(csv.status.unique()) == ["kept", "removed:crop", "removed:cut"]

    result = runner.invoke(coil_map_cmd, ["F2", "--url", db_url, "--kept-only", "--side", "bottom"])
    csv = pd.read_csv(io.StringIO(result.output))
    assert set(csv.status) == {"kept"} and set(csv.side) == {"bottom"} and len(csv) == 3

    result = runner.invoke(coil_map_cmd, ["F2", "--url", db_url, "--format", "text"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "coil map of F2: 9000 mm x 1200 mm, grade S235" in text
    assert "ancestors (nearest first): T1, H1o, H1c, H1" in text
    assert "T1/hole1" not in text  # the hole at 5,000 mm on T1 went to F1
    assert "observations: 6 (4 on the piece, 2 removed)" in text
    assert "removed:crop of H1: 1" in text and "removed:cut of T1: 1" in text


def test_polygon_and_image_of_an_ancestor_observation(plant: Engine) -> None:
    polygon = "POLYGON ((1900 -20, 2100 -20, 2100 20, 1900 20, 1900 -20))"
    with transaction(plant) as session:
        create_observations(
            [
                observation(
                    "HSM-T", "H1", "h-poly", 2000.0, 0.0, "top",
                    x0_mm=1900.0, x1_mm=2100.0, y0_mm=-20.0, y1_mm=20.0,
                    geometry_wkt=polygon, image_ref="HSM-T/000042.png",
                    station_confidence=0.75, anomaly_score=-2.5,
                )
            ],
            session=session,
        )  # fmt: skip
    with session_factory(plant)() as session:
        plain = coil_map("F2", session=session)
        full = coil_map("F2", session=session, with_images=True)
    row = plain[plain.geometry_wkt.notna()]
    assert len(row) == 1
    # H1 x 1900 -> 2 * (8500 - 900) - 8000 = 7200 and 2100 -> 6800: the flip reverses x.
    assert shapely.bounds(shapely.from_wkt(row.geometry_wkt.iloc[0])).tolist() == pytest.approx(
        [6800.0, -20.0, 7200.0, 20.0]
    )
    assert (row.station_confidence.iloc[0], row.anomaly_score.iloc[0]) == (0.75, -2.5)
    assert plain.image_ref.isna().all()
    assert full.set_index("observation_id").image_ref[row.observation_id.iloc[0]] == "HSM-T/000042.png"
    assert full.image_ref.notna().sum() == 1


def test_piece_without_observations(engine: Engine) -> None:
    with transaction(engine) as session:
        import_events(parse_events(EVENTS, "plant.jsonl"), session=session, source="plant.jsonl")
    with session_factory(engine)() as session:
        frame = coil_map("F2", session=session, with_images=True)
    assert frame.empty and list(frame.columns) == list(COLUMNS)
