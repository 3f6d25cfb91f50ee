"""Kept regions: intervals and axis-aligned rectangles in a piece frame, with exact bounds.

DOMAIN.md's operations keep closed bands (crop ``a <= x <= L-b``, trim) or half-open ones (cut
``from <= x < to``, slit ``y_from <= y < y_to``); a point on a cut line belongs to the next coil,
so bounds carry their closedness. Under a decreasing map (a turn) a half-open interval
``[a, b)`` becomes ``(f(b), f(a)]``: closedness travels with the bound.

>>> iv = Interval(0.0, 10.0, hi_closed=False)
>>> iv.contains(np.array([0.0, 10.0])).tolist()
[True, False]
>>> from tracking.linear import PiecewiseLinear
>>> turn = PiecewiseLinear.affine(-1.0, 100.0)   # x -> 100 - x
>>> iv.image(turn)
Interval(lo=90.0, hi=100.0, lo_closed=False, hi_closed=True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracking.linear import PiecewiseLinear

INF = float("inf")


@dataclass(frozen=True)
class Interval:
    lo: float = -INF
    hi: float = INF
    lo_closed: bool = True
    hi_closed: bool = True

    def contains(self, v: np.ndarray) -> np.ndarray:
        above = v >= self.lo if self.lo_closed else v > self.lo
        below = v <= self.hi if self.hi_closed else v < self.hi
        return above & below

    def image(self, f: PiecewiseLinear) -> Interval:
        """The interval ``f(self)`` under a monotone function."""
        a, b = _at(f, self.lo), _at(f, self.hi)
        if f.increasing:
            return Interval(a, b, self.lo_closed, self.hi_closed)
        return Interval(b, a, self.hi_closed, self.lo_closed)

    def preimage(self, f: PiecewiseLinear) -> Interval:
        """The interval ``f^-1(self)``."""
        return self.image(f.inverse())

    def intersect(self, other: Interval) -> Interval:
        lo, lo_c = _tighter_lo(self.lo, self.lo_closed, other.lo, other.lo_closed)
        hi, hi_c = _tighter_hi(self.hi, self.hi_closed, other.hi, other.hi_closed)
        return Interval(lo, hi, lo_c, hi_c)

    @property
    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))


def _at(f: PiecewiseLinear, v: float) -> float:
    if np.isinf(v):
        sign = 1.0 if v > 0 else -1.0
        return sign * INF if f.increasing else -sign * INF
    return float(f(np.array([v]))[0])


def _tighter_lo(a: float, ac: bool, b: float, bc: bool) -> tuple[float, bool]:
    if a > b:
        return a, ac
    if b > a:
        return b, bc
    return a, ac and bc


def _tighter_hi(a: float, ac: bool, b: float, bc: bool) -> tuple[float, bool]:
    if a < b:
        return a, ac
    if b < a:
        return b, bc
    return a, ac and bc


@dataclass(frozen=True)
class Rect:
    """``x in self.x and y in self.y``."""

    x: Interval
    y: Interval

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.x.contains(x) & self.y.contains(y)

    def intersect(self, other: Rect) -> Rect:
        return Rect(self.x.intersect(other.x), self.y.intersect(other.y))

    @property
    def empty(self) -> bool:
        return self.x.empty or self.y.empty

    def image(self, fx: PiecewiseLinear, fy: PiecewiseLinear) -> Rect:
        return Rect(self.x.image(fx), self.y.image(fy))

    def preimage(self, fx: PiecewiseLinear, fy: PiecewiseLinear) -> Rect:
        return Rect(self.x.preimage(fx), self.y.preimage(fy))


@dataclass(frozen=True)
class Gate:
    """What one operation keeps, as a union of rectangles in some frame; a point outside is
    removed by ``op`` (the operation kind) acting on piece ``at_piece``."""

    op: str
    at_piece: str
    rects: tuple[Rect, ...]

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        inside = np.zeros(np.shape(x), dtype=bool)
        for rect in self.rects:
            inside |= rect.contains(x, y)
        return inside

    def image(self, fx: PiecewiseLinear, fy: PiecewiseLinear) -> Gate:
        return Gate(self.op, self.at_piece, tuple(r.image(fx, fy) for r in self.rects))

    def preimage(self, fx: PiecewiseLinear, fy: PiecewiseLinear) -> Gate:
        return Gate(self.op, self.at_piece, tuple(r.preimage(fx, fy) for r in self.rects))
