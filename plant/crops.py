"""The defect pictures the demo plant renders from: the ``render`` part of NEU-DET only.

:func:`load_catalogue` lists every annotated box of every NEU image whose
``coilmap.datasplit.neu_part(stem) == "render"`` (a documented, deterministic 15 % of the data
that no classifier is trained, tuned or tested on). A box's class is its own annotation name
(an image can hold boxes of another class). :class:`CropLibrary` reads the pictures, once each,
as float arrays in [0, 1].
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coilmap.datasplit import NEU_CLASSES, neu_part
from coilmap.errors import InputError


@dataclass(frozen=True)
class Catalogue:
    """Annotated boxes of the render part, as parallel arrays sorted by (stem, box index)."""

    stem: np.ndarray  # str
    box_px: np.ndarray  # (N, 4) int: xmin, ymin, xmax, ymax (x = image column)
    cls: np.ndarray  # str

    def __len__(self) -> int:
        return len(self.stem)

    def of_class(self, cls: str) -> np.ndarray:
        return np.flatnonzero(self.cls == cls)


def load_catalogue(neu_dir: Path) -> Catalogue:
    """The render part's boxes; :class:`InputError` if the data folder is missing or bad."""
    ann_dir = neu_dir / "ANNOTATIONS"
    if not ann_dir.is_dir():
        raise InputError("NEU-DET annotations not found (set COILMAP_SHARED_DATA)",
                         source=str(ann_dir))
    stems, boxes, classes = [], [], []
    for path in sorted(ann_dir.glob("*.xml")):
        if neu_part(path.stem) != "render":
            continue
        try:
            root = ET.parse(path).getroot()
            for obj in root.iter("object"):
                name = obj.findtext("name", "").strip()
                bb = obj.find("bndbox")
                if name not in NEU_CLASSES or bb is None:
                    continue
                box = [int(float(bb.findtext(k, "nan"))) for k in ("xmin", "ymin", "xmax", "ymax")]
                if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                    continue
                stems.append(path.stem)
                boxes.append(box)
                classes.append(name)
        except (ET.ParseError, ValueError) as exc:
            raise InputError(f"unreadable annotation ({exc})", source=str(path)) from exc
    missing = set(NEU_CLASSES) - set(classes)
    if missing:
        raise InputError(f"the render part holds no boxes of {sorted(missing)}",
                         source=str(ann_dir))
    return Catalogue(np.array(stems), np.array(boxes, dtype=np.int64), np.array(classes))


class CropLibrary:
    """Reads NEU pictures on demand (each once) and cuts defect patches from them."""

    def __init__(self, neu_dir: Path) -> None:
        self.neu_dir = neu_dir
        self._cache: dict[str, np.ndarray] = {}

    def image(self, stem: str) -> np.ndarray:
        if stem not in self._cache:
            from detection.images import load_gray

            self._cache[stem] = load_gray(self.neu_dir / "IMAGES" / f"{stem}.jpg")
        return self._cache[stem]

    def patch(self, stem: str, box_px: np.ndarray) -> np.ndarray:
        """The box's pixels as a deviation from the picture's background (median 0).

        Rows run along the rolling direction (the strip's x), as in NEU pictures.
        """
        img = self.image(stem)
        x0, y0, x1, y1 = (int(v) for v in box_px)
        dev = img[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] - float(np.median(img))
        # Keep what stands out of the picture's own texture (a soft threshold from half a
        # robust sigma to two), so the source's background does not show as a rectangle.
        sigma = 1.4826 * float(np.median(np.abs(img - np.median(img)))) + 1e-3
        weight = np.clip((np.abs(dev) - 0.5 * sigma) / (1.5 * sigma), 0.0, 1.0)
        return (dev * weight).astype(np.float32)
