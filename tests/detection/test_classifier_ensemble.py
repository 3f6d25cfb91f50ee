"""Classifiers averaged into one model: the mean of the members' probabilities, saved and loaded
like any classifier, made by ``coilmap detect combine-classifier``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from coilmap.errors import InputError
from detection.classifier import DefectClassifier, load_classifier
from detection.classifier.artefact import manifest_path
from detection.classifier.ensemble import ClassifierEnsemble
from detection.classifier.metrics import unlearned_warnings
from detection.cli_classifier_ensemble import combine_classifier
from detection.cli_classify import classify, evaluate, train_classifier
from tests.detection.test_classifier import TINY, _bright_dark, _write_class_folders


def _members(n: int = 2) -> tuple[list[DefectClassifier], list[np.ndarray]]:
    x, y = _bright_dark(16, np.random.default_rng(5))
    return [DefectClassifier(**TINY, epochs=1, seed=s).fit(x, y, classes=["bright", "dark"])
            for s in range(n)], x


def test_the_ensemble_averages_its_members_probabilities_each_with_its_own_views() -> None:
    members, x = _members()
    members[1].tta = 1  # members keep their own number of views
    ens = ClassifierEnsemble(members)
    want = (members[0].predict_proba(x) + members[1].predict_proba(x)) / 2
    np.testing.assert_allclose(ens.predict_proba(x), want, atol=1e-6)
    assert not np.allclose(members[0].predict_proba(x), members[1].predict_proba(x))  # not one model twice
    # a caller's views (the detection worker's, for line use) apply to every member
    np.testing.assert_allclose(
        ens.predict_proba(x, tta=1),
        (members[0].predict_proba(x, tta=1) + members[1].predict_proba(x, tta=1)) / 2, atol=1e-6)
    assert list(ens.predict(x[:2])) == [ens.classes_[i] for i in ens.predict_proba(x[:2]).argmax(1)]
    emb = ens.embed(x[:3])
    np.testing.assert_allclose(emb[:, :16], members[0].embed(x[:3]), atol=1e-6)
    assert emb.shape == (3, 32) == (3, ens.embedding_dim)
    from fusion.embeddings import ClassifierEmbedder

    assert ClassifierEmbedder(ens, "ensemble").dim == 32  # the similar-image index's width


def test_members_must_share_their_classes_and_an_ensemble_is_not_trained_or_a_feature_extractor() -> None:
    members, x = _members()
    other = DefectClassifier(**TINY, epochs=1).fit(x, [i % 2 for i in range(16)], classes=["dark", "bright"])
    with pytest.raises(InputError, match="member 2 has classes"):
        ClassifierEnsemble([members[0], other])
    with pytest.raises(InputError, match="at least two members"):
        ClassifierEnsemble(members[:1])
    ens = ClassifierEnsemble(members)
    with pytest.raises(InputError, match="member 2 is itself an ensemble"):
        ClassifierEnsemble([members[0], ens])
    with pytest.raises(InputError, match="not trained: train its members"):
        ens.fit(x, [0] * len(x), classes=["bright", "dark"])
    with pytest.raises(InputError, match="use one of its member files"):
        ens.features(x[:1])


def test_a_saved_ensemble_loads_as_a_classifier_and_predicts_as_before(tmp_path: Path) -> None:
    members, x = _members(3)
    ens = ClassifierEnsemble(members)
    path = tmp_path / "ens.pt"
    ens.save(path, {"command": "test", "data": {}, "metrics": {}})
    for back in (DefectClassifier.load(path), load_classifier(path)):
        assert isinstance(back, ClassifierEnsemble) and len(back.members) == 3
        np.testing.assert_allclose(back.predict_proba(x), ens.predict_proba(x), atol=2e-2)
    blob_config = json.loads(manifest_path(path).read_text())["config"]
    assert blob_config["architecture"] == "ClassifierEnsemble" and len(blob_config["members"]) == 3


def test_combine_classifier_from_the_command_line(tmp_path: Path) -> None:
    data = _write_class_folders(tmp_path / "data", n_per_class=8)
    runner = CliRunner()
    models = []
    for seed in (0, 1):
        models.append(tmp_path / f"m{seed}.pt")
        res = runner.invoke(train_classifier, ["--data", str(data), "--out", str(models[-1]), "--epochs", "1",
                                               "--input-px", "32", "--seed", str(seed)])
        assert res.exit_code == 0, res.output
    out = tmp_path / "ens.pt"
    res = runner.invoke(combine_classifier, ["--model", str(models[0]), "--model", str(models[1]),
                                             "--data", str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "val: accuracy" in res.output and "(2 members)" in res.output
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["command"].startswith("coilmap detect combine-classifier")
    assert [m["model"] for m in manifest["members"]] == [str(p) for p in models]
    assert all("train-classifier" in m["command"] for m in manifest["members"])
    assert manifest["train_seconds"] == pytest.approx(sum(m["train_seconds"] for m in manifest["members"]),
                                                      abs=0.2)
    assert manifest["metrics"]["val"]["n"] > 0
    assert manifest["warnings"] == unlearned_warnings(manifest["metrics"])
    res = runner.invoke(classify, ["--model", str(out), str(data / "dark")])
    assert res.exit_code == 0 and res.output.startswith("path,label,confidence"), res.output
    res = runner.invoke(evaluate, ["--model", str(out), "--data", str(data), "--part", "all"])
    assert res.exit_code == 0 and "accuracy" in res.output, res.output
    # bad input: a model that is not a classifier, named; one member only
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    res = runner.invoke(combine_classifier, ["--model", str(models[0]), "--model", str(junk),
                                             "--data", str(data), "--out", str(tmp_path / "x.pt")])
    assert res.exit_code != 0 and "junk.pt" in str(res.exception), res.output
    res = runner.invoke(combine_classifier, ["--model", str(models[0]), "--data", str(data),
                                             "--out", str(tmp_path / "x.pt")])
    assert res.exit_code != 0 and "at least two members" in str(res.exception)


def test_a_detection_worker_classifies_with_an_ensemble_file_one_view_per_member(tmp_path: Path) -> None:
    from detection.worker import TileDetector

    members, _ = _members()
    path = tmp_path / "ens.pt"
    ClassifierEnsemble(members).save(path, {"command": "test", "data": {}, "metrics": {}})
    ens = DefectClassifier.load(path)
    asked: list[int | None] = []
    for m in ens.members:  # record the views each member is asked for
        original = m._proba_tensor
        m._proba_tensor = lambda images, tta=None, _f=original: (asked.append(tta), _f(images, tta=tta))[1]

    class _Scorer:
        pixel_threshold_ = 0.5

        def score_maps(self, tiles: list[np.ndarray], workers: int = 1) -> list[np.ndarray]:
            return [(t < 0.2).astype(np.float32) for t in tiles]

    frame = np.full((300, 520), 0.6, np.float32)
    frame[100:130, 200:240] = 0.05
    result = TileDetector(_Scorer(), ens, tile_px=256).detect(frame, {})
    assert [d.label for d in result.detections] in (["bright"], ["dark"])
    assert 0.5 <= result.detections[0].confidence <= 1.0
    assert asked == [1, 1]  # line use: one view, in each member
