"""Image augmentations for the supervised detectors, guided crop-and-paste among them.

Pure numpy: every function takes its random generator, so a run is reproducible and a test
can check an invariant (a flip twice is the identity, a paste keeps the background outside
its mask).

Guided crop-and-paste (context-aggregation paper, section III-C): defects are cut out of
real images by their boxes (NEU) or masks (magnetic tile), jittered, and pasted at random
places into clean backgrounds; which classes are pasted is drawn with probabilities that
follow each class's validation loss (:func:`class_probabilities`), so the classes the model
finds hardest get most synthetic images, not simply the rarest.

>>> rng = np.random.default_rng(0)
>>> img = rng.random((20, 30)).astype(np.float32)
>>> bool(np.array_equal(flip_rot90(flip_rot90(img, 5), 5), img))  # a flip is an involution
True
>>> class_probabilities([0.1, 0.3, 0.0]).round(2).tolist()
[0.26, 0.69, 0.05]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def flip_rot90(image: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 symmetries of the square: ``k % 4`` quarter turns, then a flip if ``k >= 4``."""
    out = np.rot90(image, k % 4)
    if k % 8 >= 4:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def brightness_contrast(
    image: np.ndarray, rng: np.random.Generator, brightness: float = 0.1, contrast: float = 0.2
) -> np.ndarray:
    """Scale contrast about the mean by ``1 +- contrast`` and shift by ``+- brightness``."""
    c = 1.0 + rng.uniform(-contrast, contrast)
    b = rng.uniform(-brightness, brightness)
    m = float(image.mean())
    return np.clip((image - m) * c + m + b, 0.0, 1.0).astype(np.float32)


def random_crop_box(
    shape: tuple[int, int], rng: np.random.Generator, min_scale: float = 0.6
) -> tuple[int, int, int, int]:
    """A random (y0, x0, h, w) covering ``min_scale``..1 of each side (aspect kept within 4/3)."""
    h, w = shape
    s = rng.uniform(min_scale, 1.0)
    a = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(round(min(h, max(8, h * s * np.sqrt(a)))))
    cw = int(round(min(w, max(8, w * s / np.sqrt(a)))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    return y0, x0, ch, cw


@dataclass(frozen=True)
class Cutout:
    """A defect cut out of a real image: its pixels, its soft alpha (1 = defect), its class."""

    pixels: np.ndarray
    alpha: np.ndarray
    label: int
    # The sides of its source image the cut reaches (top, bottom, left, right): a chip out of a
    # tile's edge or a crack across the whole image is pasted against the same sides again.
    edges: tuple[bool, bool, bool, bool] = (False, False, False, False)


def cut_boxes(image: np.ndarray, boxes: tuple[tuple[int, int, int, int], ...], label: int) -> list[Cutout]:
    """The box regions (x0, y0, x1, y1) of ``image`` with a feathered rectangular alpha."""
    out = []
    for x0, y0, x1, y1 in boxes:
        patch = image[y0:y1, x0:x1]
        if min(patch.shape) < 4:
            continue
        out.append(Cutout(patch.astype(np.float32), _feathered(patch.shape), label))
    return out


def cut_mask_blobs(image: np.ndarray, mask: np.ndarray, label: int, margin_px: int = 3) -> list[Cutout]:
    """Each connected defect blob of ``mask`` with ``margin_px`` around it; alpha is the blob."""
    labelled, _ = ndimage.label(mask)
    soft = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
    out = []
    for i, sl in enumerate(ndimage.find_objects(labelled), start=1):
        if sl is None:
            continue
        y0 = max(sl[0].start - margin_px, 0)
        y1 = min(sl[0].stop + margin_px, mask.shape[0])
        x0 = max(sl[1].start - margin_px, 0)
        x1 = min(sl[1].stop + margin_px, mask.shape[1])
        blob = labelled[y0:y1, x0:x1] == i
        alpha = np.maximum(blob.astype(np.float32), soft[y0:y1, x0:x1] * (blob.any()))
        alpha = ndimage.grey_dilation(alpha, size=3)  # a rim of real background around the edge
        edges = (y0 == 0, y1 == mask.shape[0], x0 == 0, x1 == mask.shape[1])
        out.append(Cutout(image[y0:y1, x0:x1].astype(np.float32), alpha, label, edges))
    return out


def turned_edges(edges: tuple[bool, bool, bool, bool], k: int) -> tuple[bool, bool, bool, bool]:
    """Where the sides (top, bottom, left, right) of an image go under ``flip_rot90(., k)``.

    >>> turned_edges((True, False, False, False), 1)  # a quarter turn: the top goes left
    (False, False, True, False)
    """
    marker = np.zeros((3, 3), np.int8)
    for (r, c), on in zip(((0, 1), (2, 1), (1, 0), (1, 2)), edges, strict=True):
        marker[r, c] = on
    t = flip_rot90(marker, k)
    return bool(t[0, 1]), bool(t[2, 1]), bool(t[1, 0]), bool(t[1, 2])


def _place(
    size_bg: int, size_cut: int, first: bool, last: bool, rng: np.random.Generator
) -> tuple[int, slice]:
    """Along one axis: where a cutout starts in the background and which part of it is kept
    (all of it, unless the background is shorter). Against the first or last side when the
    cut reached that side of its source (one of the two, drawn, when it reached both)."""
    n = min(size_bg, size_cut)
    if first and last:
        first = bool(rng.random() < 0.5)
        last = not first
    if last:
        return size_bg - n, slice(size_cut - n, size_cut)
    if first:
        return 0, slice(0, n)
    return int(rng.integers(0, size_bg - n + 1)), slice(0, n)


def _feathered(shape: tuple[int, int], edge_px: int = 4) -> np.ndarray:
    """1 inside, a linear ramp to ~0 over ``edge_px`` at the border."""
    h, w = shape
    e = max(1, min(edge_px, h // 4, w // 4))
    ry = np.minimum(np.arange(h) + 1, np.arange(h)[::-1] + 1) / e
    rx = np.minimum(np.arange(w) + 1, np.arange(w)[::-1] + 1) / e
    return np.clip(np.minimum.outer(ry, rx), 0.0, 1.0).astype(np.float32)


def clean_background(
    image: np.ndarray,
    boxes: tuple[tuple[int, int, int, int], ...],
    min_side_px: int = 40,
) -> np.ndarray | None:
    """A defect-free background the size of ``image``: its largest box-free rectangle, mirrored.

    Returns None when no box-free rectangle of ``min_side_px`` x ``min_side_px`` exists.
    Mirror-tiling (not resizing) keeps the texture at its real scale.
    """
    h, w = image.shape
    free = np.ones((h, w), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        free[y0:y1, x0:x1] = False
    # Search on a grid of 4-px cells (a cell is free when all its pixels are): 16x faster.
    cell = 4
    hc, wc = h // cell, w // cell
    coarse = free[: hc * cell, : wc * cell].reshape(hc, cell, wc, cell).all(axis=(1, 3))
    rect = _largest_rectangle(coarse)
    if rect is None:
        return None
    y0, x0, rh, rw = (v * cell for v in rect)
    if rh < min_side_px or rw < min_side_px:
        return None
    patch = image[y0 : y0 + rh, x0 : x0 + rw]
    reps = (int(np.ceil(h / rh)) + 1, int(np.ceil(w / rw)) + 1)
    tiled = np.block(
        [[patch[:: 1 - 2 * (i % 2), :: 1 - 2 * (j % 2)] for j in range(reps[1])] for i in range(reps[0])]
    )
    return np.ascontiguousarray(tiled[:h, :w], dtype=np.float32)


def _largest_rectangle(free: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest all-True axis-aligned rectangle (y0, x0, h, w) (histogram-stack method)."""
    h, w = free.shape
    heights = np.zeros(w, dtype=int)
    best = (0, None)
    for y in range(h):
        heights = np.where(free[y], heights + 1, 0)
        stack: list[int] = []
        for x in range(w + 1):
            cur = heights[x] if x < w else 0
            while stack and heights[stack[-1]] >= cur:
                top = stack.pop()
                left = stack[-1] + 1 if stack else 0
                area = int(heights[top]) * (x - left)
                if area > best[0]:
                    best = (area, (y - int(heights[top]) + 1, left, int(heights[top]), x - left))
            stack.append(x)
    return best[1]


def paste(
    background: np.ndarray,
    cutouts: list[Cutout],
    rng: np.random.Generator,
    jitter: float = 0.1,
    *,
    at_edges: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``cutouts`` at random places in ``background``, each flipped/turned and jittered.

    With ``at_edges`` a cutout that reached sides of its source image (:attr:`Cutout.edges`)
    is pasted flush against the sides they turned into, at a random place along them: a
    chip out of a tile's edge stays at an edge. Returns the new image and an int mask (0 =
    background, ``label + 1`` where a cutout's alpha > 0.5; later cutouts lie on top, in
    random priority order).
    """
    img = background.astype(np.float32).copy()
    lab = np.zeros(img.shape, dtype=np.int16)
    h, w = img.shape
    for i in rng.permutation(len(cutouts)):
        c = cutouts[i]
        k = int(rng.integers(0, 8))
        px, al = flip_rot90(c.pixels, k), flip_rot90(c.alpha, k)
        top, bottom, left, right = turned_edges(c.edges, k) if at_edges else (False,) * 4
        # Match the cutout's level to the background's so the seam is the defect, not a step.
        level = float(np.median(img)) - float(np.median(px)) + rng.uniform(-jitter, jitter)
        y0, rows = _place(h, px.shape[0], top, bottom, rng)
        x0, cols = _place(w, px.shape[1], left, right, rng)
        px, al = px[rows, cols] + level, al[rows, cols]
        ph, pw = px.shape
        region = img[y0 : y0 + ph, x0 : x0 + pw]
        img[y0 : y0 + ph, x0 : x0 + pw] = al * px + (1.0 - al) * region
        lab[y0 : y0 + ph, x0 : x0 + pw][al > 0.5] = c.label + 1
    return np.clip(img, 0.0, 1.0), lab


def class_probabilities(val_losses: list[float] | np.ndarray, floor: float = 0.05) -> np.ndarray:
    """Drawing probabilities for crop-and-paste: proportional to each class's validation loss.

    A ``floor`` share is spread evenly so no class is starved when its loss reaches zero.
    """
    loss = np.clip(np.asarray(val_losses, dtype=np.float64), 0.0, None)
    n = len(loss)
    p = loss / loss.sum() if loss.sum() > 0 else np.full(n, 1.0 / n)
    return (1.0 - floor * n) * p + floor if floor * n < 1 else np.full(n, 1.0 / n)
