"""A segmenter and an anomaly scorer read together: by a logistic head (``StackedSegmenter``,
``coilmap detect stack-segmenter``) or through the anomalous-feature map (``GatedSegmenter``,
``coilmap detect gate-segmenter``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from coilmap.errors import InputError
from detection.anomaly import artefact
from detection.anomaly.draem.torch_model import DraemModel
from detection.anomaly.features.draem_encoders import DraemEncoders
from detection.anomaly.patchcore.scorer import PatchCoreScorer
from detection.classifier.artefact import manifest_path
from detection.cli_classify import evaluate, segment
from detection.cli_segmenter_ensemble import gate_segmenter
from detection.cli_stacked import stack_segmenter
from detection.segmentation import DefectSegmenter, load_segmenter
from detection.segmentation.gated import GatedSegmenter
from detection.segmentation.head import fit_head
from detection.segmentation.stacked import StackedSegmenter
from tests.detection.test_segmentation import TINY, _tiles, _write_mt_layout


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A TINY segmenter, a PatchCore scorer over two untrained DRAEM encoders saved to a file,
    and 30 labelled tiles (0 clean, 1 blob, 2 bar)."""
    rng = np.random.default_rng(3)
    x, m = _tiles(30, rng)
    y = np.array([int(mk.max()) for mk in m])
    seg = DefectSegmenter(**TINY, epochs=2).fit(x, m, classes=["blob", "bar"], n_synthetic=0)
    torch.manual_seed(0)
    encoders = DraemEncoders.of([DraemModel(base_width=4), DraemModel(base_width=4)])
    clean = [im for im, c in zip(x, y, strict=True) if c == 0]
    scorer = PatchCoreScorer(feature_extractor=encoders, input_scale=1.0, coreset_size=100,
                             patch_stride_px=4).fit(clean[:6], X_val=clean[6:])
    folder = tmp_path_factory.mktemp("stacked")
    anomaly_file = folder / "anomaly.pt"
    artefact.save(scorer, anomaly_file, training_data={"images": 6}, manifest={"command": "test"})
    return {"x": x, "m": m, "y": y, "seg": seg, "anomaly_file": anomaly_file, "folder": folder}


def _stacked(parts: dict) -> StackedSegmenter:
    return StackedSegmenter(parts["seg"], artefact.load(parts["anomaly_file"]), parts["anomaly_file"],
                            c_grid=(0.1, 1.0), folds=3).fit(parts["x"], parts["y"])


def test_the_head_calls_each_image_and_a_saved_model_scores_exactly_as_fitted(parts: dict) -> None:
    stacked = _stacked(parts)
    proba, maps = stacked.predict_all(parts["x"])
    assert proba.shape == (30, 2) and len(maps) == 30 and maps[0].shape == (2, *parts["x"][0].shape)
    assert np.all(proba.sum(1) <= 1 + 1e-9)
    calls = stacked.calls(proba)
    assert np.array_equal(calls, np.column_stack([1 - proba.sum(1), proba]).argmax(1))
    # the obvious tiles: the head learns them (in-sample)
    assert (calls == parts["y"]).mean() > 0.8
    assert set(stacked.cv_map_) == {0.1, 1.0} and stacked.head_.c in stacked.cv_map_
    masks = stacked.pixel_labels(proba, maps)
    for call, mask in zip(calls, masks, strict=True):  # a mask holds only the called class
        assert set(np.unique(mask)) <= {0, int(call)}
    path = parts["folder"] / "stacked.pt"
    stacked.save(path, {"command": "test"})
    back = load_segmenter(path)
    assert isinstance(back, StackedSegmenter)
    again, _ = back.predict_all(parts["x"])
    np.testing.assert_allclose(again, proba, atol=1e-4)  # the segmenter's weights are float16 in files


def test_with_flips_the_head_reads_four_views_and_a_mirrored_image_scores_the_same(parts: dict) -> None:
    stacked = StackedSegmenter(parts["seg"], artefact.load(parts["anomaly_file"]), parts["anomaly_file"],
                               c_grid=(1.0,), folds=3, flips=True).fit(parts["x"], parts["y"])
    X, _, _ = stacked.evidence(parts["x"][:3])
    assert X.shape[:2] == (4, 3)
    proba, _ = stacked.predict_all(parts["x"][:3])
    mirrored, _ = stacked.predict_all([np.ascontiguousarray(im[:, ::-1]) for im in parts["x"][:3]])
    # the same four views in another order; only the segmenter's margins are read from the image
    # as it is (a one-network segmenter sees a mirrored image differently)
    assert np.abs(mirrored - proba).max() < 0.2
    path = parts["folder"] / "flips.pt"
    stacked.save(path, {"command": "test"})
    back = load_segmenter(path)
    assert back.flips
    np.testing.assert_allclose(back.predict_all(parts["x"][:3])[0], proba, atol=1e-4)


@pytest.mark.parametrize("kind", ["stacked", "gated"])
def test_a_missing_or_changed_anomaly_model_is_named_on_loading(parts: dict, tmp_path: Path,
                                                                kind: str) -> None:
    anomaly = tmp_path / "a.pt"
    shutil.copy(parts["anomaly_file"], anomaly)
    if kind == "stacked":
        model = StackedSegmenter(parts["seg"], artefact.load(anomaly), anomaly, c_grid=(1.0,), folds=3)
        model.fit(parts["x"], parts["y"])
    else:
        model = GatedSegmenter(parts["seg"], artefact.load(anomaly), anomaly).fit(parts["x"], parts["m"])
    model.save(tmp_path / "s.pt", {"command": "test"})
    anomaly.write_bytes(anomaly.read_bytes() + b"\0")
    with pytest.raises(InputError, match="SHA-256 differs"):
        load_segmenter(tmp_path / "s.pt")
    anomaly.unlink()
    with pytest.raises(InputError, match="is not there"):
        load_segmenter(tmp_path / "s.pt")


def test_an_anomaly_scorer_without_a_feature_extractor_is_refused(parts: dict) -> None:
    from detection.anomaly.ssim_ae.scorer import SsimAeScorer

    with pytest.raises(InputError, match="no PatchCore feature extractor"):
        StackedSegmenter(parts["seg"], SsimAeScorer(), parts["anomaly_file"])


def test_a_class_with_fewer_images_than_folds_is_refused() -> None:
    X = np.random.default_rng(0).normal(size=(12, 3))
    with pytest.raises(InputError, match="at least 5 images"):
        fit_head(X, np.array([0] * 10 + [1] * 2), 2, folds=5)


def test_stack_segment_evaluate_from_the_command_line(parts: dict, tmp_path: Path) -> None:
    data = _write_mt_layout(tmp_path / "mt")
    seg_file = tmp_path / "seg.pt"
    classes = DefectSegmenter(**TINY, epochs=1)
    x, m = _tiles(12, np.random.default_rng(4))
    classes.fit(x, m, classes=["Bar", "Blob"], n_synthetic=0).save(seg_file, {"command": "test"})
    out = tmp_path / "stacked.pt"
    runner = CliRunner()
    res = runner.invoke(stack_segmenter, [
        "--segmenter", str(seg_file), "--anomaly", str(parts["anomaly_file"]), "--data", str(data),
        "--out", str(out), "--folds", "2", "--c-grid", "0.5,2"])
    assert res.exit_code == 0, res.output
    assert "cross-validated mAP by C: 0.5" in res.output and "mAP (all classes)" in res.output
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["command"].startswith("coilmap detect stack-segmenter --segmenter")
    assert set(manifest["metrics"]["cv_mAP"]) == {"0.5", "2.0"} and manifest["metrics"]["test"]["n"] > 0
    res = runner.invoke(segment, ["--model", str(out), str(data / "MT_Blob" / "Imgs" / "t1.jpg")])
    assert res.exit_code == 0, res.output
    label, confidence = res.output.splitlines()[1].split(",")[1:]
    assert label in {"Free", "Bar", "Blob"} and 1 / 3 <= float(confidence) <= 1
    res = runner.invoke(evaluate, ["--model", str(out), "--data", str(data), "--part", "all"])
    assert res.exit_code == 0, res.output
    assert "mAP (all classes)" in res.output
    res = runner.invoke(stack_segmenter, ["--data", str(data), "--out", str(out), "--c-grid", "0,x"])
    assert isinstance(res.exception, InputError) and "--c-grid" in str(res.exception)


def test_the_unseen_tile_benchmark_matches_masks_by_iou() -> None:
    from benchmarks.bench_mt_unseen import best_iou

    a = np.zeros((8, 8), bool)
    a[2:6, 2:6] = True
    b = np.zeros((8, 8), bool)
    b[2:6, 4:8] = True
    assert best_iou(a, [a]) == 1.0
    assert best_iou(a, [b, np.zeros((8, 8), bool)]) == 8 / 24
    assert best_iou(a, []) == 0.0


def test_the_gated_scores_are_the_maxima_of_each_class_probability_times_the_anomaly_map(
        parts: dict, tmp_path: Path) -> None:
    anomaly = artefact.load(parts["anomaly_file"])
    gated = GatedSegmenter(parts["seg"], anomaly, parts["anomaly_file"], free_alarm_rate=0.2)
    gated.fit(parts["x"][:20], parts["m"][:20])  # thresholds on these, as on the val part
    scores, maps = gated.predict_all(parts["x"])
    _, seg_maps = parts["seg"].predict_all(parts["x"])
    anomaly_maps = anomaly.score_maps(parts["x"])
    for s, seg_map, a_map in zip(scores, seg_maps, anomaly_maps, strict=True):
        product = seg_map * (a_map / anomaly.pixel_threshold_)[None]
        odds = product.reshape(2, -1).max(1)
        np.testing.assert_allclose(s, odds / (1 + odds), rtol=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(maps, seg_maps, strict=True))  # the masks' maps
    # the thresholds hold the alarm rate on the defect-free images they were chosen on
    clean = parts["y"][:20] == 0
    assert (scores[:20][clean] >= np.array(gated.image_thresholds_)).any(1).mean() <= 0.2
    calls = gated.calls(scores)
    assert np.all(gated.confidences(scores) >= 0.5)  # how far each call is over its threshold
    for call, mask in zip(calls, gated.pixel_labels(scores, maps), strict=True):
        assert set(np.unique(mask)) <= {0, int(call)}
    path = tmp_path / "gated.pt"
    gated.save(path, {"command": "test"})
    back = load_segmenter(path)
    assert isinstance(back, GatedSegmenter) and back.image_thresholds_ == gated.image_thresholds_
    np.testing.assert_allclose(back.predict_all(parts["x"])[0], scores, atol=1e-3)  # float16 weights
    with pytest.raises(InputError, match="save it with save"):
        gated.config()


def test_gate_segment_evaluate_from_the_command_line(parts: dict, tmp_path: Path) -> None:
    data = _write_mt_layout(tmp_path / "mt")
    seg_file = tmp_path / "seg.pt"
    x, m = _tiles(12, np.random.default_rng(4))
    DefectSegmenter(**TINY, epochs=1).fit(x, m, classes=["Bar", "Blob"], n_synthetic=0).save(
        seg_file, {"command": "test"})
    out = tmp_path / "gated.pt"
    runner = CliRunner()
    res = runner.invoke(gate_segmenter, ["--segmenter", str(seg_file), "--anomaly",
                                         str(parts["anomaly_file"]), "--data", str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "val: mAP" in res.output and "mAP (all classes)" in res.output
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["command"].startswith("coilmap detect gate-segmenter --segmenter")
    assert manifest["metrics"]["val"]["n"] > 0 and manifest["metrics"]["test"]["n"] > 0
    assert manifest["anomaly"]["command"] == "test"
    res = runner.invoke(segment, ["--model", str(out), str(data / "MT_Blob" / "Imgs" / "t1.jpg")])
    assert res.exit_code == 0, res.output
    label, confidence = res.output.splitlines()[1].split(",")[1:]
    assert label in {"Free", "Bar", "Blob"} and 0.5 <= float(confidence) <= 1
    res = runner.invoke(evaluate, ["--model", str(out), "--data", str(data), "--part", "all"])
    assert res.exit_code == 0 and "mAP (all classes)" in res.output, res.output
