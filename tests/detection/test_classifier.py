"""The supervised classifier: augmentation invariants, learning, any-size input, model files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from coilmap.datasplit import NEU_CLASSES, neu_part
from coilmap.errors import InputError
from detection.augment import (
    Cutout,
    _place,
    class_probabilities,
    clean_background,
    cut_mask_blobs,
    flip_rot90,
    paste,
)
from detection.classifier import DEFAULT_MODEL, DefectClassifier, load_classifier
from detection.classifier.artefact import FORMAT_NAME, manifest_path
from detection.cli_classify import classify, evaluate, train_classifier

TINY = {"input_px": 32, "widths": (8, 16), "blocks_per_stage": 1, "batch_size": 8, "tta": 2}


def _bright_dark(n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """A task a classifier must learn: bright textured images vs dark ones, varied sizes."""
    imgs, labels = [], []
    for i in range(n):
        h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
        base = 0.75 if i % 2 == 0 else 0.25
        imgs.append(np.clip(base + 0.08 * rng.standard_normal((h, w)), 0, 1).astype(np.float32))
        labels.append(i % 2)
    return imgs, labels


def _write_class_folders(root: Path, n_per_class: int = 6) -> Path:
    rng = np.random.default_rng(1)
    imgs, labels = _bright_dark(2 * n_per_class, rng)
    for i, (im, y) in enumerate(zip(imgs, labels, strict=True)):
        d = root / ("bright" if y == 0 else "dark")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((im * 255).astype(np.uint8), mode="L").save(d / f"img{i}.png")
    return root


# ------------------------------------------------------------------------------ augmentation
def test_the_eight_symmetries_are_distinct_and_each_has_an_inverse() -> None:
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    views = [flip_rot90(img, k) for k in range(8)]
    assert len({v.tobytes() + bytes(v.shape) for v in views}) == 8
    inverse = {0: 0, 1: 3, 2: 2, 3: 1, 4: 4, 5: 5, 6: 6, 7: 7}
    for k in range(8):
        assert np.array_equal(flip_rot90(flip_rot90(img, k), inverse[k]), img)


def test_paste_leaves_the_background_where_no_defect_landed() -> None:
    rng = np.random.default_rng(3)
    bg = rng.random((40, 50)).astype(np.float32) * 0.5
    cut = Cutout(np.full((6, 9), 0.9, np.float32), np.ones((6, 9), np.float32), label=2)
    img, lab = paste(bg, [cut, cut], rng)
    assert img.shape == bg.shape and set(np.unique(lab)) == {0, 3}
    assert np.array_equal(img[lab == 0], bg[lab == 0])
    assert 0 < (lab == 3).sum() <= 2 * 54


def test_edge_cutouts_are_pasted_against_the_sides_they_turned_into() -> None:
    """A chip cut from a tile's top edge lands flush against one side of the clean image
    (the side its top turned into), and only with ``at_edges``."""
    src = np.full((30, 40), 0.5, np.float32)
    mask = np.zeros((30, 40), bool)
    mask[0:5, 10:18] = True  # a chip reaching the top edge
    (cut,) = cut_mask_blobs(src * 0.2, mask, label=1)
    assert cut.edges == (True, False, False, False)
    bg = np.full((60, 70), 0.5, np.float32)
    sides_seen = set()
    for seed in range(24):
        rng = np.random.default_rng(seed)
        _, lab = paste(bg, [cut], rng, at_edges=True)
        rows, cols = np.nonzero(lab == 2)
        touching = {name for name, hit in (("top", rows.min() == 0), ("bottom", rows.max() == 59),
                                           ("left", cols.min() == 0), ("right", cols.max() == 69)) if hit}
        assert len(touching) == 1  # one side, the one the cut's top edge went to
        sides_seen |= touching
    assert sides_seen == {"top", "bottom", "left", "right"}  # all 8 symmetries are used
    anywhere = [paste(bg, [cut], np.random.default_rng(s))[1] for s in range(24)]
    assert sum(int(np.nonzero(m == 2)[0].min() > 0 and np.nonzero(m == 2)[1].min() > 0) for m in anywhere) > 6


def test_edge_cutout_longer_than_the_image_keeps_its_edge_end() -> None:
    rng = np.random.default_rng(0)
    # along one axis: a 23-px cut that reached its source's last side, into 8 px of background
    assert _place(8, 23, False, True, rng) == (0, slice(15, 23))  # its last 8 px, flush
    assert _place(8, 23, True, False, rng) == (0, slice(0, 8))
    assert _place(30, 23, False, True, rng) == (7, slice(0, 23))
    start, kept = _place(30, 23, False, False, rng)
    assert 0 <= start <= 7 and kept == slice(0, 23)


def test_clean_background_avoids_every_box() -> None:
    img = np.zeros((64, 64), np.float32)
    img[0:30, :] = 1.0  # the defect region, boxed
    bg = clean_background(img, ((0, 0, 64, 30),), min_side_px=16)
    assert bg is not None and bg.shape == img.shape and float(bg.max()) == 0.0
    assert clean_background(img, ((0, 0, 64, 64),)) is None


def test_cut_mask_blobs_gives_one_cutout_per_connected_blob() -> None:
    mask = np.zeros((30, 30), bool)
    mask[2:5, 2:6] = True
    mask[20:28, 10:12] = True
    cuts = cut_mask_blobs(np.ones((30, 30), np.float32), mask, label=1)
    assert len(cuts) == 2 and all(c.label == 1 and c.alpha.max() == 1.0 for c in cuts)


def test_class_probabilities_follow_the_validation_loss() -> None:
    p = class_probabilities([0.5, 0.1, 2.0, 0.0])
    assert p.sum() == pytest.approx(1.0)
    assert p[2] > p[0] > p[1] > p[3] > 0


# ------------------------------------------------------------------------------ estimator
def test_the_classifier_learns_a_separable_task_and_takes_any_size() -> None:
    rng = np.random.default_rng(0)
    x, y = _bright_dark(48, rng)
    xv, yv = _bright_dark(16, rng)
    clf = DefectClassifier(**TINY, epochs=4, lr=1e-2).fit(
        x, y, classes=["bright", "dark"], val_images=xv, val_labels=yv
    )
    proba = clf.predict_proba(xv)
    assert proba.shape == (16, 2) and np.allclose(proba.sum(1), 1.0, atol=1e-5)
    assert (proba.argmax(1) == np.array(yv)).mean() >= 0.9
    assert len(clf.history_) == 4 and 1 <= clf.best_epoch_ <= 4
    odd = [np.zeros((7, 300), np.float32), np.ones((500, 20), np.float32)]
    assert clf.embed(odd).shape == (2, 16)
    assert [tuple(f.shape[:2]) for f in clf.features(odd)] == [(2, 8), (2, 16)]
    assert list(clf.predict(odd)) == ["dark", "bright"]  # all-black is dark, all-white bright
    with pytest.raises(InputError, match="2-D grayscale"):
        clf.predict_proba([np.zeros((4, 4, 3))])


def test_guided_paste_runs_with_boxes_and_bad_labels_are_refused() -> None:
    rng = np.random.default_rng(2)
    x, y = _bright_dark(12, rng)
    boxes = [((2, 2, 12, 12),) for _ in x]
    clf = DefectClassifier(**TINY, epochs=1, paste_fraction=0.5)
    clf.fit(x, y, classes=["a", "b"], boxes=boxes, background_boxes=boxes)
    assert clf.predict_proba(x[:2]).shape == (2, 2)
    with pytest.raises(InputError, match="labels must lie"):
        DefectClassifier(**TINY, epochs=1).fit(x, [5] * len(x), classes=["a", "b"])
    with pytest.raises(InputError, match="not trained"):
        DefectClassifier().predict_proba(x[:1])


def test_a_saved_model_predicts_as_before_and_other_files_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x, y = _bright_dark(16, rng)
    clf = DefectClassifier(**TINY, epochs=1).fit(x, y, classes=["bright", "dark"])
    path = tmp_path / "m.pt"
    clf.save(path, {"command": "test", "data": {"n": 16}, "metrics": {}})
    back = DefectClassifier.load(path)
    assert back.classes_ == ["bright", "dark"] and back.input_px == 32
    np.testing.assert_allclose(back.predict_proba(x), clf.predict_proba(x), atol=2e-2)
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["command"] == "test" and manifest["torch"] == torch.__version__

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a model at all")
    with pytest.raises(InputError, match="not a coilmap model file"):
        DefectClassifier.load(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="not a coilmap detection model"):
        DefectClassifier.load(other)
    blob = torch.load(path, weights_only=True)
    blob["format_version"] = 99
    old = tmp_path / "old.pt"
    torch.save(blob, old)
    with pytest.raises(InputError, match="format version 99"):
        DefectClassifier.load(old)
    blob["format_version"], blob["kind"] = 1, "segmenter"
    torch.save(blob, old)
    with pytest.raises(InputError, match="a segmenter model, not a classifier"):
        DefectClassifier.load(old)
    assert blob["format"] == FORMAT_NAME


# ------------------------------------------------------------------------------ the default model
def test_the_default_model_is_small_documented_and_right_on_held_out_neu(shared_data: Path) -> None:
    assert DEFAULT_MODEL.is_file(), "train it: see docs/detection-classification.md"
    assert DEFAULT_MODEL.stat().st_size < 8_000_000
    manifest = json.loads(manifest_path(DEFAULT_MODEL).read_text())
    assert manifest["command"].startswith("coilmap detect train-classifier")
    assert manifest["metrics"]["test"]["n"] > 0
    clf = load_classifier()
    assert tuple(clf.classes_) == NEU_CLASSES
    # A few held-out test images per class (never a render image): at least 5 of 6 right each.
    from detection.images import load_gray

    files = sorted((shared_data / "neu_det" / "IMAGES").glob("*.jpg"))
    for c in NEU_CLASSES:
        picked = [p for p in files if p.stem.rsplit("_", 1)[0] == c and neu_part(p.stem) == "test"][:6]
        pred = clf.predict([load_gray(p) for p in picked])
        assert (pred == c).sum() >= 5, (c, list(pred))


# ------------------------------------------------------------------------------ CLI
def test_train_classify_evaluate_from_the_command_line(tmp_path: Path) -> None:
    data = _write_class_folders(tmp_path / "data")
    model = tmp_path / "model.pt"
    runner = CliRunner()
    res = runner.invoke(
        train_classifier,
        ["--data", str(data), "--out", str(model), "--epochs", "1", "--input-px", "32"],
    )
    assert res.exit_code == 0, res.output
    assert model.is_file() and manifest_path(model).is_file()
    manifest = json.loads(manifest_path(model).read_text())
    assert "train-classifier" in manifest["command"] and "val" in manifest["metrics"]

    res = runner.invoke(classify, ["--model", str(model), str(data / "bright")])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0] == "path,label,confidence" and len(lines) == 1 + 6
    label, conf = lines[1].split(",")[1:]
    assert label in ("bright", "dark") and 0.5 <= float(conf) <= 1.0

    res = runner.invoke(evaluate, ["--model", str(model), "--data", str(data), "--part", "all"])
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and "true \\ pred" in res.output


def test_bad_input_is_a_clear_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from coilmap.cli import main

    good = tmp_path / "good.png"
    Image.fromarray(np.full((30, 30), 100, np.uint8), mode="L").save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    rgb = tmp_path / "colour.png"
    Image.fromarray(np.full((30, 30, 3), 90, np.uint8), mode="RGB").save(rgb)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((30, 30), 40000, np.uint16)).save(deep)
    fake_model = tmp_path / "fake.pt"
    fake_model.write_text("hello")

    cases = [
        (["detect", "classify", str(truncated)], "truncated.png"),
        (["detect", "classify", "--model", str(fake_model), str(good)], "not a coilmap model"),
        (["detect", "train-classifier", "--data", str(tmp_path / "none"), "--out", "x.pt"], "not a folder"),
        (["detect", "evaluate", "--model", str(tmp_path / "missing.pt")], "no such model file"),
    ]
    for argv, expected in cases:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and expected in err and "Traceback" not in err, (argv, err)

    # Colour and 16-bit images are read (converted to gray), not refused.
    if DEFAULT_MODEL.is_file():
        main(["detect", "classify", str(rgb), str(deep)])  # returns normally: no SystemExit
        assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_a_wall_time_cap_stops_training_and_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(4)
    x = [rng.random((24, 24)).astype(np.float32) * (0.3 if i % 2 else 1.0) for i in range(8)]
    y = [i % 2 for i in range(8)]
    clf = DefectClassifier(**TINY, epochs=20, max_minutes=1e-6).fit(
        x, y, classes=["bright", "dark"], val_images=x[:4], val_labels=y[:4])
    assert len(clf.history_) == 1 and clf.stopped_at_epoch_ == 1 and clf.best_epoch_ == 1


def test_a_moving_average_of_the_weights_is_what_is_validated_and_kept() -> None:
    rng = np.random.default_rng(5)
    x, y = _bright_dark(32, rng)
    xv, yv = _bright_dark(12, rng)
    fit = {"classes": ["bright", "dark"], "val_images": xv, "val_labels": yv}
    plain = DefectClassifier(**TINY, epochs=3, lr=1e-2).fit(x, y, **fit)
    # a decay of almost nothing averages nothing: the same run, weights and choices
    none = DefectClassifier(**TINY, epochs=3, lr=1e-2, ema_decay=1e-9).fit(x, y, **fit)
    for k, v in plain.net_.state_dict().items():
        torch.testing.assert_close(none.net_.state_dict()[k], v, msg=k)
    assert none.best_epoch_ == plain.best_epoch_
    averaged = DefectClassifier(**TINY, epochs=3, lr=1e-2, ema_decay=0.9).fit(x, y, **fit)
    head = "head.1.weight"
    assert not torch.equal(averaged.net_.state_dict()[head], plain.net_.state_dict()[head])
    assert (averaged.predict_proba(xv).argmax(1) == np.array(yv)).mean() >= 0.9
    assert averaged.config()["params"]["ema_decay"] == 0.9
    # without validation images the average is what is kept too: the last step's, at no decay
    last = DefectClassifier(**TINY, epochs=2, lr=1e-2).fit(x, y, classes=fit["classes"])
    kept = DefectClassifier(**TINY, epochs=2, lr=1e-2, ema_decay=1e-9).fit(x, y, classes=fit["classes"])
    torch.testing.assert_close(kept.net_.state_dict()[head], last.net_.state_dict()[head])
    smooth = DefectClassifier(**TINY, epochs=2, lr=1e-2, ema_decay=0.9).fit(x, y, classes=fit["classes"])
    assert not torch.equal(smooth.net_.state_dict()[head], last.net_.state_dict()[head])


def test_precise_batch_norm_changes_the_statistics_and_nothing_the_training_draws() -> None:
    rng = np.random.default_rng(6)
    x, y = _bright_dark(24, rng)
    plain = DefectClassifier(**TINY, epochs=2).fit(x, y, classes=["bright", "dark"])
    precise = DefectClassifier(**TINY, epochs=2, precise_bn_images=16).fit(x, y, classes=["bright", "dark"])
    for name, p in plain.net_.named_parameters():  # the same augmented batches, the same steps
        torch.testing.assert_close(dict(precise.net_.named_parameters())[name], p, msg=name)
    norms = [(a, b) for a, b in zip(plain.net_.modules(), precise.net_.modules(), strict=True)
             if isinstance(a, torch.nn.BatchNorm2d)]
    assert norms and all(b.momentum == a.momentum == 0.1 for a, b in norms)
    assert not torch.allclose(norms[0][0].running_var, norms[0][1].running_var)
    assert precise.config()["params"]["precise_bn_images"] == 16


def test_a_classifier_that_learned_nothing_says_so(tmp_path: Path) -> None:
    # every image the same: whatever it learns, it calls every held-out image alike
    for name, n in (("free", 20), ("crack", 10)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(n):
            grey = Image.fromarray(np.full((24, 24), 128, np.uint8), mode="L")
            grey.save(tmp_path / "data" / name / f"{name}{i}.png")
    model = tmp_path / "m.pt"
    res = CliRunner().invoke(
        train_classifier,
        ["--data", str(tmp_path / "data"), "--out", str(model), "--epochs", "1", "--input-px", "32"])
    assert res.exit_code == 0, res.output
    assert "is no better than always answering free" in res.stderr and "train-segmenter" in res.stderr
    assert any("val accuracy" in w for w in json.loads(manifest_path(model).read_text())["warnings"])
    res = CliRunner().invoke(
        evaluate, ["--model", str(model), "--data", str(tmp_path / "data"), "--part", "all"])
    assert res.exit_code == 0 and "warning: all accuracy" in res.stderr, res.output
