"""Station readings -> piece frame: re-registration through reference marks and strip edges.

Pure (numpy): :func:`register` takes one station's readings on one piece (encoder ``x_obs``,
camera ``y``), the marks that station saw with their true positions from the genealogy
(:meth:`tracking.genealogy.Genealogy.marks`), the edges it saw, and returns the centre and box
in the piece frame (DOMAIN.md), with a flag for readings that lie beyond the piece.

>>> r = register(np.array([1100.0]), np.array([50.0]), np.array([20.0]), np.array([10.0]),
...     marks_obs_mm=np.array([100.0, 10100.0]), marks_true_mm=np.array([0.0, 10000.0]),
...     edge_x_obs_mm=np.array([100.0]), edge_os_mm=np.array([500.0]), edge_ds_mm=np.array([-500.0]),
...     y_axis_toward="os", length_mm=10000.0, width_mm=1000.0, tolerance_mm=50.0)
>>> r.x_mm.tolist(), r.y_mm.tolist(), r.x0_mm.tolist(), r.y1_mm.tolist(), r.beyond.tolist()
([1000.0], [50.0], [990.0], [55.0], [False])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracking.registration import MarkRegistration, lateral_true_y


@dataclass(frozen=True)
class Registered:
    x_mm: np.ndarray
    y_mm: np.ndarray
    x0_mm: np.ndarray
    y0_mm: np.ndarray
    x1_mm: np.ndarray
    y1_mm: np.ndarray
    beyond: np.ndarray  # the reading lies farther than the tolerance off the piece


def register(
    x_obs_mm: np.ndarray,
    y_obs_mm: np.ndarray,
    length_obs_mm: np.ndarray,
    width_obs_mm: np.ndarray,
    *,
    marks_obs_mm: np.ndarray,
    marks_true_mm: np.ndarray,
    edge_x_obs_mm: np.ndarray,
    edge_os_mm: np.ndarray,
    edge_ds_mm: np.ndarray,
    y_axis_toward: str,
    length_mm: float,
    width_mm: float,
    tolerance_mm: float,
) -> Registered:
    """Piece-frame centre and box of each reading. ``y_obs`` and the edges are in the
    camera's frame (growing toward ``y_axis_toward``); a box is ``length_obs`` along and
    ``width_obs`` across, centred on the reading. Raises :class:`~coilmap.errors.InputError`
    when the marks cannot register (none, or out of order)."""
    reg = MarkRegistration(marks_obs_mm, marks_true_mm)
    x = reg.true_x(x_obs_mm)
    half_len = np.abs(length_obs_mm) / 2.0
    xa, xb = reg.true_x(x_obs_mm - half_len), reg.true_x(x_obs_mm + half_len)
    sign = -1.0 if y_axis_toward == "ds" else 1.0
    edges_x = reg.true_x(edge_x_obs_mm) if len(edge_x_obs_mm) else np.zeros(0)

    def lateral(y_cam: np.ndarray) -> np.ndarray:
        return lateral_true_y(
            x,
            sign * y_cam,
            edge_x_mm=edges_x,
            edge_os_obs_mm=sign * edge_os_mm,
            edge_ds_obs_mm=sign * edge_ds_mm,
            width_mm=width_mm,
        )

    y = lateral(y_obs_mm)
    half_wid = np.abs(width_obs_mm) / 2.0
    ya, yb = lateral(y_obs_mm - half_wid), lateral(y_obs_mm + half_wid)
    half_w = width_mm / 2.0
    beyond = (
        (x < -tolerance_mm)
        | (x > length_mm + tolerance_mm)
        | (np.abs(y) > half_w + tolerance_mm)
        | ~np.isfinite(x)
        | ~np.isfinite(y)
    )
    # Within the tolerance a reading just off an edge is registration noise: clip it on.
    return Registered(
        x_mm=np.clip(x, 0.0, length_mm),
        y_mm=np.clip(y, -half_w, half_w),
        x0_mm=np.clip(np.minimum(xa, xb), 0.0, length_mm),
        x1_mm=np.clip(np.maximum(xa, xb), 0.0, length_mm),
        y0_mm=np.clip(np.minimum(ya, yb), -half_w, half_w),
        y1_mm=np.clip(np.maximum(ya, yb), -half_w, half_w),
        beyond=beyond,
    )
