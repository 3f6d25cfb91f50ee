"""Re-registration of a station's positions through reference marks (DOMAIN.md).

A station measures length with its own encoder (slip, scale error, offset) and width with its
own calibration, and the strip wanders sideways. Marks whose true positions the tracking events
define (head, tail, weld seams, punched holes) are seen by the station too: the true position is
the piecewise-linear map through the pairs ``(x_obs, x_true)``, end segments extended. Across
the strip, the edges the station saw give the wander and the calibration.

>>> reg = MarkRegistration(x_obs_mm=[1000.0, 101000.0], x_true_mm=[0.0, 100200.0])
>>> reg.true_x(np.array([51000.0])).tolist()
[50100.0]
>>> reg.tolerance_mm(np.array([0.0, 50100.0]), base_mm=10.0, per_m=0.5).tolist()
[10.0, 35.05]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coilmap.errors import InputError
from tracking.linear import PiecewiseLinear


class MarkRegistration:
    """Observed-to-true length map of one station on one piece."""

    def __init__(
        self,
        x_obs_mm: Sequence[float] | np.ndarray,
        x_true_mm: Sequence[float] | np.ndarray,
        *,
        what: str = "mark sightings",
    ) -> None:
        obs = np.asarray(x_obs_mm, dtype=np.float64)
        true = np.asarray(x_true_mm, dtype=np.float64)
        if obs.shape != true.shape or obs.ndim != 1:
            raise InputError(f"{what}: observed and true positions differ in number")
        if obs.size == 0:
            raise InputError(f"{what}: at least one reference mark is needed to register positions")
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(true))):
            raise InputError(f"{what}: positions must be finite numbers")
        order = np.argsort(obs, kind="stable")
        obs, true = obs[order], true[order]
        # The same mark seen twice (or two marks at one encoder reading): average them.
        uobs, inv = np.unique(obs, return_inverse=True)
        utrue = np.bincount(inv, weights=true) / np.bincount(inv)
        if uobs.size >= 2 and not np.all(np.diff(utrue) > 0):
            bad = int(np.flatnonzero(np.diff(utrue) <= 0)[0])
            raise InputError(
                f"{what}: marks out of order: observed {uobs[bad]:g} -> true {utrue[bad]:g} but "
                f"observed {uobs[bad + 1]:g} -> true {utrue[bad + 1]:g} (is the piece or its "
                "orientation right?)"
            )
        if uobs.size == 1:
            # One mark: offset only, the encoder's scale is trusted.
            self._f = PiecewiseLinear.affine(1.0, float(utrue[0] - uobs[0]))
        else:
            self._f = PiecewiseLinear(uobs, utrue)
        self.marks_true_mm = np.sort(utrue)

    def true_x(self, x_obs_mm: np.ndarray) -> np.ndarray:
        return self._f(np.asarray(x_obs_mm, dtype=np.float64))

    def distance_to_mark_mm(self, x_mm: np.ndarray) -> np.ndarray:
        """Distance from each true position to the nearest reference mark."""
        x = np.asarray(x_mm, dtype=np.float64)
        marks = self.marks_true_mm
        idx = np.clip(np.searchsorted(marks, x), 1, max(marks.size - 1, 1))
        left = marks[np.clip(idx - 1, 0, marks.size - 1)]
        right = marks[np.clip(idx, 0, marks.size - 1)]
        return np.minimum(np.abs(x - left), np.abs(x - right))

    def tolerance_mm(self, x_mm: np.ndarray, *, base_mm: float = 10.0, per_m: float = 0.5) -> np.ndarray:
        """Matching tolerance: ``base_mm`` at a mark, growing by ``per_m`` mm per metre of
        distance to the nearest mark (residual encoder slip between marks)."""
        return base_mm + per_m * self.distance_to_mark_mm(x_mm) / 1000.0


def lateral_true_y(
    x_mm: np.ndarray,
    y_obs_mm: np.ndarray,
    *,
    edge_x_mm: np.ndarray,
    edge_os_obs_mm: np.ndarray,
    edge_ds_obs_mm: np.ndarray,
    width_mm: float | np.ndarray,
) -> np.ndarray:
    """Remove lateral wander and camera scale: the strip's centre is midway between the edges
    the station saw, and the distance between them is the true width.

    >>> lateral_true_y(np.array([0.0, 10.0]), np.array([30.0, 80.0]), edge_x_mm=np.array([0.0, 10.0]),
    ...                edge_os_obs_mm=np.array([530.0, 530.0]), edge_ds_obs_mm=np.array([-470.0, -470.0]),
    ...                width_mm=1000.0).tolist()
    [0.0, 50.0]
    """
    ex = np.asarray(edge_x_mm, dtype=np.float64)
    os_ = np.asarray(edge_os_obs_mm, dtype=np.float64)
    ds = np.asarray(edge_ds_obs_mm, dtype=np.float64)
    if ex.size == 0:
        return np.asarray(y_obs_mm, dtype=np.float64)
    order = np.argsort(ex, kind="stable")
    ex, os_, ds = ex[order], os_[order], ds[order]
    centre = np.interp(x_mm, ex, (os_ + ds) / 2.0)
    seen_width = np.interp(x_mm, ex, os_ - ds)
    if np.any(seen_width <= 0):
        raise InputError("strip edges: the operator-side edge must lie above the drive-side edge")
    return (np.asarray(y_obs_mm, dtype=np.float64) - centre) * (np.asarray(width_mm) / seen_width)
