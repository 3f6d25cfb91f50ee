"""``coilmap track map``: defects through an events file, no database."""

import json
from pathlib import Path

import pytest

from coilmap.cli import main
from tests.tracking.test_genealogy import ROUTE, X_C2


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROUTE) + "\n")
    return path


def test_maps_points_and_boxes_to_a_final_coil(capsys, events: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    defects = tmp_path / "d.csv"
    defects.write_text(
        "defect_id,piece,side,x_mm,y_mm,w_mm,h_mm\n"
        "d1,H1,top,100000,200,0,0\n"
        "d2,H1,top,1000,0,10,10\n"
        "d3,H1a,bottom,100,0,400,10\n"
    )
    code, out, err = run(
        capsys, "track", "map", "--events", str(events), "--defects", str(defects), "--to", "C2"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "defect_id,x_mm,y_mm,side,status,w_mm,h_mm"
    d1 = lines[1].split(",")
    assert (
        d1[0] == "d1"
        and float(d1[1]) == pytest.approx(X_C2, abs=1e-3)
        and d1[2:5] == ["197.5", "bottom", "kept"]
    )
    assert lines[2].split(",")[4] == "removed:crop"
    # d3 straddles the head of H1a (x from -100 to 300): clipped to 0..300 then stretched
    d3 = lines[3].split(",")
    assert d3[4] == "kept" and d3[3] == "top"
    assert float(d3[5]) == pytest.approx(300 * 1045300 / 246500, abs=1e-3)


def test_bad_defects_file_names_line_and_field(capsys, events: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    defects = tmp_path / "d.csv"
    defects.write_text("defect_id,piece,side,x_mm,y_mm\nd1,H1,top,1,2\nd2,H1,left,1,2\n")
    code, out, err = run(
        capsys, "track", "map", "--events", str(events), "--defects", str(defects), "--to", "C2"
    )
    assert code == 2
    assert f"{defects}:3: field side: must be top or bottom" in err
    assert "Traceback" not in err
    defects.write_text("defect_id,piece,side,x_mm,y_mm\nd1,NOPE,top,1,2\n")
    code, _, err = run(
        capsys, "track", "map", "--events", str(events), "--defects", str(defects), "--to", "C2"
    )
    assert code == 2 and "unknown piece 'NOPE'" in err and ":2: field piece" in err


def test_bad_events_file_is_reported_with_its_line(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps(ROUTE[0]) + "\n" + json.dumps({**ROUTE[1], "input": "X"}) + "\n")
    defects = tmp_path / "d.csv"
    defects.write_text("defect_id,piece,side,x_mm,y_mm\n")
    code, _, err = run(
        capsys, "track", "map", "--events", str(events), "--defects", str(defects), "--to", "H1"
    )
    assert code == 2
    assert f"{events}:2: field input: unknown piece 'X'" in err
