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
