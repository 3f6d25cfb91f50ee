"""The operations of DOMAIN.md as exact frame maps (pure; no I/O).

Each builder takes the input piece's :class:`Shape` and the operation's parameters and returns,
per output, the :class:`~tracking.frame_map.FrameMap` from the input frame to the output frame
(with the gate of what the operation keeps) and the output's shape. Bad parameters raise
:class:`OpParamError` naming the field; the events reader adds file and line.

>>> s = Shape.plain(500000.0, 1250.0)
>>> m, s2 = crop(s, "H1", head_mm=2000.0, tail_mm=1500.0)
>>> s2.length_mm
496500.0
>>> m.map_points(np.array([2000.0]), np.array([0.0]), np.array([True])).x_mm.tolist()
[0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tracking.frame_map import FrameMap
from tracking.linear import PiecewiseLinear as PL
from tracking.region import Gate, Interval, Rect

# Lengths are compared with this slack (mm): far below any encoder's resolution, far above
# floating-point noise of a 10 km strip.
LENGTH_TOL_MM = 1e-3
ORIENTATIONS = ("turn", "flip_cross", "flip_long")


class OpParamError(ValueError):
    """A bad operation parameter; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Shape:
    """A piece's outline: its length and its width profile, contiguous segments from 0 to L
    (a welded strip has one segment per input; every other piece has one)."""

    length_mm: float
    seg_x0_mm: tuple[float, ...]
    seg_x1_mm: tuple[float, ...]
    seg_width_mm: tuple[float, ...]

    @classmethod
    def plain(cls, length_mm: float, width_mm: float) -> Shape:
        return cls(float(length_mm), (0.0,), (float(length_mm),), (float(width_mm),))

    @property
    def width_mm(self) -> float:
        return max(self.seg_width_mm)

    @property
    def min_width_mm(self) -> float:
        return min(self.seg_width_mm)

    def segments(self) -> list[tuple[float, float, float]]:
        return list(zip(self.seg_x0_mm, self.seg_x1_mm, self.seg_width_mm, strict=True))

    def extent_rects(self) -> tuple[Rect, ...]:
        """The piece itself: one closed rectangle per width segment."""
        return tuple(Rect(Interval(x0, x1), Interval(-w / 2.0, w / 2.0)) for x0, x1, w in self._merged())

    def _merged(self) -> list[tuple[float, float, float]]:
        out: list[tuple[float, float, float]] = []
        for x0, x1, w in self.segments():
            if out and out[-1][2] == w:
                out[-1] = (out[-1][0], x1, w)
            else:
                out.append((x0, x1, w))
        return out

    def with_segments(self, segs: Sequence[tuple[float, float, float]], length_mm: float) -> Shape:
        segs = [s for s in segs if s[1] > s[0]]
        return Shape(
            float(length_mm),
            tuple(float(s[0]) for s in segs),
            tuple(float(s[1]) for s in segs),
            tuple(float(s[2]) for s in segs),
        )


def _gate(op: str, piece: str, shape: Shape, band: Rect) -> Gate:
    rects = tuple(r.intersect(band) for r in shape.extent_rects())
    return Gate(op, piece, tuple(r for r in rects if not r.empty))


def _finite_nonneg(field: str, v: float) -> float:
    if not np.isfinite(v) or v < 0:
        raise OpParamError(field, f"must be a finite number >= 0, got {v!r}")
    return float(v)


def _positive(field: str, v: float) -> float:
    if not np.isfinite(v) or v <= 0:
        raise OpParamError(field, f"must be a finite number > 0, got {v!r}")
    return float(v)


def crop(shape: Shape, piece: str, *, head_mm: float, tail_mm: float) -> tuple[FrameMap, Shape]:
    """Keep ``head <= x <= L - tail``; ``x' = x - head``."""
    a = _finite_nonneg("head_mm", head_mm)
    b = _finite_nonneg("tail_mm", tail_mm)
    L = shape.length_mm
    if a + b >= L:
        raise OpParamError("tail_mm", f"head_mm + tail_mm = {a + b:g} leaves nothing of {L:g} mm")
    gate = _gate("crop", piece, shape, Rect(Interval(a, L - b), Interval()))
    segs = [(max(x0, a) - a, min(x1, L - b) - a, w) for x0, x1, w in shape.segments()]
    m = FrameMap(PL.affine(1.0, -a), PL.identity(), False, (gate,))
    return m, shape.with_segments(segs, L - a - b)


def trim(shape: Shape, piece: str, *, os_mm: float, ds_mm: float) -> tuple[FrameMap, Shape]:
    """Keep ``-W/2 + ds <= y <= W/2 - os`` (per width segment); ``y' = y - (ds - os)/2``."""
    o = _finite_nonneg("os_mm", os_mm)
    d = _finite_nonneg("ds_mm", ds_mm)
    if o + d >= shape.min_width_mm:
        raise OpParamError(
            "ds_mm" if d >= o else "os_mm",
            f"os_mm + ds_mm = {o + d:g} is not less than the strip width {shape.min_width_mm:g} mm",
        )
    rects = tuple(
        Rect(Interval(x0, x1), Interval(-w / 2.0 + d, w / 2.0 - o)) for x0, x1, w in shape._merged()
    )
    m = FrameMap(PL.identity(), PL.affine(1.0, -(d - o) / 2.0), False, (Gate("trim", piece, rects),))
    segs = [(x0, x1, w - o - d) for x0, x1, w in shape.segments()]
    return m, shape.with_segments(segs, shape.length_mm)


def orient(shape: Shape, piece: str, *, how: str) -> tuple[FrameMap, Shape]:
    """``turn``: x' = L-x, y' = -y; ``flip_cross``: x' = L-x, side swapped; ``flip_long``:
    y' = -y, side swapped."""
    L = shape.length_mm
    if how not in ORIENTATIONS:
        raise OpParamError("how", f"must be one of {', '.join(ORIENTATIONS)}, got {how!r}")
    reverses = how in ("turn", "flip_cross")
    fx = PL.affine(-1.0, L) if reverses else PL.identity()
    fy = PL.affine(-1.0) if how in ("turn", "flip_long") else PL.identity()
    gate = _gate("orient", piece, shape, Rect(Interval(), Interval()))
    segs = shape.segments()
    if reverses:
        segs = [(L - x1, L - x0, w) for x0, x1, w in reversed(segs)]
    return FrameMap(fx, fy, how != "turn", (gate,)), shape.with_segments(segs, L)


def elongate(
    shape: Shape,
    piece: str,
    *,
    factor: float | None = None,
    knots: Sequence[Sequence[float]] | None = None,
    width_factor: float = 1.0,
) -> tuple[FrameMap, Shape]:
    """Rolling: ``x' = f(x)`` (a factor, or increasing knots from (0,0) to (L, L'));
    ``y' = width_factor * y``."""
    L = shape.length_mm
    if (factor is None) == (knots is None):
        raise OpParamError("factor", "give exactly one of factor and knots")
    s = _positive("width_factor", width_factor)
    if factor is not None:
        k = _positive("factor", factor)
        fx = PL(np.array([0.0, L]), np.array([0.0, k * L]))
    else:
        fx = _knots_map(knots, L)  # type: ignore[arg-type]
    gate = _gate("elongate", piece, shape, Rect(Interval(), Interval()))
    new_L = float(fx(np.array([L]))[0])
    segs = [
        (float(fx(np.array([x0]))[0]), float(fx(np.array([x1]))[0]), w * s) for x0, x1, w in shape.segments()
    ]
    segs[-1] = (segs[-1][0], new_L, segs[-1][2])
    return FrameMap(fx, PL.affine(s), False, (gate,)), shape.with_segments(segs, new_L)


def _knots_map(knots: Sequence[Sequence[float]], L: float) -> PL:
    try:
        arr = np.asarray(knots, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OpParamError("knots", f"must be a list of [x, x'] pairs ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2:
        raise OpParamError("knots", "must be a list of at least two [x, x'] pairs")
    if not np.all(np.isfinite(arr)):
        raise OpParamError("knots", "must be finite numbers")
    if abs(arr[0, 0]) > LENGTH_TOL_MM or abs(arr[0, 1]) > LENGTH_TOL_MM:
        raise OpParamError("knots", f"must start at [0, 0], got {arr[0].tolist()}")
    dx, dxp = np.diff(arr[:, 0]), np.diff(arr[:, 1])
    if not np.all(dx > 0) or not np.all(dxp > 0):
        bad = int(np.flatnonzero((dx <= 0) | (dxp <= 0))[0]) + 1
        raise OpParamError("knots", f"must be strictly increasing in x and x' (knot {bad})")
    if abs(arr[-1, 0] - L) > LENGTH_TOL_MM:
        raise OpParamError("knots", f"must end at the piece length {L:g} mm, ends at {arr[-1, 0]:g} mm")
    arr[0] = 0.0
    arr[-1, 0] = L
    return PL(arr[:, 0], arr[:, 1])


def weld(shapes: Sequence[Shape], pieces: Sequence[str]) -> tuple[list[FrameMap], Shape]:
    """Join pieces head to tail in order: ``x' = x + L1 + ... + L(i-1)``, centrelines aligned."""
    if len(shapes) < 2:
        raise OpParamError("inputs", "a weld joins at least two pieces")
    maps: list[FrameMap] = []
    segs: list[tuple[float, float, float]] = []
    offset = 0.0
    for shape, piece in zip(shapes, pieces, strict=True):
        gate = _gate("weld", piece, shape, Rect(Interval(), Interval()))
        maps.append(FrameMap(PL.affine(1.0, offset), PL.identity(), False, (gate,)))
        segs.extend((x0 + offset, x1 + offset, w) for x0, x1, w in shape.segments())
        offset += shape.length_mm
    return maps, shapes[0].with_segments(segs, offset)


def seam_positions_mm(shapes: Sequence[Shape]) -> list[float]:
    """Where the seams of a weld of these pieces lie in the weld's frame."""
    return [float(v) for v in np.cumsum([s.length_mm for s in shapes])[:-1]]


def cut(shape: Shape, piece: str, intervals: Sequence[tuple[float, float]]) -> list[tuple[FrameMap, Shape]]:
    """Each output keeps ``from <= x < to`` (the last one closed at the tail); ``x' = x - from``.
    What no output covers is scrap."""
    L = shape.length_mm
    checked = _check_bands(intervals, 0.0, L, "from_mm", "to_mm", "length")
    out = []
    for a, b in checked:
        band = Rect(Interval(a, b, True, b >= L), Interval())
        gate = _gate("cut", piece, shape, band)
        segs = [(max(x0, a) - a, min(x1, b) - a, w) for x0, x1, w in shape.segments()]
        m = FrameMap(PL.affine(1.0, -a), PL.identity(), False, (gate,))
        out.append((m, shape.with_segments(segs, b - a)))
    return out


def slit(shape: Shape, piece: str, bands: Sequence[tuple[float, float]]) -> list[tuple[FrameMap, Shape]]:
    """Each output keeps ``y_from <= y < y_to`` (the outermost closed at the OS edge);
    ``y' = y - (y_from + y_to)/2``."""
    half = shape.width_mm / 2.0
    checked = _check_bands(bands, -half, half, "y_from_mm", "y_to_mm", "width")
    out = []
    for a, b in checked:
        band = Rect(Interval(), Interval(a, b, True, b >= half))
        gate = _gate("slit", piece, shape, band)
        segs = [(x0, x1, max(0.0, min(b, w / 2.0) - max(a, -w / 2.0))) for x0, x1, w in shape.segments()]
        m = FrameMap(PL.identity(), PL.affine(1.0, -(a + b) / 2.0), False, (gate,))
        out.append((m, shape.with_segments(segs, shape.length_mm)))
    return out


def _check_bands(
    bands: Sequence[tuple[float, float]], lo: float, hi: float, f_from: str, f_to: str, what: str
) -> list[tuple[float, float]]:
    if not bands:
        raise OpParamError("outputs", "needs at least one output")
    clean = []
    for i, (a, b) in enumerate(bands):
        if not (np.isfinite(a) and np.isfinite(b)):
            raise OpParamError(f"outputs[{i}].{f_from}", "must be finite numbers")
        if a < lo - LENGTH_TOL_MM:
            raise OpParamError(f"outputs[{i}].{f_from}", f"{a:g} is before the {what} starts ({lo:g} mm)")
        if b > hi + LENGTH_TOL_MM:
            raise OpParamError(f"outputs[{i}].{f_to}", f"{b:g} is beyond the piece {what} ({hi:g} mm)")
        if not b > a:
            raise OpParamError(f"outputs[{i}].{f_to}", f"must be greater than {f_from} ({b:g} <= {a:g})")
        clean.append((max(float(a), lo), min(float(b), hi)))
    order = np.argsort([a for a, _ in clean], kind="stable")
    for prev, cur in zip(order[:-1], order[1:], strict=True):
        if clean[cur][0] < clean[prev][1] - LENGTH_TOL_MM:
            raise OpParamError(
                f"outputs[{cur}].{f_from}",
                f"overlaps output {prev} ({clean[cur][0]:g} < {clean[prev][1]:g})",
            )
    return clean
