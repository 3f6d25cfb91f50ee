"""``store_observations``: new rows stored once, stored rows skipped, values unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select

from coilmap import models as m
from coilmap.db import transaction
from ingestion import store as st


def _parents(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        line = m.Line(code="PL")
        s.add(line)
        s.flush()
        station = m.Station(code="PL-T", line_id=line.id, side="top", label_map={}, calibration={})
        piece = m.Piece(piece_id="C1", length_mm=10_000.0, width_mm=1_500.0, record={})
        s.add_all([station, piece])
        s.flush()
        return station.id, piece.id


def _columns(station_id: int, piece_id: int, numbers: range) -> dict:
    x = np.array([10.0 * k for k in numbers])
    return {
        "station_id": station_id,
        "piece_id": np.full(len(x), piece_id),
        "side": "top",
        "x_mm": x,
        "y_mm": np.zeros(len(x)),
        "x0_mm": x - 1,
        "y0_mm": np.full(len(x), -2.0),
        "x1_mm": x + 1,
        "y1_mm": np.full(len(x), 2.0),
        "x_obs_mm": x + 0.5,
        "station_label": ["Scratch"] * len(x),
        "station_confidence": np.array([np.nan if k % 2 else 0.75 for k in numbers]),
        "plant_class": "scratches",
        "observed_at": np.array(
            [np.datetime64("2026-01-06T06:00:00") + np.timedelta64(k, "s") for k in numbers]
        ),
        "source_key": [f"PL-T:{k}" for k in numbers],
        "ingestion_run_id": None,
    }


def test_new_rows_then_a_rerun_that_overlaps(engine) -> None:  # type: ignore[no-untyped-def]
    station_id, piece_id = _parents(engine)
    with transaction(engine) as s:
        assert st.store_observations(_columns(station_id, piece_id, range(0, 100)), session=s) == 100
    # Half stored already: only the other half is new, nothing is stored twice, and the
    # transaction goes on normally after the refused fast path.
    with transaction(engine) as s:
        assert st.store_observations(_columns(station_id, piece_id, range(50, 150)), session=s) == 50
        s.add(m.Line(code="CAL"))
    with transaction(engine) as s:
        assert st.store_observations(_columns(station_id, piece_id, range(0, 150)), session=s) == 0
        rows = s.execute(
            select(
                m.Observation.source_key,
                m.Observation.x_mm,
                m.Observation.station_confidence,
                m.Observation.observed_at,
            ).order_by(m.Observation.x_mm)
        ).all()
        assert s.scalar(select(m.Line.id).where(m.Line.code == "CAL")) is not None
    assert [r.source_key for r in rows] == [f"PL-T:{k}" for k in range(150)]
    assert [r.x_mm for r in rows] == [10.0 * k for k in range(150)]
    assert rows[1].station_confidence is None and rows[2].station_confidence == 0.75
    # Naive UTC in, the same instant out (PostgreSQL returns it with its zone, SQLite naive).
    at = rows[7].observed_at
    assert (at if at.tzinfo else at.replace(tzinfo=UTC)) == datetime(2026, 1, 6, 6, 0, 7, tzinfo=UTC)
