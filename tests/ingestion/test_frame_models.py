"""Which models a frame station's job loads: the plant's own where the demo plant has them,
the project's defaults otherwise, and the default classifier beside a configured scorer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import ingestion.config as config
from coilmap.errors import InputError
from ingestion.config import config_from_plant
from ingestion.units import DEFAULT_ANOMALY_MODELS, DEFAULT_CLASSIFIER_MODEL, StationContext


def test_the_demo_plant_takes_its_own_frame_models_when_the_repository_has_them(
    plant_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer, classifier = tmp_path / "scorer.pt", tmp_path / "classifier.pt"
    monkeypatch.setattr(config, "PLANT_FRAME_SCORER", scorer)
    monkeypatch.setattr(config, "PLANT_FRAME_CLASSIFIER", classifier)
    cfg = config_from_plant(plant_src)
    assert cfg.anomaly_model is None and cfg.classifier_model is None  # no such files yet
    scorer.write_bytes(b"x")
    classifier.write_bytes(b"x")
    cfg = config_from_plant(plant_src)
    assert (cfg.anomaly_model, cfg.classifier_model) == (scorer, classifier)
    again = config.parse_config(config.dumps_config(cfg), base_dir=tmp_path)
    assert (again.anomaly_model, again.classifier_model) == (scorer, classifier)


def _loaded(cfg: config.PlantConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    seen: dict[str, Any] = {}

    def fake_load(a: Any, c: Any = None, **_: Any) -> str:
        seen["a"], seen["c"] = a, c
        return "detector"

    monkeypatch.setattr("detection.worker.load_detector", fake_load)
    ctx = StationContext(cfg=cfg, station=cfg.stations[0], station_id=1, run_id=1)
    assert ctx.detector_() == "detector"
    return seen["a"], seen["c"]


def test_a_configured_scorer_keeps_the_default_classifier(
    plant_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "own.pt"
    own.write_bytes(b"x")
    base = replace(config_from_plant(plant_src), anomaly_model=None, classifier_model=None)
    a, c = _loaded(base, monkeypatch)
    assert Path(a) in DEFAULT_ANOMALY_MODELS and c == DEFAULT_CLASSIFIER_MODEL
    a, c = _loaded(replace(base, anomaly_model=own), monkeypatch)
    assert (a, c) == (own, DEFAULT_CLASSIFIER_MODEL)
    a, c = _loaded(replace(base, anomaly_model=own, classifier_model=own), monkeypatch)
    assert (a, c) == (own, own)


def test_a_station_may_name_its_own_models(
    plant_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant_wide, own = tmp_path / "plant_wide.pt", tmp_path / "hsm_t.pt"
    plant_wide.write_bytes(b"x")
    own.write_bytes(b"x")
    base = replace(config_from_plant(plant_src), anomaly_model=plant_wide, classifier_model=None)
    hsm = next(s for s in base.stations if s.code == "HSM-T")
    cfg = replace(base, stations=(replace(hsm, anomaly_model=own),))
    assert _loaded(cfg, monkeypatch) == (own, DEFAULT_CLASSIFIER_MODEL)
    cfg = replace(base, stations=(replace(hsm, anomaly_model=own, classifier_model=own),))
    assert _loaded(cfg, monkeypatch) == (own, own)
    assert _loaded(replace(base, stations=(hsm,)), monkeypatch) == (plant_wide, DEFAULT_CLASSIFIER_MODEL)
    # the TOML the configuration writes keeps them, relative paths taken from the file's folder
    path = tmp_path / "cfg.toml"
    path.write_text(config.to_toml(cfg), encoding="utf-8")
    again = config.load_config(path)
    assert again.stations[0].anomaly_model == own and again.stations[0].classifier_model == own
    raw = config.dumps_config(cfg)
    raw["stations"][0]["anomaly_model"] = "models/own.pt"
    parsed = config.parse_config(raw, base_dir=tmp_path)
    assert parsed.stations[0].anomaly_model == tmp_path / "models" / "own.pt"
    raw["stations"][0]["anomaly_model"] = 3
    with pytest.raises(InputError, match="anomaly_model"):
        config.parse_config(raw, base_dir=tmp_path)
