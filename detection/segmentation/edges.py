"""Where the image's own edges are: two input planes for the segmenter.

Magnetic tile Breaks (chipped corners) and Frays (worn edges) lie on the tile's edge, which is
the image's edge. The segmenter trains on square crops: a crop's border is usually inside the
image, yet to a convolution (zero padding) it looks like any edge, so without help the network
cannot tell a notch at the tile's real edge from the same shading where a crop happens to end.
These planes carry that fact into every crop: each pixel's proximity to the nearest top/bottom
and to the nearest left/right edge of the *whole* image, ``exp(-distance / edge_px)`` (1 on
the edge, about 0 further in than a few ``edge_px``).

Pure numpy; :meth:`DefectSegmenter._crop` and :meth:`DefectSegmenter._low_res_one` cut the
planes of a window out of the whole image's geometry.

>>> p = edge_planes(image_hw=(5, 4), window=(0, 0, 5, 4), edge_px=1.0)
>>> p.shape, p[0, :, 0].astype(float).round(3).tolist(), p[1, 0].astype(float).round(3).tolist()
((2, 5, 4), [1.0, 0.368, 0.135, 0.368, 1.0], [1.0, 0.368, 0.368, 1.0])
>>> edge_planes(image_hw=(5, 4), window=(3, -1, 4, 2), edge_px=1.0)[0, :, 0].astype(float).round(3).tolist()
[0.368, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

N_EDGE_PLANES = 2


def _proximity(n_px: int, start: int, length: int, edge_px: float) -> np.ndarray:
    """Proximity to the nearer end of an axis of ``n_px`` pixels, for pixels ``start`` ..
    ``start + length - 1`` of it (outside the axis, as padding is, counts as on the edge)."""
    i = np.arange(start, start + length, dtype=np.float32)
    d = np.clip(np.minimum(i, n_px - 1 - i), 0.0, None)
    return np.exp(-d / np.float32(edge_px)).astype(np.float32)


def edge_planes(image_hw: tuple[int, int], window: tuple[int, int, int, int], edge_px: float) -> np.ndarray:
    """(2, h, w) float32 planes of the ``window`` ``(y0, x0, h, w)`` of an image of shape
    ``image_hw``: proximity to the top/bottom edges, then to the left/right edges."""
    if edge_px <= 0:
        raise ValueError(f"edge_px must be > 0, got {edge_px}")
    y0, x0, h, w = window
    rows = _proximity(image_hw[0], y0, h, edge_px)
    cols = _proximity(image_hw[1], x0, w, edge_px)
    return np.stack([np.broadcast_to(rows[:, None], (h, w)), np.broadcast_to(cols[None, :], (h, w))])
