"""The simulator's own physics: invariants of the operations on defects and marks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plant.material import Defects, cut_marks, orient_marks

L, W = 10_000.0, 1000.0


def _defects(xs: list[float], ys: list[float]) -> Defects:
    n = len(xs)
    return Defects.from_boxes(np.arange(n), xs, ys, np.full(n, 20.0), np.full(n, 10.0),
                              np.arange(n) % 2 == 0)


points = st.lists(st.tuples(st.floats(20.0, L - 20.0), st.floats(-W / 2 + 10, W / 2 - 10)),
                  min_size=1, max_size=20)


@settings(max_examples=40, deadline=None)
@given(points)
def test_orientations_form_a_group(pts: list[tuple[float, float]]) -> None:
    d = _defects([p[0] for p in pts], [p[1] for p in pts])
    for how in ("turn", "flip_cross", "flip_long"):
        back = d.orient(how, length_mm=L).orient(how, length_mm=L)
        np.testing.assert_allclose(back.x_mm, d.x_mm)
        np.testing.assert_allclose(back.y_mm, d.y_mm)
        assert np.array_equal(back.top, d.top)
    combo = d.orient("turn", length_mm=L).orient("flip_cross", length_mm=L)
    direct = d.orient("flip_long", length_mm=L)
    np.testing.assert_allclose(combo.x_mm, direct.x_mm)
    np.testing.assert_allclose(combo.y_mm, direct.y_mm)
    assert np.array_equal(combo.top, direct.top)


@settings(max_examples=40, deadline=None)
@given(points, st.floats(100.0, L - 100.0))
def test_cut_then_weld_restores_positions(pts: list[tuple[float, float]], at: float) -> None:
    d = _defects([p[0] for p in pts], [p[1] for p in pts])
    head, tail = d.cut(0.0, at), d.cut(at, L)
    welded = Defects.concat([head, tail.shift_x(at)])
    whole = ~welded.clipped
    for i, x in zip(welded.defect_id[whole], welded.x_mm[whole], strict=True):
        assert x == pytest.approx(d.x_mm[i], abs=1e-9)


def test_crop_clips_a_defect_across_the_cut_and_removes_one_outside() -> None:
    d = Defects.from_boxes([1, 2], [95.0, 10.0], [0.0, 0.0], [20.0, 10.0], [10.0, 10.0],
                           [True, True])
    out = d.crop(100.0, 0.0, L)
    assert out.defect_id.tolist() == [1]
    assert out.x0_mm.tolist() == [0.0] and out.x1_mm.tolist() == [5.0]
    assert out.x_mm.tolist() == [2.5] and out.clipped.tolist() == [True]


def test_trim_and_slit_shift_across_the_width() -> None:
    d = Defects.from_boxes([1], [500.0], [100.0], [10.0], [10.0], [True])
    assert d.trim(10.0, 30.0, W).y_mm.tolist() == [90.0]  # y' = y - (ds - os) / 2
    assert d.slit(0.0, 400.0).y_mm.tolist() == [-100.0]
    assert len(d.slit(-400.0, 0.0)) == 0


def test_rolling_moves_defects_through_the_knots() -> None:
    d = Defects.from_boxes([1, 2], [50.0, 150.0], [10.0, 10.0], [10.0, 10.0], [4.0, 4.0],
                           [True, False])
    r = d.elongate(np.array([0.0, 100.0, 200.0]), np.array([0.0, 300.0, 700.0]), 0.5)
    assert r.x_mm.tolist() == [150.0, 500.0]
    assert (r.x1_mm - r.x0_mm).tolist() == [30.0, 40.0]
    assert r.y_mm.tolist() == [5.0, 5.0]


def test_marks_follow_cuts_and_orientation() -> None:
    marks = {"S:seam1": 400.0, "S/hole1": 900.0}
    assert cut_marks(marks, 300.0, 800.0) == {"S:seam1": 100.0}
    assert orient_marks(marks, "flip_cross", 1000.0) == {"S:seam1": 600.0, "S/hole1": 100.0}
    assert orient_marks(marks, "flip_long", 1000.0) == marks
