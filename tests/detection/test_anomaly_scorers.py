"""Every scorer on tiny synthetic surfaces: the estimator contract, maps, artefacts, errors.

Tiny configurations (32-64 pixel working sizes, a few training steps) keep this fast; the
figures on real images are in docs/detection-anomaly.md.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from coilmap.errors import InputError
from detection.anomaly import artefact
from detection.anomaly.draem.scorer import DraemScorer
from detection.anomaly.draem.torch_model import DraemModel
from detection.anomaly.ocsvm.scorer import OcsvmScorer
from detection.anomaly.patchcore.scorer import PatchCoreScorer
from detection.anomaly.ssim_ae.scorer import SsimAeScorer


def _surface(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth grey texture with fine grain, like a clean tile."""
    base = 0.5 + 0.05 * np.sin(np.arange(shape[1]) / 3.0)[None, :]
    return np.clip(base + 0.02 * rng.standard_normal(shape), 0, 1).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Two threads on a busy two-core machine are several times slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    shapes = [(60, 70), (64, 64), (50, 90), (80, 60)]
    normal = [_surface(rng, shapes[i % 4]) for i in range(12)]
    defect = []
    for i in range(4):
        im = _surface(rng, shapes[i])
        im[20:32, 25:37] = 0.05  # a dark hole
        defect.append(im)
    return {"train": normal[:8], "val": normal[8:10], "test": normal[10:], "defect": defect}


@pytest.fixture(scope="module")
def random_extractor() -> DraemModel:
    # Untrained features are enough for an obvious synthetic hole; the real models use learned
    # ones (random features reach only ~0.6 AUROC on magnetic tiles).
    torch.manual_seed(0)
    return DraemModel(base_width=4).eval()


def _scorers(extractor: DraemModel) -> list:
    return [
        PatchCoreScorer(feature_extractor=extractor, input_size=64, coreset_size=200,
                        patch_stride_px=4),
        OcsvmScorer(feature_extractor=extractor, input_size=64, n_samples=500),
        DraemScorer(input_size=32, base_width=4, steps=2, batch_size=4),
        SsimAeScorer(input_size=128, latent_dim=8, width=4, window_stride=64, steps=1, batch_size=2),
    ]


@pytest.fixture(scope="module")
def fitted(data, random_extractor) -> list:
    return [s.fit(data["train"], X_val=data["val"]) for s in _scorers(random_extractor)]


def test_estimator_contract(fitted, data) -> None:
    for scorer in fitted:
        assert hasattr(scorer, "threshold_") and hasattr(scorer, "pixel_threshold_")
        images = data["test"] + data["defect"]
        scores = scorer.score_samples(images)
        np.testing.assert_allclose(scorer.decision_function(images), scores - scorer.threshold_)
        assert set(scorer.predict(images)) <= {0, 1}
        maps = scorer.score_maps(images)
        assert [m.shape for m in maps] == [im.shape for im in images]
        assert scorer.score_map(images[0]).shape == images[0].shape
        unfitted = clone(scorer)
        assert not hasattr(unfitted, "threshold_")
        with pytest.raises(InputError, match="not fitted"):
            unfitted.score_samples(images)


def test_scoring_in_workers_gives_the_same_maps_and_scores(fitted, data) -> None:
    images = data["train"] + data["test"] + data["defect"]  # 14 images of four shapes
    for scorer in fitted[:3]:
        maps, scores = scorer.score_maps_and_samples(images)
        for workers in (2, 3):
            maps_w, scores_w = scorer.score_maps_and_samples(images, workers=workers)
            # another cut into batches may round the last bit of a convolution differently
            np.testing.assert_allclose(scores_w, scores, rtol=1e-6, atol=1e-7)
            for a, b in zip(maps_w, maps, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    torch.set_num_threads(2)  # the workers run with one torch thread each, then give it back
    try:
        fitted[0].score_maps_and_samples(images, workers=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    # fewer images than two a worker: one run
    assert scorer.score_maps(images[:3], workers=2)[0].shape == images[0].shape


def test_memory_bank_finds_the_hole(fitted, data) -> None:
    patchcore = fitted[0]
    normal = patchcore.score_samples(data["test"])
    defect = patchcore.score_samples(data["defect"])
    assert defect.min() > normal.max()
    m = patchcore.score_map(data["defect"][0])
    # the map peaks on the hole, not elsewhere
    peak = np.unravel_index(np.argmax(m), m.shape)
    assert 14 <= peak[0] <= 38 and 19 <= peak[1] <= 43


def test_keep_aspect_scoring_matches_image_sizes(data, random_extractor) -> None:
    scorer = PatchCoreScorer(feature_extractor=random_extractor, input_scale=1.0, coreset_size=200,
                             patch_stride_px=4).fit(data["train"], X_val=data["val"])
    maps, scores = scorer.score_maps_and_samples(data["test"] + data["defect"])
    assert [m.shape for m in maps] == [im.shape for im in data["test"] + data["defect"]]
    assert scores[2:].min() > scores[:2].max()  # the holes, at every aspect ratio


def test_selfsupervised_features_train_and_plug_in(data, tmp_path) -> None:
    from detection.anomaly.base import resize_keep_aspect
    from detection.anomaly.features.selfsup import train_perlin_segnet

    tensors = [resize_keep_aspect(im, 1.0) for im in data["train"]]
    net, history = train_perlin_segnet(tensors, tensors[:2], [], width=4, crop_px=32, steps=3,
                                       batch_size=4)
    assert [h["step"] for h in history] == [3] and np.isfinite(history[0]["val_loss"])
    scorer = PatchCoreScorer(feature_extractor=net, input_size=64, coreset_size=100).fit(
        data["train"], X_val=data["val"])
    path = tmp_path / "pc.pt"
    artefact.save(scorer, path, training_data={}, manifest={})
    again = artefact.load(path)
    assert type(again.feature_extractor).__name__ == "PerlinSegNet"
    np.testing.assert_allclose(again.score_samples(data["defect"]), scorer.score_samples(data["defect"]),
                               rtol=1e-5)


def test_artefact_round_trip(fitted, data, tmp_path) -> None:
    for scorer in fitted:
        path = tmp_path / f"{scorer.kind}.pt"
        artefact.save(scorer, path, training_data={"n": 8}, manifest={"command": "test"})
        assert path.with_suffix(".json").is_file()
        again = artefact.load(path)
        assert type(again) is type(scorer) and again.threshold_ == scorer.threshold_
        np.testing.assert_allclose(again.score_samples(data["defect"]),
                                   scorer.score_samples(data["defect"]), rtol=1e-5)


def test_foreign_and_old_model_files_are_clear_errors(fitted, tmp_path) -> None:
    blob = artefact.to_dict(fitted[0], {"n": 8})
    blob["format_version"] = 0
    old = tmp_path / "old.pt"
    torch.save(blob, old)
    with pytest.raises(InputError, match="version 0"):
        artefact.load(old)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a readable model file"):
        artefact.load(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(InputError, match="not a coilmap anomaly-scorer"):
        artefact.load(other)


def test_bad_images_are_clear_errors(fitted) -> None:
    scorer = fitted[0]
    with pytest.raises(InputError, match="no images"):
        scorer.score_samples([])
    with pytest.raises(InputError, match="2-D"):
        scorer.score_samples([np.zeros((4, 4, 3))])
    with pytest.raises(InputError, match="NaN"):
        scorer.score_samples([np.full((8, 8), np.nan)])
    with pytest.raises(InputError, match="learned feature extractor"):
        PatchCoreScorer().fit([np.zeros((8, 8))] * 2)


def test_neu_classifier_features_plug_in() -> None:
    from detection.anomaly.features.extractor import (
        extractor_from_state,
        extractor_state,
        rounded_to_stored,
    )
    from detection.anomaly.features.neu import NeuClassifierFeatures

    module = NeuClassifierFeatures(6, [8, 16, 32, 64], 1, mean=0.5, std=0.2).eval()
    x = torch.rand(2, 1, 64, 64)
    shapes = [tuple(f.shape[1:]) for f in module.features(x)]
    assert shapes == [(16, 8, 8), (32, 4, 4)]  # the middle stages, strides 8 and 16
    again = extractor_from_state(extractor_state(module))
    with torch.no_grad():
        # stored in float16: what a fit uses (rounded_to_stored) is exactly what loads again,
        # and within float16 rounding of the module it came from
        torch.testing.assert_close(again.features(x)[1], rounded_to_stored(module).features(x)[1],
                                   rtol=0, atol=0)
        torch.testing.assert_close(again.features(x)[1], module.features(x)[1], rtol=1e-2, atol=1e-2)


def test_draem_at_native_scale_on_crops(data, tmp_path) -> None:
    """Keep-aspect DRAEM: trains on crops with surface anomalies, scores every shape whole,
    batches consecutive images of one shape, and survives a save/load round trip."""
    scorer = DraemScorer(input_scale=1.0, crop_px=32, base_width=4, steps=2, batch_size=4,
                         normalise=True, anomalies="surface").fit(data["train"], X_val=data["val"])
    images = data["test"] + data["defect"] + [data["test"][0]] * 3
    maps, scores = scorer.score_maps_and_samples(images)
    assert [m.shape for m in maps] == [im.shape for im in images]
    np.testing.assert_allclose(scores[-3:], scores[-1], rtol=1e-5)
    path = tmp_path / "draem.pt"
    artefact.save(scorer, path, training_data={}, manifest={})
    again = artefact.load(path)
    np.testing.assert_allclose(again.score_samples(images), scores, rtol=1e-4, atol=1e-6)


def test_gain_normalisation_removes_exposure(data) -> None:
    from detection.anomaly.base import gain_normalise

    im = data["test"][0]
    np.testing.assert_allclose(gain_normalise(im * 0.6), gain_normalise(im), atol=1e-5)


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4, 6])
def test_surface_anomalies_mark_what_they_change(kind: int) -> None:
    from detection.anomaly.features.synthetic import synthesize_surface

    rng = np.random.default_rng(kind)
    image = _surface(rng, (48, 64))
    for _ in range(5):
        aug, mask = synthesize_surface(image, [], rng, p_anomaly=1.0, weights=np.eye(7)[kind])
        assert aug.shape == mask.shape == image.shape and set(np.unique(mask)) <= {0.0, 1.0}
        np.testing.assert_array_equal(aug[mask == 0], image[mask == 0])


def test_natural_regions_are_another_image_brighter_darker_or_more_streaked() -> None:
    from scipy import ndimage

    from detection.anomaly.features.synthetic import synthesize_surface

    rng = np.random.default_rng(3)
    image, donor = _surface(rng, (64, 96)), _surface(rng, (64, 96))
    only_regions = np.eye(7)[5]
    for _ in range(10):
        aug, mask = synthesize_surface(image, [], rng, p_anomaly=1.0, weights=only_regions,
                                       donor01=donor)
        assert aug.shape == mask.shape == image.shape and set(np.unique(mask)) <= {0.0, 1.0}
        assert 0.02 < mask.mean() < 0.8  # a region, not a speck
        assert not np.allclose(aug[mask == 1], image[mask == 1], atol=0.02)
        # outside the region only a soft seam of a few pixels changes
        seam = ndimage.binary_dilation(mask > 0, iterations=8)
        np.testing.assert_array_equal(aug[~seam], image[~seam])
    with pytest.raises(ValueError, match="donor"):
        synthesize_surface(image, [], rng, p_anomaly=1.0, weights=only_regions)
    with pytest.raises(ValueError, match="weights"):
        synthesize_surface(image, [], rng, p_anomaly=1.0, weights=(1.0, 0.0))


@pytest.mark.parametrize("anomalies", ["draem", "surface", "mixed", "natural", "draem_natural",
                                       "surface_streaks"])
def test_every_synthetic_anomaly_mix_gives_masks_where_it_changes(anomalies: str) -> None:
    from scipy import ndimage

    from detection.anomaly.draem.scorer import synthetic_batch

    rng = np.random.default_rng(5)
    batch = torch.from_numpy(np.stack([_surface(rng, (32, 32)) for _ in range(6)]))[:, None]
    clean, aug, masks = synthetic_batch(batch, [], rng, 1.0, anomalies=anomalies)
    assert aug.shape == masks.shape == clean.shape and bool(masks.any())
    # natural regions blend in over a soft seam of a few pixels; every other kind is sharp
    seam = 8 if "natural" in anomalies else 0
    near = torch.from_numpy(np.stack([ndimage.binary_dilation(m > 0, iterations=seam) if seam
                                      else m > 0 for m in masks.numpy()]))
    assert torch.equal(aug[~near], clean[~near])
    with pytest.raises(ValueError, match="anomalies"):
        synthetic_batch(batch, [], rng, 1.0, anomalies="perlin")


def test_streak_cracks_run_with_the_grinding_streaks() -> None:
    from detection.anomaly.features.synthetic import synthesize_surface, texture_direction

    rng = np.random.default_rng(4)
    columns = np.tile(0.4 + 0.1 * np.sin(np.arange(96) * 1.7), (80, 1)).astype(np.float32)
    for image, along_rows in ((columns, True), (np.ascontiguousarray(columns.T), False)):
        # an axis: the same modulo pi
        assert abs(np.sin(texture_direction(image) - (0.0 if along_rows else np.pi / 2))) < 0.05
        down = across = 0
        for _ in range(10):
            aug, mask = synthesize_surface(image, [], rng, p_anomaly=1.0, weights=np.eye(7)[6])
            ys, xs = np.nonzero(mask)
            down, across = down + np.ptp(ys) + 1, across + np.ptp(xs) + 1
            assert np.all(aug[mask == 1] < image[mask == 1])  # darker, the texture kept
            np.testing.assert_array_equal(aug[mask == 0], image[mask == 0])
        # a streak may leave the image early (it starts anywhere), so the extents are summed
        assert (down > 4 * across) if along_rows else (across > 4 * down)


def test_mixes_without_regions_draw_in_the_order_of_earlier_runs() -> None:
    """Each image flipped, then given its anomaly, image by image: the random draws of every
    run made before natural regions existed, so that their commands give the same models."""
    from detection.anomaly.draem.scorer import synthetic_batch
    from detection.anomaly.features.synthetic import SURFACE_WEIGHTS, synthesize_surface

    rng = np.random.default_rng(9)
    batch = torch.from_numpy(np.stack([_surface(rng, (32, 32)) for _ in range(4)]))[:, None]
    _, aug, masks = synthetic_batch(batch, [], np.random.default_rng(3), 1.0, anomalies="surface")
    again = np.random.default_rng(3)
    for i, im in enumerate(batch[:, 0].numpy()):
        if again.random() < 0.5:
            im = im[:, ::-1]
        if again.random() < 0.5:
            im = im[::-1]
        a, m = synthesize_surface(np.ascontiguousarray(im), [], again, p_anomaly=1.0,
                                  weights=SURFACE_WEIGHTS["surface"])
        np.testing.assert_array_equal(aug[i, 0].numpy(), a)
        np.testing.assert_array_equal(masks[i, 0].numpy(), m)


def test_cli_lists_every_anomaly_mix() -> None:
    from detection.anomaly.features.synthetic import ANOMALY_KINDS
    from detection.cli_anomaly import ANOMALY_CHOICES

    assert ANOMALY_CHOICES == ANOMALY_KINDS


def test_bf16_training_gives_a_float32_model_that_scores_like_any_other() -> None:
    rng = np.random.default_rng(0)
    imgs = [rng.random((40, 48)).astype(np.float32) for _ in range(6)]
    scorer = DraemScorer(input_size=32, base_width=4, steps=2, batch_size=2, precision="bf16")
    scorer.fit(imgs[:4], X_val=imgs[4:])
    assert all(p.dtype == torch.float32 for p in scorer.model_.parameters())
    assert all(p.is_contiguous() for p in scorer.model_.parameters())
    maps = scorer.score_maps(imgs[:2])
    assert maps[0].shape == (40, 48) and np.isfinite(maps[0]).all()
    with pytest.raises(InputError, match="precision"):
        DraemScorer(input_size=32, base_width=4, steps=1, batch_size=2, precision="fp8").fit(
            imgs[:4], X_val=imgs[4:])
