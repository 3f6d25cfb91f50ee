"""The pure parts: figures, image paths and overlays, coil-view filters, command line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dashboard.coil_view import CoilView, filter_observations, seen_together
from dashboard.figures.coil_map import TOP_WHEN_AGGREGATED, coil_map_figure, outline_xy
from dashboard.figures.genealogy import genealogy_figure, layered_layout
from dashboard.figures.history import defects_per_km, distribution_figure, trend_figure, weekly_counts
from dashboard.images import ImagePathError, overlay_heatmap, resolve_image


def observations(n: int, length_mm: float = 100_000.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    classes = np.array(["crazing", "inclusion", "scratches"])
    return pd.DataFrame(
        {
            "observation_id": np.arange(1, n + 1),
            "station": rng.choice(["A-T", "B-T", "C-B"], n),
            "line": "L",
            "source_piece": "P",
            "side": rng.choice(["top", "bottom"], n),
            "x_mm": rng.uniform(0, length_mm, n),
            "y_mm": rng.uniform(-600, 600, n),
            "class": rng.choice(classes, n),
            "plant_class": rng.choice(classes, n),
            "station_label": "x",
            "station_confidence": rng.uniform(0, 1, n),
            "anomaly_score": rng.uniform(0, 1, n),
            "severity": rng.uniform(0, 1, n),
            "status": np.where(rng.random(n) < 0.9, "kept", "removed:cut"),
        }
    )


def view_of(obs: pd.DataFrame, **extra) -> CoilView:  # type: ignore[no-untyped-def]
    return CoilView(
        piece_id="P", length_mm=100_000.0, width_mm=1200.0, grade="DC01", line="L",
        outline=[(0.0, 40_000.0, 1250.0), (40_000.0, 100_000.0, 1200.0)], observations=obs, **extra,
    )  # fmt: skip


def is_points(trace) -> bool:  # type: ignore[no-untyped-def]
    return trace.type in ("scatter", "scattergl") and trace.customdata is not None


def scatter_points(fig) -> int:  # type: ignore[no-untyped-def]
    return sum(len(t.x) for t in fig.data if is_points(t))


def test_coil_map_two_aligned_panels_every_observation_a_point() -> None:
    obs = observations(500)
    view = view_of(
        obs,
        marks=[{"mark_id": "S:seam1", "kind": "weld", "x_mm": 40_000.0, "y_mm": 0.0}],
        cut_lines=[{"x_mm": 0.0, "label": "cut of S"}],
        removed_regions=[{"x0_mm": -5000.0, "x1_mm": 0.0, "y0_mm": -625, "y1_mm": 625, "label": "cut of S"}],
    )
    fig, summary = coil_map_figure(view, obs, selected_id=7)
    assert fig.layout.xaxis2.matches == "x" or fig.layout.xaxis.matches == "x2"  # shared length axis
    assert scatter_points(fig) == 500 and not any(summary.aggregated.values())
    assert {t.type for t in fig.data if is_points(t)} == {"scatter"}  # few points: SVG draws faster
    top = [t for t in fig.data if is_points(t) and t.yaxis == "y"]
    assert sum(len(t.x) for t in top) == (obs["side"] == "top").sum()
    for t in fig.data:
        if is_points(t):  # hover names the station and the scores; click gives the id
            assert "station" in t.hovertemplate and "anomaly score" in t.hovertemplate
            assert set(np.asarray(t.customdata)[:, 0]) <= set(obs["observation_id"])
    # Removed material drawn with open symbols.
    open_points = sum(len(t.x) for t in fig.data if is_points(t) and t.marker.symbol >= 100)
    assert open_points == (obs["status"] != "kept").sum()  # plotly: +100 is the open variant
    dashes = [s.line.dash for s in fig.layout.shapes]
    assert dashes.count("dash") == 2 and dashes.count("dashdot") == 2  # weld seam and cut, both panels
    assert any(t.name == "removed material" for t in fig.data)
    assert any(t.name == "selected" for t in fig.data)


def test_coil_map_aggregates_when_zoomed_out_and_not_in_a_narrow_window() -> None:
    obs = observations(30_000)
    view = view_of(obs)
    fig, summary = coil_map_figure(view, obs, max_points=5_000)
    assert all(summary.aggregated.values())
    assert any(t.type == "heatmap" for t in fig.data)
    assert {t.type for t in fig.data if is_points(t)} == {"scattergl"}  # many points: WebGL
    assert scatter_points(fig) == 2 * TOP_WHEN_AGGREGATED
    # The most severe stay points.
    shown = np.concatenate([np.asarray(t.customdata)[:, 3] for t in fig.data if is_points(t)])
    assert shown.astype(float).min() >= obs["severity"].quantile(0.85)
    fig, summary = coil_map_figure(view, obs, x_range_mm=(10_000.0, 12_000.0), max_points=5_000)
    assert not any(summary.aggregated.values())
    in_window = obs["x_mm"].between(10_000.0, 12_000.0).sum()
    assert scatter_points(fig) == in_window and list(fig.layout.xaxis.range) == [10_000.0, 12_000.0]


def test_outline_follows_the_width_profile() -> None:
    xs, ys = outline_xy([(0.0, 40.0, 1250.0), (40.0, 100.0, 1200.0)])
    assert max(ys) == 625.0 and min(ys) == -625.0 and (xs[0], ys[0]) == (xs[-1], ys[-1])
    assert (100.0, 600.0) in zip(xs, ys, strict=True)


def test_filters_and_seen_together() -> None:
    obs = observations(2000)
    out = filter_observations(obs, classes=["crazing"], stations=["A-T"], side="top", min_severity=0.5,
                              show_removed=False)  # fmt: skip
    assert len(out) and set(out["class"]) == {"crazing"} and set(out["station"]) == {"A-T"}
    assert (out["side"] == "top").all() and (out["severity"] >= 0.5).all() and (out["status"] == "kept").all()
    me = obs.iloc[0]
    near = seen_together(obs, int(me["observation_id"]), along_mm=2000.0, across_mm=100.0)
    assert near.iloc[0]["observation_id"] == me["observation_id"]
    assert (near["side"] == me["side"]).all() and near["dx_mm"].abs().max() <= 2000
    wider = seen_together(obs, int(me["observation_id"]), 2000.0, 100.0, length_scale={"P": 3.0})
    assert len(wider) >= len(near) and wider["dx_mm"].abs().max() <= 6000


def test_genealogy_figure_pieces_are_clickable() -> None:
    nodes = pd.DataFrame(
        {"piece_id": ["H1", "H2", "S", "C1"], "length_m": [1.0] * 4, "width_mm": [1000.0] * 4,
         "grade": "DC01", "line": "L", "final": [False, False, False, True], "selected": [False] * 3 + [True]}
    )  # fmt: skip
    edges = pd.DataFrame(
        {"parent": ["H1", "H2", "S"], "child": ["S", "S", "C1"], "operation": ["weld", "weld", "cut"],
         "params": [{}, {}, {"outputs": 2}]}
    )  # fmt: skip
    fig = genealogy_figure(nodes, edges)
    clickable = {c[0] for t in fig.data if t.customdata is not None for c in t.customdata}
    assert clickable == {"H1", "H2", "S", "C1"}
    assert any("outputs: 2" in h for t in fig.data if t.hovertext is not None for h in t.hovertext)
    pos = layered_layout(list(nodes["piece_id"]), list(zip(edges["parent"], edges["child"], strict=True)))
    assert [pos[p][0] for p in ("H1", "S", "C1")] == [0.0, 1.0, 2.0]


def test_history_trend_is_per_km_per_class() -> None:
    frame = pd.DataFrame({"week": ["2026-10-05"] * 3 + ["2026-10-12"], "class": ["a", "a", "b", "a"],
                          "y_mm": [0.0, 1.0, 2.0, 3.0]})  # fmt: skip
    per_km = defects_per_km(weekly_counts(frame), pd.DataFrame({"week": ["2026-10-05"], "km": [0.5]}))
    by = per_km.set_index(["week", "class"])["per_km"]
    assert by[("2026-10-05", "a")] == 4.0 and by[("2026-10-05", "b")] == 2.0
    assert np.isnan(by[("2026-10-12", "a")])  # no strip recorded that week: no rate, not infinity
    assert [t.name for t in trend_figure(per_km).data] == ["a", "b"]
    assert len(distribution_figure(frame, "y_mm", "t", "y").data) == 2


def test_image_paths_stay_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "st").mkdir(parents=True)
    Image.new("L", (8, 8), 100).save(root / "st" / "a.png")
    (tmp_path / "secret.png").write_bytes(b"x")
    assert resolve_image(root, "st/a.png") == (root / "st" / "a.png").resolve()
    for bad in ("../secret.png", "/etc/passwd", "st/../../secret.png", "C:/x.png", "..\\secret.png"):
        with pytest.raises(ImagePathError, match="outside the image root"):
            resolve_image(root, bad)
    os.symlink(tmp_path / "secret.png", root / "st" / "link.png")
    with pytest.raises(ImagePathError, match="outside"):
        resolve_image(root, "st/link.png")
    for missing in (None, "", float("nan"), "st/none.png"):
        with pytest.raises(ImagePathError):
            resolve_image(root, missing)


def test_heatmap_overlay_tints_only_where_hot() -> None:
    image = Image.new("L", (20, 10), 100)
    heat = np.zeros((10, 20), dtype=np.uint8)
    heat[:, 10:] = 255
    out = np.asarray(overlay_heatmap(image, Image.fromarray(heat), alpha=0.5))
    assert out.shape == (10, 20, 3)
    assert (out[:, :10] == 100).all()  # cold: the image unchanged
    assert (out[:, 10:, 0] > 150).all() and (out[:, 10:, 2] < 60).all()  # hot: red-yellow
