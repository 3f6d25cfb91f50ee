"""Fixtures of the dashboard tests: a sample coil model on SQLite (built once per session),
an empty one, and the environment a page reads its database and image root from."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_helpers import Sample

from dashboard.sample_db import build


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    root = tmp_path_factory.mktemp("sample")
    url = f"sqlite:///{root / 'coilmap.sqlite'}"
    info = build(url, root / "images")
    return Sample(url, root / "images", info)


@pytest.fixture(scope="session")
def empty_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated coil model without a single row."""
    from coilmap.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('empty') / 'coilmap.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture
def use_sample(sample: Sample, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Sample:
    monkeypatch.setenv("COILMAP_DATABASE_URL", sample.url)
    monkeypatch.setenv("COILMAP_IMAGE_ROOT", str(sample.image_root))
    monkeypatch.setenv("COILMAP_AUDIT_REPORT", str(tmp_path / "no-audit.json"))
    return sample


@pytest.fixture
def use_empty(empty_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("COILMAP_DATABASE_URL", empty_url)
    monkeypatch.setenv("COILMAP_IMAGE_ROOT", str(tmp_path))
    monkeypatch.setenv("COILMAP_AUDIT_REPORT", str(tmp_path / "no-audit.json"))
    return empty_url
