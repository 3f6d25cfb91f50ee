"""Tracking events in the shared coil model: store a file's operations, read genealogies back.

Services take ``session=`` and never commit: the caller owns the transaction, so an events file
is stored whole or not at all. Validation is the tracking library's
(:meth:`tracking.genealogy.Genealogy.from_operations`) against the pieces already stored; this
module only adds what needs the database (an input piece consumed by an earlier import, an
events file imported twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from coilmap import models as m
from coilmap.errors import InputError, NotFoundError
from tracking.events import Operation
from tracking.genealogy import Genealogy, Piece

# Event fields that say when and on which line an operation happened (optional).
TIME_FIELDS = ("at", "time")
LINE_FIELD = "line"


@dataclass(frozen=True)
class ImportSummary:
    """What one events file added."""

    import_id: int
    source: str
    n_operations: int
    n_pieces: int
    n_edges: int
    n_marks: int


# --- lines and stations -------------------------------------------------------------------


def get_or_create_line(code: str, *, session: Session) -> int:
    """The id of the line ``code``, created when it is new (safe against a concurrent import
    creating it too: the insert does nothing on a conflict)."""
    line_id = session.scalar(select(m.Line.id).where(m.Line.code == code))
    if line_id is not None:
        return line_id
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(upsert(m.Line).values(code=code).on_conflict_do_nothing(index_elements=["code"]))
    else:  # pragma: no cover - the two supported databases are handled above
        session.execute(insert(m.Line).values(code=code))
    return session.scalars(select(m.Line.id).where(m.Line.code == code)).one()


def create_station(
    code: str,
    *,
    line: str,
    side: str,
    session: Session,
    vendor: str | None = None,
    export_kind: str | None = None,
    label_map: Mapping[str, str] | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> m.Station:
    """Register an inspection station (its line is created when new)."""
    if side not in m.SIDES:
        raise InputError(f"must be top or bottom, got {side!r}", field="side")
    station = m.Station(
        code=code,
        line_id=get_or_create_line(line, session=session),
        side=side,
        vendor=vendor,
        export_kind=export_kind,
        label_map=dict(label_map or {}),
        calibration=dict(calibration or {}),
    )
    session.add(station)
    session.flush()
    return station


def get_station(code: str, *, session: Session) -> m.Station:
    station = session.scalar(select(m.Station).where(m.Station.code == code))
    if station is None:
        raise NotFoundError(f"no station {code!r} in the coil model")
    return station


# --- pieces --------------------------------------------------------------------------------


def get_piece(piece_id: str, *, session: Session) -> m.Piece:
    piece = session.scalar(select(m.Piece).where(m.Piece.piece_id == piece_id))
    if piece is None:
        raise NotFoundError(f"no piece {piece_id!r} in the coil model")
    return piece


def piece_keys(piece_ids: Iterable[str], *, session: Session) -> dict[str, int]:
    """Database key of each stored piece among ``piece_ids`` (absent ones are left out)."""
    ids = sorted(set(piece_ids))
    if not ids:
        return {}
    rows = session.execute(select(m.Piece.piece_id, m.Piece.id).where(m.Piece.piece_id.in_(ids)))
    return {pid: key for pid, key in rows}


def _closure(start_keys: Sequence[int], *, up: bool, session: Session) -> set[int]:
    """Keys of every ancestor (``up``) or descendant of the pieces ``start_keys``: one
    recursive query, so the plant is never loaded whole."""
    edges = m.GenealogyEdge.__table__
    src, dst = (edges.c.child_id, edges.c.parent_id) if up else (edges.c.parent_id, edges.c.child_id)
    reached = select(dst.label("key")).where(src.in_(list(start_keys))).cte("reached", recursive=True)
    reached = reached.union(select(dst).join(reached, src == reached.c.key))
    return set(session.scalars(select(reached.c.key)))


def ancestor_keys(piece_key: int, *, session: Session) -> set[int]:
    return _closure([piece_key], up=True, session=session)


def descendant_keys(piece_key: int, *, session: Session) -> set[int]:
    return _closure([piece_key], up=False, session=session)


def _to_piece(row: m.Piece, line_codes: Mapping[int, str]) -> Piece:
    return Piece(
        piece_id=row.piece_id,
        length_mm=row.length_mm,
        width_mm=row.width_mm,
        line=line_codes.get(row.line_id) if row.line_id is not None else None,
        grade=row.grade,
        thickness_mm=row.thickness_mm,
        coil_no=row.coil_no,
        record=dict(row.record or {}),
    )


def _stored_pieces(
    keys: Iterable[int] | None, ids: Iterable[str] | None, session: Session
) -> dict[str, Piece]:
    stmt: Select[tuple[m.Piece]] = select(m.Piece)
    if keys is not None:
        stmt = stmt.where(m.Piece.id.in_(sorted(set(keys))))
    if ids is not None:
        stmt = stmt.where(m.Piece.piece_id.in_(sorted(set(ids))))
    rows = list(session.scalars(stmt))
    line_codes = dict(session.execute(select(m.Line.id, m.Line.code)).all())
    return {row.piece_id: _to_piece(row, line_codes) for row in rows}


def _operation_from_row(kind: str, params: dict[str, Any], source: str, line_no: int) -> Operation:
    # The stored record is the event exactly as read, so reading it again gives the same
    # operation; only its place in the original file has to be put back.
    op = Operation.from_record(params, source, line_no)
    if op.kind != kind:
        raise RuntimeError(f"stored operation {source}:{line_no} reads back as {op.kind}, not {kind}")
    return op


def load_genealogy(piece_id: str, *, session: Session, descendants: bool = True) -> Genealogy:
    """The genealogy of ``piece_id``: its ancestors, itself and (unless ``descendants`` is
    false) its descendants, rebuilt from the stored operations in their original order.

    Pieces that other operations of this sub-genealogy consume without being in it (the
    partner of a weld downstream) come in as known pieces, so nothing else is loaded.
    """
    key = get_piece(piece_id, session=session).id
    keys = {key} | ancestor_keys(key, session=session)
    if descendants:
        keys |= descendant_keys(key, session=session)
    return genealogy_of_keys(keys, session=session)[0]


def genealogy_of_keys(keys: Iterable[int], *, session: Session) -> tuple[Genealogy, dict[int, str]]:
    """The genealogy of the stored pieces ``keys`` (closed under ancestors) and the piece id of
    each key."""
    key_list = sorted(set(keys))
    names = dict(session.execute(select(m.Piece.id, m.Piece.piece_id).where(m.Piece.id.in_(key_list))).all())
    producing = select(m.Piece.produced_by_id).where(m.Piece.id.in_(key_list))
    marking = select(m.ReferenceMark.operation_id).where(m.ReferenceMark.piece_id.in_(key_list))
    rows = session.execute(
        select(m.Operation.kind, m.Operation.params, m.Operation.source, m.Operation.line_no)
        .where(m.Operation.id.in_(producing.union(marking).scalar_subquery()))
        .order_by(m.Operation.id)
    )
    ops = [_operation_from_row(*row) for row in rows]
    made = {out for op in ops for out in op.outputs}
    consumed = {inp for op in ops if op.kind != "mark" for inp in op.inputs}
    known = _stored_pieces(None, consumed - made, session) if consumed - made else None
    return Genealogy.from_operations(ops, known_pieces=known), names


# --- import --------------------------------------------------------------------------------


def _event_time(op: Operation) -> datetime | None:
    for name in TIME_FIELDS:
        if name not in op.record:
            continue
        value = op.record[name]
        if not isinstance(value, str):
            raise op.error(f"must be an ISO 8601 time string, got {value!r}", name)
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise op.error(f"must be an ISO 8601 time, got {value!r}", name) from None
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return None


def _event_line(op: Operation) -> str | None:
    value = op.record.get(LINE_FIELD)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise op.error(f"must be a non-empty line code, got {value!r}", LINE_FIELD)
    return value


def _input_field(op: Operation) -> str:
    return "inputs" if op.kind == "weld" else "input"


def _output_field(op: Operation) -> str:
    return {"create": "piece", "cut": "outputs", "slit": "outputs"}.get(op.kind, "output")


def _check_not_consumed(ops: Sequence[Operation], stored: Mapping[str, int], session: Session) -> None:
    """A stored piece that an earlier import already consumed cannot be consumed again
    (pieces are never edited; each exists once)."""
    wanted = {inp for op in ops if op.kind != "mark" for inp in op.inputs if inp in stored}
    if not wanted:
        return
    edges, ops_t = m.GenealogyEdge, m.Operation
    rows = session.execute(
        select(m.Piece.piece_id, ops_t.kind, ops_t.source, ops_t.line_no)
        .join(edges, edges.parent_id == m.Piece.id)
        .join(ops_t, ops_t.id == edges.operation_id)
        .where(m.Piece.piece_id.in_(sorted(wanted)))
    )
    earlier = {pid: (kind, source, line_no) for pid, kind, source, line_no in rows}
    for op in ops:
        if op.kind == "mark":
            continue
        for inp in op.inputs:
            if inp in earlier:
                kind, source, line_no = earlier[inp]
                raise op.error(
                    f"piece {inp!r} was already consumed by the {kind} at {source}:{line_no}",
                    _input_field(op),
                )


def _check_new_outputs(ops: Sequence[Operation], stored: Mapping[str, int]) -> None:
    for op in ops:
        for out in op.outputs:
            if out in stored:
                raise op.error(f"piece {out!r} is already stored (ids are unique)", _output_field(op))


def import_events(
    ops: Sequence[Operation], *, session: Session, source: str, sha256: str | None = None
) -> ImportSummary:
    """Validate ``ops`` against the stored pieces and store them; raise :class:`InputError`
    naming the file, line and field of the first problem (the caller then rolls back).

    ``sha256`` (of the file) refuses a file that was imported before.
    """
    if sha256 is not None:
        earlier = session.execute(
            select(m.EventImport.id, m.EventImport.imported_at).where(m.EventImport.sha256 == sha256)
        ).first()
        if earlier is not None:
            raise InputError(
                f"this events file was already imported (import {earlier.id} at "
                f"{earlier.imported_at:%Y-%m-%d %H:%M:%S}); nothing stored",
                source=source,
            )
    mentioned = {p for op in ops for p in (*op.inputs, *op.outputs)}
    stored = piece_keys(mentioned, session=session)
    _check_new_outputs(ops, stored)
    _check_not_consumed(ops, stored, session)
    known = _stored_pieces(stored.values(), None, session) if stored else None
    genealogy = Genealogy.from_operations(list(ops), known_pieces=known)
    times = [_event_time(op) for op in ops]
    lines = [_event_line(op) for op in ops]

    line_keys = {
        code: get_or_create_line(code, session=session)
        for code in sorted({c for c in lines if c} | {p.line for p in genealogy.pieces.values() if p.line})
    }
    new_pieces = [p for pid, p in genealogy.pieces.items() if pid not in stored]
    import_id = session.execute(
        insert(m.EventImport)
        .values(
            source=source,
            sha256=sha256 or "",
            imported_at=datetime.now(UTC),
            n_operations=len(ops),
            n_pieces=len(new_pieces),
        )
        .returning(m.EventImport.id)
    ).scalar_one()

    op_keys: list[int] = []
    if ops:
        op_keys = list(
            session.scalars(
                insert(m.Operation).returning(m.Operation.id, sort_by_parameter_order=True),
                [
                    {
                        "kind": op.kind,
                        "params": op.record,
                        "line_id": line_keys.get(line) if line else None,
                        "at": at,
                        "source": op.source,
                        "line_no": op.line_no,
                        "import_id": import_id,
                    }
                    for op, at, line in zip(ops, times, lines, strict=True)
                ],
            )
        )
    made_by = {out: i for i, op in enumerate(ops) for out in op.outputs}

    piece_keys_all = dict(stored)
    if new_pieces:
        new_keys = session.scalars(
            insert(m.Piece).returning(m.Piece.id, sort_by_parameter_order=True),
            [
                {
                    "piece_id": p.piece_id,
                    "length_mm": float(p.length_mm),
                    "width_mm": float(p.width_mm),
                    "thickness_mm": None if p.thickness_mm is None else float(p.thickness_mm),
                    "grade": p.grade,
                    "line_id": line_keys.get(p.line) if p.line else None,
                    "made_at": times[made_by[p.piece_id]] if p.piece_id in made_by else None,
                    "coil_no": p.coil_no,
                    "produced_by_id": op_keys[made_by[p.piece_id]] if p.piece_id in made_by else None,
                    "record": dict(p.record or {}),
                }
                for p in new_pieces
            ],
        )
        piece_keys_all.update(zip((p.piece_id for p in new_pieces), new_keys, strict=True))

    edges = [
        {
            "operation_id": op_keys[i],
            "parent_id": piece_keys_all[parent],
            "child_id": piece_keys_all[child],
            "parent_ordinal": pi,
            "child_ordinal": ci,
        }
        for i, op in enumerate(ops)
        if op.kind != "mark"
        for pi, parent in enumerate(op.inputs)
        for ci, child in enumerate(op.outputs)
    ]
    if edges:
        session.execute(insert(m.GenealogyEdge), edges)

    marks = [
        {
            "piece_id": piece_keys_all[op.record["piece"]],
            "mark_id": op.record["mark"],
            "kind": str(op.record.get("kind", "mark")),
            "x_mm": float(op.record["x_mm"]),
            "y_mm": None if op.record.get("y_mm") is None else float(op.record["y_mm"]),
            "operation_id": op_keys[i],
        }
        for i, op in enumerate(ops)
        if op.kind == "mark"
    ]
    if marks:
        _check_marks_unique(ops, session)
        session.execute(insert(m.ReferenceMark), marks)
    return ImportSummary(import_id, source, len(ops), len(new_pieces), len(edges), len(marks))


def _check_marks_unique(ops: Sequence[Operation], session: Session) -> None:
    """Mark ids are unique in the whole plant (the tracking library's rule), across imports."""
    marks = {op.record["mark"]: op for op in ops if op.kind == "mark"}
    rows = session.execute(
        select(m.ReferenceMark.mark_id, m.Piece.piece_id)
        .join(m.Piece, m.Piece.id == m.ReferenceMark.piece_id)
        .where(m.ReferenceMark.mark_id.in_(sorted(marks)))
    )
    for mark_id, piece_id in rows:
        raise marks[mark_id].error(f"mark id {mark_id!r} is already recorded (on piece {piece_id!r})", "mark")


# --- observations --------------------------------------------------------------------------

OBSERVATION_FIELDS = (
    "station",
    "piece",
    "side",
    "x_mm",
    "y_mm",
    "x0_mm",
    "y0_mm",
    "x1_mm",
    "y1_mm",
    "geometry_wkt",
    "x_obs_mm",
    "station_label",
    "station_confidence",
    "plant_class",
    "anomaly_score",
    "image_ref",
    "observed_at",
    "source_key",
)


def create_observations(
    rows: Iterable[Mapping[str, Any]], *, session: Session, ingestion_run_id: int | None = None
) -> int:
    """Store defect observations given by station code and piece id; the number stored.

    Each row has the keys of :data:`OBSERVATION_FIELDS` (the box ``x0_mm .. y1_mm`` defaults
    to the centre, the optional ones to ``None``). One executemany insert: 100,000 rows take
    seconds, not minutes.
    """
    rows = list(rows)
    if not rows:
        return 0
    stations = dict(
        session.execute(
            select(m.Station.code, m.Station.id).where(
                m.Station.code.in_(sorted({str(r["station"]) for r in rows}))
            )
        ).all()
    )
    pieces = piece_keys((str(r["piece"]) for r in rows), session=session)
    params = []
    for n, r in enumerate(rows, start=1):
        if r["station"] not in stations:
            raise InputError(f"no station {r['station']!r} in the coil model", line=n, field="station")
        if r["piece"] not in pieces:
            raise InputError(f"no piece {r['piece']!r} in the coil model", line=n, field="piece")
        if r["side"] not in m.SIDES:
            raise InputError(f"must be top or bottom, got {r['side']!r}", line=n, field="side")
        x, y = float(r["x_mm"]), float(r["y_mm"])
        x0, y0 = float(r.get("x0_mm", x)), float(r.get("y0_mm", y))
        x1, y1 = float(r.get("x1_mm", x)), float(r.get("y1_mm", y))
        if not (x0 <= x1 and y0 <= y1):
            raise InputError(
                f"box must have x0 <= x1 and y0 <= y1, got {(x0, y0, x1, y1)}",
                line=n,
                field="x0_mm",
            )
        params.append(
            {
                "station_id": stations[r["station"]],
                "piece_id": pieces[r["piece"]],
                "side": r["side"],
                "x_mm": x,
                "y_mm": y,
                "x0_mm": x0,
                "y0_mm": y0,
                "x1_mm": x1,
                "y1_mm": y1,
                "geometry_wkt": r.get("geometry_wkt"),
                "x_obs_mm": r.get("x_obs_mm"),
                "station_label": r.get("station_label"),
                "station_confidence": r.get("station_confidence"),
                "plant_class": r.get("plant_class"),
                "anomaly_score": r.get("anomaly_score"),
                "image_ref": r.get("image_ref"),
                "observed_at": r["observed_at"],
                "source_key": r["source_key"],
                "ingestion_run_id": ingestion_run_id,
            }
        )
    session.execute(insert(m.Observation), params)
    return len(params)
