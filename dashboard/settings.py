"""The dashboard's settings, read from the environment when asked (never at import time)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from coilmap.config import database_url

IMAGE_ROOT_ENV = "COILMAP_IMAGE_ROOT"
AUDIT_REPORT_ENV = "COILMAP_AUDIT_REPORT"


def image_root(url: str | None = None) -> Path:
    """Where observation images (``image_ref``, ``heatmap_ref``) live: ``COILMAP_IMAGE_ROOT``,
    else ``images/`` beside the SQLite file, else ``images/`` in the working directory.

    >>> image_root("sqlite:////data/plant/coilmap.sqlite").as_posix()  # doctest: +SKIP
    '/data/plant/images'
    """
    env = os.environ.get(IMAGE_ROOT_ENV)
    if env:
        return Path(env).resolve()
    parsed = make_url(url or database_url())
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return (Path(parsed.database).resolve().parent / "images").resolve()
    return (Path.cwd() / "images").resolve()


def audit_report_path(url: str | None = None) -> Path:
    """The training-set audit report (JSON) the fusion area writes: ``COILMAP_AUDIT_REPORT``,
    else ``audit.json`` under the image root."""
    env = os.environ.get(AUDIT_REPORT_ENV)
    return Path(env) if env else image_root(url) / "audit.json"
