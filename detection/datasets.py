"""Finding labelled defect images on disk: NEU layout, magnetic tile layout, a folder per class.

The shell of the supervised detectors: it lists images with their class, their part
(train/val/test) and their defect regions (NEU boxes, magnetic tile masks), and loads pixels
with :func:`detection.images.load_gray`. Every problem with the folder (no images, a class with
one image, an unreadable annotation) is an :class:`~coilmap.errors.InputError` naming the path.

Parts come from :mod:`coilmap.datasplit` for the shared data; NEU images of the ``render``
part are never listed (the demo plant renders them). A user's own folder per class is split by
the same kind of stable hash (70 % train, 15 % val, 15 % test), with at least one training and
one validation image per class.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coilmap.datasplit import mt_parts, neu_class, neu_part
from coilmap.errors import InputError
from detection.images import IMAGE_SUFFIXES, load_gray

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive

MT_FREE = "Free"


@dataclass(frozen=True)
class LabelledImage:
    """One image file with its class, its part and where its defect is (if known)."""

    path: Path
    label: str
    part: str
    boxes: tuple[Box, ...] = ()
    mask_path: Path | None = None
    all_boxes: tuple[Box, ...] = ()  # every annotated region, any class (for clean backgrounds)


@dataclass(frozen=True)
class LabelledSet:
    """The images of one data folder, its layout (``neu``, ``mt``, ``folders``) and classes."""

    root: Path
    layout: str
    classes: tuple[str, ...]
    items: tuple[LabelledImage, ...] = field(repr=False)

    def part(self, *parts: str) -> list[LabelledImage]:
        """The images of the given parts (``"all"`` for every listed image)."""
        if "all" in parts:
            return list(self.items)
        return [it for it in self.items if it.part in parts]

    def counts(self, *parts: str) -> dict[str, int]:
        """Images per class in the given parts."""
        c = Counter(it.label for it in self.part(*parts))
        return {k: c.get(k, 0) for k in self.classes}

    def describe(self) -> dict[str, object]:
        """A JSON-able summary for model manifests."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "classes": list(self.classes),
            "images": {p: self.counts(p) for p in ("train", "val", "test")},
        }


def discover(root: str | Path) -> LabelledSet:
    """The labelled images under ``root``, by its layout.

    - NEU: ``root/IMAGES/<class>_<n>.jpg`` (boxes from ``root/ANNOTATIONS/*.xml`` if present);
    - magnetic tile: ``root/MT_<Class>/Imgs/<id>.jpg`` with the mask ``<id>.png`` beside it;
    - otherwise a folder per class: ``root/<class>/*.png|jpg``.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder", source=str(root))
    if (root / "IMAGES").is_dir():
        return _discover_neu(root)
    if any(p.is_dir() and p.name.startswith("MT_") for p in root.iterdir()):
        return _discover_mt(root)
    return _discover_folders(root)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _discover_neu(root: Path) -> LabelledSet:
    images = [p for p in _images_in(root / "IMAGES") if "_" in p.stem]
    if not images:
        raise InputError("no <class>_<n>.jpg images in the NEU IMAGES folder", source=str(root))
    ann = root / "ANNOTATIONS"
    items = []
    for p in images:
        part = neu_part(p.stem)
        if part == "render":
            continue  # kept unseen: the demo plant renders these
        label = neu_class(p.stem)
        xml = ann / f"{p.stem}.xml"
        boxes = read_voc_boxes(xml, label) if xml.is_file() else ()
        all_boxes = read_voc_boxes(xml) if xml.is_file() else ()
        items.append(LabelledImage(p, label, part, boxes, all_boxes=all_boxes))
    classes = tuple(sorted({it.label for it in items}))
    _check_classes(root, items, classes)
    return LabelledSet(root, "neu", classes, tuple(items))


def read_voc_boxes(xml: Path, label: str | None = None) -> tuple[Box, ...]:
    """The Pascal VOC boxes in ``xml`` (only those named ``label`` when given).

    Coordinates become 0-based with exclusive ends: VOC ``xmin=2, xmax=193`` is ``(1, ..., 193)``.
    """
    try:
        tree = ET.parse(xml)
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"not a readable Pascal VOC annotation ({exc})", source=str(xml)) from exc
    boxes = []
    for obj in tree.getroot().iter("object"):
        name = (obj.findtext("name") or "").strip()
        if label is not None and name != label:
            continue
        bb = obj.find("bndbox")
        try:
            x0, y0, x1, y1 = (int(float(bb.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[union-attr,arg-type]
        except (AttributeError, TypeError, ValueError) as exc:
            raise InputError("a box without numeric xmin/ymin/xmax/ymax", source=str(xml)) from exc
        if x1 > x0 and y1 > y0:
            boxes.append((max(x0 - 1, 0), max(y0 - 1, 0), x1, y1))
    return tuple(boxes)


def _discover_mt(root: Path) -> LabelledSet:
    items = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("MT_")):
        imgs = d / "Imgs"
        if not imgs.is_dir():
            raise InputError("a magnetic tile class folder without Imgs/", source=str(d))
        label = d.name[3:]
        jpgs = [p for p in _images_in(imgs) if p.suffix.lower() == ".jpg"]
        parts = mt_parts(d.name, [p.stem for p in jpgs])
        for p in jpgs:
            mask = p.with_suffix(".png")
            if not mask.is_file():
                raise InputError("a magnetic tile image without its .png mask", source=str(p))
            items.append(LabelledImage(p, label, parts[p.stem], mask_path=mask))
    if not items:
        raise InputError("no magnetic tile images (MT_<Class>/Imgs/*.jpg)", source=str(root))
    defect = sorted({it.label for it in items} - {MT_FREE})
    classes = ((MT_FREE,) if any(it.label == MT_FREE for it in items) else ()) + tuple(defect)
    _check_classes(root, items, classes)
    return LabelledSet(root, "mt", classes, tuple(items))


def _stable_part(key: str) -> str:
    b = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % 100
    return "train" if b < 70 else "val" if b < 85 else "test"


def _discover_folders(root: Path) -> LabelledSet:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(
            "expected a folder per class (DIR/<class>/*.png|jpg) or the NEU layout "
            "(DIR/IMAGES/<class>_<n>.jpg); found no sub-folders",
            source=str(root),
        )
    items: list[LabelledImage] = []
    for d in folders:
        files = _images_in(d)
        if not files:
            raise InputError("the class folder holds no images (.png/.jpg/...)", source=str(d))
        if len(files) < 2:
            raise InputError(
                f"class {d.name!r} has only one image; at least 2 are needed "
                "(one to train on, one to validate on)",
                source=str(d),
            )
        parts = [_stable_part(f"{d.name}/{p.name}") for p in files]
        # Every class needs a training and a validation image whatever the hash says.
        for need in ("train", "val"):
            if need not in parts:
                donor = next(i for i, q in enumerate(parts) if parts.count(q) > 1 or q == "test")
                parts[donor] = need
        items += [LabelledImage(p, d.name, q) for p, q in zip(files, parts, strict=True)]
    classes = tuple(d.name for d in folders)
    if len(classes) < 2:
        raise InputError("a classifier needs at least 2 class folders", source=str(root))
    return LabelledSet(root, "folders", classes, tuple(items))


def _check_classes(root: Path, items: list[LabelledImage], classes: tuple[str, ...]) -> None:
    if len(classes) < 2:
        raise InputError(f"found {len(classes)} class(es); at least 2 are needed", source=str(root))
    for c in classes:
        n = sum(1 for it in items if it.label == c and it.part == "train")
        if n < 1:
            raise InputError(f"class {c!r} has no training image", source=str(root))


def load_images(items: list[LabelledImage]) -> list[np.ndarray]:
    """The pixels of ``items`` as float32 (H, W) arrays in [0, 1]."""
    return [load_gray(it.path) for it in items]


def load_mask(item: LabelledImage, shape: tuple[int, int]) -> np.ndarray:
    """The defect mask of ``item`` as bool (H, W) (value > 127 is defect); zeros for none."""
    if item.mask_path is None:
        return np.zeros(shape, dtype=bool)
    m = load_gray(item.mask_path) > 0.5
    if m.shape != shape:
        raise InputError(f"mask shape {m.shape} differs from its image's {shape}", source=str(item.mask_path))
    return m
