"""Two models compared by resampling whole tiles (the pure numpy cores): anomaly scorers' AUROC,
segmenters' AP and mAP."""

from __future__ import annotations

import numpy as np
import pytest

from coilmap.errors import InputError
from detection.anomaly.compare import map_histograms, paired_tile_bootstrap
from detection.anomaly.metrics import auroc, binned_auroc, histogram_auroc
from detection.segmentation.compare import paired_map_bootstrap
from detection.segmentation.metrics import image_level_metrics
from detection.tile_bootstrap import tile_weights


def _images(rng: np.random.Generator, n_tiles: int = 12, exposures: int = 4) -> tuple[np.ndarray, ...]:
    """Half clean tiles, half defect tiles, each shown in ``exposures`` images that score alike."""
    tiles = np.repeat(np.arange(n_tiles), exposures)
    labels = tiles >= n_tiles // 2
    tile_level = rng.normal(size=n_tiles)[tiles]  # a tile's exposures share most of their score
    score = labels * 1.0 + tile_level + 0.1 * rng.normal(size=len(tiles))
    return labels, tiles, score


def test_histogram_auroc_is_the_binned_auroc_and_keeps_leading_axes() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(5000) < 0.3
    s = rng.normal(size=5000) + y
    maps, masks = [s[:2500].reshape(50, 50), s[2500:].reshape(50, 50)], [y[:2500].reshape(50, 50),
                                                                        y[2500:].reshape(50, 50)]
    pos, neg = map_histograms(maps, masks, bins=65536)
    assert float(histogram_auroc(pos.sum(0), neg.sum(0))) == pytest.approx(binned_auroc(y, s), abs=1e-9)
    assert float(histogram_auroc(pos.sum(0), neg.sum(0))) == pytest.approx(auroc(y, s), abs=1e-3)
    both = histogram_auroc(pos, neg)  # one row per image
    assert both.shape == (2,) and both[0] == pytest.approx(binned_auroc(y[:2500], s[:2500]), abs=1e-3)
    assert np.isnan(histogram_auroc(np.zeros(4), np.ones(4)))
    with pytest.raises(InputError, match="differ in size"):
        map_histograms([np.zeros((3, 3))], [np.zeros((3, 4), bool)])


def test_resamples_draw_whole_tiles_of_each_kind() -> None:
    rng = np.random.default_rng(1)
    labels, tiles, _ = _images(rng)
    w = tile_weights(labels, tiles, 300, rng)
    for t in np.unique(tiles):  # a tile's exposures are drawn together
        assert (w[:, tiles == t] == w[:, tiles == t][:, :1]).all()
    # each kind keeps its size (6 tiles of 4 images) and is never empty
    assert (w[:, ~labels].sum(1) == 24).all() and (w[:, labels].sum(1) == 24).all()


def test_the_interval_holds_the_difference_and_is_wider_when_exposures_repeat_a_tile() -> None:
    rng = np.random.default_rng(2)
    labels, tiles, a = _images(rng)
    b = a + 2.0 * labels  # b separates better on every tile
    r = paired_tile_bootstrap(labels, tiles, a, b, resamples=500, seed=0)["image_auroc"]
    assert r["difference"] > 0 and r["difference_95_low"] <= r["difference"] <= r["difference_95_high"]
    assert r["b_ahead_share"] > 0.9
    assert r["a_95_low"] <= r["a"] <= r["a_95_high"] and r["b_95_low"] <= r["b"] <= r["b_95_high"]
    same = paired_tile_bootstrap(labels, tiles, a, a, resamples=100)["image_auroc"]
    assert same["difference"] == same["difference_95_low"] == same["difference_95_high"] == 0.0
    noisy = a + rng.normal(scale=0.5, size=len(a))
    by_tile = paired_tile_bootstrap(labels, tiles, a, noisy, resamples=500)["image_auroc"]
    by_image = paired_tile_bootstrap(labels, np.arange(len(a)), a, noisy, resamples=500)["image_auroc"]
    width = {k: v["difference_95_high"] - v["difference_95_low"] for k, v in (("tile", by_tile),
                                                                            ("image", by_image))}
    assert width["tile"] > width["image"]  # four exposures are not four independent tiles


def test_bad_input_is_refused_by_name() -> None:
    y, t, s = np.array([0, 1]), np.array([0, 1]), np.array([0.1, 0.9])
    with pytest.raises(InputError, match="one entry per image"):
        paired_tile_bootstrap(y, t, s, s[:1])
    with pytest.raises(InputError, match="both clean and defect"):
        paired_tile_bootstrap(np.array([1, 1]), t, s, s)
    with pytest.raises(InputError, match="at least 10"):
        paired_tile_bootstrap(y, t, s, s, resamples=3)


def test_segmenter_ap_and_map_are_the_evaluation_figures_and_each_class_keeps_its_tiles() -> None:
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], [40, 12, 8])
    tiles = np.array([f"{k}:{i // 4}" for i, k in enumerate(y)])  # four exposures a tile
    defect = rng.random((len(y), 2)) * 0.6
    defect[y == 1, 0] += 0.35
    defect[y == 2, 1] += 0.3
    scores = np.column_stack([1.0 - defect.max(1), defect])
    whole = image_level_metrics(y, defect, ["free", "a", "b"], threshold=0.5)
    r = paired_map_bootstrap(y, tiles, scores, scores + rng.normal(0, 0.05, scores.shape),
                             ["free", "a", "b"], resamples=200)
    assert r["mAP"]["a"] == pytest.approx(whole["mAP"], abs=1e-4)
    assert r["AP a"]["a"] == pytest.approx(whole["AP"]["a"], abs=1e-4)
    assert r["mAP"]["a_95_low"] <= r["mAP"]["a"] <= r["mAP"]["a_95_high"]
    assert r["tiles_per_class"] == {"free": 10, "a": 3, "b": 2}
    assert r["classes_with_intervals_too_narrow"] == ["b"]
    with pytest.raises(InputError, match="one column per class"):
        paired_map_bootstrap(y, tiles, scores, scores[:, :2], ["free", "a", "b"])
    with pytest.raises(InputError, match="at least two classes"):
        paired_map_bootstrap(y[:40], tiles[:40], scores[:40], scores[:40], ["free", "a", "b"])
