"""What the stations export: complete within their miss rates, pseudo-defects at one station only,
and the same bytes for the same seed."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binom

from plant.params import plant_params
from plant.run import simulate_to


def _truth(plant: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(plant / "truth" / name, keep_default_na=False)


def test_every_visible_real_defect_is_exported_within_the_miss_rate(small_plant: Path) -> None:
    pos = _truth(small_plant, "positions.csv")
    obs = _truth(small_plant, "observations.csv")
    boxes = _truth(small_plant, "frame_boxes.csv")
    for spec in plant_params("small").stations:
        sdir = small_plant / "stations" / spec.name
        inspected = set(pd.read_csv(sdir / "marks.csv")["piece"])
        visible = pos[pos["piece"].isin(inspected) & (pos["side"] == spec.side)]
        real = obs[(obs["station"] == spec.name) & (obs["kind"] == "real")]
        assert sorted(zip(visible["defect_id"], visible["piece"], strict=True)) == sorted(
            zip(real["defect_id"], real["piece"], strict=True)), spec.name
        n, missed = len(real), int((~real["seen"]).sum())
        assert n > 10
        assert binom.ppf(0.0005, n, spec.miss_rate) <= missed <= binom.ppf(0.9995, n,
                                                                             spec.miss_rate)
        seen = obs[(obs["station"] == spec.name) & obs["seen"]]
        if spec.export == "csv_table":
            table = pd.read_csv(sdir / "defects.csv", sep=";")
            assert sorted(table["DefectNo"]) == sorted(seen["obs_no"])
            merged = table.merge(seen, left_on="DefectNo", right_on="obs_no")
            np.testing.assert_allclose(merged["MdPos_mm"], merged["x_obs_mm"])
            assert (merged["CoilId"] == merged["piece"]).all()
            assert all((sdir / f).is_file() for f in table["RoiFile"])
        elif spec.export == "sqlite_table":
            con = sqlite3.connect(sdir / "inspex.sqlite")
            ids = [r[0] for r in con.execute("SELECT id FROM defects ORDER BY id")]
            con.close()
            assert ids == sorted(seen["obs_no"])
        else:
            mine = boxes[boxes["station"] == spec.name]
            assert set(seen["obs_key"]) <= set(mine["obs_key"])
            for frame in set(mine["frame"]):
                side = json.loads((sdir / "frames" / frame).with_suffix(".json").read_text())
                assert side["station"] == spec.name and side["side"] == spec.side
                assert (sdir / "frames" / frame).is_file()


def test_pseudo_defects_are_seen_at_one_station_only(small_plant: Path) -> None:
    from plant.remap import map_to_final

    obs = _truth(small_plant, "observations.csv")
    pseudo = obs[obs["kind"] == "pseudo"]
    assert len(pseudo) > 10 and (pseudo["defect_id"] == -1).all()
    cat = _truth(small_plant, "defects.csv")
    assert set(cat["kind"]) <= {"random", "cluster", "severe", "rollmark"}
    mapped = map_to_final(small_plant).merge(obs[["obs_key", "kind"]], on="obs_key")
    p = mapped[mapped["kind"] == "pseudo"]
    for (piece, side), g in p.groupby(["final_piece", "side"]):
        other = mapped[(mapped["final_piece"] == piece) & (mapped["side"] == side)]
        for st, x, y in zip(g["station"], g["x_mm"], g["y_mm"], strict=True):
            near = other[(other["station"] != st) & ((other["x_mm"] - x).abs() < 20)
                         & ((other["y_mm"] - y).abs() < 20)]
            assert (near["kind"] != "pseudo").all()


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(small_plant: Path, small_seed: int, shared_data: Path,
                              tmp_path: Path) -> None:
    simulate_to(tmp_path / "again", size="small", seed=small_seed, data_dir=shared_data)
    first, second = _digest(small_plant), _digest(tmp_path / "again")
    assert len(first) > 100
    assert first == second
    simulate_to(tmp_path / "other", size="small", seed=small_seed + 1, images=False,
                data_dir=shared_data)
    other = _digest(tmp_path / "other")
    assert other["events.jsonl"] != first["events.jsonl"]
    assert not any(k.endswith(".png") for k in other)
