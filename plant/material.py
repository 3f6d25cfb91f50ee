"""The physics of the simulator: where true defects and reference marks lie on each piece.

This is the simulator's own, independent application of the operations of DOMAIN.md (it does
not use ``tracking/``), so tests can cross-check the two. Every defect is a point (its centre as
made) plus a box ``[x0, x1] x [y0, y1]`` in the piece frame and a surface. Operations map the
point and the box; a box partly outside the kept region is clipped, and then the point moves to
the centre of what is kept and the defect is flagged ``clipped``. ``flip_x`` / ``flip_y`` record
how the defect's picture is mirrored relative to how it was made (for rendering).

>>> d = Defects.from_boxes([7], [100.0], [-50.0], [10.0], [20.0], [True])
>>> t = d.orient("flip_cross", length_mm=1000.0)
>>> float(t.x_mm[0]), float(t.y_mm[0]), bool(t.top[0])
(900.0, -50.0, False)
>>> float(d.crop(95.0, 0.0, 1000.0).x0_mm[0])  # clipped at the new head
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from coilmap.errors import InputError


@dataclass(frozen=True)
class Defects:
    """The physical defects lying on one piece, as parallel arrays."""

    defect_id: np.ndarray  # int64
    x_mm: np.ndarray
    y_mm: np.ndarray
    x0_mm: np.ndarray
    x1_mm: np.ndarray
    y0_mm: np.ndarray
    y1_mm: np.ndarray
    top: np.ndarray  # bool
    flip_x: np.ndarray  # bool
    flip_y: np.ndarray  # bool
    clipped: np.ndarray  # bool

    @staticmethod
    def empty() -> Defects:
        f = np.zeros(0)
        b = np.zeros(0, dtype=bool)
        return Defects(np.zeros(0, dtype=np.int64), f, f, f, f, f, f, b, b, b, b)

    @staticmethod
    def from_boxes(defect_id: Sequence[int] | np.ndarray, x_mm: Sequence[float] | np.ndarray,
                   y_mm: Sequence[float] | np.ndarray, len_mm: Sequence[float] | np.ndarray,
                   wid_mm: Sequence[float] | np.ndarray,
                   top: Sequence[bool] | np.ndarray) -> Defects:
        x = np.asarray(x_mm, dtype=float)
        y = np.asarray(y_mm, dtype=float)
        hl = np.asarray(len_mm, dtype=float) / 2
        hw = np.asarray(wid_mm, dtype=float) / 2
        n = len(x)
        b = np.zeros(n, dtype=bool)
        return Defects(np.asarray(defect_id, dtype=np.int64), x, y, x - hl, x + hl, y - hw,
                       y + hw, np.asarray(top, dtype=bool), b, b.copy(), b.copy())

    def __len__(self) -> int:
        return len(self.defect_id)

    def take(self, index: np.ndarray) -> Defects:
        return Defects(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def concat(parts: Sequence[Defects]) -> Defects:
        if not parts:
            return Defects.empty()
        return Defects(*(np.concatenate([getattr(p, f.name) for p in parts])
                         for f in fields(Defects)))

    # -- operations -------------------------------------------------------------------------
    def _clip_x(self, lo: float, hi: float, shift: float) -> Defects:
        """Keep what overlaps ``[lo, hi)``, clip to it, then move by ``-shift``."""
        keep = (self.x1_mm > lo) & (self.x0_mm < hi)
        d = self.take(keep)
        x0 = np.maximum(d.x0_mm, lo)
        x1 = np.minimum(d.x1_mm, hi)
        moved = (d.x_mm < lo) | (d.x_mm >= hi)
        x = np.where(moved, (x0 + x1) / 2, d.x_mm)
        return replace(d, x_mm=x - shift, x0_mm=x0 - shift, x1_mm=x1 - shift,
                       clipped=d.clipped | (x0 != d.x0_mm) | (x1 != d.x1_mm))

    def _clip_y(self, lo: float, hi: float, shift: float) -> Defects:
        keep = (self.y1_mm > lo) & (self.y0_mm < hi)
        d = self.take(keep)
        y0 = np.maximum(d.y0_mm, lo)
        y1 = np.minimum(d.y1_mm, hi)
        moved = (d.y_mm < lo) | (d.y_mm >= hi)
        y = np.where(moved, (y0 + y1) / 2, d.y_mm)
        return replace(d, y_mm=y - shift, y0_mm=y0 - shift, y1_mm=y1 - shift,
                       clipped=d.clipped | (y0 != d.y0_mm) | (y1 != d.y1_mm))

    def crop(self, head_mm: float, tail_mm: float, length_mm: float) -> Defects:
        return self._clip_x(head_mm, length_mm - tail_mm, head_mm)

    def trim(self, os_mm: float, ds_mm: float, width_mm: float) -> Defects:
        return self._clip_y(-width_mm / 2 + ds_mm, width_mm / 2 - os_mm, (ds_mm - os_mm) / 2)

    def cut(self, from_mm: float, to_mm: float) -> Defects:
        return self._clip_x(from_mm, to_mm, from_mm)

    def slit(self, y_from_mm: float, y_to_mm: float) -> Defects:
        return self._clip_y(y_from_mm, y_to_mm, (y_from_mm + y_to_mm) / 2)

    def shift_x(self, offset_mm: float) -> Defects:
        return replace(self, x_mm=self.x_mm + offset_mm, x0_mm=self.x0_mm + offset_mm,
                       x1_mm=self.x1_mm + offset_mm)

    def orient(self, how: str, *, length_mm: float) -> Defects:
        d = self
        if how in ("turn", "flip_cross"):
            d = replace(d, x_mm=length_mm - d.x_mm, x0_mm=length_mm - d.x1_mm,
                        x1_mm=length_mm - d.x0_mm, flip_x=~d.flip_x)
        if how in ("turn", "flip_long"):
            d = replace(d, y_mm=-d.y_mm, y0_mm=-d.y1_mm, y1_mm=-d.y0_mm, flip_y=~d.flip_y)
        if how in ("flip_cross", "flip_long"):
            d = replace(d, top=~d.top)
        if how not in ("turn", "flip_cross", "flip_long"):
            raise InputError(f"unknown orientation {how!r}", field="how")
        return d

    def elongate(self, knots_in: np.ndarray, knots_out: np.ndarray,
                 width_factor: float = 1.0) -> Defects:
        f = _knot_map(knots_in, knots_out)
        return replace(self, x_mm=f(self.x_mm), x0_mm=f(self.x0_mm), x1_mm=f(self.x1_mm),
                       y_mm=self.y_mm * width_factor, y0_mm=self.y0_mm * width_factor,
                       y1_mm=self.y1_mm * width_factor)


def _knot_map(knots_in: np.ndarray, knots_out: np.ndarray):  # type: ignore[no-untyped-def]
    kin = np.asarray(knots_in, dtype=float)
    kout = np.asarray(knots_out, dtype=float)
    if kin[0] != 0 or kout[0] != 0 or np.any(np.diff(kin) <= 0) or np.any(np.diff(kout) <= 0):
        raise InputError("elongation knots must start at (0, 0) and increase", field="knots")

    def f(x: np.ndarray) -> np.ndarray:
        return np.interp(x, kin, kout)

    return f


def elongate_marks(marks: dict[str, float], knots_in: np.ndarray,
                   knots_out: np.ndarray) -> dict[str, float]:
    """Marks (id -> x_mm) moved by a rolling map."""
    f = _knot_map(knots_in, knots_out)
    return {k: float(f(np.array([v]))[0]) for k, v in marks.items()}


def cut_marks(marks: dict[str, float], from_mm: float, to_mm: float) -> dict[str, float]:
    """The marks inside ``[from_mm, to_mm)``, in the frame of that part."""
    return {k: v - from_mm for k, v in marks.items() if from_mm <= v < to_mm}


def orient_marks(marks: dict[str, float], how: str, length_mm: float) -> dict[str, float]:
    if how in ("turn", "flip_cross"):
        return {k: length_mm - v for k, v in marks.items()}
    return dict(marks)
