"""Each operation of DOMAIN.md against its table row, and map-then-inverse properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tracking.helpers import create, genealogy, points

L, W = 500000.0, 1250.0


def test_crop_table_row() -> None:
    g = genealogy(
        create("H", L, W), {"op": "crop", "input": "H", "output": "C", "head_mm": 2000, "tail_mm": 1500}
    )
    assert g.pieces["C"].length_mm == L - 3500
    m = points(g, "H", "C", [1999.0, 2000.0, 250000.0, L - 1500, L - 1499], 100.0)
    assert m.x_mm.tolist() == [-1.0, 0.0, 248000.0, L - 3500, L - 3499]
    assert m.status.tolist() == ["removed:crop", "kept", "kept", "kept", "removed:crop"]
    assert m.y_mm.tolist() == [100.0] * 5


def test_trim_table_row() -> None:
    g = genealogy(create("H", L, W), {"op": "trim", "input": "H", "output": "T", "os_mm": 10, "ds_mm": 15})
    assert g.pieces["T"].width_mm == W - 25
    m = points(g, "H", "T", [1.0] * 4, [-625.0, -610.0, 615.0, 616.0])
    # y' = y - (d - o)/2 = y - 2.5
    assert m.y_mm.tolist() == [-627.5, -612.5, 612.5, 613.5]
    assert m.status.tolist() == ["removed:trim", "kept", "kept", "removed:trim"]


@pytest.mark.parametrize(
    ("how", "x", "y", "top"),
    [
        ("turn", L - 100.0, -50.0, True),
        ("flip_cross", L - 100.0, 50.0, False),
        ("flip_long", 100.0, -50.0, False),
    ],
)
def test_orient_table_rows(how: str, x: float, y: float, top: bool) -> None:
    g = genealogy(create("H", L, W), {"op": "orient", "input": "H", "output": "O", "how": how})
    m = points(g, "H", "O", 100.0, 50.0, top=True)
    assert (m.x_mm[0], m.y_mm[0], bool(m.is_top[0])) == (x, y, top)


def test_orientation_group_closes() -> None:
    """turn then flip_cross = flip_long, and every orientation is its own inverse."""
    g = genealogy(
        create("H", L, W),
        {"op": "orient", "input": "H", "output": "A", "how": "turn"},
        {"op": "orient", "input": "A", "output": "B", "how": "flip_cross"},
        create("K", L, W),
        {"op": "orient", "input": "K", "output": "K1", "how": "flip_long"},
    )
    x, y = np.array([0.0, 123.0, L]), np.array([-600.0, 7.0, 625.0])
    two = g.map_points("H", "B", x, y, np.array([True, False, True]))
    one = g.map_points("K", "K1", x, y, np.array([True, False, True]))
    np.testing.assert_array_equal(two.x_mm, one.x_mm)
    np.testing.assert_array_equal(two.y_mm, one.y_mm)
    np.testing.assert_array_equal(two.is_top, one.is_top)
    for how in ("turn", "flip_cross", "flip_long"):
        h = genealogy(
            create("H", L, W),
            {"op": "orient", "input": "H", "output": "A", "how": how},
            {"op": "orient", "input": "A", "output": "B", "how": how},
        )
        back = h.map_points("H", "B", x, y, np.array([True, False, True]))
        np.testing.assert_array_equal(back.x_mm, x)
        np.testing.assert_array_equal(back.y_mm, y)
        assert back.is_top.tolist() == [True, False, True]


def test_elongate_factor_knots_and_width() -> None:
    g = genealogy(
        create("H", 496500.0, W),
        {
            "op": "elongate",
            "input": "H",
            "output": "E",
            "knots": [[0, 0], [250000, 1040000], [496500, 2085300]],
            "width_factor": 0.98,
        },
        create("K", 1000.0, W),
        {"op": "elongate", "input": "K", "output": "K4", "factor": 4.2},
    )
    assert g.pieces["E"].length_mm == 2085300.0
    assert g.pieces["E"].width_mm == pytest.approx(W * 0.98)
    m = points(g, "H", "E", [125000.0, 250000.0, 373250.0], 100.0)
    assert m.x_mm.tolist() == pytest.approx([520000.0, 1040000.0, 1562650.0])
    assert m.y_mm.tolist() == pytest.approx([98.0] * 3)
    assert points(g, "K", "K4", 10.0, 0.0).x_mm.tolist() == [42.0]
    assert g.pieces["K4"].length_mm == pytest.approx(4200.0)


def test_weld_cut_slit_table_rows() -> None:
    g = genealogy(
        create("A", 1000.0, 100.0),
        create("B", 2000.0, 80.0),
        {"op": "weld", "inputs": ["A", "B"], "output": "S"},
        {
            "op": "cut",
            "input": "S",
            "outputs": [
                {"piece": "C1", "from_mm": 100, "to_mm": 1500},
                {"piece": "C2", "from_mm": 1500, "to_mm": 3000},
            ],
        },
        {
            "op": "slit",
            "input": "C1",
            "outputs": [
                {"piece": "N", "y_from_mm": -50, "y_to_mm": 0},
                {"piece": "P", "y_from_mm": 0, "y_to_mm": 50},
            ],
        },
    )
    assert g.pieces["S"].length_mm == 3000.0
    assert points(g, "B", "S", 10.0, 5.0).x_mm.tolist() == [1010.0]
    # the cut line belongs to the next coil; the scrap head is removed by the cut
    m = points(g, "S", "C1", [50.0, 100.0, 1499.0, 1500.0], 0.0)
    assert m.status.tolist() == ["removed:cut", "kept", "kept", "removed:cut"]
    assert points(g, "S", "C2", 1500.0, 0.0).x_mm.tolist() == [0.0]
    assert points(g, "S", "C2", 3000.0, 0.0).status.tolist() == ["kept"]  # the tail itself
    m = points(g, "C1", "P", [10.0, 10.0, 10.0], [-1.0, 0.0, 30.0])
    assert m.y_mm.tolist() == [-26.0, -25.0, 5.0]
    assert m.status.tolist() == ["removed:slit", "kept", "kept"]
    # width varies along the welded strip
    assert g.pieces["S"].record["width_profile_mm"] == [[0.0, 1000.0, 100.0], [1000.0, 3000.0, 80.0]]


def test_trim_of_a_welded_strip_follows_each_coils_width() -> None:
    g = genealogy(
        create("A", 1000.0, 100.0),
        create("B", 1000.0, 80.0),
        {"op": "weld", "inputs": ["A", "B"], "output": "S"},
        {"op": "trim", "input": "S", "output": "T", "os_mm": 5, "ds_mm": 5},
    )
    m = points(g, "S", "T", [500.0, 1500.0], [38.0, 38.0])
    assert m.status.tolist() == ["kept", "removed:trim"]


# -- properties ---------------------------------------------------------------------------

OPS = [
    {"op": "crop", "input": "H", "output": "O", "head_mm": 1234.5, "tail_mm": 777.0},
    {"op": "trim", "input": "H", "output": "O", "os_mm": 12.0, "ds_mm": 31.0},
    {"op": "orient", "input": "H", "output": "O", "how": "turn"},
    {"op": "orient", "input": "H", "output": "O", "how": "flip_cross"},
    {"op": "orient", "input": "H", "output": "O", "how": "flip_long"},
    {"op": "elongate", "input": "H", "output": "O", "factor": 3.7, "width_factor": 0.97},
    {"op": "elongate", "input": "H", "output": "O", "knots": [[0, 0], [120000, 500000], [L, 2000000]]},
    {"op": "cut", "input": "H", "outputs": [{"piece": "O", "from_mm": 100000, "to_mm": 300000}]},
    {"op": "slit", "input": "H", "outputs": [{"piece": "O", "y_from_mm": -300, "y_to_mm": 200}]},
]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(OPS),
    st.lists(st.tuples(st.floats(0, L), st.floats(-W / 2, W / 2), st.booleans()), min_size=1, max_size=30),
)
def test_map_then_inverse_is_identity_on_the_kept_region(op, pts) -> None:  # type: ignore[no-untyped-def]
    g = genealogy(create("H", L, W), op)
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    top = np.array([p[2] for p in pts])
    fwd = g.map_points("H", "O", x, y, top)
    k = fwd.kept
    back = g.map_points("O", "H", fwd.x_mm[k], fwd.y_mm[k], fwd.is_top[k])
    assert back.kept.all()
    np.testing.assert_allclose(back.x_mm, x[k], rtol=0, atol=1e-6)
    np.testing.assert_allclose(back.y_mm, y[k], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(back.is_top, top[k])
    # what was removed is off the output piece
    out = g.pieces["O"]
    gone = ~k
    off = (
        (fwd.x_mm[gone] < 0) | (fwd.x_mm[gone] > out.length_mm) | (np.abs(fwd.y_mm[gone]) > out.width_mm / 2)
    )
    on_open_bound = np.isclose(fwd.x_mm[gone], out.length_mm) | np.isclose(
        np.abs(fwd.y_mm[gone]), out.width_mm / 2
    )
    assert (off | on_open_bound).all()


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(1000.0, L - 1000.0), min_size=1, max_size=6, unique=True),
    st.lists(st.tuples(st.floats(0, L), st.floats(-W / 2, W / 2)), min_size=1, max_size=30),
)
def test_cut_then_weld_restores_positions(cuts, pts) -> None:  # type: ignore[no-untyped-def]
    edges = [0.0, *sorted(cuts), L]
    outs = [
        {"piece": f"C{i}", "from_mm": a, "to_mm": b}
        for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]
    g = genealogy(
        create("H", L, W),
        {"op": "cut", "input": "H", "outputs": outs},
        {"op": "weld", "inputs": [o["piece"] for o in outs], "output": "S"},
    )
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    m = g.map_points("H", "S", x, y, np.ones(x.size, bool))
    assert m.kept.all()
    np.testing.assert_allclose(m.x_mm, x, atol=1e-6)
    np.testing.assert_array_equal(m.y_mm, y)
    assert g.pieces["S"].length_mm == pytest.approx(L)
