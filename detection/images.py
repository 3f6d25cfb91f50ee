"""Reading images for detection, with clear errors for every way a file can be bad.

All detection code sees images as ``float32`` arrays in [0, 1], shape (H, W), grayscale.
Colour images are converted (luma); 16-bit images are scaled from their full range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from coilmap.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def load_gray(path: str | Path) -> np.ndarray:
    """The image at ``path`` as float32 (H, W) in [0, 1]; raises :class:`InputError` if bad."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such image file", source=str(path))
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not later
            return _to_gray01(im, path)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"not a readable image ({exc})", source=str(path)) from exc


def _to_gray01(im: Image.Image, path: Path) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.clip(arr / top, 0.0, 1.0).astype(np.float32)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    if mode not in ("L", "RGB", "RGBA", "P", "LA", "1", "CMYK", "YCbCr"):
        raise InputError(f"unsupported image mode {mode!r}", source=str(path))
    arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"empty image of shape {arr.shape}", source=str(path))
    return arr


def save_gray(path: str | Path, image01: np.ndarray) -> None:
    """Write a float [0, 1] (H, W) array as an 8-bit grayscale PNG/JPEG (by suffix)."""
    arr = np.clip(np.rint(np.asarray(image01) * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(arr, mode="L").save(path)


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted; an error if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", source=str(folder))
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError("the folder holds no images (.png/.jpg/...)", source=str(folder))
    return files


def crop_box(
    shape: tuple[int, ...], box: tuple[int, int, int, int], margin_px: int
) -> tuple[int, int, int, int]:
    """A (row0, col0, row1, col1) box grown by ``margin_px``, clipped to ``shape``, at least 2 x 2.

    >>> crop_box((100, 50), (10, 40, 12, 41), 8)
    (2, 32, 20, 49)
    """
    h, w = shape
    r0, c0 = max(box[0] - margin_px, 0), max(box[1] - margin_px, 0)
    r1, c1 = min(max(box[2] + margin_px, r0 + 2), h), min(max(box[3] + margin_px, c0 + 2), w)
    return r0, c0, r1, c1
