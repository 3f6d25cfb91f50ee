"""Observation images: resolved only under the image root, heatmaps blended over them.

Pure functions (no streamlit). A reference from the database is untrusted input: an absolute
path, ``..`` or a symlink that leads out of the image root is refused, never opened.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from coilmap.errors import CoilmapError


class ImagePathError(CoilmapError):
    """An image reference that does not name a file under the image root."""


def resolve_image(root: Path, ref: object) -> Path:
    """The file ``ref`` names under ``root``; :class:`ImagePathError` when it is missing or
    would lead outside ``root``.

    >>> resolve_image(Path("/srv/img"), "../etc/passwd")
    Traceback (most recent call last):
    ...
    dashboard.images.ImagePathError: image reference '../etc/passwd' leads outside the image root
    """
    if not isinstance(ref, str) or not ref:
        raise ImagePathError("the observation has no image")
    rel = PurePosixPath(ref.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or (rel.parts and ":" in rel.parts[0]):
        raise ImagePathError(f"image reference {ref!r} leads outside the image root")
    base = root.resolve()
    path = (base / Path(*rel.parts)).resolve()
    if not path.is_relative_to(base):  # a symlink out of the root
        raise ImagePathError(f"image reference {ref!r} leads outside the image root")
    if not path.is_file():
        raise ImagePathError(f"image {ref!r} is missing under {base}")
    return path


def overlay_heatmap(image: Image.Image, heatmap: Image.Image, alpha: float = 0.45) -> Image.Image:
    """``image`` in grey with ``heatmap`` (any mode; brighter = more anomalous) on top in a
    red-yellow ramp, ``alpha`` where the heatmap is hottest and transparent where it is zero."""
    base = np.asarray(image.convert("L"), dtype=np.float32)
    heat = np.asarray(heatmap.convert("L").resize(image.size, Image.BILINEAR), dtype=np.float32) / 255.0
    rgb = np.stack([base, base, base], axis=-1)
    ramp = np.stack([np.full_like(heat, 255.0), 255.0 * heat, np.zeros_like(heat)], axis=-1)
    weight = (alpha * heat)[..., None]
    out = rgb * (1.0 - weight) + ramp * weight
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), mode="RGB")
