"""Segmenters averaged (``SegmenterEnsemble``, ``coilmap detect combine-segmenter``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from coilmap.errors import InputError
from detection.classifier.artefact import manifest_path
from detection.cli_classify import evaluate, segment, train_segmenter
from detection.cli_compare import compare_segmenter
from detection.cli_segmenter_ensemble import combine_segmenter
from detection.segmentation import DefectSegmenter, load_segmenter
from detection.segmentation.ensemble import SegmenterEnsemble
from tests.detection.test_segmentation import TINY, _tiles, _write_mt_layout


@pytest.fixture(scope="module")
def two_members() -> tuple[list[DefectSegmenter], list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(5)
    x, m = _tiles(12, rng)
    members = [
        DefectSegmenter(**TINY, epochs=2, seed=s).fit(x, m, classes=["blob", "bar"], n_synthetic=0)
        for s in (0, 1)
    ]
    return members, x, m


def test_an_ensemble_of_one_network_twice_is_that_network(two_members) -> None:  # type: ignore[no-untyped-def]
    members, x, _ = two_members
    twice = SegmenterEnsemble([members[0], members[0]])
    np.testing.assert_allclose(twice.predict_proba(x), members[0].predict_proba(x), atol=1e-6)
    # two networks: the mean of their low-resolution logits, cell by cell
    lows = [mb._low_res_one(x[0]) for mb in members]
    mean = (lows[0] + lows[1]) / 2
    np.testing.assert_allclose(SegmenterEnsemble(members)._low_res_one(x[0]), mean, atol=1e-6)


def test_with_flips_the_masks_of_a_mirrored_image_are_the_mirrored_masks(two_members) -> None:  # type: ignore[no-untyped-def]
    members, _, _ = two_members
    ens = SegmenterEnsemble(members, flips=True)
    im = np.random.default_rng(0).random((40, 32)).astype(np.float32)  # sides multiples of the pool
    plain = ens.predict_masks([im])[0]
    for axis in (0, 1):
        mirrored = ens.predict_masks([np.flip(im, axis).copy()])[0]
        np.testing.assert_allclose(mirrored, np.flip(plain, axis + 1), atol=1e-5)
    # a single network is not mirror-symmetric: the views do change something
    assert not np.allclose(members[0].predict_masks([np.flip(im, 1).copy()])[0], np.flip(
        members[0].predict_masks([im])[0], 2), atol=1e-5)


def test_a_saved_ensemble_loads_as_a_segmenter_and_members_must_match(tmp_path: Path, two_members) -> None:  # type: ignore[no-untyped-def]
    members, x, m = two_members
    ens = SegmenterEnsemble(members, flips=True).fit(x, m)
    path = tmp_path / "ens.pt"
    ens.save(path, {"command": "test", "data": None, "metrics": {}})
    back = load_segmenter(path)
    assert isinstance(back, SegmenterEnsemble) and back.flips and len(back.members) == 2
    assert back.image_thresholds_ == ens.image_thresholds_ and len(ens.image_thresholds_) == 2
    np.testing.assert_allclose(back.predict_proba(x), ens.predict_proba(x), atol=2e-2)
    other = DefectSegmenter(**{**TINY, "pool": 2}, epochs=1).fit(x, m, classes=["blob", "bar"], n_synthetic=0)
    with pytest.raises(InputError, match="member 2 has scale 1.0, pool 2"):
        SegmenterEnsemble([members[0], other])
    with pytest.raises(InputError, match="no validation images"):
        SegmenterEnsemble(members).fit([], [])


def test_combine_segmenter_from_the_command_line(tmp_path: Path) -> None:
    data = _write_mt_layout(tmp_path / "mt")
    runner = CliRunner()
    models = []
    for seed in (0, 1):
        model = tmp_path / f"seg{seed}.pt"
        res = runner.invoke(train_segmenter, ["--data", str(data), "--out", str(model), "--epochs", "1",
                                              "--crop-px", "24", "--width", "8", "--synthetic", "2",
                                              "--seed", str(seed)])
        assert res.exit_code == 0, res.output
        models.append(model)
    out = tmp_path / "ens.pt"
    args = ["--model", str(models[0]), "--model", str(models[1]), "--flips", "--data", str(data)]
    res = runner.invoke(combine_segmenter, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 member(s), flips True" in res.output and "mAP (all classes)" in res.output
    manifest = json.loads(manifest_path(out).read_text())
    assert "combine-segmenter --model" in manifest["command"] and manifest["flips"] is True
    assert [s["model"] for s in manifest["members"]] == [str(p) for p in models]
    assert set(manifest["metrics"]) == {"val", "test"}
    img = next((data / "MT_Blob" / "Imgs").glob("*.jpg"))
    res = runner.invoke(segment, ["--model", str(out), str(img)])
    assert res.exit_code == 0 and res.output.splitlines()[0] == "path,label,confidence"
    res = runner.invoke(evaluate, ["--model", str(out), "--data", str(data), "--part", "all"])
    assert res.exit_code == 0 and "balanced accuracy" in res.output
    res = runner.invoke(combine_segmenter, ["--model", str(models[0]), "--data", str(data),
                                            "--out", str(out)])
    assert isinstance(res.exception, InputError) and "--flips" in str(res.exception)

    # compare-segmenter: each model's mAP is evaluate's; the difference comes with its interval
    res = runner.invoke(compare_segmenter, ["--model", str(models[0]), "--model", str(out), "--data",
                                            str(data), "--part", "val", "--resamples", "50"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    for path, key in ((models[0], "a"), (out, "b")):
        res = runner.invoke(evaluate, ["--model", str(path), "--data", str(data), "--part", "val", "--json"])
        assert r["mAP"][key] == pytest.approx(json.loads(res.output)["mAP"], abs=1e-4)
    assert r["mAP"]["difference_95_low"] <= r["mAP"]["difference"] + 1e-4
    assert set(r["tiles_per_class"]) == {"Free", "Blob", "Bar"} and r["part"] == "val"
    res = runner.invoke(compare_segmenter, ["--model", str(out), "--data", str(data)])
    assert isinstance(res.exception, InputError) and "exactly twice" in str(res.exception)


def test_the_segmenter_benchmark_times_plain_and_flipped_models(
    tmp_path: Path, two_members, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    from benchmarks.bench_segmenter import main

    members, _, _ = two_members
    paths = [tmp_path / "one.pt", tmp_path / "flips.pt"]
    manifest = {"command": "test", "data": None, "metrics": {}}
    members[0].save(paths[0], manifest)
    SegmenterEnsemble(members[:1], flips=True).save(paths[1], manifest)
    main([*map(str, paths), "--images", "2", "--repeats", "1", "--threads", "1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["members"], r["flips"], r["images"]) for r in rows] == [(1, False, 2), (1, True, 2)]
    assert all(r["images_per_second"] > 0 and r["megapixels_per_second"] > 0 for r in rows)
