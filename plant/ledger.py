"""The plant's ledger: every piece's true state, and the tracking events that made it.

Each method performs one operation of DOMAIN.md: it appends the event (the JSON Lines record of
the tracking issue, with ``line`` and ``time``) and applies the simulator's own physics
(:mod:`plant.material`) to the defects and reference marks of the input pieces. Inputs are
checked (a cut beyond a coil, a negative crop) and rejected with :class:`InputError`.

>>> from plant.material import Defects
>>> led = Ledger()
>>> _ = led.create("H1", 1000.0, 1200.0, line="HSM", time_s=0.0, grade="DC04",
...                thickness_mm=3.0, defects=Defects.from_boxes([1], [100.0], [0.0], [10.0],
...                [10.0], [True]))
>>> _ = led.crop("H1", "H1c", 50.0, 50.0, line="PL", time_s=60.0)
>>> float(led.pieces["H1c"].defects.x_mm[0]), led.events[-1]["op"]
(50.0, 'crop')
>>> led.cut("H1c", [("C1", 0.0, 2000.0)], line="PL", time_s=70.0)
Traceback (most recent call last):
...
coilmap.errors.InputError: piece H1c: field outputs: cut [0.0, 2000.0) lies beyond the piece (length 900.0 mm)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from coilmap.errors import InputError
from plant.material import Defects, cut_marks, elongate_marks, orient_marks

EPOCH = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)


def iso_time(time_s: float) -> str:
    """Plant time (seconds since the simulated start) as an ISO 8601 UTC string.

    >>> iso_time(90.5)
    '2026-01-05T06:01:30.500Z'
    """
    t = EPOCH + timedelta(milliseconds=round(time_s * 1000))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def iso_times(time_s: np.ndarray) -> list[str]:
    """:func:`iso_time` of many times at once (vectorised; the same strings).

    >>> iso_times(np.array([90.5, 0.0])) == [iso_time(90.5), iso_time(0.0)]
    True
    """
    ms = np.rint(np.asarray(time_s, dtype=float) * 1000).astype("int64")
    stamps = np.datetime64(EPOCH.replace(tzinfo=None), "ms") + ms.astype("timedelta64[ms]")
    return [f"{s}Z" for s in np.datetime_as_string(stamps, unit="ms")]


def _r(v: float) -> float:
    """Positions in events are rounded to the micrometre; physics uses the rounded value."""
    return round(float(v), 3)


@dataclass
class PieceState:
    """One piece's true state."""

    piece_id: str
    line: str
    length_mm: float
    width_mm: float
    thickness_mm: float
    grade: str
    defects: Defects
    marks: dict[str, float]  # seams and holes (head and tail are implicit)
    elongation: float  # cumulative length factor since the hot mill (for rendering)
    time_s: float
    coil_no: str | None = None
    parents: tuple[str, ...] = ()
    consumed: bool = False


@dataclass
class Ledger:
    """All pieces and events of a plant, in production order."""

    pieces: dict[str, PieceState] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    removed: list[tuple[int, str, str, str]] = field(default_factory=list)

    # -- helpers ----------------------------------------------------------------------------
    def _take(self, piece_id: str) -> PieceState:
        p = self.pieces.get(piece_id)
        if p is None:
            raise InputError("no such piece", source=f"piece {piece_id}")
        if p.consumed:
            raise InputError("piece was already consumed by an earlier operation",
                             source=f"piece {piece_id}")
        return p

    def _new(self, piece_id: str, src: PieceState, *, line: str, time_s: float,
             **changes: object) -> PieceState:
        if piece_id in self.pieces:
            raise InputError("piece id is used twice", source=f"piece {piece_id}")
        values = dict(piece_id=piece_id, line=line, length_mm=src.length_mm,
                      width_mm=src.width_mm, thickness_mm=src.thickness_mm, grade=src.grade,
                      defects=src.defects, marks=dict(src.marks), elongation=src.elongation,
                      time_s=time_s, coil_no=src.coil_no, parents=(src.piece_id,))
        values.update(changes)
        p = PieceState(**values)  # type: ignore[arg-type]
        self.pieces[piece_id] = p
        return p

    def _event(self, record: dict, line: str, time_s: float) -> None:
        record["line"] = line
        record["time"] = iso_time(time_s)
        self.events.append(record)

    def _note_removed(self, op: str, inputs: list[PieceState], outputs: list[PieceState]) -> None:
        kept = set()
        for o in outputs:
            kept.update(o.defects.defect_id.tolist())
        for p in inputs:
            for d in p.defects.defect_id.tolist():
                if d not in kept:
                    self.removed.append((int(d), p.piece_id, op, outputs[0].piece_id))

    # -- operations -------------------------------------------------------------------------
    def create(self, piece_id: str, length_mm: float, width_mm: float, *, line: str,
               time_s: float, grade: str, thickness_mm: float, defects: Defects,
               coil_no: str | None = None) -> PieceState:
        length_mm, width_mm = _r(length_mm), _r(width_mm)
        if length_mm <= 0 or width_mm <= 0:
            raise InputError(f"length and width must be positive, got {length_mm} x {width_mm}",
                             source=f"piece {piece_id}", field="length_mm")
        if piece_id in self.pieces:
            raise InputError("piece id is used twice", source=f"piece {piece_id}")
        p = PieceState(piece_id, line, length_mm, width_mm, round(thickness_mm, 3), grade,
                       defects, {}, 1.0, time_s, coil_no)
        self.pieces[piece_id] = p
        self._event({"op": "create", "piece": piece_id, "length_mm": length_mm,
                     "width_mm": width_mm, "grade": grade, "thickness_mm": p.thickness_mm,
                     "coil_no": coil_no or piece_id}, line, time_s)
        return p

    def orient(self, src_id: str, out_id: str, how: str, *, line: str,
               time_s: float) -> PieceState:
        src = self._take(src_id)
        if how not in ("turn", "flip_cross", "flip_long"):
            raise InputError(f"unknown orientation {how!r}", source=f"piece {src_id}",
                             field="how")
        out = self._new(out_id, src, line=line, time_s=time_s,
                        defects=src.defects.orient(how, length_mm=src.length_mm),
                        marks=orient_marks(src.marks, how, src.length_mm))
        src.consumed = True
        self._event({"op": "orient", "input": src_id, "output": out_id, "how": how}, line,
                    time_s)
        return out

    def crop(self, src_id: str, out_id: str, head_mm: float, tail_mm: float, *, line: str,
             time_s: float) -> PieceState:
        src = self._take(src_id)
        head_mm, tail_mm = _r(head_mm), _r(tail_mm)
        if head_mm < 0 or tail_mm < 0 or head_mm + tail_mm >= src.length_mm:
            raise InputError(f"crop head {head_mm} mm + tail {tail_mm} mm does not fit a piece "
                             f"of {src.length_mm} mm", source=f"piece {src_id}",
                             field="head_mm")
        length = _r(src.length_mm - head_mm - tail_mm)
        out = self._new(out_id, src, line=line, time_s=time_s, length_mm=length,
                        defects=src.defects.crop(head_mm, tail_mm, src.length_mm),
                        marks=cut_marks(src.marks, head_mm, src.length_mm - tail_mm))
        src.consumed = True
        self._note_removed("crop", [src], [out])
        self._event({"op": "crop", "input": src_id, "output": out_id, "head_mm": head_mm,
                     "tail_mm": tail_mm}, line, time_s)
        return out

    def trim(self, src_id: str, out_id: str, os_mm: float, ds_mm: float, *, line: str,
             time_s: float) -> PieceState:
        src = self._take(src_id)
        os_mm, ds_mm = _r(os_mm), _r(ds_mm)
        if os_mm < 0 or ds_mm < 0 or os_mm + ds_mm >= src.width_mm:
            raise InputError(f"trim OS {os_mm} mm + DS {ds_mm} mm does not fit a width of "
                             f"{src.width_mm} mm", source=f"piece {src_id}", field="os_mm")
        out = self._new(out_id, src, line=line, time_s=time_s,
                        width_mm=_r(src.width_mm - os_mm - ds_mm),
                        defects=src.defects.trim(os_mm, ds_mm, src.width_mm))
        src.consumed = True
        self._note_removed("trim", [src], [out])
        self._event({"op": "trim", "input": src_id, "output": out_id, "os_mm": os_mm,
                     "ds_mm": ds_mm}, line, time_s)
        return out

    def elongate(self, src_id: str, out_id: str, knots: list[tuple[float, float]] | None = None,
                 *, factor: float | None = None, width_factor: float = 1.0,
                 thickness_mm: float | None = None, line: str, time_s: float) -> PieceState:
        """Rolling: either a plain ``factor`` or ``knots`` [(x_in, x_out), ...] (rounded)."""
        src = self._take(src_id)
        if factor is not None:
            factor = round(float(factor), 9)
            if factor <= 0:
                raise InputError(f"elongation factor must be positive, got {factor}",
                                 source=f"piece {src_id}", field="factor")
            kin = np.array([0.0, src.length_mm])
            kout = kin * factor
            record: dict = {"op": "elongate", "input": src_id, "output": out_id,
                            "factor": factor}
        else:
            assert knots is not None
            pairs = [(_r(a), _r(b)) for a, b in knots]
            kin = np.array([a for a, _ in pairs])
            kout = np.array([b for _, b in pairs])
            if kin[0] != 0 or kout[0] != 0 or kin[-1] != src.length_mm:
                raise InputError(f"knots must run from (0, 0) to the piece length "
                                 f"{src.length_mm} mm", source=f"piece {src_id}", field="knots")
            record = {"op": "elongate", "input": src_id, "output": out_id,
                      "knots": [[a, b] for a, b in pairs]}
        if np.any(np.diff(kin) <= 0) or np.any(np.diff(kout) <= 0):
            raise InputError("elongation knots must increase", source=f"piece {src_id}",
                             field="knots")
        width_factor = round(float(width_factor), 9)
        if width_factor <= 0:
            raise InputError(f"width factor must be positive, got {width_factor}",
                             source=f"piece {src_id}", field="width_factor")
        if width_factor != 1.0:
            record["width_factor"] = width_factor
        new_len = float(kout[-1])
        out = self._new(out_id, src, line=line, time_s=time_s, length_mm=new_len,
                        width_mm=src.width_mm * width_factor,
                        thickness_mm=round(thickness_mm or src.thickness_mm, 3),
                        elongation=src.elongation * new_len / src.length_mm,
                        defects=src.defects.elongate(kin, kout, width_factor),
                        marks=elongate_marks(src.marks, kin, kout))
        src.consumed = True
        if thickness_mm is not None:
            record["thickness_mm"] = out.thickness_mm
        self._event(record, line, time_s)
        return out

    def weld(self, src_ids: list[str], out_id: str, *, line: str, time_s: float) -> PieceState:
        srcs = [self._take(s) for s in src_ids]
        if len(srcs) < 2:
            raise InputError("a weld joins at least two pieces", source=f"piece {out_id}",
                             field="inputs")
        parts, marks, offset = [], {}, 0.0
        for k, s in enumerate(srcs):
            if k:
                marks[f"{out_id}:seam{k}"] = offset
            parts.append(s.defects.shift_x(offset))
            marks.update({m: x + offset for m, x in s.marks.items()})
            offset = _r(offset + s.length_mm)
        first = srcs[0]
        out = self._new(out_id, first, line=line, time_s=time_s, length_mm=offset,
                        width_mm=max(s.width_mm for s in srcs), defects=Defects.concat(parts),
                        marks=marks, parents=tuple(src_ids),
                        elongation=float(np.mean([s.elongation for s in srcs])), coil_no=None)
        for s in srcs:
            s.consumed = True
        self._event({"op": "weld", "inputs": list(src_ids), "output": out_id}, line, time_s)
        return out

    def cut(self, src_id: str, outputs: list[tuple[str, float, float]], *, line: str,
            time_s: float) -> list[PieceState]:
        src = self._take(src_id)
        outs, recs, last_to = [], [], -1.0
        for out_id, a, b in outputs:
            a, b = _r(a), _r(b)
            if a < 0 or b > src.length_mm or b <= a:
                raise InputError(f"cut [{a}, {b}) lies beyond the piece (length "
                                 f"{src.length_mm} mm)", source=f"piece {src_id}",
                                 field="outputs")
            if a < last_to:
                raise InputError(f"cuts overlap at {a} mm", source=f"piece {src_id}",
                                 field="outputs")
            last_to = b
            outs.append(self._new(out_id, src, line=line, time_s=time_s, length_mm=_r(b - a),
                                  defects=src.defects.cut(a, b),
                                  marks=cut_marks(src.marks, a, b), coil_no=out_id))
            recs.append({"piece": out_id, "from_mm": a, "to_mm": b})
        src.consumed = True
        self._note_removed("cut", [src], outs)
        self._event({"op": "cut", "input": src_id, "outputs": recs}, line, time_s)
        return outs

    def slit(self, src_id: str, outputs: list[tuple[str, float, float]], *, line: str,
             time_s: float) -> list[PieceState]:
        src = self._take(src_id)
        outs, recs = [], []
        half = src.width_mm / 2
        for out_id, a, b in outputs:
            a, b = _r(a), _r(b)
            if a < -half - 1e-6 or b > half + 1e-6 or b <= a:
                raise InputError(f"slit [{a}, {b}) lies beyond the width {src.width_mm} mm",
                                 source=f"piece {src_id}", field="outputs")
            outs.append(self._new(out_id, src, line=line, time_s=time_s, width_mm=_r(b - a),
                                  defects=src.defects.slit(a, b), coil_no=out_id))
            recs.append({"piece": out_id, "y_from_mm": a, "y_to_mm": b})
        src.consumed = True
        self._note_removed("slit", [src], outs)
        self._event({"op": "slit", "input": src_id, "outputs": recs}, line, time_s)
        return outs

    def mark(self, piece_id: str, mark_id: str, kind: str, x_mm: float, y_mm: float, *,
             line: str, time_s: float) -> None:
        p = self.pieces.get(piece_id)
        if p is None:
            raise InputError("no such piece", source=f"piece {piece_id}")
        x_mm, y_mm = _r(x_mm), _r(y_mm)
        if not 0 <= x_mm <= p.length_mm:
            raise InputError(f"mark at {x_mm} mm lies beyond the piece (length "
                             f"{p.length_mm} mm)", source=f"piece {piece_id}", field="x_mm")
        p.marks[mark_id] = x_mm
        self._event({"op": "mark", "piece": piece_id, "mark": mark_id, "kind": kind,
                     "x_mm": x_mm, "y_mm": y_mm}, line, time_s)

    def final_pieces(self) -> list[str]:
        """Pieces no operation consumed, in creation order."""
        return [k for k, p in self.pieces.items() if not p.consumed]
