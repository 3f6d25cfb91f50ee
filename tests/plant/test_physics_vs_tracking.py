"""The simulator's own physics against the tracking library's maps (two independent codes).

Every true defect position in every piece must be where ``tracking`` maps the defect from the
piece it was made on; every defect the simulator lost must be lost by ``tracking`` too; the
reference marks of every piece must agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def test_true_positions_agree_with_the_tracking_maps(small_plant: Path, genealogy) -> None:
    cat = pd.read_csv(small_plant / "truth" / "defects.csv")
    pos = pd.read_csv(small_plant / "truth" / "positions.csv")
    origin = cat.set_index("defect_id")["origin_piece"]
    made = pos[pos["piece"] == origin.reindex(pos["defect_id"]).to_numpy()]
    assert len(made) == len(cat)  # every defect lies on the piece it was made on
    checked = 0
    for src, at_src in made.groupby("piece"):
        ids = at_src["defect_id"].to_numpy()
        later = pos[pos["defect_id"].isin(ids) & ~pos["clipped"] & (pos["piece"] != src)]
        for dst, there in later.groupby("piece"):
            start = at_src.set_index("defect_id").loc[there["defect_id"]]
            m = genealogy.map_points(src, dst, start["x_mm"].to_numpy(), start["y_mm"].to_numpy(),
                                     (start["side"] == "top").to_numpy())
            assert m.kept.all(), (src, dst)
            np.testing.assert_allclose(m.x_mm, there["x_mm"], atol=2e-3, err_msg=f"{src}->{dst}")
            np.testing.assert_allclose(m.y_mm, there["y_mm"], atol=2e-3, err_msg=f"{src}->{dst}")
            assert ((m.is_top) == (there["side"] == "top").to_numpy()).all()
            checked += len(there)
    assert checked > 200


def test_defects_the_simulator_removed_are_removed_by_tracking(small_plant: Path,
                                                               genealogy) -> None:
    pos = pd.read_csv(small_plant / "truth" / "positions.csv")
    removed = pd.read_csv(small_plant / "truth" / "removed.csv")
    assert len(removed) > 0
    at = pos.set_index(["defect_id", "piece"])
    for (d, piece), row in removed.set_index(["defect_id", "piece"]).iterrows():
        p = at.loc[(d, piece)]
        if bool(p["clipped"]):
            continue
        m = genealogy.map_points(piece, row["first_output"], np.array([p["x_mm"]]),
                                 np.array([p["y_mm"]]), np.array([p["side"] == "top"]))
        assert not m.kept[0], (d, piece)
        assert m.removed_by[0] == row["op"]


def test_marks_of_every_inspected_piece_agree(small_plant: Path, genealogy) -> None:
    """The marks a station reports are the marks tracking knows, at nearby positions."""
    for sdir in sorted((small_plant / "stations").iterdir()):
        marks = pd.read_csv(sdir / "marks.csv")
        enc = pd.read_csv(small_plant / "truth" / "encoders.csv")
        enc = enc[enc["station"] == sdir.name].set_index("piece")
        for piece, seen in marks.groupby("piece"):
            true = {m.mark_id: m.x_mm for m in genealogy.marks(piece)}
            assert set(seen["mark_id"]) == set(true), (sdir.name, piece)
            e = enc.loc[piece]
            x = np.array([true[k] for k in seen["mark_id"]])
            predicted = e["offset_mm"] + (1 + e["scale_err"]) * x
            slip = e["slip_amp"] * e["slip_period_mm"] / np.pi + 5.0
            assert np.all(np.abs(seen["x_obs_mm"].to_numpy() - predicted) < slip)
