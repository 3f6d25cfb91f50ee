"""A small plant whose positions are computed by hand in the tests.

H1 (10,000 x 1,200 mm, HSM) -> crop head 1,000 / tail 500 -> H1c (8,500 mm)
-> flip_cross (tail leads on the pickling line; top becomes bottom) -> H1o
-> elongate x2 (cold mill) -> T1 (17,000 mm), hole mark at 5,000 mm
-> cut F1 [0, 8,000) and F2 [8,000, 17,000) (9,000 mm).

A point at x on H1 (1,000 <= x <= 9,500) is at 2 * (8,500 - (x - 1,000)) on T1, at that minus
8,000 on F2, y unchanged, on the other surface.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

EVENTS = [
    '{"op":"create","piece":"H1","length_mm":10000,"width_mm":1200,"thickness_mm":3.0,'
    '"grade":"S235","line":"HSM","coil_no":"C-1","at":"2026-11-01T08:00:00Z"}',
    '{"op":"crop","input":"H1","output":"H1c","head_mm":1000,"tail_mm":500,"line":"PL"}',
    '{"op":"orient","input":"H1c","output":"H1o","how":"flip_cross","line":"PL"}',
    '{"op":"elongate","input":"H1o","output":"T1","factor":2.0,"line":"TCM",'
    '"at":"2026-11-02T10:00:00+00:00"}',
    '{"op":"mark","piece":"T1","mark":"T1/hole1","kind":"hole","x_mm":5000,"y_mm":0}',
    '{"op":"cut","input":"T1","outputs":[{"piece":"F1","from_mm":0,"to_mm":8000},'
    '{"piece":"F2","from_mm":8000,"to_mm":17000}],"line":"CTL"}',
]

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def write_events(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def observation(station: str, piece: str, key: str, x: float, y: float, side: str, **kw) -> dict:  # type: ignore[no-untyped-def]
    return {
        "station": station,
        "piece": piece,
        "side": side,
        "x_mm": x,
        "y_mm": y,
        "observed_at": T0,
        "source_key": key,
        "plant_class": kw.pop("plant_class", "scratches"),
        **kw,
    }


# (station, piece, key, x, y, side, extra) -> expected on F2 (x, y, side, status, removed_at)
OBSERVATIONS = [
    # Seen on the hot coil, kept on F2: 2 * (8500 - 1000) - 8000 = 7000.
    (("HSM-T", "H1", "h-keep", 2000.0, 100.0, "top", {}), (7000.0, 100.0, "bottom", "kept", "")),
    # In the cropped head of H1.
    (("HSM-T", "H1", "h-crop", 500.0, 0.0, "top", {}), (None, None, "bottom", "removed:crop", "H1")),
    # Goes to F1: H1c 5000 -> 3500 -> 7000 on T1, before the cut at 8000.
    (("HSM-T", "H1", "h-f1", 6000.0, 0.0, "top", {}), (-1000.0, 0.0, "bottom", "removed:cut", "T1")),
    # A box cut by the head crop: H1 [700, 1100] keeps [1000, 1100] -> F2 [8800, 9000]; its
    # stated centre (900) was cropped, so the centre is that of what is left.
    (
        (
            "HSM-T",
            "H1",
            "h-box",
            900.0,
            0.0,
            "top",
            {"x0_mm": 700.0, "x1_mm": 1100.0, "y0_mm": -10.0, "y1_mm": 10.0},
        ),
        (8900.0, 0.0, "bottom", "kept", ""),
    ),
    # Seen on the cold strip's bottom, T1 9000 -> F2 1000.
    (
        ("TCM-B", "T1", "t-keep", 9000.0, -50.0, "bottom", {"plant_class": "inclusion"}),
        (1000.0, -50.0, "bottom", "kept", ""),
    ),
    # Seen on F2 itself.
    (("CTL-T", "F2", "f-keep", 100.0, 20.0, "top", {"plant_class": None}), (100.0, 20.0, "top", "kept", "")),
]

STATIONS = [("HSM-T", "HSM", "top"), ("TCM-B", "TCM", "bottom"), ("CTL-T", "CTL", "top")]


# A plant with every operation, stored in two files (the second consumes pieces of the first),
# for round trips: maps read back from the database equal the maps of the events themselves.
RICH_EVENTS_1 = [
    '{"op":"create","piece":"A","length_mm":60000,"width_mm":1250,"grade":"DX54","line":"HSM"}',
    '{"op":"create","piece":"B","length_mm":50000,"width_mm":1100,"grade":"DX54","line":"HSM"}',
    '{"op":"mark","piece":"A","mark":"A/hole1","kind":"hole","x_mm":30000,"y_mm":100}',
    '{"op":"crop","input":"A","output":"Ac","head_mm":800,"tail_mm":600,"line":"PL"}',
    '{"op":"crop","input":"B","output":"Bc","head_mm":500,"tail_mm":700,"line":"PL"}',
    '{"op":"orient","input":"Bc","output":"Bt","how":"turn","line":"PL"}',
    '{"op":"weld","inputs":["Ac","Bt"],"output":"P","line":"PL"}',
    '{"op":"trim","input":"P","output":"Pt","os_mm":20,"ds_mm":30,"line":"PL"}',
]
RICH_EVENTS_2 = [
    '{"op":"elongate","input":"Pt","output":"C","knots":[[0,0],[40000,90000],[107400,250000]],"line":"TCM"}',
    '{"op":"orient","input":"C","output":"Cf","how":"flip_long","line":"CAL"}',
    '{"op":"cut","input":"Cf","outputs":[{"piece":"K1","from_mm":0,"to_mm":120000},'
    '{"piece":"K2","from_mm":120000,"to_mm":250000}],"line":"CAL"}',
    '{"op":"slit","input":"K2","outputs":[{"piece":"K2a","y_from_mm":-525,"y_to_mm":0},'
    '{"piece":"K2b","y_from_mm":0,"y_to_mm":525}],"line":"SL"}',
    '{"op":"mark","piece":"K2b","mark":"K2b/paint","kind":"paint","x_mm":1000,"y_mm":0}',
]
