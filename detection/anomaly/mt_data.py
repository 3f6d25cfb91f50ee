"""The magnetic-tile and NEU images the anomaly scorers train and are evaluated on (file I/O).

Parts come only from :mod:`coilmap.datasplit`: scorers fit on ``MT_Free`` *train*, take
thresholds and checkpoints from ``MT_Free`` *val*, and are evaluated on the *test* part of
``MT_Free`` against the *test* part of every defect class. NEU *train* images serve as foreign
textures for synthetic anomalies (never MT defects).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coilmap.datasplit import mt_parts, neu_part
from coilmap.errors import InputError
from detection.images import load_gray

MT_DEFECT_CLASSES = ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")


@dataclass(frozen=True)
class MtItem:
    """One magnetic-tile image: its class folder, id, image path and mask path."""

    class_dir: str
    image_id: str
    image: Path
    mask: Path

    @property
    def is_defect(self) -> bool:
        """Whether the image is of a defect class (not ``MT_Free``)."""
        return self.class_dir != "MT_Free"

    def defect_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Its boolean defect mask; all clean (of ``shape``, its image's) for an ``MT_Free`` image."""
        return load_mask(self.mask) if self.is_defect else np.zeros(shape, bool)


def mt_items(root: Path, class_dir: str, part: str) -> list[MtItem]:
    """The images of ``class_dir`` (e.g. ``MT_Free``) in ``part``, sorted by id."""
    folder = Path(root) / class_dir / "Imgs"
    if not folder.is_dir():
        raise InputError("no magnetic-tile class folder here", source=str(folder))
    images = sorted(folder.glob("*.jpg"))
    parts = mt_parts(class_dir, [p.stem for p in images])
    items = [MtItem(class_dir, p.stem, p, p.with_suffix(".png")) for p in images if parts[p.stem] == part]
    return items


def load_mask(path: Path) -> np.ndarray:
    """A boolean defect mask (value > 127, the masks have soft edges)."""
    return load_gray(path) > 127.5 / 255.0


def load_images(items: list[MtItem]) -> list[np.ndarray]:
    return [load_gray(it.image) for it in items]


def mt_root(shared_data: Path) -> Path:
    return Path(shared_data) / "magnetic_tile"


def neu_train_sources(shared_data: Path, limit: int = 120) -> list[np.ndarray]:
    """Up to ``limit`` NEU *train* images (spread over classes) as synthetic-anomaly textures."""
    folder = Path(shared_data) / "neu_det" / "IMAGES"
    if not folder.is_dir():
        return []
    files = [p for p in sorted(folder.glob("*.jpg")) if neu_part(p.stem) == "train"]
    step = max(1, len(files) // limit)
    return [load_gray(p) for p in files[::step][:limit]]
