"""From an anomaly map to defect geometries: threshold, opening, connected components, mm.

Pure functions (numpy, scipy.ndimage, shapely). Pixel geometry uses pixel *edges*: pixel
(row r, column c) covers ``[c, c+1] x [r, r+1]`` in ``(x=column, y=row)`` coordinates, so a
one-pixel blob has area 1.

Pixel -> piece frame (``../shared/DOMAIN.md``): ``x`` in mm along the length from the head,
``y`` in mm across from the centreline. Image rows run along the length and columns across;
the frame sidecar gives where the first row lies (``x_first_row_mm``), the pixel pitch both
ways and where the image's centre column lies across (``y_centre_offset_mm``).

>>> m = np.zeros((20, 30), np.float32)
>>> m[5:15, 10:16] = 1.0
>>> [b.box_px for b in extract_blobs(m, 0.5, opening_radius_px=2)]
[(5, 10, 15, 16)]
>>> x_mm, y_mm = px_to_mm(np.array([0.0, 10.0]), np.array([15.0, 30.0]), x_first_row_mm=1000.0,
...     mm_per_px_along=0.5, mm_per_px_across=0.25, y_centre_offset_mm=0.0, image_width_px=30)
>>> x_mm.tolist(), y_mm.tolist()
([1000.0, 1005.0], [0.0, 3.75])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy import ndimage


@dataclass(frozen=True)
class Blob:
    """One connected anomalous region of a map, in pixels."""

    area_px: int
    box_px: tuple[int, int, int, int]  # (row0, col0, row1, col1), end exclusive
    polygon_px: shapely.Polygon  # convex hull of the region's pixel corners, (x=col, y=row)
    max_score: float
    mean_score: float


def disk(radius_px: int) -> np.ndarray:
    """A boolean disk structuring element of the given radius (2r+1 square)."""
    r = int(radius_px)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy**2 + xx**2) <= r * r


def threshold_and_open(score_map: np.ndarray, threshold: float, *, opening_radius_px: int = 4) -> np.ndarray:
    """Boolean defect mask: ``score_map > threshold``, opened with a disk.

    The opening removes specks thinner than the disk, i.e. the isolated residual pixels every
    normal surface has above a percentile threshold (Bergmann et al. use radius 4).
    """
    mask = np.asarray(score_map) > threshold
    if opening_radius_px > 0 and mask.any():
        mask = ndimage.binary_opening(mask, structure=disk(opening_radius_px))
    return mask


def extract_blobs(
    score_map: np.ndarray,
    threshold: float,
    *,
    opening_radius_px: int = 4,
    min_area_px: int = 1,
    join_gap_px: int = 0,
) -> list[Blob]:
    """The connected defect regions (8-connectivity) of ``score_map``, largest first.

    ``join_gap_px`` > 0 makes regions closer than about twice that (a gap of up to
    ``2 * join_gap_px`` pixels, either way) one blob: a long defect whose map dips under the
    threshold along it stays one defect. The blob's pixels are still only those over the
    threshold; its box and hull span the joined parts.
    """
    score_map = np.asarray(score_map, dtype=np.float32)
    mask = threshold_and_open(score_map, threshold, opening_radius_px=opening_radius_px)
    eight = np.ones((3, 3), bool)
    if join_gap_px > 0 and mask.any():
        # a dilation by a square, as two 1-D passes (a 2-D structuring element costs its area)
        grown = ndimage.maximum_filter(mask, size=2 * int(join_gap_px) + 1, mode="constant")
        labels, n = ndimage.label(grown, structure=eight)
        labels[~mask] = 0  # each pixel over the threshold keeps its joined region's label
    else:
        labels, n = ndimage.label(mask, structure=eight)
    blobs: list[Blob] = []
    for index, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        region = labels[sl] == index
        area = int(region.sum())
        if area < min_area_px:
            continue
        polygon = shapely.convex_hull(shapely.multipoints(_row_end_corners(region, sl)))
        values = score_map[sl][region]
        blobs.append(
            Blob(
                area_px=area,
                box_px=(sl[0].start, sl[1].start, sl[0].stop, sl[1].stop),
                polygon_px=polygon,
                max_score=float(values.max()),
                mean_score=float(values.mean()),
            )
        )
    return sorted(blobs, key=lambda b: -b.area_px)


def _row_end_corners(region: np.ndarray, sl: tuple[slice, slice]) -> np.ndarray:
    """The outer corners of the first and last pixel of every row of ``region`` (in image
    ``(x=col, y=row)`` coordinates): their convex hull is the hull of all the region's pixel
    corners, from two pixels a row instead of every pixel of a large blob."""
    filled = np.nonzero(region.any(axis=1))[0]
    sub = region[filled]
    first = sub.argmax(axis=1)
    last = sub.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    rows = (filled + sl[0].start).astype(np.float64)
    left = (first + sl[1].start).astype(np.float64)
    right = (last + sl[1].start + 1).astype(np.float64)
    return np.concatenate(
        [np.stack([x, rows + dy], axis=1) for x in (left, right) for dy in (0.0, 1.0)]
    )


def px_to_mm(
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    x_first_row_mm: float,
    mm_per_px_along: float,
    mm_per_px_across: float,
    y_centre_offset_mm: float,
    image_width_px: int,
    rows_toward_tail: bool = True,
    cols_toward_operator: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Piece-frame ``(x_mm, y_mm)`` of pixel-edge coordinates ``(rows, cols)`` (arrays).

    ``x_first_row_mm`` is where the top edge of row 0 lies along the piece;
    ``y_centre_offset_mm`` is where the image's centre (``image_width_px / 2``) lies across it.
    """
    along = 1.0 if rows_toward_tail else -1.0
    across = 1.0 if cols_toward_operator else -1.0
    x_mm = x_first_row_mm + along * np.asarray(rows, dtype=np.float64) * mm_per_px_along
    centred = np.asarray(cols, dtype=np.float64) - image_width_px / 2
    y_mm = y_centre_offset_mm + across * centred * mm_per_px_across
    return x_mm, y_mm


def geometries_to_mm(geometries: np.ndarray | list, **sidecar: float) -> np.ndarray:
    """Pixel geometries ``(x=col, y=row)`` -> piece-frame geometries ``(x_mm, y_mm)``.

    Vectorised: one ``shapely.transform`` call over all coordinates of all geometries.
    ``sidecar`` holds the keyword arguments of :func:`px_to_mm`.

    >>> g = geometries_to_mm([shapely.box(0, 0, 10, 4)], x_first_row_mm=0.0, mm_per_px_along=1.0,
    ...     mm_per_px_across=2.0, y_centre_offset_mm=0.0, image_width_px=10)
    >>> shapely.bounds(g).tolist()
    [[0.0, -10.0, 4.0, 10.0]]
    """

    def to_mm(coords: np.ndarray) -> np.ndarray:
        x_mm, y_mm = px_to_mm(coords[:, 1], coords[:, 0], **sidecar)  # type: ignore[arg-type]
        return np.stack([x_mm, y_mm], axis=1)

    return shapely.transform(np.asarray(geometries, dtype=object), to_mm)
