"""Drawing strip images (pure: numpy and scipy on arrays; pictures come in as arrays).

A frame is a steel background (hot: dark, mottled, scaly; cold: bright with rolling streaks),
the roller table where there is no strip, real defect pictures (NEU crops, stretched to the
defect's size in the frame and dimmed by processing) and pseudo-defects drawn procedurally,
then the camera: blur, haze of a wet window, noise. Values are floats in [0, 1].

>>> rng = np.random.default_rng(0)
>>> bg = background(rng, 64, 48, "cold")
>>> bg.shape, bool(0.4 < bg.mean() < 0.8)
((64, 48), True)
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

STAGE_OF_LINE: dict[str, str] = {"HSM": "hot", "PL": "pickled", "CAL": "cold", "SL": "cold"}


def background(rng: np.random.Generator, rows: int, cols: int, stage: str) -> np.ndarray:
    """Bare strip surface: ``"hot"``, ``"pickled"`` or ``"cold"`` (rolled) texture."""
    grain = rng.standard_normal((rows, cols), dtype=np.float32)
    coarse = rng.standard_normal((rows // 16 + 2, cols // 16 + 2), dtype=np.float32)
    mottle = upsample(ndimage.gaussian_filter(coarse, 1.0), 16)[:rows, :cols]
    if stage in ("hot", "pickled"):
        # Pickling removes the scale: brighter, fewer dark specks.
        base, speck_share = (0.40, 0.002) if stage == "hot" else (0.50, 0.0005)
        img = base + 0.05 * mottle + 0.045 * ndimage.gaussian_filter(grain, 0.8)
        specks = rng.random((rows, cols), dtype=np.float32) < speck_share
        img = img - 0.12 * ndimage.gaussian_filter(specks.astype(np.float32), 1.0) * 4
    else:
        # Rolling streaks: noise averaged along the rolling direction (two box passes).
        streaks = ndimage.uniform_filter1d(ndimage.uniform_filter1d(grain, 41, axis=0), 41,
                                           axis=0) * 7.0
        img = 0.62 + 0.03 * mottle + 0.02 * streaks + 0.015 * ndimage.gaussian_filter(grain, 0.6)
    return img.astype(np.float32)


def upsample(small: np.ndarray, factor: int) -> np.ndarray:
    """A smooth (bilinear) enlargement by an integer factor."""
    rows, cols = small.shape
    return resize(small, rows * factor, cols * factor)


def resize(patch: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A float patch resampled to ``rows x cols`` (bilinear)."""
    im = Image.fromarray(np.ascontiguousarray(patch, dtype=np.float32), mode="F")
    return np.asarray(im.resize((max(cols, 1), max(rows, 1)), Image.BILINEAR), dtype=np.float32)


def _feather(rows: int, cols: int) -> np.ndarray:
    """An alpha window that fades the last ~12 % of each side (no hard paste edges)."""

    def ramp(n: int) -> np.ndarray:
        k = max(1, int(round(n * 0.12)))
        r = np.ones(n, dtype=np.float32)
        edge = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, k + 2)[1:-1])
        r[:k] = edge[:k]
        r[n - k :] = np.minimum(r[n - k :], edge[:k][::-1])
        return r

    return np.outer(ramp(rows), ramp(cols))


def paste(canvas: np.ndarray, patch: np.ndarray, r0: float, c0: float, r1: float, c1: float,
          gain: float) -> None:
    """Add ``gain * patch`` (a deviation from background) into ``canvas[r0:r1, c0:c1]``.

    The box is in canvas pixels and may reach outside the canvas (it is clipped there).
    """
    ir0, ic0 = int(np.floor(r0)), int(np.floor(c0))
    rows, cols = max(int(np.ceil(r1)) - ir0, 1), max(int(np.ceil(c1)) - ic0, 1)
    if rows > 8000 or cols > 8000:
        return
    p = resize(patch, rows, cols) * _feather(rows, cols) * gain
    h, w = canvas.shape
    a0, b0 = max(ir0, 0), max(ic0, 0)
    a1, b1 = min(ir0 + rows, h), min(ic0 + cols, w)
    if a1 <= a0 or b1 <= b0:
        return
    canvas[a0:a1, b0:b1] += p[a0 - ir0 : a1 - ir0, b0 - ic0 : b1 - ic0]


def pseudo_picture(rng: np.random.Generator, kind: str, rows: int, cols: int) -> np.ndarray:
    """A dirt speck, an oil stain or a water drop as a deviation from background."""
    rows, cols = max(rows, 3), max(cols, 3)
    rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float32)
    u = (rr - rows / 2 + 0.5) / (rows / 2)
    v = (cc - cols / 2 + 0.5) / (cols / 2)
    radius = np.sqrt(u * u + v * v)
    wobble = ndimage.gaussian_filter(rng.normal(0, 1, (rows, cols)).astype(np.float32),
                                     max(rows, cols) / 8)
    wobble /= float(np.abs(wobble).max()) + 1e-6
    if kind == "dirt":
        return -0.30 * (radius + 0.35 * wobble < 0.8).astype(np.float32)
    if kind == "oil":
        body = np.clip(1.0 - radius - 0.2 * wobble, 0.0, 1.0)
        return -0.14 * np.sqrt(body) + 0.05 * np.clip(1.0 - np.abs(radius - 0.85) * 8, 0, 1)
    ring = np.clip(1.0 - np.abs(radius + 0.1 * wobble - 0.8) * 6.0, 0.0, 1.0)
    return 0.22 * ring - 0.06 * (radius < 0.7)


def camera(rng: np.random.Generator, img: np.ndarray, *, blur_px: float, haze: float,
           noise_sd: float) -> np.ndarray:
    """The camera's own look: optical blur, a veil of condensation, sensor noise."""
    out = ndimage.gaussian_filter(img, blur_px) if blur_px > 0 else img
    if haze > 0:
        rows, cols = img.shape
        veil = upsample(rng.random((rows // 64 + 2, cols // 64 + 2), dtype=np.float32),
                        64)[:rows, :cols]
        out = out * (1 - haze) + haze * (0.65 + 0.2 * veil)
    out = out + noise_sd * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(out, 0.0, 1.0)
