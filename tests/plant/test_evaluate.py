"""Mapping station observations to the final coils without the truth, and the evaluation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from coilmap.cli import main
from plant.evaluate import evaluate
from plant.remap import reference_mapping
from plant.truth import read_truth


@pytest.fixture(scope="module")
def reference(small_plant: Path) -> pd.DataFrame:
    return reference_mapping(small_plant, read_truth(small_plant))


def test_marks_and_edges_bring_every_station_onto_the_final_coils(small_plant: Path,
                                                                  reference: pd.DataFrame) -> None:
    report = evaluate(reference, read_truth(small_plant))
    st = report.stations.set_index("station")
    assert len(st) == 6
    assert (st["median_dx_mm"] < 20).all() and (st["p95_dx_mm"] < 100).all(), st
    assert (st["median_dy_mm"] < 10).all()
    assert (st["misplaced"] == 0).all()
    assert report.matched_share > 0.9
    # Vendor tables carry classes; frames have none until detection ran.
    assert st.loc["PL-T", "class_accuracy"] > 0.5
    assert st.loc["CAL-T", "class_accuracy"] != st.loc["CAL-T", "class_accuracy"]  # NaN


def test_a_shifted_mapping_shows_up_as_position_error(small_plant: Path,
                                                      reference: pd.DataFrame) -> None:
    shifted = reference.assign(x_mm=reference["x_mm"] + 300.0)
    st = evaluate(shifted, read_truth(small_plant)).stations
    assert (st["median_dx_mm"] > 280).all()


def test_frame_detections_link_by_image_and_pixel(small_plant: Path,
                                                  reference: pd.DataFrame,
                                                  tmp_path: Path, capsys) -> None:
    truth = read_truth(small_plant)
    boxes = truth.frame_boxes.drop_duplicates("obs_key")
    frames = reference.merge(boxes[["obs_key", "frame", "r0", "c0", "r1", "c1"]], on="obs_key")
    frames = frames.assign(row_px=(frames["r0"] + frames["r1"]) / 2,
                           col_px=(frames["c0"] + frames["c1"]) / 2, obs_key="")
    frames["plant_class"] = "scratches"
    tables = reference[~reference["obs_key"].isin(boxes["obs_key"])]
    both = pd.concat([tables, frames[list(tables.columns) + ["frame", "row_px", "col_px"]]])
    csv = tmp_path / "mapped.csv"
    both.to_csv(csv, index=False)
    main(["eval", "plant", str(small_plant), "--mapped", str(csv)])
    out = capsys.readouterr().out
    st = evaluate(both, truth).stations.set_index("station")
    assert st.loc["CAL-T", "recall"] > 0.8 and "CAL-T" in out and "matched across" in out
    assert 0.0 < st.loc["CAL-T", "class_accuracy"] < 0.6  # "scratches" is right only sometimes


def test_bad_mapped_file_fails_clearly(small_plant: Path, tmp_path: Path, capsys) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("station,x_mm\nPL-T,1\n")
    with pytest.raises(SystemExit) as done:
        main(["eval", "plant", str(small_plant), "--mapped", str(csv)])
    assert done.value.code == 2
    assert "missing columns ['final_piece', 'y_mm', 'side', 'plant_class']" in capsys.readouterr().err


def test_simulate_cli_rejects_a_foreign_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as done:
        main(["simulate", "--size", "small", "--out", str(tmp_path), "--no-images"])
    assert done.value.code == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_bad_parameters_on_the_command_line_fail_clearly(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["simulate", "--size", "small", "--out", str(tmp_path / "p"), "--no-images",
              "--set", "hot_length_mm=-5,10"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "field hot_length_mm: lengths must be positive" in err
    assert not (tmp_path / "p").exists()


def test_parameter_overrides_change_the_plant(tmp_path: Path, shared_data: Path) -> None:
    main(["simulate", "--size", "small", "--out", str(tmp_path / "p"), "--no-images",
          "--data", str(shared_data), "--set", "n_hot_coils=2", "--set", "weld_group=1"])
    events = (tmp_path / "p" / "events.jsonl").read_text().splitlines()
    assert sum('"op":"create"' in e for e in events) == 2
    assert not any('"op":"weld"' in e for e in events)
