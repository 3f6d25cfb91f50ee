"""Where a station's camera frames lie and what is drawn into each (pure: arrays in, arrays out).

A station with ``frames`` export has ``n_cams`` cameras side by side across the strip, each
giving square frames of ``rows x rows`` pixels. Frame ``k`` of camera ``j`` shows encoder
positions ``k * frame_mm <= x_obs < (k + 1) * frame_mm`` (row 0 first) and camera positions
``y0 + j * cam_mm <= y_cam < y0 + (j + 1) * cam_mm`` (column 0 first). Only frames with
something on them, plus a share of defect-free frames, are exported.

>>> g = FrameGrid(rows=512, mm_per_px_x=1.0, mm_per_px_y=1.5, y0_mm=-1152.0, n_cams=3)
>>> g.frame_mm, g.cam_mm
(512.0, 768.0)
>>> o = frame_overlaps(g, np.array([1000.0]), np.array([0.0]), np.array([40.0]), np.array([30.0]))
>>> o[["k", "j"]].values.tolist(), [round(float(v), 1) for v in o.iloc[0, 3:]]
([[1, 1]], [468.0, 246.0, 508.0, 266.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from plant.params import StationSpec
from plant.render import background, camera, paste
from plant.stations import Encoder


@dataclass(frozen=True)
class FrameGrid:
    rows: int
    mm_per_px_x: float
    mm_per_px_y: float
    y0_mm: float  # camera y of column 0 of camera 0
    n_cams: int

    @property
    def frame_mm(self) -> float:
        return self.rows * self.mm_per_px_x

    @property
    def cam_mm(self) -> float:
        return self.rows * self.mm_per_px_y


def station_grid(spec: StationSpec, max_width_mm: float, rows: int) -> FrameGrid:
    """Enough cameras to see the widest strip with its wander, centred on the pass line."""
    fov = max_width_mm * 1.02 + 2 * spec.wander_mm + 100.0
    cam_mm = rows * spec.mm_per_px_y
    n = math.ceil(fov / cam_mm)
    return FrameGrid(rows, spec.mm_per_px_x, spec.mm_per_px_y, -n * cam_mm / 2, n)


def frame_overlaps(grid: FrameGrid, x_obs: np.ndarray, y_obs: np.ndarray, len_obs: np.ndarray,
                   wid_obs: np.ndarray) -> pd.DataFrame:
    """One row per (object, frame) it overlaps: ``item`` (index), ``k``, ``j`` and the object's
    box in that frame's pixels (``r0, c0, r1, c1``, not clipped)."""
    x0, x1 = x_obs - len_obs / 2, x_obs + len_obs / 2
    y0, y1 = y_obs - wid_obs / 2 - grid.y0_mm, y_obs + wid_obs / 2 - grid.y0_mm
    rows = []
    for i in range(len(x_obs)):
        for k in range(math.floor(x0[i] / grid.frame_mm), math.floor(x1[i] / grid.frame_mm) + 1):
            j_lo = max(math.floor(y0[i] / grid.cam_mm), 0)
            j_hi = min(math.floor(y1[i] / grid.cam_mm), grid.n_cams - 1)
            for j in range(j_lo, j_hi + 1):
                rows.append((i, k, j, (x0[i] - k * grid.frame_mm) / grid.mm_per_px_x,
                             (y0[i] - j * grid.cam_mm) / grid.mm_per_px_y,
                             (x1[i] - k * grid.frame_mm) / grid.mm_per_px_x,
                             (y1[i] - j * grid.cam_mm) / grid.mm_per_px_y))
    return pd.DataFrame(rows, columns=["item", "k", "j", "r0", "c0", "r1", "c1"])


def piece_frame_range(grid: FrameGrid, enc: Encoder, length_mm: float) -> range:
    """The frame indices ``k`` the piece passes through."""
    ends = enc.x_obs(np.array([0.0, length_mm]))
    return range(math.floor(ends[0] / grid.frame_mm), math.floor(ends[1] / grid.frame_mm) + 1)


def choose_frames(rng: np.random.Generator, busy: set[tuple[int, int]], ks: range, n_cams: int,
                  ratio: float) -> list[tuple[int, int]]:
    """The frames with something on them plus ``ratio`` times as many defect-free ones."""
    n_blank = max(1, round(ratio * len(busy)))
    candidates = [(k, j) for k in ks for j in range(n_cams) if (k, j) not in busy]
    picked = []
    if candidates:
        idx = rng.choice(len(candidates), size=min(n_blank, len(candidates)), replace=False)
        picked = [candidates[i] for i in sorted(idx.tolist())]
    return sorted(busy | set(picked))


def strip_mask(grid: FrameGrid, k: int, j: int, enc: Encoder, length_mm: float,
               width_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask of strip pixels, true x of each row) of frame ``(k, j)``."""
    r = np.arange(grid.rows)
    x_obs = (k * grid.frame_mm) + (r + 0.5) * grid.mm_per_px_x
    x_true = (x_obs - enc.offset_mm) / (1 + enc.scale_err)
    half = np.full(grid.rows, width_mm / 2)
    e1, e2 = enc.y_cam(x_true, half), enc.y_cam(x_true, -half)
    lo, hi = np.minimum(e1, e2), np.maximum(e1, e2)
    y = grid.y0_mm + j * grid.cam_mm + (np.arange(grid.rows) + 0.5) * grid.mm_per_px_y
    on = (x_true >= 0) & (x_true <= length_mm)
    mask = on[:, None] & (y[None, :] >= lo[:, None]) & (y[None, :] <= hi[:, None])
    return mask, x_true


def render_frame(rng: np.random.Generator, grid: FrameGrid, spec: StationSpec, stage: str,
                 mask: np.ndarray,
                 objects: list[tuple[np.ndarray, float, float, float, float, float]]) -> np.ndarray:
    """The frame: strip background where ``mask``, roller table elsewhere, the objects
    ``(picture, r0, c0, r1, c1, gain)`` drawn in, then the camera's look."""
    img = background(rng, grid.rows, grid.rows, stage)
    for picture, r0, c0, r1, c1, gain in objects:
        paste(img, picture, r0, c0, r1, c1, gain)
    table = 0.06 + 0.02 * rng.random(img.shape, dtype=np.float32)
    img = np.where(mask, img, table)
    return camera(rng, img, blur_px=spec.blur_px, haze=spec.haze, noise_sd=spec.noise_sd)


def render_roi(rng: np.random.Generator, spec: StationSpec, stage: str, picture: np.ndarray,
               len_mm: float, wid_mm: float, gain: float,
               max_px: int = 384) -> tuple[np.ndarray, float, float]:
    """A vendor's ROI image: the defect centred with a 16-pixel margin; a defect too large for
    ``max_px`` is shown at a coarser resolution. Returns (image, mm_per_px_x, mm_per_px_y)."""
    mmx = max(spec.mm_per_px_x, (len_mm + 32 * spec.mm_per_px_x) / max_px)
    mmy = max(spec.mm_per_px_y, (wid_mm + 32 * spec.mm_per_px_y) / max_px)
    rows = min(max_px, math.ceil(len_mm / mmx) + 32)
    cols = min(max_px, math.ceil(wid_mm / mmy) + 32)
    img = background(rng, rows, cols, stage)
    paste(img, picture, 16.0, 16.0, 16.0 + len_mm / mmx, 16.0 + wid_mm / mmy, gain)
    return camera(rng, img, blur_px=spec.blur_px, haze=spec.haze, noise_sd=spec.noise_sd), mmx, mmy
