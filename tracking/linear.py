"""Monotone piecewise-linear functions on the real line, composed exactly.

Every length map of DOMAIN.md (shift, turn, elongation by a factor or through knots) is a
strictly monotone piecewise-linear function, and so is any composition of them. Keeping them as
knot arrays lets a whole genealogy path collapse into one function that maps a million points
with one ``searchsorted``.

Beyond the first and last knot a function continues its end segments (DOMAIN.md: "its end
segments extended"), so composition is exact on the whole line, not only on the kept region.

>>> f = PiecewiseLinear.affine(scale=2.0, offset=1.0)
>>> g = PiecewiseLinear(np.array([0.0, 10.0, 20.0]), np.array([0.0, 10.0, 40.0]))
>>> h = f.then(g)              # x -> g(f(x))
>>> float(h(np.array([2.0]))[0]), float(h(np.array([7.0]))[0])
(5.0, 25.0)
>>> float(h.inverse()(h(np.array([7.0])))[0])
7.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class PiecewiseLinear:
    """``y = f(x)`` through knots ``(xs[i], ys[i])``; ``xs`` strictly increasing, ``ys`` strictly
    monotone (increasing or decreasing); linear continuation outside the knots."""

    xs: np.ndarray
    ys: np.ndarray
    # Slope of each segment. Given by compositions as exact products of the factors' slopes,
    # since a difference quotient over a short segment loses digits that a long end-segment
    # extension would magnify.
    segment_slopes: np.ndarray | None = None

    def __post_init__(self) -> None:
        xs = np.asarray(self.xs, dtype=np.float64)
        ys = np.asarray(self.ys, dtype=np.float64)
        if xs.ndim != 1 or xs.shape != ys.shape or xs.size < 2:
            raise ValueError("knots must be two 1-D arrays of the same length >= 2")
        if not np.all(np.diff(xs) > 0):
            raise ValueError("knot x values must be strictly increasing")
        dy = np.diff(ys)
        if not (np.all(dy > 0) or np.all(dy < 0)):
            raise ValueError("knot y values must be strictly monotone")
        slopes = dy / np.diff(xs) if self.segment_slopes is None else self.segment_slopes
        object.__setattr__(self, "xs", xs)
        object.__setattr__(self, "ys", ys)
        object.__setattr__(self, "segment_slopes", np.asarray(slopes, dtype=np.float64))

    @classmethod
    def affine(cls, scale: float, offset: float = 0.0) -> PiecewiseLinear:
        """``x -> scale * x + offset`` (scale != 0)."""
        return cls(np.array([0.0, 1.0]), np.array([offset, scale + offset]))

    @classmethod
    def identity(cls) -> PiecewiseLinear:
        return cls.affine(1.0, 0.0)

    @property
    def increasing(self) -> bool:
        return bool(self.ys[1] > self.ys[0])

    @property
    def slopes(self) -> np.ndarray:
        assert self.segment_slopes is not None
        return self.segment_slopes

    def slope_at(self, x: np.ndarray) -> np.ndarray:
        idx = np.clip(np.searchsorted(self.xs, x, side="right") - 1, 0, self.xs.size - 2)
        return self.slopes[idx]

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        xs, ys = self.xs, self.ys
        # Segment index of each point, end segments extended to +-inf.
        idx = np.searchsorted(xs, x, side="right") - 1
        np.clip(idx, 0, xs.size - 2, out=idx)
        slope = self.slopes
        return ys[idx] + (x - xs[idx]) * slope[idx]

    def inverse(self) -> PiecewiseLinear:
        if self.increasing:
            return PiecewiseLinear(self.ys, self.xs, 1.0 / self.slopes)
        return PiecewiseLinear(self.ys[::-1].copy(), self.xs[::-1].copy(), (1.0 / self.slopes)[::-1].copy())

    def then(self, outer: PiecewiseLinear) -> PiecewiseLinear:
        """The composition ``x -> outer(self(x))``, exact: its knots are this function's knots
        and the pre-images of ``outer``'s knots."""
        knots = np.union1d(self.xs, self.inverse()(outer.xs))
        values = outer(self(knots))
        # Knots closer than rounding noise would make a zero-length segment: merge them.
        tol = 1e-12 * (1.0 + np.abs(knots[1:]))
        distinct = np.concatenate(([True], (np.diff(knots) > tol) & (np.diff(values) != 0)))
        knots, values = knots[distinct], values[distinct]
        mid = (knots[:-1] + knots[1:]) / 2.0
        slopes = self.slope_at(mid) * outer.slope_at(self(mid))
        # Drop knots between segments of equal slope (keeps compositions small).
        keep = np.concatenate(([True], slopes[1:] != slopes[:-1], [True]))
        seg_keep = keep[:-1].copy()
        return PiecewiseLinear(knots[keep], values[keep], slopes[seg_keep])

    def image_interval(self, lo: float, hi: float) -> tuple[float, float]:
        """``f([lo, hi])`` as an ordered pair (infinite bounds map to infinities)."""
        a, b = self._at(lo), self._at(hi)
        return (a, b) if a <= b else (b, a)

    def _at(self, x: float) -> float:
        if np.isinf(x):
            sign = 1.0 if x > 0 else -1.0
            return sign * np.inf if self.increasing else -sign * np.inf
        return float(self(np.array([x]))[0])

    def __repr__(self) -> str:
        pairs = ", ".join(f"({a:g}, {b:g})" for a, b in zip(self.xs, self.ys, strict=True))
        return f"PiecewiseLinear([{pairs}])"
