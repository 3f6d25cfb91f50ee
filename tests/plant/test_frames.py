"""Frame images: the sidecar's geometry puts each object where the truth says, and it shows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def _frames(plant: Path) -> pd.DataFrame:
    boxes = pd.read_csv(plant / "truth" / "frame_boxes.csv")
    obs = pd.read_csv(plant / "truth" / "observations.csv", keep_default_na=False)
    return boxes.merge(obs[["obs_key", "kind", "x_obs_mm", "y_obs_mm", "length_obs_mm",
                            "width_obs_mm"]], on="obs_key")


def test_sidecar_geometry_gives_the_station_positions(small_plant: Path) -> None:
    rows = _frames(small_plant)
    assert len(rows) > 30
    for _, r in rows.iterrows():
        side = json.loads((small_plant / "stations" / r["station"] / "frames" / r["frame"])
                          .with_suffix(".json").read_text())
        # Only boxes not cut by the frame border have their centre in this frame.
        if min(r["r0"], r["c0"]) <= 0 or max(r["r1"], r["c1"]) >= side["rows"]:
            continue
        x = side["x0_obs_mm"] + (r["r0"] + r["r1"]) / 2 * side["mm_per_px_x"]
        y = side["y0_cam_mm"] + (r["c0"] + r["c1"]) / 2 * side["mm_per_px_y"]
        assert abs(x - r["x_obs_mm"]) <= side["mm_per_px_x"] + 1e-6
        assert abs(y - r["y_obs_mm"]) <= side["mm_per_px_y"] + 1e-6
        assert side["ds_edge_mm"] < r["y_obs_mm"] < side["os_edge_mm"]


def test_objects_show_in_their_boxes(small_plant: Path) -> None:
    """Inside a true box the picture departs from the frame's typical level far more often
    than in a box of the same size shifted to a bare part of the strip."""
    rows = _frames(small_plant)
    inside, outside = [], []
    for _, r in rows.iterrows():
        h, w = r["r1"] - r["r0"], r["c1"] - r["c0"]
        if h < 6 or w < 6 or h > 200 or w > 200:
            continue
        img = np.asarray(Image.open(small_plant / "stations" / r["station"] / "frames" /
                                    r["frame"]), dtype=float)
        level = np.median(img)
        box = img[r["r0"]:r["r1"], r["c0"]:r["c1"]]
        # The same box mirrored to the other half of the frame (usually bare strip).
        r0 = (r["r0"] + img.shape[0] // 2) % (img.shape[0] - h)
        c0 = (r["c0"] + img.shape[1] // 2) % (img.shape[1] - w)
        ref = img[r0:r0 + h, c0:c0 + w]
        if min(box.min(), ref.min()) < 40:  # the dark roller table beside or behind the strip
            continue
        inside.append(np.percentile(np.abs(box - level), 95))
        outside.append(np.percentile(np.abs(ref - level), 95))
    inside_arr, outside_arr = np.array(inside), np.array(outside)
    assert len(inside_arr) > 20
    assert np.mean(inside_arr > outside_arr) > 0.75  # 0.89 when written; chance gives 0.5
