"""What a frame station's models train on: ``coilmap eval normal-frames`` and ``labelled-crops``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from coilmap.errors import InputError
from plant.cli import eval_group
from plant.training_material import copy_labelled_crops, copy_normal_frames, frame_stations
from plant.truth import PSEUDO


def test_copies_exactly_the_frames_the_truth_draws_nothing_on(small_plant: Path, tmp_path: Path) -> None:
    boxes = pd.read_csv(small_plant / "truth" / "frame_boxes.csv")
    stations = frame_stations(small_plant)
    assert stations and all((small_plant / "stations" / s / "frames").is_dir() for s in stations)
    counts = copy_normal_frames(small_plant, tmp_path / "normal")
    copied = sorted(p.name for p in (tmp_path / "normal").iterdir())
    assert len(copied) == sum(counts.values()) > 0
    for s in stations:
        exported = {p.name for p in (small_plant / "stations" / s / "frames").glob("*.png")}
        drawn = set(boxes.loc[boxes["station"] == s, "frame"])
        mine = {n.split("__", 1)[1] for n in copied if n.startswith(f"{s}__")}
        assert mine == exported - drawn
        assert drawn & exported  # the plant also exported frames with something on them
    # the copies are the exported files, byte for byte
    first = copied[0]
    station, name = first.split("__", 1)
    src = small_plant / "stations" / station / "frames" / name
    assert (tmp_path / "normal" / first).read_bytes() == src.read_bytes()


def test_one_station_and_the_command(small_plant: Path, tmp_path: Path) -> None:
    station = frame_stations(small_plant)[0]
    res = CliRunner().invoke(eval_group, ["normal-frames", str(small_plant), "--out",
                                          str(tmp_path / "one"), "--station", station])
    assert res.exit_code == 0, res.output
    names = [p.name for p in (tmp_path / "one").iterdir()]
    assert names and all(n.startswith(f"{station}__") for n in names)
    assert f"{station} {len(names)}" in res.output


def test_bad_input_names_what_is_wrong(small_plant: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no frame station"):
        copy_normal_frames(small_plant, tmp_path / "x", ["PL-T"])  # a table station
    with pytest.raises(InputError, match="not a simulated plant"):
        copy_normal_frames(tmp_path, tmp_path / "y")
    # a plant whose every frame has a defect on it gives no training material: said, not empty
    plant = tmp_path / "p"
    (plant / "truth").mkdir(parents=True)
    (plant / "stations" / "F" / "frames").mkdir(parents=True)
    (plant / "plant.json").write_text('{"stations": ["F"]}')
    (plant / "stations" / "F" / "station.json").write_text('{"station": "F", "export": "frames"}')
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(plant / "stations" / "F" / "frames" / "a.png")
    pd.DataFrame({"station": ["F"], "obs_key": ["F:1"], "frame": ["a.png"], "r0": [0], "c0": [0],
                  "r1": [1], "c1": [1]}).to_csv(plant / "truth" / "frame_boxes.csv", index=False)
    for name in ("observations.csv", "positions.csv"):  # the rest of a plant's truth
        (plant / "truth" / name).write_text("obs_key\n")
    with pytest.raises(InputError, match="no defect-free frame"):
        copy_normal_frames(plant, tmp_path / "z")


def test_labelled_crops_are_the_truth_boxes_with_the_margin(small_plant: Path, tmp_path: Path) -> None:
    from coilmap.datasplit import NEU_CLASSES
    from detection.datasets import discover

    counts = copy_labelled_crops(small_plant, tmp_path / "crops", margin_px=8, min_side_px=4)
    boxes = pd.read_csv(small_plant / "truth" / "frame_boxes.csv")
    obs = pd.read_csv(small_plant / "truth" / "observations.csv", keep_default_na=False)
    obs = obs[obs["obs_key"] != ""]
    kind = obs.set_index("obs_key")["kind"]
    big = boxes[((boxes["r1"] - boxes["r0"]) >= 4) & ((boxes["c1"] - boxes["c0"]) >= 4)]
    assert sum(counts.values()) == len(big) > 0
    assert set(counts) <= set(NEU_CLASSES) | {PSEUDO}
    assert counts.get(PSEUDO, 0) == int((kind.reindex(big["obs_key"]) == "pseudo").sum())
    # one crop checked against the frame: the box grown by 8 px, clipped
    row = big.iloc[0]
    frame = np.asarray(Image.open(small_plant / "stations" / row["station"] / "frames" / row["frame"]))
    stem = Path(row["frame"]).stem
    label = obs.set_index("obs_key").loc[row["obs_key"], "true_class"]
    label = PSEUDO if kind[row["obs_key"]] == "pseudo" else label
    same_frame = big[(big["station"] == row["station"]) & (big["frame"] == row["frame"])]
    n = list(same_frame.index).index(big.index[0])
    got = np.asarray(Image.open(tmp_path / "crops" / label / f"{row['station']}__{stem}__{n}.png"))
    r0, c0 = max(row["r0"] - 8, 0), max(row["c0"] - 8, 0)
    r1, c1 = min(row["r1"] + 8, frame.shape[0]), min(row["c1"] + 8, frame.shape[1])
    assert np.array_equal(got, frame[r0:r1, c0:c1])
    # the folder-per-class layout that train-classifier reads
    if all(v >= 2 for v in counts.values()):
        assert sorted(discover(tmp_path / "crops").classes) == sorted(counts)
