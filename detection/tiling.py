"""Cutting a frame into tiles and putting per-tile results back, with an explicit grid value.

A :class:`TileGrid` says everything both directions need (image size, tile size, stride,
padding, tile origins), so ``tile(image, grid)`` and ``untile(tiles, grid)`` share no hidden
state: a worker can tile on one machine and untile scores on another.

Layout rules, chosen so that every image pixel is covered and no tile is mostly padding:

- tile origins step by ``stride`` (``stride < tile`` gives overlap); the last tile along an
  axis is shifted back to end exactly at the image edge instead of hanging over it;
- only an image *smaller* than a tile along an axis is padded (reflect, then edge for very
  small images) up to the tile size; ``untile`` crops the padding off again;
- where tiles overlap, ``untile`` averages them.

256-pixel square unit tiles by default (the unit-image approach); any size is allowed.

>>> grid = make_grid((300, 600), tile=256)
>>> grid.ys, grid.xs, grid.n_tiles
((0, 44), (0, 256, 344), 6)
>>> image = np.arange(300 * 600, dtype=np.float32).reshape(300, 600)
>>> tiles = tile(image, grid)
>>> tiles.shape
(6, 256, 256)
>>> bool(np.array_equal(untile(tiles, grid), image))
True
>>> small = make_grid((100, 300), tile=256)
>>> small.padded_shape, tile(np.zeros((100, 300)), small).shape
((256, 300), (2, 256, 256))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coilmap.errors import InputError


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one image lie. Build it with :func:`make_grid`."""

    image_shape: tuple[int, int]
    tile_shape: tuple[int, int]
    stride: tuple[int, int]
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def padded_shape(self) -> tuple[int, int]:
        """The image size after padding (equal to ``image_shape`` unless the image is small)."""
        return (max(self.image_shape[0], self.tile_shape[0]), max(self.image_shape[1], self.tile_shape[1]))

    @property
    def n_tiles(self) -> int:
        return len(self.ys) * len(self.xs)

    def origins(self) -> np.ndarray:
        """(n_tiles, 2) ``(y0, x0)`` of each tile, row-major (the order of :func:`tile`)."""
        yy, xx = np.meshgrid(np.array(self.ys), np.array(self.xs), indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)

    def boxes_px(self) -> np.ndarray:
        """(n_tiles, 4) ``(y0, x0, y1, x1)`` of each tile in image pixels, padding cut off."""
        o = self.origins()
        y1 = np.minimum(o[:, 0] + self.tile_shape[0], self.image_shape[0])
        x1 = np.minimum(o[:, 1] + self.tile_shape[1], self.image_shape[1])
        return np.stack([o[:, 0], o[:, 1], y1, x1], axis=1)


def _origins(length: int, tile: int, stride: int) -> tuple[int, ...]:
    span = max(length, tile)
    starts = list(range(0, span - tile + 1, stride))
    if starts[-1] + tile < span:
        starts.append(span - tile)  # shifted back to end at the edge
    return tuple(starts)


def make_grid(
    image_shape: tuple[int, int],
    *,
    tile: int | tuple[int, int] = 256,
    stride: int | tuple[int, int] | None = None,
    overlap: int | tuple[int, int] | None = None,
) -> TileGrid:
    """The grid of ``tile``-sized tiles over an image of ``image_shape`` (H, W).

    Give either ``stride`` (pixels between tile origins) or ``overlap`` (pixels shared by
    neighbours, ``stride = tile - overlap``); neither means no overlap.
    """
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    if stride is not None and overlap is not None:
        raise InputError("give stride or overlap, not both")
    if overlap is not None:
        oy, ox = (overlap, overlap) if isinstance(overlap, int) else overlap
        sy, sx = th - oy, tw - ox
    elif stride is not None:
        sy, sx = (stride, stride) if isinstance(stride, int) else stride
    else:
        sy, sx = th, tw
    h, w = (int(v) for v in image_shape)
    if h < 1 or w < 1:
        raise InputError(f"cannot tile an empty image of shape {image_shape}")
    if th < 1 or tw < 1:
        raise InputError(f"tile size must be positive, got {(th, tw)}")
    if not (0 < sy <= th and 0 < sx <= tw):
        raise InputError(f"stride {(sy, sx)} must be in 1..tile size {(th, tw)} (no gaps)")
    return TileGrid((h, w), (th, tw), (sy, sx), _origins(h, th, sy), _origins(w, tw, sx))


def _pad(image: np.ndarray, grid: TileGrid) -> np.ndarray:
    ph, pw = grid.padded_shape
    dh, dw = ph - image.shape[0], pw - image.shape[1]
    if dh == 0 and dw == 0:
        return image
    # reflect needs the pad to be smaller than the image; otherwise repeat the edge
    mode = "reflect" if dh < image.shape[0] and dw < image.shape[1] else "edge"
    return np.pad(image, ((0, dh), (0, dw)), mode=mode)


def tile(image: np.ndarray, grid: TileGrid) -> np.ndarray:
    """(n_tiles, tile_h, tile_w) tiles of a 2-D ``image``, row-major over the grid."""
    if image.ndim != 2 or tuple(image.shape) != grid.image_shape:
        raise InputError(f"image of shape {image.shape} does not match its grid {grid.image_shape}")
    padded = _pad(image, grid)
    th, tw = grid.tile_shape
    return np.stack([padded[y : y + th, x : x + tw] for y, x in grid.origins()])


def untile(tiles: np.ndarray, grid: TileGrid) -> np.ndarray:
    """The (H, W) image from per-tile arrays; overlapping tiles are averaged."""
    expected = (grid.n_tiles, *grid.tile_shape)
    if tuple(tiles.shape) != expected:
        raise InputError(f"tiles of shape {tiles.shape} do not match their grid {expected}")
    ph, pw = grid.padded_shape
    total = np.zeros((ph, pw), dtype=np.float64)
    count = np.zeros((ph, pw), dtype=np.float64)
    th, tw = grid.tile_shape
    for t, (y, x) in zip(tiles, grid.origins(), strict=True):
        total[y : y + th, x : x + tw] += t
        count[y : y + th, x : x + tw] += 1
    h, w = grid.image_shape
    return (total[:h, :w] / count[:h, :w]).astype(tiles.dtype, copy=False)
