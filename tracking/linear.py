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
        object.__setattr__(self, "xs", xs)
        object.__setattr__(self, "ys", ys)

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
        return np.diff(self.ys) / np.diff(self.xs)

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
            return PiecewiseLinear(self.ys, self.xs)
        return PiecewiseLinear(self.ys[::-1].copy(), self.xs[::-1].copy())

    def then(self, outer: PiecewiseLinear) -> PiecewiseLinear:
        """The composition ``x -> outer(self(x))``, exact: its knots are this function's knots
        and the pre-images of ``outer``'s knots."""
        knots = np.union1d(self.xs, self.inverse()(outer.xs))
        values = outer(self(knots))
        # Drop knots that are collinear with their neighbours (keeps compositions small).
        if knots.size > 2:
            slopes = np.diff(values) / np.diff(knots)
            bend = ~np.isclose(slopes[1:], slopes[:-1], rtol=1e-12, atol=0.0)
            keep = np.concatenate(([True], bend, [True]))
            knots, values = knots[keep], values[keep]
        return PiecewiseLinear(knots, values)

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
