"""The one, documented, deterministic partition of the real image data.

Every image of ``../shared/data`` belongs to exactly one part, decided by a stable hash of its
group key (never by file order or a random generator), so the demo plant renders defects from
images that no classifier has been trained, tuned or tested on, and accuracy measured on the
demo plant is honest.

NEU-DET (per image; the duplicate pair patches_101 / patches_105 shares one group):

- ``train`` 60 %: classifier training;
- ``val``   10 %: model selection, early stopping, thresholds;
- ``test``  15 %: the held-out figures reported in docs/;
- ``render`` 15 %: the demo plant's defect crops; never used by any model.

Magnetic tile (per tile, within each class folder): ``train`` 60 %, ``val`` 10 %, ``test`` 30 % of
the images. The data photographs each tile under up to six exposures; all of a tile's images
share one part (:func:`mt_tile_groups`), so no test figure is measured on a tile a model has
seen under another exposure. Anomaly scorers train on the ``train`` part of ``MT_Free`` only;
defect images are never trained on by them.

>>> neu_part("patches_101") == neu_part("patches_105")
True
>>> sorted({neu_part(f"crazing_{n}") for n in range(1, 300)})
['render', 'test', 'train', 'val']
"""

from __future__ import annotations

import hashlib
from typing import Literal

Part = Literal["train", "val", "test", "render"]

NEU_CLASSES: tuple[str, ...] = (
    "crazing",
    "inclusion",
    "patches",
    "pitted_surface",
    "rolled-in_scale",
    "scratches",
)
# The label of what is no defect at all: dirt, oil and water, and a detection that hits nothing.
# Stored like a class, never counted as a defect.
PSEUDO = "pseudo"

# Images that are the same picture stay in one part.
_NEU_SAME_GROUP = {"patches_105": "patches_101"}

_NEU_BUCKETS: tuple[tuple[int, Part], ...] = ((60, "train"), (70, "val"), (85, "test"), (100, "render"))


def _bucket(key: str) -> int:
    """A stable number in [0, 100) for ``key`` (sha1, independent of Python's hash seed)."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % 100


def _part(key: str, buckets: tuple[tuple[int, Part], ...]) -> Part:
    b = _bucket(key)
    for upper, part in buckets:
        if b < upper:
            return part
    raise AssertionError("buckets must end at 100")


def neu_part(stem: str) -> Part:
    """The part of a NEU image, by its file stem (e.g. ``"crazing_12"``)."""
    return _part("neu:" + _NEU_SAME_GROUP.get(stem, stem), _NEU_BUCKETS)


def neu_class(stem: str) -> str:
    """The image-level class of a NEU file stem (``"rolled-in_scale_7"`` -> ``"rolled-in_scale"``)."""
    return stem.rsplit("_", 1)[0]


_MT_SHARES: tuple[tuple[Part, float], ...] = (("train", 0.6), ("val", 0.1), ("test", 0.3))


def mt_parts(class_dir: str, image_ids: list[str]) -> dict[str, Part]:
    """The part of every magnetic tile image of one class folder (``MT_Free``): image id ->
    part. A tile's exposures (:func:`mt_tile_groups`) share a part. Tiles are taken in the
    order of a stable hash of their first id (never file order) and each goes to the part
    furthest below its share of the folder's images, so even a class of seven tiles has a
    train, a val and a test part.

    >>> ids = [f"exp{k}_num_{1000 * t + k}" for t in range(10) for k in (1, 2, 3)]
    >>> parts = mt_parts("MT_Free", ids)
    >>> sorted(set(parts.values()))
    ['test', 'train', 'val']
    >>> {parts[f"exp{k}_num_{5000 + k}"] for k in (1, 2, 3)} == {parts["exp1_num_5001"]}
    True
    """
    groups = mt_tile_groups(list(image_ids))
    tiles: dict[int, list[str]] = {}
    for image_id in image_ids:
        tiles.setdefault(groups[image_id], []).append(image_id)
    order = sorted(tiles.values(), key=lambda ids: hashlib.sha1(
        f"mt:{class_dir}:{min(ids)}".encode()).hexdigest())
    n_images = len(groups)
    counts = {part: 0 for part, _ in _MT_SHARES}
    parts: dict[str, Part] = {}
    for ids in order:
        # the part furthest below its share; ties go to the earlier part (max keeps the first)
        part = max(_MT_SHARES, key=lambda ps: ps[1] * n_images - counts[ps[0]])[0]
        counts[part] += len(ids)
        parts.update((image_id, part) for image_id in ids)
    return parts


MT_TILE_GAP = 1000  # largest step in image number between two exposures of one tile


def mt_tile_groups(image_ids: list[str]) -> dict[str, int]:
    """Which magnetic tile images show the same tile: ids ``exp<k>_num_<n>`` of one class folder
    -> a group number. The data photographs each tile under up to six exposures in turn, so in
    order of ``n`` a tile's images have rising ``k`` and close numbers; a new tile starts where
    ``k`` does not rise or ``n`` jumps by more than :data:`MT_TILE_GAP`. An id of another form
    is a group of its own. (A split per image id puts one tile's exposures in different parts;
    :func:`mt_parts` keeps them together.)

    >>> ids = ["exp1_num_26106", "exp2_num_26130", "exp6_num_26244", "exp1_num_62553",
    ...        "exp3_num_77583", "exp2_num_77600", "odd"]
    >>> g = mt_tile_groups(ids)
    >>> [g[i] for i in ids]
    [0, 0, 0, 1, 2, 3, 4]
    """
    parsed = []
    for image_id in image_ids:
        parts = image_id.split("_")
        if len(parts) == 3 and parts[0].startswith("exp") and parts[1] == "num" \
                and parts[0][3:].isdigit() and parts[2].isdigit():
            parsed.append((int(parts[2]), int(parts[0][3:]), image_id))
    groups: dict[str, int] = {}
    group, last_num, last_exp = -1, None, None
    for num, exp, image_id in sorted(parsed):
        if last_num is None or exp <= last_exp or num - last_num > MT_TILE_GAP:
            group += 1
        groups[image_id] = group
        last_num, last_exp = num, exp
    for image_id in image_ids:
        if image_id not in groups:
            group += 1
            groups[image_id] = group
    return groups
