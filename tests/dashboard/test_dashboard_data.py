"""The data-access module on SQLite and PostgreSQL: coil view, history filters, ingestion,
fused results and heatmaps when a later migration adds them, and the read-only engine."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from coilmap import models as m
from coilmap.db import make_engine
from dashboard import data
from dashboard.sample_db import build


@pytest.fixture
def built(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    info = build(db_url, tmp_path / "images", groups=2, defects_per_hot_coil=8, pseudo_per_station=4)
    return db_url, info


@pytest.mark.db
def test_coil_view_maps_ancestors_and_draws_what_was_removed(built) -> None:  # type: ignore[no-untyped-def]
    url, info = built
    view = data.coil_view(url, "G0-C1")
    obs = view.observations
    assert view.ancestors and {"G0-H1", "G0-H2", "G0-Se"} <= set(view.ancestors)
    # Observations of the hot coils, the welded strip, the rolled strip and the coil itself.
    assert {"G0-H1", "G0-S", "G0-Se", "G0-C1"} <= set(obs["source_piece"])
    kept = obs[obs["status"] == "kept"]
    assert kept["x_mm"].between(0, view.length_mm).all()
    assert (kept["y_mm"].abs() <= view.width_mm / 2 + 1e-6).all()
    assert set(obs["status"]) >= {"kept", "removed:cut"}
    # The crop of the hot coil's head lies before x = 0; the cut to G0-C2 at the tail.
    assert [c["x_mm"] for c in view.cut_lines] == pytest.approx([0.0, view.length_mm])
    labels = {r["label"].split(" ")[0] for r in view.removed_regions}
    assert {"crop", "trim", "cut"} <= labels
    trims = [r for r in view.removed_regions if r["label"].startswith("trim")]
    # trim os 20 / ds 30 before a 2.5x elongation without width change: bands 20 and 30 mm wide.
    assert sorted(round(r["y1_mm"] - r["y0_mm"]) for r in trims) == [20, 30]
    assert obs["class"].notna().all() and obs["severity"].between(0, 1).all()
    assert view.length_scale["G0-H1"] == pytest.approx(2.5)
    # The cold mill's damaged roll (sample_db.ROLL_PERIOD_MM on the rolled strip), seen by two
    # stations, found once by the fusion area's search.
    if data.roll_marks_available():
        [series] = [r for r in view.roll_marks if r["class"] == "patches"]
        assert series["period_here_mm"] == pytest.approx(1508.0, abs=10.0)
        assert set(series["stations"]) == {"TCM-T", "INSP-T"} and len(series["x_mm"]) == 14
    else:
        assert view.roll_marks == []
    assert view.roll_marks_skipped == []  # no group of this coil is too big to search


def test_groups_too_big_for_the_roll_mark_search_are_named() -> None:
    n = data.ROLL_MARK_MAX_GROUP + 1
    obs = pd.DataFrame(
        {
            "status": ["kept"] * (n + 3) + ["removed:cut"] * n,
            "side": ["top"] * n + ["bottom"] * 3 + ["top"] * n,
            "class": ["water"] * n + ["scratches"] * 3 + ["water"] * n,
        }
    )
    assert data.roll_mark_skipped(obs) == [{"side": "top", "class": "water", "n": n}]
    assert data.roll_mark_skipped(obs.iloc[:0]) == []


@pytest.mark.db
def test_history_filters_are_bound_parameters_not_text(built) -> None:  # type: ignore[no-untyped-def]
    url, _ = built
    everything = data.history(url, data.HistoryFilter())
    assert len(everything) == data.search_pieces(url, final_only=False)["observations"].sum()
    f = data.HistoryFilter(
        classes=("scratches",), stations=("INSP-T", "HSM-T"), along_from=0.25, along_to=0.75
    )
    part = data.history(url, f)
    assert len(part) and set(part["class"]) == {"scratches"} and set(part["station"]) <= {"INSP-T", "HSM-T"}
    assert part["along"].between(0.25, 0.75).all()
    across = data.history(url, data.HistoryFilter(across_from_mm=0.0, across_to_mm=100.0))
    assert across["y_mm"].between(0, 100).all()
    hostile = data.history(url, data.HistoryFilter(grades=("DC01' OR '1'='1",)))
    assert hostile.empty
    dated = data.history(url, data.HistoryFilter(date_from=date(2026, 10, 12), date_to=date(2026, 10, 18)))
    assert len(dated) and dated["observed_at"].min() >= pd.Timestamp("2026-10-12", tz="UTC")
    assert dated["observed_at"].max() < pd.Timestamp("2026-10-19", tz="UTC")
    km = data.inspected_km_per_week(url, data.HistoryFilter(stations=("INSP-T",)))
    # Two weeks, each with three final coils of the INSP line: 374.5 m of strip per week.
    assert km["km"].tolist() == pytest.approx([0.3745, 0.3745])


@pytest.mark.db
def test_ingestion_last_runs_and_quarantine(built) -> None:  # type: ignore[no-untyped-def]
    url, _ = built
    status = data.ingestion_status(url)
    assert len(status) == 7 and status["runs"].eq(2).all()
    assert status.set_index("station").loc["PL-T", "status"] == "failed"
    q = data.quarantined(url, station="HSM-T")
    assert set(q["kind"]) == {"bad_value", "corrupt_image"} and set(q["line"]) == {"HSM"}


@pytest.mark.db
def test_fused_results_and_heatmaps_are_used_when_present(built) -> None:  # type: ignore[no-untyped-def]
    url, info = built
    final, ids = info.shared_defect
    target = ids[-1]
    eng = make_engine(url)
    fr = m.FusionResult.__table__  # created by the fusion migration
    evidence = [{"station": "HSM-T", "piece": "G0-H1", "distance_mm": 12.5, "class": "crazing",
                 "probability": 0.8, "observation_id": ids[0]}]  # fmt: skip
    try:
        with eng.begin() as conn:
            result = {"observation_id": target, "fused_class": "oil_stain", "fused_probability": 0.9,
                      "real_probability": 0.97, "evidence": evidence, "model_version": "t1",
                      "created_at": datetime.now(UTC)}  # fmt: skip
            conn.execute(fr.insert(), [result])
        data.features.clear()
        assert data.features(url).fusion_results and data.features(url).heatmap_ref
        view = data.coil_view(url, final)
        row = view.observations.set_index("observation_id").loc[target]
        assert row["class"] == "oil_stain" and row["severity"] == pytest.approx(0.97)
        assert data.fusion_decision(url, target)["evidence"][0]["distance_mm"] == 12.5
        assert data.fusion_decision(url, ids[0]) is None
        fused = data.history(url, data.HistoryFilter(classes=("oil_stain",)))
        assert fused["observation_id"].tolist() == [target]
        assert "oil_stain" in data.filter_options(url)["classes"]
        stored = data.observations_by_id(url, tuple(ids))
        with_heat = stored[stored["station"].isin(["PL-T", "TCM-T", "INSP-T"])]
        assert with_heat["heatmap_ref"].str.endswith("_heat.png").all()
    finally:
        data.features.clear()
        with eng.begin() as conn:
            conn.execute(fr.delete())
        eng.dispose()


@pytest.mark.db
def test_the_engine_refuses_to_write(built) -> None:  # type: ignore[no-untyped-def]
    url, _ = built
    with data.engine(url).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM pieces")) > 0
        with pytest.raises(sa.exc.DBAPIError, match="read.only|readonly"):
            conn.execute(sa.text("DELETE FROM observations"))


def test_week_start_is_monday_utc() -> None:
    times = pd.Series(["2026-10-07T23:30:00+00:00", "2026-10-12T00:00:00+00:00", "2026-10-18T23:59:00+00:00"])
    weeks = data.week_start(times).dt.strftime("%Y-%m-%d").tolist()
    assert weeks == ["2026-10-05", "2026-10-12", "2026-10-12"]
