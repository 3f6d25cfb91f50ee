"""``coilmap detect train-anomaly / score``: tiny end-to-end runs and every kind of bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coilmap.cli import main
from coilmap.datasplit import mt_parts
from coilmap.errors import InputError
from detection.anomaly import DEFAULT_MODEL, load_scorer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _write(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode=mode).save(path)
    return path


@pytest.fixture(scope="module")
def normal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "MT_Free"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        im = (128 + 10 * rng.standard_normal((48, 40))).clip(0, 255).astype(np.uint8)
        _write(folder / f"tile_{i}.jpg", im)
    parts = list(mt_parts("MT_Free", [f"tile_{i}" for i in range(24)]).values())
    assert parts.count("train") >= 2 and parts.count("val") >= 1
    return folder


def _main_ok(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as exc:  # pragma: no cover - a failure shows in the assertion below
        assert exc.code == 0


@pytest.fixture(scope="module")
def tiny_model(normal_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny.pt"
    _main_ok(["detect", "train-anomaly", "--normal", str(normal_dir), "--out", str(out),
              "--kind", "draem", "--steps", "2", "--input-size", "32", "--width", "4",
              "--sources", str(normal_dir)])
    return out


@pytest.fixture(scope="module")
def tiny_k3(tiny_model: Path, normal_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with another score window: a second member for ensembles."""
    out = tmp_path_factory.mktemp("model") / "k3.pt"
    _main_ok(["detect", "retune-anomaly", "--model", str(tiny_model), "--normal", str(normal_dir),
              "--out", str(out), "--score-kernel", "3"])
    return out


def test_train_then_score_with_heatmaps(tiny_model: Path, normal_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads(tiny_model.with_suffix(".json").read_text())
    assert manifest["kind"] == "draem" and manifest["command"].startswith("coilmap detect train-anomaly")
    assert manifest["training_data"]["n_train"] >= 2 and "torch_version" in manifest
    images = sorted(normal_dir.glob("*.jpg"))[:3]
    code, out, err = _run(["detect", "score", "--model", str(tiny_model), *map(str, images),
                           "--heatmaps", str(tmp_path)], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "path,score,is_defect" and len(lines) == 4
    assert all(line.rsplit(",", 1)[1] in ("0", "1") for line in lines[1:])
    heat = Image.open(tmp_path / f"{images[0].stem}_heatmap.png")
    assert heat.mode == "RGB" and heat.size == (40, 48)


def test_sixteen_bit_and_colour_images_are_read(tiny_model: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    deep = _write(tmp_path / "deep.png", (np.arange(48 * 40).reshape(48, 40) * 30).astype(np.uint16))
    colour = _write(tmp_path / "colour.png", np.full((48, 40, 3), 120, np.uint8))
    code, out, err = _run(["detect", "score", "--model", str(tiny_model), str(deep), str(colour)], capsys)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 3


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated", "not a readable image"),
        ("missing", "no such image file"),
        ("old_model", "format version"),
        ("no_model", "no such model file"),
    ],
)
def test_bad_score_input_is_a_clear_error(case: str, message: str, tiny_model: Path, tmp_path: Path,
                                          normal_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = sorted(normal_dir.glob("*.jpg"))[0]
    model = tiny_model
    if case == "truncated":
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(image.read_bytes()[:200])
        image = bad
    elif case == "missing":
        image = tmp_path / "nothing.jpg"
    elif case == "old_model":
        blob = torch.load(tiny_model, weights_only=True)
        blob["format_version"] = 99
        model = tmp_path / "old.pt"
        torch.save(blob, model)
    else:
        model = tmp_path / "absent.pt"
    code, out, err = _run(["detect", "score", "--model", str(model), str(image)], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_bad_training_folders_are_clear_errors(tmp_path: Path, normal_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(["detect", "train-anomaly", "--normal", str(empty), "--out", str(tmp_path / "m.pt")],
                        capsys)
    assert code == 2 and "holds no images" in err
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.jpg").write_bytes(next(normal_dir.glob("*.jpg")).read_bytes())
    code, _, err = _run(["detect", "train-anomaly", "--normal", str(one), "--out", str(tmp_path / "m.pt")],
                        capsys)
    assert code == 2 and "at least 2 train" in err


def test_default_model_is_in_the_repository_with_its_manifest() -> None:
    manifest = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert manifest["command"].startswith("coilmap detect")
    assert "image_auroc" in manifest["metrics"] and "pixel_auroc" in manifest["metrics"]
    assert "by tile" in manifest["training_data"]["split"]  # trained and measured on the split by tile
    assert DEFAULT_MODEL.stat().st_size < 8_000_000
    scorer = load_scorer()
    image = np.random.default_rng(0).random((100, 300)).astype(np.float32)
    assert scorer.score_map(image).shape == (100, 300)


def test_synthetic_val_selection_figure(tiny_model: Path, normal_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``evaluate-anomaly --synthetic-val`` reads only MT_Free val images (no defect folder)."""
    root = tmp_path / "magnetic_tile"
    (root / "MT_Free").mkdir(parents=True)
    (root / "MT_Free" / "Imgs").symlink_to(normal_dir)
    code, out, err = _run(["detect", "evaluate-anomaly", "--model", str(tiny_model), "--data",
                           str(root), "--synthetic-val"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert 0.0 <= result["synthetic_val_image_auroc"] <= 1.0 and result["n_synthetic"] >= 1
    code, out, err = _run(["detect", "evaluate-anomaly", "--model", str(tiny_model), "--data",
                           str(root), "--synthetic-val", "--regions"], capsys)
    assert code == 0, err
    with_regions = json.loads(out)
    # the surface anomalies are the same ones with or without the regions
    assert with_regions["synthetic_val_image_auroc"] == result["synthetic_val_image_auroc"]
    assert with_regions["n_synthetic_region"] >= 1
    four = [with_regions[f"synthetic_val{s}_{k}_auroc"] for s in ("", "_region") for k in ("image", "pixel")]
    assert with_regions["synthetic_val_mean"] == pytest.approx(np.mean(four))
    code, out, err = _run(["detect", "evaluate-anomaly", "--model", str(tiny_model), "--data",
                           str(root), "--regions"], capsys)
    assert code == 2 and "--regions goes with --synthetic-val" in err


def test_retune_changes_the_score_window_and_thresholds(tiny_model: Path, normal_dir: Path,
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "retuned.pt"
    source = tmp_path / "with_figures.pt"  # a model whose manifest holds selection figures
    source.write_bytes(tiny_model.read_bytes())
    figures = {"selection": {"synthetic_val_image_auroc": 0.5},
               "selection_with_regions": {"synthetic_val_mean": 0.5}}
    source.with_suffix(".json").write_text(json.dumps(
        {**json.loads(tiny_model.with_suffix(".json").read_text()), **figures}))
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(source), "--normal",
                         str(normal_dir), "--out", str(out), "--score-kernel", "3"], capsys)
    assert code == 0, err
    scorer = load_scorer(out)
    assert scorer.score_kernel == 3 and np.isfinite(scorer.threshold_)
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["retuned"]["score_kernel"] == 3 and manifest["command"]
    assert not set(figures) & set(manifest)  # the old model's figures are not this one's
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(tiny_model), "--normal",
                         str(normal_dir), "--out", str(out), "--score-kernel", "4"], capsys)
    assert code == 2 and "odd" in err



def test_retune_the_pixel_quantile(tiny_model: Path, normal_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A higher quantile puts the pixel threshold higher: fewer clean pixels cross it."""
    out = tmp_path / "strict.pt"
    code, stdout, err = _run(["detect", "retune-anomaly", "--model", str(tiny_model), "--normal",
                              str(normal_dir), "--out", str(out), "--pixel-quantile", "0.9999"], capsys)
    assert code == 0, err
    before, after = load_scorer(tiny_model), load_scorer(out)
    assert after.pixel_quantile == 0.9999 and before.pixel_quantile == 0.995
    assert after.pixel_threshold_ > before.pixel_threshold_
    assert after.threshold_ == pytest.approx(before.threshold_)  # the image threshold stays
    assert json.loads(out.with_suffix(".json").read_text())["retuned"]["pixel_quantile"] == 0.9999
    assert "pixel threshold" in stdout
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(tiny_model), "--normal",
                         str(normal_dir), "--out", str(out), "--pixel-quantile", "1.5"], capsys)
    assert code == 2


def test_retune_the_scoring_scale(tiny_model: Path, normal_dir: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    scaled = tmp_path / "scaled.pt"
    assert _run(["detect", "train-anomaly", "--normal", str(normal_dir), "--out", str(scaled),
                 "--kind", "draem", "--steps", "2", "--input-scale", "0.5", "--crop-px", "16",
                 "--width", "4", "--sources", str(normal_dir)], capsys)[0] == 0
    out = tmp_path / "quarter.pt"
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(scaled), "--normal", str(normal_dir),
                         "--out", str(out), "--input-scale", "0.25"], capsys)
    assert code == 0, err
    before, after = load_scorer(scaled), load_scorer(out)
    assert after.input_scale == 0.25 and before.input_scale == 0.5
    image = np.asarray(Image.open(next(normal_dir.glob("*.jpg"))), np.float32) / 255
    assert after.score_map(image).shape == image.shape
    assert json.loads(out.with_suffix(".json").read_text())["retuned"]["input_scale"] == 0.25
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(tiny_model), "--normal",
                         str(normal_dir), "--out", str(out), "--input-scale", "0.25"], capsys)
    assert code == 2 and "trained with --input-scale" in err


def test_retune_an_ensemble_to_score_in_bf16(tiny_model: Path, normal_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ens = tmp_path / "ens.pt"
    assert _run(["detect", "combine-anomaly", "--model", str(tiny_model), "--model", str(tiny_model),
                 "--normal", str(normal_dir), "--out", str(ens)], capsys)[0] == 0
    out = tmp_path / "ens_bf16.pt"
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(ens), "--normal", str(normal_dir),
                         "--out", str(out), "--score-precision", "bf16"], capsys)
    assert code == 0, err
    scorer = load_scorer(out)
    assert [m.score_precision for m in scorer.members_] == ["bf16", "bf16"]
    fp32 = load_scorer(ens)
    image = np.asarray(Image.open(next(normal_dir.glob("*.jpg"))), np.float32) / 255
    # bf16 scores follow the float32 ones closely; thresholds were set again in bf16
    assert abs(scorer.score_samples([image])[0] - fp32.score_samples([image])[0]) < 0.1
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["retuned"]["score_precision"] == "bf16" and len(manifest["members"]) == 2
    assert manifest["threshold"] == pytest.approx(scorer.threshold_)  # not the old file's
    again = tmp_path / "ens_bf16_smooth.pt"
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(out), "--normal", str(normal_dir),
                         "--out", str(again), "--map-sigma", "2"], capsys)
    assert code == 0, err
    assert [m.map_sigma for m in load_scorer(again).members_] == [2.0, 2.0]
    manifest = json.loads(again.with_suffix(".json").read_text())
    assert manifest["retuned"]["map_sigma"] == 2.0
    assert manifest["retuned_earlier"][0]["score_precision"] == "bf16"
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(ens), "--normal", str(normal_dir),
                         "--out", str(out), "--score-kernel", "3"], capsys)
    assert code == 2 and "not an ensemble" in err
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(ens), "--normal", str(normal_dir),
                         "--out", str(out)], capsys)
    assert code == 2 and "--input-scale" in err


def test_combine_two_models_into_an_ensemble(tiny_model: Path, tiny_k3: Path, normal_dir: Path,
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    retuned = tiny_k3
    out = tmp_path / "ens.pt"
    code, _, err = _run(["detect", "combine-anomaly", "--model", str(tiny_model), "--model",
                         str(retuned), "--normal", str(normal_dir), "--out", str(out)], capsys)
    assert code == 0, err
    ens = load_scorer(out)
    assert ens.kind == "ensemble" and len(ens.members_) == 2
    image = np.asarray(Image.open(next(normal_dir.glob("*.jpg"))), np.float32) / 255
    assert ens.score_map(image).shape == image.shape
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert [m["model"] for m in manifest["members"]] == [str(tiny_model), str(retuned)]
    code, _, err = _run(["detect", "combine-anomaly", "--model", str(tiny_model), "--normal",
                         str(normal_dir), "--out", str(out)], capsys)
    assert code == 2 and "at least two" in err


def test_train_an_ensemble_with_members_side_by_side(normal_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    tiny = f"--kind draem --steps 2 --input-size 32 --width 4 --sources {normal_dir}"
    out = tmp_path / "pair.pt"
    code, _, err = _run(["detect", "train-ensemble", "--normal", str(normal_dir), "--out", str(out),
                         "--member", tiny, "--member", tiny + " --seed 1 --score-kernel 3"], capsys)
    assert code == 0, err
    ens = load_scorer(out)
    assert ens.kind == "ensemble" and [m.seed for m in ens.members_] == [0, 1]
    assert ens.members_[1].score_kernel == 3
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["parallel"] == min(2, os.cpu_count() or 1)
    assert len(manifest["member_wall_seconds"]) == 2 and manifest["wall_seconds"] > 0
    assert all("--seed 1" in m["command"] for m in manifest["members"][1:])
    assert manifest["command"].count("--member '--kind draem") == 2
    assert manifest["training_seconds"] == manifest["wall_seconds"]
    assert load_scorer(tmp_path / "pair.member1.pt").kind == "draem"  # members are kept


def test_an_ensemble_member_asked_for_auto_precision_trains_in_the_one_measured_here(
        normal_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = (f"--kind draem --steps 1 --input-size 32 --width 4 --crop-px 32 --sources {normal_dir} "
            "--precision auto")
    out = tmp_path / "auto.pt"
    code, _, err = _run(["detect", "train-ensemble", "--normal", str(normal_dir), "--out", str(out),
                         "--member", tiny, "--member", tiny + " --seed 1"], capsys)
    assert code == 0, err
    said = [line for line in err.splitlines() if line.startswith("--precision auto: ")]
    assert len(said) == 2, err  # resolved in the parent, for each member, before they start
    assert not any("--precision auto" in log.read_text() for log in tmp_path.glob("auto.member*.log"))
    chosen = said[0].split()[2]
    assert chosen in ("fp32", "bf16")
    manifest = json.loads(out.with_suffix(".json").read_text())
    # each member's own command names what it trained in (fp32, the default, goes unsaid)
    assert all("--precision auto" not in m["command"] for m in manifest["members"])
    assert all((f"--precision {chosen}" in m["command"]) == (chosen == "bf16") for m in manifest["members"])
    assert "--precision auto" in manifest["command"]
    assert [m.precision for m in load_scorer(out).members_] == [chosen, chosen]


def test_train_ensemble_refuses_bad_members_with_one_line(normal_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad.pt"
    tiny = f"--kind draem --steps 2 --input-size 32 --width 4 --sources {normal_dir}"
    code, _, err = _run(["detect", "train-ensemble", "--normal", str(normal_dir), "--out", str(out),
                         "--member", tiny], capsys)
    assert code == 2 and "at least two members" in err
    code, _, err = _run(["detect", "train-ensemble", "--normal", str(normal_dir), "--out", str(out),
                         "--member", tiny, "--member", tiny + f" --out {tmp_path / 'x.pt'}"], capsys)
    assert code == 2 and "--out is set by train-ensemble" in err
    code, _, err = _run(["detect", "train-ensemble", "--normal", str(normal_dir), "--out", str(out),
                         "--member", tiny, "--member", tiny + " --kind nonsense"], capsys)
    assert code == 2 and "member 2 failed" in err and "nonsense" in err
    assert not out.exists()


def test_manifest_updates_at_once_keep_every_key(tmp_path: Path) -> None:
    import threading

    from detection.cli_manifest import update_manifest

    path = tmp_path / "model.json"
    path.write_text(json.dumps({"command": "train"}))

    def write(prefix: str) -> None:
        for i in range(25):
            update_manifest(path, f"{prefix}{i}", {"i": i})

    threads = [threading.Thread(target=write, args=(p,)) for p in ("metrics", "selection")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    manifest = json.loads(path.read_text())
    assert manifest["command"] == "train" and len(manifest) == 51


def test_a_patchcore_pyramid_over_a_draem_pair(tiny_model: Path, tiny_k3: Path, normal_dir: Path,
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default's recipe in small: a bank per scale over both members' encoders, stored
    once; the file scores exactly as the fitted model did."""
    retuned = tiny_k3
    pair = tmp_path / "pair.pt"
    assert _run(["detect", "combine-anomaly", "--model", str(tiny_model), "--model", str(retuned),
                 "--normal", str(normal_dir), "--out", str(pair)], capsys)[0] == 0
    out = tmp_path / "pyramid.pt"
    code, _, err = _run(["detect", "train-anomaly", "--normal", str(normal_dir), "--out", str(out),
                         "--kind", "patchcore", "--features", str(pair), "--pyramid-scales", "0.5,1",
                         "--coreset-size", "40", "--bank-dim", "8", "--blur-sigma", "2"], capsys)
    assert code == 0, err
    pyramid = load_scorer(out)
    assert pyramid.kind == "patchcore_pyramid" and pyramid.input_scales == [0.5, 1.0]
    encoders = pyramid.feature_extractor
    assert type(encoders).__name__ == "DraemEncoders" and encoders.n_models == 2
    assert encoders.reconstructive_layers == [1, 2]  # both encoders of both members
    assert [m.input_scale for m in pyramid.members_] == [0.5, 1.0]
    assert all(m.memory_bank_.shape[0] <= 40 and m.memory_bank_.shape[1] == 8 for m in pyramid.members_)
    assert pyramid.blur_sigma == 2.0 and pyramid.members_[1].model_.blur_sigma == 2.0
    # the projection is the same at every scale: stored once
    state = torch.load(out, weights_only=True)["state"]
    assert state["bank_projection"].shape == (2 * (8 + 16) * 2, 8)
    assert all("bank_projection" not in level for level in state["levels"])
    images = [np.asarray(Image.open(p), np.float32) / 255 for p in sorted(normal_dir.glob("*.jpg"))[:3]]
    again = load_scorer(out)
    np.testing.assert_array_equal(again.score_samples(images), pyramid.score_samples(images))
    assert again.score_map(images[0]).shape == images[0].shape
    # a frame station's retune: only the pixel threshold moves; the decision stays as fitted
    retuned = tmp_path / "pyramid_q.pt"
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(out), "--normal", str(normal_dir),
                         "--out", str(retuned), "--pixel-quantile", "0.9999"], capsys)
    assert code == 0, err
    q = load_scorer(retuned)
    assert q.pixel_threshold_ >= pyramid.pixel_threshold_ and q.threshold_ == pyramid.threshold_
    code, _, err = _run(["detect", "retune-anomaly", "--model", str(out), "--normal", str(normal_dir),
                         "--out", str(retuned), "--map-sigma", "2"], capsys)
    assert code == 2 and "only --pixel-quantile" in err
    for args, message in (
        (["--pyramid-scales", "0.5,x"], "comma-separated numbers"),
        (["--pyramid-scales", "0.5,0.5"], "distinct factors"),
        (["--pyramid-scales", "0.5", "--input-scale", "0.5"], "without --input-scale"),
        (["--pyramid-scales", "0.5", "--kind", "ocsvm"], "applies to --kind patchcore"),
        (["--bank-dim", "8", "--kind", "ocsvm"], "apply to --kind patchcore"),
    ):
        cmd = ["detect", "train-anomaly", "--normal", str(normal_dir), "--out", str(tmp_path / "x.pt"),
               "--kind", "patchcore", "--features", str(pair), *args]
        code, _, err = _run(cmd, capsys)
        assert code == 2 and message in err, (args, err)


def test_map_only_members_add_to_the_map_not_the_image_score(
        tiny_model: Path, tiny_k3: Path, normal_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    retuned = tiny_k3
    out = tmp_path / "ens.pt"
    code, _, err = _run(["detect", "combine-anomaly", "--model", str(tiny_model), "--map-only",
                         str(retuned), "--normal", str(normal_dir), "--out", str(out)], capsys)
    assert code == 0, err
    ens, decider, outliner = load_scorer(out), load_scorer(tiny_model), load_scorer(retuned)
    assert ens.map_only == [1]
    images = [np.asarray(Image.open(p), np.float32) / 255 for p in sorted(normal_dir.glob("*.jpg"))[:4]]
    np.testing.assert_allclose(ens.score_samples(images),
                               decider.score_samples(images) / decider.threshold_, rtol=1e-6)
    expected = (decider.score_map(images[0]) / decider.pixel_threshold_
                + outliner.score_map(images[0]) / outliner.pixel_threshold_) / 2
    np.testing.assert_allclose(ens.score_map(images[0]), expected, rtol=1e-5, atol=1e-6)
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert [m["map_only"] for m in manifest["members"]] == [False, True]
    code, _, err = _run(["detect", "combine-anomaly", "--model", str(tiny_model), "--normal",
                         str(normal_dir), "--out", str(out), "--map-only", str(retuned),
                         "--map-only", str(tiny_model)], capsys)
    assert code == 0, err  # two map-only members beside one that decides
    from detection.anomaly.ensemble.scorer import EnsembleScorer

    with pytest.raises(InputError, match="at least one left for the image score"):
        EnsembleScorer(members=[decider, outliner], map_only=[0, 1]).fit(None, X_val=images)


def _mt_root(tmp_path: Path, normal_dir: Path) -> Path:
    """A magnetic_tile folder: ``normal_dir`` as MT_Free, eight images of a dark square (with
    its mask) in each defect class."""
    root = tmp_path / "magnetic_tile"
    (root / "MT_Free").mkdir(parents=True)
    (root / "MT_Free" / "Imgs").symlink_to(normal_dir)
    rng = np.random.default_rng(1)
    for class_dir in ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven"):
        imgs = root / class_dir / "Imgs"
        imgs.mkdir(parents=True)
        for i in range(8):
            im = (128 + 10 * rng.standard_normal((48, 40))).clip(0, 255).astype(np.uint8)
            im[10:20, 10:20] = 20
            _write(imgs / f"d_{i}.jpg", im)
            mask = np.zeros((48, 40), np.uint8)
            mask[10:20, 10:20] = 255
            _write(imgs / f"d_{i}.png", mask)
    return root


def test_real_defect_selection_set(tiny_model: Path, normal_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``evaluate-anomaly --selection``: MT_Free val against the train and val parts of the
    defect classes, never a test image; written to the manifest under its own key."""
    from detection.anomaly.evaluate import mt_selection_items

    root = _mt_root(tmp_path, normal_dir)
    items = mt_selection_items(root)
    stems = {c: [p.stem for p in (root / c / "Imgs").glob("*.jpg")] for c in {it.class_dir for it in items}}
    part_of = {c: mt_parts(c, ids) for c, ids in stems.items()}
    parts = {(it.class_dir, part_of[it.class_dir][it.image_id]) for it in items}
    assert {p for _, p in parts} <= {"train", "val"}
    assert all(p == "val" for c, p in parts if c == "MT_Free")
    model = tmp_path / "m.pt"
    model.write_bytes(tiny_model.read_bytes())
    model.with_suffix(".json").write_text(tiny_model.with_suffix(".json").read_text())
    code, out, err = _run(["detect", "evaluate-anomaly", "--model", str(model), "--data", str(root),
                           "--selection", "--write-manifest"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["n_defect"] == sum(it.class_dir != "MT_Free" for it in items) > 0
    mean = (result["image_auroc"] + result["pixel_auroc"]) / 2
    assert result["mean_image_pixel_auroc"] == pytest.approx(mean)
    manifest = json.loads(model.with_suffix(".json").read_text())
    assert manifest["selection_real"]["image_auroc"] == result["image_auroc"]
    assert "train and val parts" in manifest["selection_real"]["split"]
    code, _, err = _run(["detect", "evaluate-anomaly", "--model", str(model), "--data", str(root),
                         "--selection", "--synthetic-val"], capsys)
    assert code == 2 and "one at a time" in err


def test_an_ensemble_normalises_each_image_once_for_all_members(tiny_model: Path, tiny_k3: Path,
                                                                normal_dir: Path) -> None:
    """Members that gain-normalise get the images normalised once by the ensemble: the same
    scores and maps as each member normalising for itself."""
    from detection.anomaly.ensemble.scorer import EnsembleScorer

    a, b = load_scorer(tiny_model), load_scorer(tiny_k3)
    a.normalise = b.normalise = True
    images = [np.asarray(Image.open(p), np.float32) / 300 for p in sorted(normal_dir.glob("*.jpg"))[:5]]
    ens = EnsembleScorer(members=[a, b]).fit(None, X_val=images)
    assert ens.normalises()
    maps, scores = ens.score_maps_and_samples(images)
    alone = [m.score_maps_and_samples(images) for m in (a, b)]
    np.testing.assert_allclose(scores, (alone[0][1] / a.threshold_ + alone[1][1] / b.threshold_) / 2,
                               rtol=1e-6)
    np.testing.assert_allclose(maps[0], (alone[0][0][0] / a.pixel_threshold_
                                         + alone[1][0][0] / b.pixel_threshold_) / 2, rtol=1e-5)


def test_compare_two_models_on_the_selection_set_with_an_interval_by_tile(
        tiny_model: Path, tiny_k3: Path, normal_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``compare-anomaly``: each model's figures are evaluate-anomaly's, the difference is b - a
    with an interval around it; a model against itself differs by nothing."""
    root = _mt_root(tmp_path, normal_dir)
    figures = {}
    for m in (tiny_model, tiny_k3):
        code, out, err = _run(["detect", "evaluate-anomaly", "--model", str(m), "--data", str(root),
                               "--selection"], capsys)
        assert code == 0, err
        figures[m] = json.loads(out)
    code, out, err = _run(["detect", "compare-anomaly", "--model", str(tiny_model), "--model", str(tiny_k3),
                           "--data", str(root), "--selection", "--resamples", "200"], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["set"] == "selection" and r["n_defect_images"] == figures[tiny_model]["n_defect"]
    assert r["n_defect_tiles"] == r["n_defect_images"]  # "d_<i>" ids are no exposures of one tile
    for key, figure in (("image_auroc", "image_auroc"), ("pixel_auroc", "pixel_auroc")):
        assert r[key]["a"] == pytest.approx(figures[tiny_model][figure], abs=2e-3)
        assert r[key]["b"] == pytest.approx(figures[tiny_k3][figure], abs=2e-3)
        assert r[key]["difference_95_low"] <= r[key]["difference"] + 1e-3
        assert r[key]["difference"] - 1e-3 <= r[key]["difference_95_high"]
    code, out, err = _run(["detect", "compare-anomaly", "--model", str(tiny_model), "--model",
                           str(tiny_model), "--data", str(root), "--selection", "--resamples", "50"], capsys)
    same = json.loads(out)["mean_image_pixel_auroc"]
    keys = ("difference", "difference_95_low", "difference_95_high", "b_ahead_share")
    assert [same[k] for k in keys] == [0.0, 0.0, 0.0, 0.0]
    code, _, err = _run(["detect", "compare-anomaly", "--model", str(tiny_model), "--data", str(root)],
                        capsys)
    assert code == 2 and "exactly twice" in err
