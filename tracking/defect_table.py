"""``track map`` without a database: map a CSV of defects through an events file (pure core
plus the CSV reading that names line and field of any bad value)."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coilmap.errors import InputError
from tracking.genealogy import Genealogy

REQUIRED = ("defect_id", "piece", "side", "x_mm", "y_mm")
SIDES = ("top", "bottom")


@dataclass(frozen=True)
class DefectTable:
    """Defects read from a CSV: ids, pieces, sides and positions (boxes where given)."""

    defect_id: list[str]
    piece: np.ndarray
    is_top: np.ndarray
    x_mm: np.ndarray
    y_mm: np.ndarray
    w_mm: np.ndarray  # 0 for point defects
    h_mm: np.ndarray
    has_size: bool


def read_defects(path: str | Path) -> DefectTable:
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return parse_defects(fh, source=str(path))
    except FileNotFoundError:
        raise InputError("no such defects file", source=str(path)) from None


def parse_defects(lines: Iterable[str], source: str = "<defects>") -> DefectTable:
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}; need {','.join(REQUIRED)}", source=source, line=1
        )
    has_size = "w_mm" in header or "h_mm" in header
    ids, pieces, tops, xs, ys, ws, hs = [], [], [], [], [], [], []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num

        def number(name: str, default: float | None = None, row=row, line=line) -> float:  # type: ignore[no-untyped-def]
            raw = (row.get(name) or "").strip()
            if not raw and default is not None:
                return default
            try:
                v = float(raw)
            except ValueError:
                raise InputError(
                    f"must be a number, got {raw!r}", source=source, line=line, field=name
                ) from None
            if not math.isfinite(v):
                raise InputError(f"must be finite, got {raw!r}", source=source, line=line, field=name)
            if default is not None and v < 0:
                raise InputError(f"must be >= 0, got {raw!r}", source=source, line=line, field=name)
            return v

        did = (row["defect_id"] or "").strip()
        if not did:
            raise InputError("is empty", source=source, line=line, field="defect_id")
        if did in seen:
            raise InputError(
                f"duplicate id {did!r} (first on line {seen[did]})",
                source=source,
                line=line,
                field="defect_id",
            )
        seen[did] = line
        side = (row["side"] or "").strip().lower()
        if side not in SIDES:
            raise InputError(
                f"must be top or bottom, got {row['side']!r}", source=source, line=line, field="side"
            )
        piece = (row["piece"] or "").strip()
        if not piece:
            raise InputError("is empty", source=source, line=line, field="piece")
        ids.append(did)
        pieces.append(piece)
        tops.append(side == "top")
        xs.append(number("x_mm"))
        ys.append(number("y_mm"))
        ws.append(number("w_mm", 0.0))
        hs.append(number("h_mm", 0.0))
    return DefectTable(
        ids,
        np.array(pieces, dtype=object),
        np.array(tops, dtype=bool),
        np.array(xs),
        np.array(ys),
        np.array(ws),
        np.array(hs),
        has_size,
    )


def map_defects(g: Genealogy, table: DefectTable, to_piece: str, *, source: str = "<defects>") -> list[dict]:
    """Each defect in the frame of ``to_piece``: rows of defect_id, x_mm, y_mm, side, status
    (and w_mm, h_mm of the clipped box when the input had sizes), in input order."""
    g.piece(to_piece)
    n = len(table.defect_id)
    x, y = table.x_mm.copy(), table.y_mm.copy()
    w, h = table.w_mm.copy(), table.h_mm.copy()
    top = table.is_top.copy()
    status = np.empty(n, dtype=object)
    for piece in dict.fromkeys(table.piece.tolist()):
        sel = np.flatnonzero(table.piece == piece)
        if piece not in g.pieces:
            row = int(sel[0])
            raise InputError(f"unknown piece {piece!r}", source=source, line=row + 2, field="piece")
        hx, hy = table.w_mm[sel] / 2.0, table.h_mm[sel] / 2.0
        r = g.map_boxes(
            piece,
            to_piece,
            table.x_mm[sel] - hx,
            table.y_mm[sel] - hy,
            table.x_mm[sel] + hx,
            table.y_mm[sel] + hy,
            table.is_top[sel],
        )
        x[sel], y[sel] = r.x_mm, r.y_mm
        w[sel], h[sel] = r.x1_mm - r.x0_mm, r.y1_mm - r.y0_mm
        top[sel] = r.is_top
        status[sel] = r.status
    rows = []
    for i in range(n):
        row = {
            "defect_id": table.defect_id[i],
            "x_mm": _fmt(x[i]),
            "y_mm": _fmt(y[i]),
            "side": "top" if top[i] else "bottom",
            "status": status[i],
        }
        if table.has_size:
            row["w_mm"] = _fmt(w[i])
            row["h_mm"] = _fmt(h[i])
        rows.append(row)
    return rows


def _fmt(v: float) -> str:
    """Positions to a micrometre, without float noise (``-0`` printed as ``0``)."""
    r = round(float(v), 3)
    return f"{r + 0.0:.3f}".rstrip("0").rstrip(".") if r != 0 else "0"
