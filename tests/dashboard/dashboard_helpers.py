"""Shared by the dashboard tests (a plain module: ``tests/dashboard`` is on ``sys.path``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dashboard.sample_db import SampleInfo

APP_DIR = Path(__file__).resolve().parents[2] / "dashboard"
REPO_ROOT = APP_DIR.parent


@dataclass(frozen=True)
class Sample:
    url: str
    image_root: Path
    info: SampleInfo
