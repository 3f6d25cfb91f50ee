"""Multi-step paths computed by hand, backward maps, marks, boxes, polygons and bad input."""

import json

import numpy as np
import pytest
import shapely

from coilmap.errors import InputError, NotFoundError
from tests.tracking.helpers import create, genealogy, points
from tracking.events import parse_events
from tracking.genealogy import Genealogy

ROUTE = [
    create("H1", 500000, 1250, line="HSM", grade="DC04", thickness_mm=3.0),
    {"op": "crop", "input": "H1", "output": "H1a", "head_mm": 2000, "tail_mm": 1500},
    {"op": "orient", "input": "H1a", "output": "P", "how": "flip_cross"},
    {"op": "trim", "input": "P", "output": "T", "os_mm": 10, "ds_mm": 15},
    {"op": "elongate", "input": "T", "output": "E", "knots": [[0, 0], [250000, 1040000], [496500, 2085300]]},
    {
        "op": "cut",
        "input": "E",
        "outputs": [
            {"piece": "C1", "from_mm": 0, "to_mm": 800000},
            {"piece": "C2", "from_mm": 800000, "to_mm": 2085300},
        ],
    },
]
# By hand: crop -> 98000; flip_cross -> 496500 - 98000 = 398500, bottom; trim -> y 200 - 2.5;
# knots -> 1040000 + 148500 * 1045300 / 246500; cut -> minus 800000.
X_C2 = 1040000 + 148500 * 1045300 / 246500 - 800000


def test_hand_computed_route_forward_and_back() -> None:
    g = genealogy(*ROUTE)
    m = points(g, "H1", "C2", 100000.0, 200.0, top=True)
    assert m.x_mm[0] == pytest.approx(X_C2, abs=1e-6)
    assert m.y_mm[0] == pytest.approx(197.5)
    assert not m.is_top[0]
    assert m.status.tolist() == ["kept"]
    assert points(g, "H1", "C1", 100000.0, 200.0).status.tolist() == ["removed:cut"]
    back = g.map_points("C2", "H1", m.x_mm, m.y_mm, m.is_top)
    assert back.x_mm[0] == pytest.approx(100000.0, abs=1e-6)
    assert back.y_mm[0] == pytest.approx(200.0)
    assert back.is_top.tolist() == [True]
    # the removal names the first operation that removed it, and where
    r = points(g, "H1", "C2", [1000.0, 100000.0], [0.0, 620.0])
    assert r.status.tolist() == ["removed:crop", "removed:trim"]
    assert r.removed_at.tolist() == ["H1", "P"]


def test_pieces_carry_attributes_and_genealogy() -> None:
    g = genealogy(*ROUTE)
    assert g.ancestors("C2") == ["E", "T", "P", "H1a", "H1"]
    assert g.descendants("H1a") == ["P", "T", "E", "C1", "C2"]
    assert g.pieces["C2"].grade == "DC04"
    # rolling conserves volume
    assert g.pieces["E"].thickness_mm == pytest.approx(3.0 * 496500 / 2085300)
    assert sorted(g.leaves()) == ["C1", "C2"]


def test_unrelated_pieces_have_no_map() -> None:
    g = genealogy(create("A", 10, 10), create("B", 10, 10))
    with pytest.raises(NotFoundError, match="not related"):
        points(g, "A", "B", 1.0, 0.0)


def test_boxes_are_clipped_by_a_crop_and_mapped() -> None:
    g = genealogy(*ROUTE)
    one = np.array([1.0])
    b = g.map_boxes("H1", "H1a", one * 1500, one * -10, one * 2500, one * 10, np.array([True]))
    assert b.status.tolist() == ["kept"]
    assert (b.x0_mm[0], b.x1_mm[0], b.y0_mm[0], b.y1_mm[0]) == (0.0, 500.0, -10.0, 10.0)
    gone = g.map_boxes("H1", "H1a", one * 100, one * 0, one * 200, one * 10, np.array([True]))
    assert gone.status.tolist() == ["removed:crop"]
    # through a turn the box stays a box with ordered corners
    t = g.map_boxes("H1", "P", one * 3000, one * 100, one * 4000, one * 300, np.array([True]))
    assert (t.x0_mm[0], t.x1_mm[0]) == (496500 - 2000, 496500 - 1000)


def test_polygons_bend_at_knots() -> None:
    g = genealogy(
        create("A", 1000, 100),
        {"op": "elongate", "input": "A", "output": "E", "knots": [[0, 0], [500, 1000], [1000, 1500]]},
    )
    tri = shapely.Polygon([(400, -10), (600, -10), (600, 10)])
    (mapped,), status = g.map_geometries("A", "E", np.array([tri], dtype=object))
    assert status.tolist() == ["kept"]
    # The hypotenuse crosses the knot at x=500 (y=0): it must pass through (1000, 0) exactly.
    assert mapped.buffer(1e-6).contains(shapely.Point(1000, 0))
    # area left of the knot (500) doubles, right of it stays: 500 * 2 + 1500
    assert mapped.area == pytest.approx(2500.0)
    cut = genealogy(
        create("A", 1000, 100), {"op": "crop", "input": "A", "output": "B", "head_mm": 500, "tail_mm": 0}
    )
    (clipped,), status = cut.map_geometries("A", "B", np.array([tri], dtype=object))
    assert status.tolist() == ["kept"]
    assert clipped.bounds == pytest.approx((0.0, -10.0, 100.0, 10.0))


def test_marks_follow_the_material() -> None:
    g = genealogy(
        create("A", 1000, 100),
        create("B", 2000, 100),
        {"op": "mark", "piece": "B", "mark": "B/hole1", "kind": "hole", "x_mm": 500, "y_mm": 20},
        {"op": "weld", "inputs": ["A", "B"], "output": "S"},
        {"op": "orient", "input": "S", "output": "R", "how": "turn"},
        {"op": "cut", "input": "R", "outputs": [{"piece": "C", "from_mm": 500, "to_mm": 2800}]},
    )
    marks = {m.mark_id: (m.kind, m.x_mm, m.y_mm) for m in g.marks("C")}
    # R = S turned: x' = 3000 - x. seam at 1000 -> 2000 -> C: 1500; hole at 1500 -> 1500 -> C: 1000
    assert marks == {
        "C:head": ("head", 0.0, 0.0),
        "C:tail": ("tail", 2300.0, 0.0),
        "S:seam1": ("weld", 1500.0, 0.0),
        "B/hole1": ("hole", 1000.0, -20.0),
    }


def _error(*records, known=None) -> InputError:  # type: ignore[no-untyped-def]
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    with pytest.raises(InputError) as info:
        Genealogy.from_operations(parse_events(lines, "plant.jsonl"))
    return info.value


@pytest.mark.parametrize(
    ("records", "line", "field", "words"),
    [
        (
            [{"op": "crop", "input": "X", "output": "Y", "head_mm": 1, "tail_mm": 1}],
            1,
            "input",
            "unknown piece",
        ),
        ([create("A", 10, 10), create("A", 10, 10)], 2, "piece", "duplicate"),
        (
            [create("A", 10, 10), {"op": "crop", "input": "A", "output": "A", "head_mm": 1, "tail_mm": 1}],
            2,
            "output",
            "cycle",
        ),
        (
            [
                create("A", 1000, 10),
                {"op": "cut", "input": "A", "outputs": [{"piece": "B", "from_mm": 0, "to_mm": 1001}]},
            ],
            2,
            "outputs[0].to_mm",
            "beyond",
        ),
        (
            [
                create("A", 1000, 10),
                {
                    "op": "cut",
                    "input": "A",
                    "outputs": [
                        {"piece": "B", "from_mm": 0, "to_mm": 600},
                        {"piece": "C", "from_mm": 500, "to_mm": 1000},
                    ],
                },
            ],
            2,
            "outputs[1].from_mm",
            "overlaps",
        ),
        (
            [create("A", 1000, 10), {"op": "trim", "input": "A", "output": "B", "os_mm": -1, "ds_mm": 1}],
            2,
            "os_mm",
            ">= 0",
        ),
        (
            [create("A", 1000, 10), {"op": "trim", "input": "A", "output": "B", "os_mm": 5, "ds_mm": 6}],
            2,
            "ds_mm",
            "width",
        ),
        (
            [
                create("A", 1000, 10),
                {
                    "op": "elongate",
                    "input": "A",
                    "output": "B",
                    "knots": [[0, 0], [600, 500], [500, 900], [1000, 2000]],
                },
            ],
            2,
            "knots",
            "increasing",
        ),
        (
            [
                create("A", 1000, 10),
                {"op": "elongate", "input": "A", "output": "B", "knots": [[0, 0], [900, 2000]]},
            ],
            2,
            "knots",
            "piece length",
        ),
        (
            [
                create("A", 1000, 10),
                {"op": "crop", "input": "A", "output": "B", "head_mm": 1, "tail_mm": 1},
                {"op": "crop", "input": "A", "output": "C", "head_mm": 1, "tail_mm": 1},
            ],
            3,
            "input",
            "already consumed",
        ),
        (
            [create("A", 1000, 10), {"op": "mark", "piece": "A", "mark": "m", "x_mm": 2000}],
            2,
            "x_mm",
            "outside",
        ),
        (['{"op": "create", "piece": "A"'], 1, None, "not valid JSON"),
        ([{"op": "bend", "input": "A"}], 1, "op", "unknown operation"),
        ([create("A", -5, 10)], 1, "length_mm", "> 0"),
    ],
)
def test_bad_events_name_line_and_field(records, line, field, words) -> None:  # type: ignore[no-untyped-def]
    err = _error(*records)
    assert err.source == "plant.jsonl"
    assert err.line == line
    assert err.field == field
    assert words in str(err)


def test_known_pieces_from_an_earlier_import() -> None:
    first = genealogy(create("H1", 1000, 100, grade="S235"))
    ops = parse_events(
        [json.dumps({"op": "crop", "input": "H1", "output": "P1", "head_mm": 10, "tail_mm": 0})], "pl.jsonl"
    )
    g = Genealogy.from_operations(ops, known_pieces=first.pieces)
    assert g.pieces["P1"].grade == "S235"
    with pytest.raises(InputError, match="already consumed"):
        Genealogy.from_operations(ops, known_pieces=first.pieces, consumed={"H1"})
