"""Tile grids: every pixel covered, tiles inside the padded image, tile/untile round-trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coilmap.errors import InputError
from detection.tiling import make_grid, tile, untile


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 500),
    w=st.integers(1, 500),
    t=st.integers(16, 300),
    stride_frac=st.floats(0.25, 1.0),
)
def test_untile_of_tile_is_identity_and_covers_every_pixel(
    h: int, w: int, t: int, stride_frac: float
) -> None:
    stride = max(1, int(t * stride_frac))
    grid = make_grid((h, w), tile=t, stride=stride)
    image = np.random.default_rng(h * 1000 + w).random((h, w)).astype(np.float32)
    tiles = tile(image, grid)
    assert tiles.shape == (grid.n_tiles, t, t)
    np.testing.assert_allclose(untile(tiles, grid), image, rtol=1e-6)
    ph, pw = grid.padded_shape
    assert grid.ys[-1] + t == ph and grid.xs[-1] + t == pw  # the last tile ends at the edge
    assert all(b - a <= stride for a, b in zip(grid.ys, grid.ys[1:], strict=False))  # no gaps


@pytest.mark.parametrize("shape", [(1600, 256), (4096, 2048), (100, 300)])
def test_frames_of_the_issue(shape: tuple[int, int]) -> None:
    grid = make_grid(shape, tile=256, overlap=32)
    boxes = grid.boxes_px()
    covered = np.zeros(shape, bool)
    for y0, x0, y1, x1 in boxes:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert (boxes[:, 2] <= shape[0]).all() and (boxes[:, 3] <= shape[1]).all()


def test_tile_values_come_from_the_right_place() -> None:
    image = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    grid = make_grid((20, 30), tile=(8, 16), stride=(6, 10))
    tiles = tile(image, grid)
    for t, (y, x) in zip(tiles, grid.origins(), strict=True):
        np.testing.assert_array_equal(t, image[y : y + 8, x : x + 16])


def test_untile_averages_overlaps() -> None:
    grid = make_grid((4, 6), tile=4, stride=2)
    tiles = np.stack([np.full((4, 4), float(i)) for i in range(grid.n_tiles)])
    out = untile(tiles, grid)
    assert out[0, 0] == 0.0 and out[0, 5] == grid.n_tiles - 1
    assert out[0, 2] == pytest.approx(0.5)  # covered by tiles 0 and 1


def test_grid_is_checked() -> None:
    grid = make_grid((50, 50), tile=32)
    with pytest.raises(InputError, match="does not match"):
        tile(np.zeros((40, 50)), grid)
    with pytest.raises(InputError, match="do not match"):
        untile(np.zeros((3, 32, 32)), grid)
    with pytest.raises(InputError, match="stride"):
        make_grid((50, 50), tile=32, stride=40)
    with pytest.raises(InputError, match="empty"):
        make_grid((0, 50))
