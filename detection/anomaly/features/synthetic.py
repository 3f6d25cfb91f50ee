"""Synthetic anomalies on defect-free images, for self-supervised training (DRAEM, Zavrtanik 2021).

A Perlin-noise field thresholded at 0.5 gives blob masks of random size and shape; inside the
mask the image is replaced by a blend of a foreign texture (``beta`` keeps some of the original,
so faint anomalies are also learned). Half of the samples carry no anomaly, so the network also
learns that a clean image has an empty mask.

Everything is pure numpy with an explicit :class:`numpy.random.Generator`, so a training run is
reproducible from its seed.

>>> rng = np.random.default_rng(0)
>>> noise = perlin_2d((64, 64), (4, 4), rng)
>>> noise.shape, bool(-1.5 < noise.min() < 0 < noise.max() < 1.5)
((64, 64), True)
>>> img = np.full((64, 64), 0.5, dtype=np.float32)
>>> aug, mask = synthesize(img, [np.zeros((64, 64), np.float32)], rng, p_anomaly=1.0)
>>> bool(mask.any()) and bool((aug[mask == 0] == 0.5).all())
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _fade(t: np.ndarray) -> np.ndarray:
    return 6 * t**5 - 15 * t**4 + 10 * t**3


def perlin_2d(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Gradient (Perlin) noise of ``shape`` with ``res`` lattice cells per axis, in about [-1, 1].

    ``shape`` need not be a multiple of ``res``: the lattice is laid over the image and sampled
    at every pixel centre.
    """
    h, w = shape
    ry, rx = res
    y = (np.arange(h) + 0.5) * ry / h
    x = (np.arange(w) + 0.5) * rx / w
    yi = np.minimum(y.astype(int), ry - 1)
    xi = np.minimum(x.astype(int), rx - 1)
    fy = (y - yi)[:, None]
    fx = (x - xi)[None, :]
    angles = 2 * np.pi * rng.random((ry + 1, rx + 1))
    gy, gx = np.sin(angles), np.cos(angles)

    def corner(dy: int, dx: int) -> np.ndarray:
        cy = (yi + dy)[:, None]
        cx = (xi + dx)[None, :]
        return gy[cy, cx] * (fy - dy) + gx[cy, cx] * (fx - dx)

    uy, ux = _fade(fy), _fade(fx)
    top = corner(0, 0) * (1 - ux) + corner(0, 1) * ux
    bottom = corner(1, 0) * (1 - ux) + corner(1, 1) * ux
    return (np.sqrt(2) * (top * (1 - uy) + bottom * uy)).astype(np.float32)


def perlin_mask(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    max_log2_res: int = 5,
    threshold: float = 0.5,
) -> np.ndarray:
    """A binary (0/1 float32) mask from thresholded Perlin noise at a random lattice scale."""
    for _ in range(8):  # a high threshold on a smooth field is sometimes empty: draw again
        res = (2 ** int(rng.integers(0, max_log2_res + 1)), 2 ** int(rng.integers(0, max_log2_res + 1)))
        mask = (perlin_2d(shape, res, rng) > threshold).astype(np.float32)
        if mask.any():
            return mask
    return mask


def crack_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A thin random-walk curve (1-4 pixels wide) as a 0/1 mask: cracks and scratches are
    long and thin, which thresholded Perlin noise never is."""
    from scipy import ndimage

    h, w = shape
    n = int(rng.integers(max(h, w) // 4, max(h, w) + 1))
    angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.25, n))
    y = rng.uniform(0, h) + np.cumsum(np.sin(angle))
    x = rng.uniform(0, w) + np.cumsum(np.cos(angle))
    keep = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    mask = np.zeros(shape, bool)
    mask[y[keep].astype(int), x[keep].astype(int)] = True
    radius = int(rng.integers(0, 2))
    if radius:
        mask = ndimage.binary_dilation(mask, iterations=radius)
    return mask.astype(np.float32)


def _source_patch(
    sources: Sequence[np.ndarray], shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """A foreign texture of ``shape``: a random crop of a source image or a flat dark/bright level.

    The flat levels stand for holes, chips and stains; the textures for scale and other surfaces.
    """
    h, w = shape
    if not sources or rng.random() < 0.35:
        level = rng.random()
        return (level + 0.03 * rng.standard_normal(shape)).astype(np.float32)
    src = sources[int(rng.integers(0, len(sources)))]
    if src.shape[0] < h or src.shape[1] < w:
        reps = (-(-h // src.shape[0]), -(-w // src.shape[1]))
        src = np.tile(src, reps)
    y0 = int(rng.integers(0, src.shape[0] - h + 1))
    x0 = int(rng.integers(0, src.shape[1] - w + 1))
    patch = src[y0 : y0 + h, x0 : x0 + w]
    if rng.random() < 0.5:
        patch = patch[::-1]
    # Random gain and offset so that the texture is not just "another normal image".
    gain = rng.uniform(0.5, 1.5)
    offset = rng.uniform(-0.3, 0.3)
    return np.clip(patch * gain + offset, 0.0, 1.0).astype(np.float32)


def synthesize(
    image01: np.ndarray,
    sources: Sequence[np.ndarray],
    rng: np.random.Generator,
    *,
    p_anomaly: float = 0.5,
    beta_max: float = 0.8,
    p_crack: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(augmented, mask)``: ``image01`` with a Perlin-shaped foreign patch, or unchanged;
    with probability ``p_crack`` the anomaly is a thin dark crack instead (:func:`crack_mask`).

    ``augmented = image * (1 - m) + ((1 - beta) * texture + beta * image) * m``, beta uniform in
    [0, beta_max] as in DRAEM.
    """
    shape = image01.shape
    if rng.random() >= p_anomaly:
        return image01.astype(np.float32), np.zeros(shape, np.float32)
    if rng.random() < p_crack:
        mask = crack_mask(shape, rng)
        if mask.any():
            # a crack is a dark gap: darker than the surface around it by a random margin
            dark = max(0.0, float(image01.mean()) - rng.uniform(0.1, 0.4))
            augmented = image01 * (1 - mask) + dark * mask
            return augmented.astype(np.float32), mask
    mask = perlin_mask(shape, rng)
    texture = _source_patch(sources, shape, rng)
    beta = rng.uniform(0.0, beta_max)
    blended = (1 - beta) * texture + beta * image01
    augmented = image01 * (1 - mask) + blended * mask
    return augmented.astype(np.float32), mask


# --------------------------------------------------------------------------- surface anomalies
# Shapes that a pressed and ground surface (magnetic tiles, strip) shows when it is defective,
# none of them copied from a real defect: small dark pits (blowholes), thin dark cracks, a band
# whose gain and streak texture differ from the rest (uneven grinding), and pieces missing at
# an edge (breaks, fraying). All are drawn on defect-free images only.


def spot_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """1-3 small ellipses (radii 1.5-8 % of the shorter side) with Perlin-ragged outlines."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rough = perlin_2d(shape, (8, 8), rng) * 0.35
    mask = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(0.015, 0.08) * min(h, w) + 1.0
        ry, rx = r * rng.uniform(0.6, 1.4), r * rng.uniform(0.6, 1.4)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        t = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dy * np.cos(t) + dx * np.sin(t)) / ry
        v = (-dy * np.sin(t) + dx * np.cos(t)) / rx
        mask |= u**2 + v**2 + rough < 1.0
    return mask.astype(np.float32)


def band_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A band across the whole image between two wavy lines (along rows or columns)."""
    h, w = shape
    across = rng.random() < 0.7  # a band spanning the width, bounded above and below
    n, m = (h, w) if across else (w, h)
    width = rng.uniform(0.1, 0.5) * n
    start = rng.uniform(-0.2 * n, n - 0.3 * width)
    wobble = perlin_2d((1, m), (1, int(rng.integers(1, 5))), rng)[0] * rng.uniform(0, 0.1) * n
    lo = start + wobble
    hi = lo + width + perlin_2d((1, m), (1, 3), rng)[0] * 0.05 * n
    idx = np.arange(n, dtype=np.float32)[:, None]
    band = (idx >= lo[None, :]) & (idx < hi[None, :])
    return (band if across else band.T).astype(np.float32)


def edge_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A ragged piece missing at one image edge: depth 3-25 % of the side, over 10-60 % of it."""
    h, w = shape
    side = int(rng.integers(4))
    n, m = (h, w) if side < 2 else (w, h)  # n: the axis going inward
    length = rng.uniform(0.1, 0.6) * m
    start = rng.uniform(0, m - length)
    pos = np.arange(m, dtype=np.float32)
    inside = np.clip(1 - np.abs(2 * (pos - start) / length - 1), 0, 1) ** 0.5
    depth = inside * rng.uniform(0.03, 0.25) * n * (1 + 0.4 * perlin_2d((1, m), (1, 6), rng)[0])
    idx = np.arange(n, dtype=np.float32)[:, None]
    piece = idx < depth[None, :]
    if side % 2:
        piece = piece[::-1]
    return np.ascontiguousarray(piece if side < 2 else piece.T).astype(np.float32)


def natural_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A large soft-edged region: Perlin noise on a coarse lattice (1-4 cells a side), so that
    the region covers a tenth to a half of the image, as uneven grinding does."""
    for _ in range(8):
        res = (2 ** int(rng.integers(0, 3)), 2 ** int(rng.integers(0, 3)))
        mask = (perlin_2d(shape, res, rng) > rng.uniform(0.1, 0.4)).astype(np.float32)
        if 0.05 < mask.mean() < 0.7:
            return mask
    return mask


def natural_fill(
    image01: np.ndarray, donor01: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The surface of another defect-free image (``donor01``, same shape) brought to this one's
    median grey, then given another gain or a stronger streak contrast: a region ground
    differently, made only of real surface texture (after Schlueter et al.'s natural synthetic
    anomalies), so that the network must learn the difference and not a foreign texture."""
    donor = donor01[::-1] if rng.random() < 0.5 else donor01
    level, donor_level = float(np.median(image01)), max(float(np.median(donor)), 1e-3)
    donor = donor * (level / donor_level)
    if rng.random() < 0.5:  # brighter or darker
        gain = rng.uniform(0.6, 0.85) if rng.random() < 0.5 else rng.uniform(1.2, 1.6)
        return (donor * gain).astype(np.float32)
    contrast = rng.uniform(1.6, 2.8)  # the same level, stronger streaks and marks
    return (level + (donor - level) * contrast).astype(np.float32)


def texture_direction(image01: np.ndarray) -> float:
    """The angle (radians, from the row axis towards the column axis) along which ``image01``'s
    texture runs: perpendicular to its dominant gradient (the structure tensor's main axis).
    Grinding streaks running down the columns give about 0.

    >>> streaks = np.tile(np.sin(np.arange(64) * 1.3), (48, 1))  # constant down each column
    >>> abs(round(texture_direction(streaks), 3))
    0.0
    """
    gy, gx = np.gradient(np.asarray(image01, dtype=np.float64))
    jyy, jxx, jxy = float((gy * gy).mean()), float((gx * gx).mean()), float((gx * gy).mean())
    gradient = 0.5 * np.arctan2(2 * jxy, jyy - jxx)  # from the row axis, as the streaks' normal
    return float(gradient + np.pi / 2) if gradient < 0 else float(gradient - np.pi / 2)


def streak_mask(shape: tuple[int, int], direction: float, rng: np.random.Generator) -> np.ndarray:
    """A thin (1-3 px), long (30-100 % of the image along it) and nearly straight line along
    ``direction`` (:func:`texture_direction`): a crack that runs with the grinding streaks, as
    the magnetic tiles' cracks do, and that the random-walk :func:`crack_mask` rarely draws."""
    from scipy import ndimage

    h, w = shape
    extent = abs(h * np.cos(direction)) + abs(w * np.sin(direction))
    n = int(rng.uniform(0.3, 1.0) * extent) + 2
    angle = direction + rng.normal(0.0, 0.03) + np.cumsum(rng.normal(0.0, 0.02, n))
    way = 1.0 if rng.random() < 0.5 else -1.0  # up or down the streaks from its start
    y = rng.uniform(0, h) + way * np.cumsum(np.cos(angle))
    x = rng.uniform(0, w) + way * np.cumsum(np.sin(angle))
    keep = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    mask = np.zeros(shape, bool)
    mask[y[keep].astype(int), x[keep].astype(int)] = True
    if rng.random() < 0.5:
        mask = ndimage.binary_dilation(mask, iterations=1)
    return mask.astype(np.float32)


SURFACE_KINDS = ("texture", "spot", "crack", "band", "edge", "natural", "streak")


# each training mix of synthesize_surface: the probabilities of its kinds (texture, spot, crack,
# band, edge, natural, streak)
SURFACE_WEIGHTS = {
    "surface": (0.3, 0.2, 0.2, 0.15, 0.15, 0.0, 0.0),
    "mixed": (0.6, 0.1, 0.1, 0.1, 0.1, 0.0, 0.0),  # the paper's texture blobs for most
    "natural": (0.2, 0.15, 0.15, 0.1, 0.1, 0.3, 0.0),  # surface shapes and regions of another tile
    "draem_natural": (0.65, 0.0, 0.0, 0.0, 0.0, 0.35, 0.0),  # the paper's blobs and such regions
    "surface_streaks": (0.3, 0.2, 0.1, 0.15, 0.15, 0.0, 0.1),  # half the cracks along the streaks
}
ANOMALY_KINDS = ("draem", *SURFACE_WEIGHTS)


def synthesize_surface(
    image01: np.ndarray,
    sources: Sequence[np.ndarray],
    rng: np.random.Generator,
    *,
    p_anomaly: float = 0.5,
    weights: Sequence[float] = SURFACE_WEIGHTS["surface"],
    donor01: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(augmented, mask)`` with one anomaly of a kind drawn from :data:`SURFACE_KINDS`
    (probabilities ``weights``), or the image unchanged with probability ``1 - p_anomaly``.
    The ``natural`` kind needs ``donor01``, another defect-free image of the same shape.

    >>> rng = np.random.default_rng(1)
    >>> img = np.full((48, 64), 0.4, dtype=np.float32)
    >>> shapes = [synthesize_surface(img, [], rng, p_anomaly=1.0)[1].shape for _ in range(20)]
    >>> set(shapes)
    {(48, 64)}
    """
    shape = image01.shape
    image01 = image01.astype(np.float32)
    if rng.random() >= p_anomaly:
        return image01, np.zeros(shape, np.float32)
    p = np.asarray(weights, dtype=np.float64)
    if len(p) != len(SURFACE_KINDS):
        raise ValueError(f"weights: {len(SURFACE_KINDS)} values, one per kind of {SURFACE_KINDS}")
    kind = SURFACE_KINDS[int(rng.choice(len(p), p=p / p.sum()))]
    level = float(np.median(image01))
    if kind == "texture":
        return synthesize(image01, sources, rng, p_anomaly=1.0)
    if kind == "crack":
        mask = crack_mask(shape, rng)
        fill = np.full(shape, max(0.0, level * rng.uniform(0.2, 0.7)), np.float32)
    elif kind == "streak":
        mask = streak_mask(shape, texture_direction(image01), rng)
        fill = image01 * rng.uniform(0.45, 0.85)  # darker, the texture kept
    elif kind == "spot":
        mask = spot_mask(shape, rng)
        fill = image01 * rng.uniform(0.15, 0.7)  # a pit: darker, the texture faintly kept
    elif kind == "band":
        mask = band_mask(shape, rng)
        gain = rng.uniform(0.55, 0.85) if rng.random() < 0.5 else rng.uniform(1.2, 1.7)
        streaks = perlin_2d(shape, (1, int(rng.integers(8, 33))), rng) * rng.uniform(0, 0.15)
        fill = image01 * gain + streaks * level
    elif kind == "natural":
        if donor01 is None or donor01.shape != shape:
            raise ValueError("the natural kind needs a donor image of the same shape")
        mask = natural_mask(shape, rng)
        fill = natural_fill(image01, donor01, rng)
        # a soft seam (about 2 px), labelled where the new surface dominates or was drawn
        from scipy import ndimage

        soft = ndimage.gaussian_filter(mask, rng.uniform(0.5, 2.0))
        soft[soft < 1e-3] = 0.0  # the far tail of the seam: leave those pixels as they were
        augmented = np.clip(image01 * (1 - soft) + fill * soft, 0.0, 1.0)
        return augmented.astype(np.float32), ((soft > 0.5) | (mask > 0)).astype(np.float32)
    else:
        mask = edge_mask(shape, rng)
        fill = (rng.uniform(0.0, 0.1) + 0.02 * rng.standard_normal(shape)).astype(np.float32)
    if not mask.any():
        return image01, mask
    augmented = np.clip(image01 * (1 - mask) + fill * mask, 0.0, 1.0)
    return augmented.astype(np.float32), mask
