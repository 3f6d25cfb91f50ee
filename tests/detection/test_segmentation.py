"""The context aggregation network: shapes, the loss blend, metrics, model files and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from coilmap.errors import InputError
from detection.classifier import DefectClassifier
from detection.classifier.artefact import manifest_path
from detection.cli_classify import evaluate, segment, train_segmenter
from detection.segmentation import DEFAULT_MODEL, DefectSegmenter, load_segmenter
from detection.segmentation.metrics import IoUAccumulator, image_level_metrics
from detection.segmentation.torch_model import ContextAggregationNetwork

TINY = {
    "crop_px": 24,
    "width": 8,
    "dilations": (1, 2, 4),
    "batch_size": 4,
    "free_per_epoch": 8,
    "val_every": 1,
}


def _tiles(n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Gray tiles of varied size; every other one has a dark blob (class 0) or a bright bar (1)."""
    imgs, masks = [], []
    for i in range(n):
        h, w = int(rng.integers(30, 50)), int(rng.integers(30, 50))
        im = np.clip(0.5 + 0.05 * rng.standard_normal((h, w)), 0, 1).astype(np.float32)
        m = np.zeros((h, w), np.int16)
        y, x = int(rng.integers(4, h - 12)), int(rng.integers(4, w - 12))
        if i % 3 == 1:
            im[y : y + 8, x : x + 8] = 0.1
            m[y : y + 8, x : x + 8] = 1
        elif i % 3 == 2:
            im[y : y + 3, x : x + 10] = 0.95
            m[y : y + 3, x : x + 10] = 2
        imgs.append(im)
        masks.append(m)
    return imgs, masks


def _fit_tiny(
    seed: int, n_train: int, n_val: int, **params: object
) -> tuple[DefectSegmenter, list[np.ndarray], list[np.ndarray]]:
    """A TINY segmenter fitted on ``n_train`` tiles, selected on ``n_val`` more; with those."""
    rng = np.random.default_rng(seed)
    x, m = _tiles(n_train, rng)
    xv, mv = _tiles(n_val, rng)
    seg = DefectSegmenter(**{**TINY, **params}).fit(  # type: ignore[arg-type]
        x, m, classes=["blob", "bar"], val_images=xv, val_masks=mv, n_synthetic=0
    )
    return seg, xv, mv


def test_the_network_keeps_the_input_size_and_reads_classes_from_mask_maxima() -> None:
    net = ContextAggregationNetwork(n_classes=3, width=8, dilations=(1, 2, 4, 8), pool=4).eval()
    x = torch.randn(2, 1, 48, 64)
    masks = net(x)
    assert masks.shape == (2, 3, 48, 64)
    assert net.low_res_logits(x).shape == (2, 3, 12, 16)
    assert torch.equal(net.image_logits(masks), masks.flatten(2).max(2).values)


def test_fit_blends_the_loss_from_classification_to_segmentation_and_weighs_positives() -> None:
    rng = np.random.default_rng(0)
    x, m = _tiles(18, rng)
    xv, mv = _tiles(6, rng)
    seg = DefectSegmenter(**TINY, epochs=3).fit(
        x, m, classes=["blob", "bar"], val_images=xv, val_masks=mv, n_synthetic=6
    )
    assert [round(r["lam"], 2) for r in seg.history_] == [0.0, 0.5, 1.0]
    kept = DefectSegmenter(**TINY, epochs=3, blend_end=0.6).fit(x, m, classes=["blob", "bar"], n_synthetic=0)
    assert [round(r["lam"], 2) for r in kept.history_] == [0.0, 0.3, 0.6]  # 40 % classification kept
    assert all(w >= 1.0 for w in seg.pos_weight_class_ + seg.pos_weight_seg_)
    # Rare defect pixels get a larger weight than the (less rare) defect images.
    assert seg.pos_weight_seg_[0] > seg.pos_weight_class_[0]
    assert all(len(r["val_loss_per_class"]) == 2 for r in seg.history_)
    probs = seg.predict_masks(xv)
    assert [p.shape for p in probs] == [(2, *im.shape) for im in xv]
    assert all(0.0 <= float(p.min()) and float(p.max()) <= 1.0 for p in probs)
    assert set(seg.predict(xv)) <= {"Free", "blob", "bar"}
    # the criterion that chose the epoch, recomputed on the model kept
    best = max(r["val_mAP"] + r["val_iou"] for r in seg.history_)
    assert seg.selection_criterion(xv, mv)["criterion"] == pytest.approx(best, abs=1e-6)


def test_iou_and_ap_are_one_for_a_perfect_prediction_and_count_false_positives() -> None:
    mask = np.zeros((10, 10), np.int16)
    mask[2:4, 2:4] = 1
    prob = np.zeros((2, 10, 10))
    prob[0][mask == 1] = 0.9
    acc = IoUAccumulator(2)
    acc.add(prob, mask, 0.5)
    r = acc.result(["background", "a", "b"])
    assert r["IoU"]["a"] == 1.0 and r["IoU"]["b"] is None and r["IoU"]["background"] == 1.0
    prob2 = np.zeros((2, 10, 10))
    prob2[0, 0:2, 0:2] = 0.9  # a false positive on a defect-free image
    acc.add(prob2, np.zeros((10, 10), np.int16), 0.5)
    assert acc.result(["background", "a", "b"])["IoU"]["a"] == pytest.approx(0.5)
    m = image_level_metrics(
        np.array([0, 1, 2]), np.array([[0.1, 0.2], [0.9, 0.1], [0.2, 0.7]]), ["f", "a", "b"], 0.5
    )
    assert m["mAP"] == 1.0 and m["accuracy"] == 1.0


def test_a_saved_segmenter_predicts_as_before_and_kinds_do_not_mix(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, m = _tiles(9, rng)
    seg = DefectSegmenter(**TINY, epochs=1).fit(x, m, classes=["blob", "bar"], n_synthetic=0)
    path = tmp_path / "seg.pt"
    seg.save(path, {"command": "test", "data": None, "metrics": {}})
    back = DefectSegmenter.load(path)
    np.testing.assert_allclose(back.predict_proba(x), seg.predict_proba(x), atol=2e-2)
    assert back.pos_weight_seg_ == pytest.approx(seg.pos_weight_seg_, rel=1e-6)
    with pytest.raises(InputError, match="a segmenter model, not a classifier"):
        DefectClassifier.load(path)
    with pytest.raises(InputError, match="multiple of pool"):
        DefectSegmenter(crop_px=30, pool=4).fit(x, m, classes=["blob", "bar"])



def test_bf16_training_saves_a_float32_segmenter(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, m = _tiles(9, rng)
    seg = DefectSegmenter(**TINY, epochs=2, precision="bf16").fit(
        x, m, classes=["blob", "bar"], val_images=x[:3], val_masks=m[:3], n_synthetic=2
    )
    # float32 after bf16 training, in the layout it predicts in (channels-last)
    assert all(p.dtype == torch.float32 for p in seg.net_.parameters())
    assert all(p.is_contiguous(memory_format=torch.channels_last)
               for p in seg.net_.parameters() if p.dim() == 4)
    path = tmp_path / "seg.pt"
    seg.save(path, {"command": "test", "data": None, "metrics": {}})
    back = DefectSegmenter.load(path)
    assert back.precision == "bf16"
    # weights are stored as float16 (as every saved segmenter), hence the tolerance
    np.testing.assert_allclose(back.predict_proba(x), seg.predict_proba(x), atol=2e-2)


def test_edge_planes_tell_the_network_where_the_image_ends(tmp_path: Path) -> None:
    from detection.segmentation.edges import edge_planes

    # A crop's window in the whole image: only the image's own edges are near 1.
    planes = edge_planes((40, 30), (10, 0, 8, 6), edge_px=2.0)
    assert planes.shape == (2, 8, 6)
    assert float(planes[0].max()) < 0.01  # rows 10..17 of 40 are far from top and bottom
    assert planes[1, :, 0].tolist() == [1.0] * 8  # column 0 is the left edge
    rng = np.random.default_rng(1)
    x, m = _tiles(9, rng)
    seg = DefectSegmenter(**TINY, epochs=1, edge_px=4.0).fit(x, m, classes=["blob", "bar"], n_synthetic=2)
    assert seg.net_.down[0][0].in_channels == 3 * seg.pool**2
    path = tmp_path / "edge.pt"
    seg.save(path, {"command": "test", "data": None, "metrics": {}})
    back = DefectSegmenter.load(path)
    assert back.edge_px == 4.0
    np.testing.assert_allclose(back.predict_proba(x), seg.predict_proba(x), atol=2e-2)
    plain = DefectSegmenter(**TINY, epochs=1).fit(x, m, classes=["blob", "bar"], n_synthetic=0)
    assert plain.net_.down[0][0].in_channels == plain.pool**2 and plain.edge_px == 0.0


def _write_mt_layout(root: Path) -> Path:
    rng = np.random.default_rng(2)
    imgs, masks = _tiles(24, rng)
    names = {0: "MT_Free", 1: "MT_Blob", 2: "MT_Bar"}
    for i, (im, mk) in enumerate(zip(imgs, masks, strict=True)):
        d = root / names[i % 3] / "Imgs"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((im * 255).astype(np.uint8), mode="L").save(d / f"t{i}.jpg", quality=95)
        Image.fromarray(((mk > 0) * 255).astype(np.uint8), mode="L").save(d / f"t{i}.png")
    return root


def test_train_segment_evaluate_from_the_command_line(tmp_path: Path) -> None:
    data = _write_mt_layout(tmp_path / "mt")
    model = tmp_path / "seg.pt"
    runner = CliRunner()
    args = ["--data", str(data), "--out", str(model), "--epochs", "1", "--crop-px", "24"]
    res = runner.invoke(train_segmenter, [*args, "--width", "8", "--synthetic", "4", "--precision", "auto"])
    assert res.exit_code == 0, res.output
    chosen = res.output.split("--precision auto: ")[1].split()[0]  # measured here, then trained in
    assert chosen in ("fp32", "bf16") and DefectSegmenter.load(model).precision == chosen
    manifest = json.loads(manifest_path(model).read_text())
    assert manifest["kind"] == "segmenter" and "train-segmenter" in manifest["command"]
    assert set(manifest["metrics"]["test"]["AP"]) == {"Free", "Bar", "Blob"}

    img = next((data / "MT_Blob" / "Imgs").glob("*.jpg"))
    res = runner.invoke(segment, ["--model", str(model), "--masks-dir", str(tmp_path / "m"), str(img)])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == "path,label,confidence"
    free_img = next((data / "MT_Free" / "Imgs").glob("*.jpg"))
    res = runner.invoke(segment, ["--model", str(model), str(img), str(free_img)])
    for row in res.output.splitlines()[1:]:
        _, label, conf = row.split(",")
        # a defect call: its class's probability, at least its threshold; Free: at least 0.5
        assert label in {"Free", "Blob", "Bar"} and 0.0 <= float(conf) <= 1.0
        assert label != "Free" or float(conf) >= 0.5
    out_mask = np.asarray(Image.open(tmp_path / "m" / f"{img.stem}_mask.png"))
    assert out_mask.shape == np.asarray(Image.open(img)).shape

    res = runner.invoke(evaluate, ["--model", str(model), "--data", str(data), "--part", "all"])
    assert res.exit_code == 0, res.output
    assert "mAP (all classes)" in res.output and "IoU" in res.output
    res = runner.invoke(train_segmenter, ["--data", str(tmp_path), "--out", str(model)])
    assert isinstance(res.exception, InputError)


def test_retune_chooses_the_thresholds_again_and_keeps_how_the_model_was_made(tmp_path: Path) -> None:
    from detection.cli_segmenter_ensemble import retune_segmenter
    from detection.segmentation.estimator import image_thresholds_of

    data = _write_mt_layout(tmp_path / "mt")
    model, again = tmp_path / "seg.pt", tmp_path / "again.pt"
    runner = CliRunner()
    res = runner.invoke(train_segmenter, ["--data", str(data), "--out", str(model), "--epochs", "1",
                                          "--crop-px", "24", "--width", "8", "--synthetic", "4"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(retune_segmenter, ["--model", str(model), "--data", str(data), "--out",
                                           str(again), "--free-alarm-rate", "0.5"])
    assert res.exit_code == 0, res.output
    assert "thresholds: image Bar" in res.output and "mAP (all classes)" in res.output
    before, after = (json.loads(manifest_path(p).read_text()) for p in (model, again))
    assert after["command"] == before["command"] and "retune-segmenter" in after["retuned"]["command"]
    assert after["retuned"]["metrics_before"] == before["metrics"]
    assert set(after["metrics"]["test"]["image_thresholds"]) == {"Bar", "Blob"}
    assert load_segmenter(again).free_alarm_rate == 0.5
    # files written before per-class thresholds hold one for every class
    assert image_thresholds_of({"image_threshold": 0.9, "classes": ["a", "b"]}) == [0.9, 0.9]


def test_the_default_segmenter_is_small_and_documented() -> None:
    from detection.segmentation import DEFAULT_NETWORKS
    from detection.segmentation.gated import GatedSegmenter

    assert DEFAULT_MODEL.is_file(), "make it: see docs/detection-classification.md"
    assert DEFAULT_MODEL.stat().st_size < 8_000_000
    gated = json.loads(manifest_path(DEFAULT_MODEL).read_text())
    # the default: the default networks read through the default anomaly scorer, both named
    # beside it
    assert gated["command"].startswith("coilmap detect gate-segmenter")
    assert (gated["segmenter"]["model"], gated["anomaly"]["model"]) == ("mt_segmenter.pt", "mt_anomaly.pt")
    assert "(by tile)" in gated["splits"] and gated["metrics"]["test"]["n"] > 0
    assert isinstance(load_segmenter(), GatedSegmenter)
    manifest = json.loads(manifest_path(DEFAULT_NETWORKS).read_text())
    # the networks: trained networks (kept beside them) averaged over their mirror views
    assert manifest["command"].startswith("coilmap detect combine-segmenter --model")
    assert manifest["flips"] is True
    assert "(by tile)" in manifest["splits"]  # trained and measured on the split by tile
    for member in manifest["members"]:
        assert member["command"].startswith("coilmap detect train-segmenter")
        assert (Path(__file__).resolve().parents[2] / member["model"]).is_file()
        # a file written before --blend-end and --val-from says how it was trained: as before
        trained = DefectSegmenter.load(Path(__file__).resolve().parents[2] / member["model"])
        assert (trained.blend_end, trained.val_from) == (1.0, 0.0)
    seg = load_segmenter()
    assert seg.classes_ == ["Blowhole", "Break", "Crack", "Fray", "Uneven"]
    assert manifest["metrics"]["test"]["n"] > 0 and manifest["metrics"]["val"]["n"] > 0


def test_a_wall_time_cap_ends_the_schedule_early_on_the_segmentation_loss() -> None:
    seg, _, _ = _fit_tiny(3, 9, 3, epochs=50, max_minutes=1e-6)
    assert len(seg.history_) == 2  # the first epoch always runs; the second is the last
    assert seg.history_[-1]["lam"] == seg.blend_end and "val_mAP" in seg.history_[-1]


def test_validation_starts_at_val_from_and_the_last_epoch_is_always_validated() -> None:
    seg, _, _ = _fit_tiny(4, 9, 3, epochs=5, val_from=0.6)
    validated = [r["epoch"] for r in seg.history_ if "val_mAP" in r]
    assert validated == [4, 5]  # progress 0, .25, .5 skipped; .75 and 1 validated
    assert seg.best_epoch_ in validated


def test_the_image_thresholds_hold_the_false_alarm_rate_on_defect_free_validation_images() -> None:
    seg, xv, mv = _fit_tiny(4, 12, 30, epochs=1, free_alarm_rate=0.2)  # every third val tile defect-free
    free = [im for im, mk in zip(xv, mv, strict=True) if not mk.any()]
    assert len(seg.image_thresholds_) == 2  # one per class
    alarms = (seg.predict_proba(free) >= np.array(seg.image_thresholds_)).any(1)
    assert 0 < alarms.mean() <= 0.2
    assert np.mean(seg.predict(free) != "Free") == alarms.mean()


def test_each_class_is_called_against_its_own_threshold() -> None:
    """A class the network scores high on every image (uneven grinding) no longer hides the
    others: the call is the class furthest over its own threshold, in logits."""
    from detection.segmentation.metrics import image_level_metrics, per_class_thresholds

    rng = np.random.default_rng(0)
    free = np.column_stack([rng.uniform(0.01, 0.2, 100), rng.uniform(0.9, 0.99, 100)])
    t = per_class_thresholds(free, 0.05)
    assert np.mean((free >= t).any(1)) <= 0.05 and t[0] < 0.2 < 0.9 < t[1]
    seg = DefectSegmenter()
    seg.classes_, seg.image_thresholds_ = ["Break", "Uneven"], list(t)
    # a Break image: Break well over its own threshold, Uneven as high as on clean images
    assert seg.labels(np.array([[0.6, 0.95], [0.05, 0.999], [0.05, 0.9]])).tolist() == [
        "Break", "Uneven", "Free"]
    # one threshold for both (the former rule, the maximum's quantile) calls it clean
    one = float(np.quantile(free.max(1), 0.95))
    y = np.array([0] * 100 + [1])
    scores = np.vstack([free, [[0.6, 0.95]]])
    assert image_level_metrics(y, scores, ["Free", "Break", "Uneven"], one)["confusion"][1][1] == 0
    assert image_level_metrics(y, scores, ["Free", "Break", "Uneven"], t)["confusion"][1][1] == 1


def test_hard_negatives_are_the_defect_free_images_last_called_defective() -> None:
    seg = DefectSegmenter(free_per_epoch=4, hard_free=0.5)
    free = [10, 11, 12, 13, 14, 15, 16, 17]
    logit = np.array([-9.0, -9.0, 8.0, -9.0, -9.0, -9.0, 8.0, -9.0])  # images 12 and 16 alarm
    rng = np.random.default_rng(0)
    for _ in range(20):
        picked = seg._pick_free(free, logit, rng)
        assert len(picked) == 4 and len(set(picked)) == 4 and set(picked) <= set(free)
        assert {12, 16} <= set(picked)
    uniform = DefectSegmenter(free_per_epoch=4)._pick_free(free, logit, np.random.default_rng(0))
    assert uniform == [free[k] for k in np.random.default_rng(0).permutation(8)[:4]]


def test_masks_draw_only_the_class_each_image_is_called() -> None:
    seg = DefectSegmenter()
    seg.classes_, seg.image_thresholds_, seg.pixel_threshold_ = ["blob", "bar"], [0.5, 0.5], 0.6
    maps = [np.full((2, 3, 4), 0.7, np.float32) for _ in range(3)]
    maps[1][0, 0, 0] = 0.9  # a blob pixel on an image called bar
    maps[2][:, 1] = 0.2
    proba = np.array([[0.2, 0.3], [0.4, 0.8], [0.9, 0.6]])  # free, bar, blob
    gated = seg.pixel_labels(proba, maps)
    assert [np.unique(g).tolist() for g in gated] == [[0], [2], [0, 1]]
    assert gated[1][0, 0] == 2 and (gated[2][1] == 0).all()
    seg.gate_masks = False  # every class wherever it reaches the threshold, on every image
    plain = seg.pixel_labels(proba, maps)
    assert plain[0].max() == 1 and plain[1][0, 0] == 1
    assert seg.pixel_labels(proba, maps, threshold=0.95)[2].max() == 0
