"""Storing tracking events: whole files or nothing, clear errors, genealogies read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import Engine

from coilmap import models as m
from coilmap.db import session_factory, transaction
from coilmap.errors import InputError
from tracking.events import parse_events, read_events
from tracking.store import import_events, load_genealogy

from .plant_fixture import EVENTS, write_events

pytestmark = pytest.mark.db


def _import(engine: Engine, path: Path) -> None:
    from coilmap.files import file_sha256

    with transaction(engine) as session:
        import_events(read_events(path), session=session, source=str(path), sha256=file_sha256(path))


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in m.Base.metadata.sorted_tables
        }


def test_import_stores_pieces_operations_edges_marks(engine: Engine, tmp_path: Path) -> None:
    _import(engine, write_events(tmp_path / "events.jsonl", EVENTS))
    counts = _counts(engine)
    assert counts["operations"] == 6
    assert counts["pieces"] == 6  # H1, H1c, H1o, T1, F1, F2
    assert counts["genealogy_edges"] == 5  # crop, orient, elongate, cut x2
    assert counts["reference_marks"] == 1
    assert counts["event_imports"] == 1
    assert counts["lines"] == 4  # HSM, PL, TCM, CTL
    with session_factory(engine)() as session:
        f2 = session.scalar(sa.select(m.Piece).where(m.Piece.piece_id == "F2"))
        assert (f2.length_mm, f2.width_mm, f2.grade) == (9000.0, 1200.0, "S235")
        # Rolling to twice the length halves the thickness (volume kept).
        assert f2.thickness_mm == pytest.approx(1.5)
        line = session.scalar(sa.select(m.Line.code).where(m.Line.id == f2.line_id))
        assert line == "CTL"
        t1 = session.scalar(sa.select(m.Piece).where(m.Piece.piece_id == "T1"))
        assert t1.made_at is not None and t1.made_at.day == 2
        cut = session.get(m.Operation, f2.produced_by_id)
        assert (cut.kind, cut.line_no, cut.params["outputs"][1]["piece"]) == ("cut", 6, "F2")


def test_genealogy_reads_back_with_descendants_and_weld_partner(engine: Engine, tmp_path: Path) -> None:
    _import(engine, write_events(tmp_path / "a.jsonl", EVENTS))
    # A later file welds F2 to a new coil G: G is no relative of T1, so reading T1's
    # genealogy must bring G in as a known piece, not load the rest of the plant.
    _import(
        engine,
        write_events(
            tmp_path / "b.jsonl",
            [
                '{"op":"create","piece":"G","length_mm":3000,"width_mm":1000}',
                '{"op":"create","piece":"Z","length_mm":3000,"width_mm":1000}',
                '{"op":"weld","inputs":["G","F2"],"output":"W"}',
            ],
        ),
    )
    with session_factory(engine)() as session:
        g = load_genealogy("T1", session=session)
    assert set(g.pieces) == {"H1", "H1c", "H1o", "T1", "F1", "F2", "G", "W"}
    assert g.ancestors("T1") == ["H1o", "H1c", "H1"]
    assert set(g.descendants("T1")) == {"F1", "F2", "W"}
    # T1 9000 -> F2 1000 -> W 3000 + 1000.
    res = g.map_points("T1", "W", np.array([9000.0]), np.array([0.0]), np.array([True]))
    assert res.x_mm.tolist() == [4000.0] and res.status.tolist() == ["kept"]
    assert [k.mark_id for k in g.marks("T1") if k.kind == "hole"] == ["T1/hole1"]


def test_bad_line_rolls_back_the_whole_file(engine: Engine, tmp_path: Path) -> None:
    _import(engine, write_events(tmp_path / "a.jsonl", EVENTS))
    before = _counts(engine)
    bad = write_events(
        tmp_path / "b.jsonl",
        [
            '{"op":"create","piece":"K1","length_mm":5000,"width_mm":1000,"line":"HSM2"}',
            '{"op":"mark","piece":"F1","mark":"F1/paint","kind":"paint","x_mm":10}',
            '{"op":"crop","input":"K1","output":"K1c","head_mm":100,"tail_mm":100}',
            # Beyond K1c's 4,800 mm.
            '{"op":"cut","input":"K1c","outputs":[{"piece":"K2","from_mm":0,"to_mm":9000}]}',
        ],
    )
    with pytest.raises(InputError) as err:
        _import(engine, bad)
    assert err.value.source == str(bad) and err.value.line == 4
    assert err.value.field is not None and err.value.field.startswith("outputs")
    assert _counts(engine) == before


def test_duplicate_piece_across_imports(engine: Engine, tmp_path: Path) -> None:
    _import(engine, write_events(tmp_path / "a.jsonl", EVENTS))
    before = _counts(engine)
    second = write_events(
        tmp_path / "b.jsonl",
        [
            '{"op":"create","piece":"N1","length_mm":5000,"width_mm":1000}',
            # F2's material cannot become its own ancestor H1 again: ids are unique, which
            # also rules out a cycle through stored pieces.
            '{"op":"crop","input":"F2","output":"H1","head_mm":10,"tail_mm":10}',
        ],
    )
    with pytest.raises(InputError) as err:
        _import(engine, second)
    assert (err.value.line, err.value.field) == (2, "output")
    assert "'H1'" in str(err.value) and "already stored" in str(err.value)
    assert _counts(engine) == before


def test_piece_consumed_again_in_a_later_import(engine: Engine, tmp_path: Path) -> None:
    _import(engine, write_events(tmp_path / "a.jsonl", EVENTS))
    second = write_events(
        tmp_path / "b.jsonl", ['{"op":"crop","input":"T1","output":"T1x","head_mm":1,"tail_mm":1}']
    )
    with pytest.raises(InputError) as err:
        _import(engine, second)
    assert (err.value.line, err.value.field) == (1, "input")
    assert "already consumed by the cut" in str(err.value) and "a.jsonl:6" in str(err.value)


def test_mark_id_unique_across_imports(engine: Engine, tmp_path: Path) -> None:
    _import(engine, write_events(tmp_path / "a.jsonl", EVENTS))
    second = write_events(tmp_path / "b.jsonl", ['{"op":"mark","piece":"F1","mark":"T1/hole1","x_mm":1}'])
    with pytest.raises(InputError) as err:
        _import(engine, second)
    assert (err.value.line, err.value.field) == (1, "mark")


def test_same_file_twice_is_refused(engine: Engine, tmp_path: Path) -> None:
    path = write_events(tmp_path / "a.jsonl", EVENTS)
    _import(engine, path)
    with pytest.raises(InputError, match="already imported"):
        _import(engine, path)


def test_import_continues_from_stored_pieces(engine: Engine, tmp_path: Path) -> None:
    _import(engine, write_events(tmp_path / "a.jsonl", EVENTS))
    ops = parse_events(
        [
            '{"op":"slit","input":"F2","outputs":[{"piece":"S1","y_from_mm":-600,"y_to_mm":0},'
            '{"piece":"S2","y_from_mm":0,"y_to_mm":600}]}'
        ],
        source="c.jsonl",
    )
    with transaction(engine) as session:
        summary = import_events(ops, session=session, source="c.jsonl")
    assert (summary.n_pieces, summary.n_edges) == (2, 2)
    with session_factory(engine)() as session:
        g = load_genealogy("S2", session=session)
    res = g.map_points("H1", "S2", np.array([2000.0]), np.array([100.0]), np.array([True]))
    # F2 (7000, 100) -> band [0, 600) centred at 300: y = 100 - 300.
    assert (res.x_mm.tolist(), res.y_mm.tolist()) == ([7000.0], [-200.0])


def test_cli_import_reports_line_and_field(engine: Engine, db_url: str, tmp_path: Path) -> None:
    from tracking.cli_store import import_events_cmd

    runner = CliRunner()
    good = write_events(tmp_path / "a.jsonl", EVENTS)
    result = runner.invoke(import_events_cmd, [str(good), "--url", db_url])
    assert result.exit_code == 0, result.output
    assert "stored 6 operations, 6 new pieces" in result.output
    bad = write_events(
        tmp_path / "b.jsonl",
        [
            '{"op":"create","piece":"Q","length_mm":5000,"width_mm":1000}',
            '{"op":"trim","input":"Q","output":"Qt","os_mm":"wide","ds_mm":5}',
        ],
    )
    result = runner.invoke(import_events_cmd, [str(bad), "--url", db_url])
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(f"{bad}:2: field os_mm:")
    assert _counts(engine)["pieces"] == 6


def test_observation_rows_are_checked(engine: Engine, tmp_path: Path) -> None:
    from tracking.store import create_observations, create_station

    from .plant_fixture import observation

    _import(engine, write_events(tmp_path / "a.jsonl", EVENTS))
    with transaction(engine) as session:
        create_station("PL-T", line="PL", side="top", session=session)
    good = observation("PL-T", "H1c", "k1", 10.0, 0.0, "top")
    cases = [
        ({**good, "station": "XX"}, "station"),
        ({**good, "piece": "NOPE"}, "piece"),
        ({**good, "side": "left"}, "side"),
        ({**good, "x0_mm": 20.0, "x1_mm": 10.0}, "x0_mm"),
    ]
    for bad, field in cases:
        with pytest.raises(InputError) as err, transaction(engine) as session:
            create_observations([good | {"source_key": "k0"}, bad], session=session)
        assert (err.value.line, err.value.field) == (2, field)
    assert _counts(engine)["observations"] == 0
    with transaction(engine) as session:
        assert create_observations([good], session=session) == 1


def test_genealogies_read_back_map_like_the_events(engine: Engine, tmp_path: Path) -> None:
    """Invariant: for every stored piece and every ancestor, the maps rebuilt from the database
    (only that piece's relatives loaded) equal the maps of the whole events list."""
    from tracking.genealogy import Genealogy

    from .plant_fixture import RICH_EVENTS_1, RICH_EVENTS_2

    _import(engine, write_events(tmp_path / "a.jsonl", RICH_EVENTS_1))
    _import(engine, write_events(tmp_path / "b.jsonl", RICH_EVENTS_2))
    whole = Genealogy.from_operations(parse_events(RICH_EVENTS_1 + RICH_EVENTS_2, "all.jsonl"))
    rng = np.random.default_rng(3)
    with session_factory(engine)() as session:
        for piece in whole.pieces:
            stored = load_genealogy(piece, session=session)
            assert stored.pieces[piece].length_mm == pytest.approx(whole.pieces[piece].length_mm)
            assert [k.mark_id for k in stored.marks(piece)] == [k.mark_id for k in whole.marks(piece)]
            for src in whole.ancestors(piece):
                n = 200
                length_mm, width_mm = whole.pieces[src].length_mm, whole.pieces[src].width_mm
                x = rng.uniform(-0.05 * length_mm, 1.05 * length_mm, n)
                y = rng.uniform(-0.55 * width_mm, 0.55 * width_mm, n)
                top = rng.random(n) < 0.5
                want = whole.map_points(src, piece, x, y, top)
                got = stored.map_points(src, piece, x, y, top)
                np.testing.assert_allclose(got.x_mm, want.x_mm, rtol=0, atol=1e-6)
                np.testing.assert_allclose(got.y_mm, want.y_mm, rtol=0, atol=1e-6)
                assert (got.is_top == want.is_top).all()
                assert (got.status == want.status).all(), (src, piece)


def test_two_writers_create_the_same_line(engine: Engine) -> None:
    """A line both of two concurrent imports create is stored once; both get its id."""
    import threading

    from tracking.store import get_or_create_line

    results: dict[str, int] = {}
    first = session_factory(engine)()
    first.begin()
    results["first"] = get_or_create_line("NEW", session=first)

    def second() -> None:
        with transaction(engine) as session:
            results["second"] = get_or_create_line("NEW", session=session)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=0.5)  # the second writer waits for the first one's transaction
    first.commit()
    first.close()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert results["first"] == results["second"]
    assert _counts(engine)["lines"] == 1
