"""The scikit-learn contract shared by every anomaly scorer.

Images are 2-D float arrays in [0, 1] of any size (``detection.images.load_gray``). A scorer
brings each image to its working resolution, computes a map there and resizes the map back to
the image's own size. Two ways, by the scorer's parameters:

- ``input_scale`` set (PatchCore, one-class SVM): every image is scaled by that factor keeping
  its aspect ratio (sides rounded to a multiple of 16, the deepest stride) and scored on its
  own, so the texture scale is the same in every image (plant frames, tiles of any size);
- otherwise every image is resized to the square ``input_size`` and scored in batches. The
  magnetic-tile models use this: crops of about 100-630 x 220-400 pixels are squashed to one
  square (measured better than keeping the aspect ratio there, docs/detection-anomaly.md).

Sign convention: higher = more anomalous, everywhere. ``score_samples`` is the raw image score,
``decision_function`` is ``score - threshold_`` (positive = defect), ``predict`` is 1 for a
defect and 0 for a normal image. (scikit-learn's outlier detectors use the opposite sign; a
plant operator reads "higher is worse" more easily.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch.nn import functional as F

from coilmap.errors import InputError

Images = Sequence[np.ndarray]
_ONE_TORCH_THREAD = threading.Lock()  # held while scoring in workers (torch's thread count is process-wide)


def check_images(X: Images | np.ndarray, *, what: str = "images") -> list[np.ndarray]:
    """``X`` as a list of float32 (H, W) arrays in [0, 1]; an :class:`InputError` otherwise."""
    if isinstance(X, np.ndarray) and X.ndim == 2:
        raise InputError(f"{what}: expected a sequence of 2-D images, got one 2-D array")
    images = [np.asarray(x, dtype=np.float32) for x in X]
    if not images:
        raise InputError(f"{what}: no images")
    for i, im in enumerate(images):
        if im.ndim != 2 or min(im.shape) < 2:
            raise InputError(f"{what}[{i}]: expected a 2-D grayscale image, got shape {im.shape}")
        if not np.isfinite(im).all():
            raise InputError(f"{what}[{i}]: image holds NaN or infinite values")
    return images


def resize_batch(images: list[np.ndarray], size: int) -> torch.Tensor:
    """(N, 1, size, size) tensor; antialiased so that downscaling does not alias fine texture."""
    out = torch.empty(len(images), 1, size, size)
    for i, im in enumerate(images):
        t = torch.from_numpy(np.ascontiguousarray(im))[None, None]
        if t.shape[-2:] != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i] = t[0]
    return out


def resize_keep_aspect(image01: np.ndarray, scale: float, multiple: int = 16) -> torch.Tensor:
    """(1, 1, h, w) tensor of ``image01`` scaled by ``scale``, sides rounded to ``multiple``;
    (N, 1, h, w) for an (N, H, W) stack of images of one size."""
    h, w = image01.shape[-2:]
    size = tuple(max(multiple, int(round(v * scale / multiple)) * multiple) for v in (h, w))
    t = torch.from_numpy(np.ascontiguousarray(image01, dtype=np.float32)).reshape(-1, 1, h, w)
    if size == (h, w):
        return t
    return F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)


def gain_normalise(image01: np.ndarray, level: float = 0.35) -> np.ndarray:
    """``image01`` scaled so that its median is ``level`` (clipped to [0, 1]): exposure and
    surface reflectance differ from image to image by a factor, a defect does not.

    >>> gain_normalise(np.array([[0.1, 0.2], [0.2, 0.4]], np.float32)).tolist()
    [[0.17499999701976776, 0.3499999940395355], [0.3499999940395355, 0.699999988079071]]
    """
    median = float(np.median(image01))
    return np.clip(image01 * (level / max(median, 1e-3)), 0.0, 1.0).astype(np.float32)


def resize_maps(score_maps: Sequence[np.ndarray], shapes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Each working-size map resized (bilinear) to its image's shape, as :func:`resize_map`
    does one by one, but one interpolation for every run of consecutive maps that share their
    sizes (the tiles of a frame): the same values, a fraction of the calls.

    >>> maps = [np.arange(4, dtype=np.float32).reshape(2, 2)] * 3
    >>> out = resize_maps(maps, [(4, 4), (4, 4), (3, 5)])
    >>> [m.shape for m in out], bool(np.array_equal(out[0], resize_map(maps[0], (4, 4))))
    ([(4, 4), (4, 4), (3, 5)], True)
    """
    out: list[np.ndarray] = []
    keys = [(m.shape, tuple(shape)) for m, shape in zip(score_maps, shapes, strict=True)]
    for start, end in equal_runs(keys):
        working, shape = keys[start]
        if working == shape:
            out.extend(m.astype(np.float32) for m in score_maps[start:end])
        else:
            t = torch.from_numpy(np.stack(score_maps[start:end]).astype(np.float32))[:, None]
            out.extend(F.interpolate(t, size=shape, mode="bilinear", align_corners=False)[:, 0].numpy())
    return out


def resize_map(score_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A working-size map resized (bilinear) to an image's own ``shape``."""
    return resize_maps([score_map], [shape])[0]


def equal_runs(keys: Sequence[object], max_len: int | None = None) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each run of consecutive equal ``keys`` (at most ``max_len`` long).

    >>> list(equal_runs(["a", "a", "b", "a", "a", "a"], max_len=2))
    [(0, 2), (2, 3), (3, 5), (5, 6)]
    """
    start = 0
    while start < len(keys):
        end = start + 1
        while end < len(keys) and keys[end] == keys[start] and (max_len is None or end - start < max_len):
            end += 1
        yield start, end
        start = end


class AnomalyScorer(BaseEstimator):
    """Base of every scorer: subclasses implement ``fit`` and ``_score_batch``.

    ``_score_batch(batch)`` takes an (N, 1, S, S) tensor at the working size and returns
    ``(maps (N, S, S) numpy, image_scores (N,) numpy)``.
    """

    kind: ClassVar[str] = ""
    input_size: int
    input_scale: float | None = None
    batch_size: int = 32

    # -- to implement -------------------------------------------------------------------------
    def _score_batch(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _get_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise InputError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _batches(self, images: list[np.ndarray],
                 normalised: list[np.ndarray] | None = None) -> Iterator[torch.Tensor]:
        """The images at working resolution: kept in order, consecutive images of one shape
        batched together (``input_scale``, e.g. the tiles of a frame), or square batches.
        ``normalised``: the same images gain-normalised already (an ensemble computes them once
        for all its members), used if this scorer normalises."""
        if getattr(self, "normalise", False):
            images = normalised if normalised is not None else [gain_normalise(im) for im in images]
        if self.input_scale is not None:
            for start, end in equal_runs([im.shape for im in images], self.batch_size):
                yield resize_keep_aspect(np.stack(images[start:end]), self.input_scale)
        else:
            for start in range(0, len(images), self.batch_size):
                yield resize_batch(images[start : start + self.batch_size], self.input_size)

    def _score_all(self, images: list[np.ndarray],
                   normalised: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        maps: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        with torch.inference_mode():
            for batch in self._batches(images, normalised):
                m, s = self._score_batch(batch)
                maps.extend(m)
                scores.append(s)
        return maps, np.concatenate(scores).astype(np.float64)

    def scoring_precisions(self) -> list[str]:
        """The precisions this scorer's networks score in here (``["fp32"]``, ``["bf16"]`` or
        both, for an ensemble): a DRAEM model asked for bf16 may score in fp32 on this CPU
        (:func:`detection.mixed_precision.scoring_precision`), so figures name what ran."""
        members = getattr(self, "members_", None)
        if members:
            return sorted({p for m in members for p in m.scoring_precisions()})
        return [getattr(self, "scoring_precision_", "fp32")]

    def score_maps_and_samples(self, X: Images, *, workers: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
        """``(maps, image_scores)`` in one pass: maps each of its image's own shape.

        ``workers`` > 1: the images cut into that many runs, each scored in its own thread
        with one torch thread (:meth:`_score_in_workers`); the same figures (to float rounding),
        faster than one run over several torch threads on a small CPU.
        """
        self._check_fitted()
        images = check_images(X)
        if workers > 1 and len(images) >= 2 * workers:
            maps, scores = self._score_in_workers(images, workers)
        else:
            maps, scores = self._score_all(images)
        return resize_maps(maps, [im.shape for im in images]), scores

    def _score_in_workers(self, images: list[np.ndarray],
                          workers: int) -> tuple[list[np.ndarray], np.ndarray]:
        """:meth:`_score_all` over ``workers`` consecutive runs of ``images`` at once, torch
        limited to one thread meanwhile (restored after; the setting is process-wide).

        Why: torch spreads one convolution over two cores poorly (on the Intel Xeon of
        2026-12-07 the default model scored 90-114 tiles/s with two torch threads and 110-117
        as two runs of one thread each, a 4096 x 2048 frame's tiles in 1.3 s against 2.3-2.5 s;
        docs/detection-anomaly.md). The maps and scores are
        one run's to float rounding: where the runs cut square batches differently a
        convolution may round its last bit otherwise (1e-7); the default model's on 256 tiles
        were the same to the bit.
        """
        from concurrent.futures import ThreadPoolExecutor

        bounds = np.linspace(0, len(images), workers + 1).round().astype(int)
        runs = [images[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        with _ONE_TORCH_THREAD:  # two callers at once (scheduled jobs) must not mix up the setting
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    results = list(pool.map(self._score_all, runs))
            finally:
                torch.set_num_threads(threads)
        return [m for maps, _ in results for m in maps], np.concatenate([s for _, s in results])

    def score_maps(self, X: Images, *, workers: int = 1) -> list[np.ndarray]:
        """One anomaly map per image, each of its image's own shape (``workers``: as
        :meth:`score_maps_and_samples`)."""
        return self.score_maps_and_samples(X, workers=workers)[0]

    def score_map(self, image01: np.ndarray) -> np.ndarray:
        """The (H, W) anomaly map of one image (same shape as the image)."""
        return self.score_maps([image01])[0]

    def score_samples(self, X: Images) -> np.ndarray:
        """Raw image scores (higher = more anomalous)."""
        self._check_fitted()
        _, scores = self._score_all(check_images(X))
        return scores

    def decision_function(self, X: Images) -> np.ndarray:
        """``score_samples(X) - threshold_``: positive means defect."""
        return self.score_samples(X) - self.threshold_

    def predict(self, X: Images) -> np.ndarray:
        """1 for a defect image, 0 for a normal one."""
        return (self.decision_function(X) >= 0).astype(np.int64)

    def _calibrate(
        self,
        X_val: list[np.ndarray],
        *,
        image_quantile: float,
        pixel_quantile: float,
    ) -> None:
        """Thresholds from defect-free validation images: quantiles of image and pixel scores."""
        maps, scores = self._score_all(X_val)
        self.threshold_ = float(np.quantile(scores, image_quantile))
        pixels = np.concatenate([np.ravel(m) for m in maps])
        self.pixel_threshold_ = float(np.quantile(pixels, pixel_quantile))
        self.val_scores_ = scores
