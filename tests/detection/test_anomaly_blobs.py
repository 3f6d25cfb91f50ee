"""Blob extraction and pixel -> mm: invariants of the maps."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from detection.anomaly.blobs import disk, extract_blobs, geometries_to_mm, px_to_mm, threshold_and_open
from detection.anomaly.heatmap import anomalous_feature_map, overlay_rgb

SIDECAR = {"x_first_row_mm": 1250.0, "mm_per_px_along": 0.4, "mm_per_px_across": 0.3,
           "y_centre_offset_mm": -20.0, "image_width_px": 256}


def test_opening_removes_specks_but_keeps_defects() -> None:
    m = np.zeros((60, 60), np.float32)
    m[10, 10] = m[40, 5] = 1.0  # isolated hot pixels
    m[20:40, 30:45] = 1.0  # a real region
    blobs = extract_blobs(m, 0.5, opening_radius_px=4)
    assert len(blobs) == 1
    b = blobs[0]
    # a disk cannot reach into the corners: opening rounds them off, the box stays
    assert b.box_px == (20, 30, 40, 45) and 20 * 15 - 4 * 10 <= b.area_px < 20 * 15
    assert shapely.bounds(b.polygon_px).tolist() == [30.0, 20.0, 45.0, 40.0]
    assert not threshold_and_open(m, 0.5, opening_radius_px=4)[10, 10]


def test_components_are_separate_and_sorted_by_area() -> None:
    m = np.zeros((50, 50), np.float32)
    m[5:10, 5:10] = 0.9
    m[20:40, 20:40] = 0.7
    blobs = extract_blobs(m, 0.5, opening_radius_px=0)
    assert [b.area_px for b in blobs] == [400, 25]
    assert blobs[1].max_score == np.float32(0.9)


def test_join_gap_makes_the_pieces_of_one_streak_one_blob() -> None:
    """A streak broken by a gap of 5 px: separate blobs unless the join gap spans it."""
    m = np.zeros((60, 30), np.float32)
    m[5:25, 10:16] = 1.0
    m[30:50, 12:18] = 0.8  # 5 empty rows (25..29) between the two pieces
    m[5:12, 26:29] = 0.9  # a third region 10 columns away from the first
    apart = extract_blobs(m, 0.5, opening_radius_px=0, join_gap_px=2)
    assert len(apart) == 3
    joined = extract_blobs(m, 0.5, opening_radius_px=0, join_gap_px=3)
    assert len(joined) == 2
    streak = joined[0]
    assert streak.box_px == (5, 10, 50, 18)
    assert streak.area_px == 20 * 6 + 20 * 6  # only the pixels over the threshold
    assert streak.max_score == 1.0 and 0.8 < streak.mean_score < 1.0
    assert shapely.box(10, 5, 18, 50).contains(streak.polygon_px)
    # without a join gap the result is the plain connected components, as before
    plain = extract_blobs(m, 0.5, opening_radius_px=0)
    assert [b.box_px for b in plain] == [b.box_px for b in apart]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.3, 0.8))
def test_blob_hull_encloses_every_pixel_of_its_region(seed: int, fill: float) -> None:
    """The hull drawn from each row's end pixels is the hull of every pixel's corners."""
    m = (np.random.default_rng(seed).random((24, 31)) < fill).astype(np.float32)
    labels, _ = ndimage.label(m > 0.5, structure=np.ones((3, 3), bool))
    blobs = {(b.box_px, b.area_px): b.polygon_px for b in extract_blobs(m, 0.5, opening_radius_px=0)}
    for index, sl in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = np.nonzero(labels == index)
        hull = blobs.pop(((sl[0].start, sl[1].start, sl[0].stop, sl[1].stop), len(rows)))
        corners = shapely.multipoints(
            [(c + dx, r + dy) for r, c in zip(rows, cols, strict=True) for dx in (0, 1) for dy in (0, 1)]
        )
        assert hull.covers(corners)  # nothing of the region outside its hull
        assert shapely.convex_hull(corners).covers(hull)  # and no more than it
    assert not blobs


def test_disk_radius_four() -> None:
    d = disk(4)
    assert d.shape == (9, 9) and d[4, 0] and not d[0, 0]


@settings(max_examples=50, deadline=None)
@given(rows=st.floats(0, 4000), cols=st.floats(0, 256), flip=st.booleans())
def test_px_to_mm_is_affine_and_invertible(rows: float, cols: float, flip: bool) -> None:
    x, y = px_to_mm(np.array([rows]), np.array([cols]), cols_toward_operator=flip, **SIDECAR)
    r_back = (x[0] - SIDECAR["x_first_row_mm"]) / SIDECAR["mm_per_px_along"]
    sign = 1.0 if flip else -1.0
    c_back = (y[0] - SIDECAR["y_centre_offset_mm"]) / (sign * SIDECAR["mm_per_px_across"]) + 128
    assert abs(r_back - rows) < 1e-6 and abs(c_back - cols) < 1e-6


def test_blob_polygons_to_mm_keep_area_scaled() -> None:
    m = np.zeros((100, 256), np.float32)
    m[10:30, 100:140] = 1.0
    blob = extract_blobs(m, 0.5)[0]
    (mm,) = geometries_to_mm([blob.polygon_px], **SIDECAR)
    assert abs(mm.area - blob.polygon_px.area * 0.4 * 0.3) < 1e-6
    x0, y0, x1, y1 = shapely.bounds(mm)
    assert (x0, x1) == (1250.0 + 10 * 0.4, 1250.0 + 30 * 0.4)
    assert np.isclose(y0, -20.0 + (100 - 128) * 0.3) and np.isclose(y1, -20.0 + (140 - 128) * 0.3)


def test_heatmap_is_zero_where_no_defect_probability() -> None:
    score = np.ones((4, 4), np.float32)
    prob = np.zeros((4, 4), np.float32)
    prob[0, 0] = 1.0
    heat = anomalous_feature_map(score, prob)
    rgb = overlay_rgb(np.full((4, 4), 0.5), heat, vmax=1.0)
    assert (rgb[1:, 1:] == 128).all() and tuple(rgb[0, 0]) != (128, 128, 128)


def test_synthetic_cracks_are_thin_dark_and_masked() -> None:
    from detection.anomaly.features.synthetic import synthesize

    rng = np.random.default_rng(3)
    image = np.full((64, 64), 0.6, np.float32)
    augmented, mask = synthesize(image, [], rng, p_anomaly=1.0, p_crack=1.0)
    assert 0 < mask.sum() < 64 * 64 / 8  # thin
    assert (augmented[mask > 0] < 0.6).all() and (augmented[mask == 0] == 0.6).all()
