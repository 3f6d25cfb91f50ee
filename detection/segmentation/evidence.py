"""What an image shows beyond the segmenter's mask maxima: the evidence a stacked head reads.

The context aggregation network alone ranks the magnetic-tile classes poorly against each other
(Break AP 41 on the test part), while the anomaly scorer trained on defect-free tiles separates
defect from clean images far better (test image AUROC 0.95) and its encoders, never shown a
defect label, describe *what* the unusual region looks like. Per image:

- the segmenter's margins: each class's mask maximum above its own threshold, in logits;
- the anomaly score (log), :func:`blob_statistics` of the anomaly map (how much of the image
  is unusual, where the peak lies and how near an edge, the peak region's extent and shape)
  and its :func:`border_statistics` (the edge bands against the interior);
- :func:`segmenter_statistics`: each class's probability map's mean, the fraction over the
  segmenter's pixel threshold, and its value around the anomaly map's peak;
- :func:`encoder_statistics`: the anomaly scorer's learned encoder activations, averaged and
  maximised over the whole image at two scales, and averaged around the anomaly map's peak.

Pure computation (arrays in, a vector out); the files and the head live elsewhere.

>>> m = np.zeros((40, 80)); m[5:9, 60:70] = 3.0
>>> s = dict(zip(BLOB_FEATURES, blob_statistics(m, 1.0).tolist()))
>>> s["peak_over_threshold"], s["peak_row"], round(s["peak_col"], 3), s["blobs"]
(3.0, 0.125, 0.75, 1.0)
>>> round(s["peak_blob_height"], 2), round(s["peak_blob_width"], 3), s["peak_blob_fill"]
(0.1, 0.125, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from detection.anomaly.base import gain_normalise, resize_keep_aspect

BLOB_FEATURES = (
    "peak_over_threshold", "mean_over_threshold", "fraction_over_threshold",
    "fraction_over_half_threshold", "fraction_over_twice_threshold",
    "peak_row", "peak_col", "peak_edge_distance", "peak_row_edge_distance", "peak_col_edge_distance",
    "blobs", "peak_blob_fraction", "peak_blob_height", "peak_blob_width", "peak_blob_axis_ratio",
    "peak_blob_fill",
)

BORDER_FEATURES = (
    "border_peak", "interior_peak", "border_mean", "interior_mean",
    "top_peak", "bottom_peak", "left_peak", "right_peak",
)
BORDER_FRACTION = 0.1  # of the height (top, bottom) and width (left, right)
SEGMENTER_FEATURES = ("mean_probability", "fraction_over_pixel_threshold", "probability_at_peak")

ENCODER_SCALES = (0.5, 0.25)  # of the image's size, as the anomaly scorer's pyramid reads it


def blob_statistics(score_map: np.ndarray, pixel_threshold: float) -> np.ndarray:
    """:data:`BLOB_FEATURES` of one anomaly map (H, W): the map over the scorer's pixel
    threshold; positions and sizes as fractions of the image; the peak's blob is the connected
    region around the peak holding over half the peak's value."""
    r = np.asarray(score_map, dtype=np.float64) / max(float(pixel_threshold), 1e-12)
    h, w = r.shape
    iy, ix = np.unravel_index(int(r.argmax()), r.shape)
    labels, n_blobs = ndimage.label(r > 0.5 * r.max()) if r.max() > 0 else (np.ones_like(r, int), 1)
    ys, xs = np.nonzero(labels == labels[iy, ix])
    bh, bw = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
    if len(ys) > 2:
        spread = np.sort(np.linalg.eigvalsh(np.cov(np.vstack([ys, xs])) + 1e-6 * np.eye(2)))
        axis_ratio = float(np.sqrt(spread[0] / spread[1]))
    else:
        axis_ratio = 1.0
    return np.array([
        r.max(), r.mean(), (r > 1).mean(), (r > 0.5).mean(), (r > 2).mean(),
        iy / h, ix / w, min(iy, h - 1 - iy, ix, w - 1 - ix) / min(h, w),
        min(iy, h - 1 - iy) / h, min(ix, w - 1 - ix) / w,
        n_blobs, len(ys) / (h * w), bh / h, bw / w, axis_ratio, len(ys) / (bh * bw),
    ], dtype=np.float64)


def border_statistics(score_map: np.ndarray, pixel_threshold: float) -> np.ndarray:
    """:data:`BORDER_FEATURES` of one anomaly map over the scorer's pixel threshold: the bands
    of :data:`BORDER_FRACTION` along the four edges against the rest (breaks and frays start
    at an edge, blowholes and cracks need not).

    >>> m = np.zeros((20, 40)); m[0, 10] = 4.0; m[10, 20] = 1.0
    >>> b = border_statistics(m, 2.0)  # 288 edge pixels (2 rows, 4 columns), 512 inside
    >>> b[[0, 1, 4, 5, 6, 7]].tolist(), bool(np.allclose(b[[2, 3]], [2.0 / 288, 0.5 / 512]))
    ([2.0, 0.5, 2.0, 0.0, 0.0, 0.0], True)
    """
    r = np.asarray(score_map, dtype=np.float64) / max(float(pixel_threshold), 1e-12)
    h, w = r.shape
    bh, bw = max(1, int(h * BORDER_FRACTION)), max(1, int(w * BORDER_FRACTION))
    edge = np.zeros(r.shape, bool)
    edge[:bh], edge[-bh:], edge[:, :bw], edge[:, -bw:] = True, True, True, True
    inner = r[~edge] if (~edge).any() else np.zeros(1)
    return np.array([r[edge].max(), inner.max(), r[edge].mean(), inner.mean(),
                     r[:bh].max(), r[-bh:].max(), r[:, :bw].max(), r[:, -bw:].max()])


def segmenter_statistics(
    class_maps: np.ndarray, pixel_threshold: float, peak_yx: tuple[float, float], window_px: int = 4
) -> np.ndarray:
    """:data:`SEGMENTER_FEATURES` of each class's probability map (K, H, W), class by class:
    its mean, the fraction of pixels at or over the segmenter's pixel threshold, and its mean
    within ``window_px`` of the anomaly map's peak (``peak_yx``, fractions of height and width)."""
    maps = np.asarray(class_maps, dtype=np.float64)
    h, w = maps.shape[1:]
    cy, cx = min(int(peak_yx[0] * h), h - 1), min(int(peak_yx[1] * w), w - 1)
    around = maps[:, max(cy - window_px, 0): cy + window_px + 1, max(cx - window_px, 0): cx + window_px + 1]
    return np.column_stack([maps.mean((1, 2)), (maps >= pixel_threshold).mean((1, 2)),
                            around.mean((1, 2))]).ravel()


@torch.no_grad()
def encoder_statistics(
    extractor: nn.Module, image01: np.ndarray, peak_yx: tuple[float, float],
    scales: Sequence[float] = ENCODER_SCALES,
) -> np.ndarray:
    """The extractor's activations (``extractor.features(x)``, a list of (1, C, h, w)) of the
    gain-normalised image: mean and maximum over the image at each of ``scales``, then the mean
    of the 3 x 3 cells around ``peak_yx`` (fractions of the height and width) at the first."""
    parts: list[torch.Tensor] = []
    local: list[torch.Tensor] = []
    normalised = gain_normalise(image01)
    for i, scale in enumerate(scales):
        for f in extractor.features(resize_keep_aspect(normalised, float(scale))):
            f = f[0].float()
            parts += [f.mean((1, 2)), f.amax((1, 2))]
            if i == 0:
                h, w = f.shape[1:]
                cy, cx = min(int(peak_yx[0] * h), h - 1), min(int(peak_yx[1] * w), w - 1)
                local.append(f[:, max(cy - 1, 0): cy + 2, max(cx - 1, 0): cx + 2].mean((1, 2)))
    return torch.cat(parts + local).double().numpy()


def evidence_row(
    segmenter_margins: np.ndarray, anomaly_score: float, anomaly_map: np.ndarray,
    pixel_threshold: float, encoder: np.ndarray, segmenter: np.ndarray,
) -> np.ndarray:
    """One image's evidence vector: margins, log anomaly score, blob, border, encoder and
    segmenter statistics (``encoder`` and ``segmenter`` computed by their functions above)."""
    return np.concatenate([
        np.asarray(segmenter_margins, dtype=np.float64),
        [np.log(max(float(anomaly_score), 1e-12))],
        blob_statistics(anomaly_map, pixel_threshold),
        border_statistics(anomaly_map, pixel_threshold),
        encoder,
        segmenter,
    ])


def peak_position(score_map: np.ndarray) -> tuple[float, float]:
    """The map's maximum as fractions of its height and width."""
    iy, ix = np.unravel_index(int(np.argmax(score_map)), np.shape(score_map))
    return iy / score_map.shape[0], ix / score_map.shape[1]
