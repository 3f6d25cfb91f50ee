"""Settings read from the environment (nothing is read at import time)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SQLITE_PATH = Path("coilmap.sqlite")


def database_url() -> str:
    """The shared coil model's URL: ``COILMAP_DATABASE_URL`` or an embedded SQLite file.

    >>> import os; os.environ["COILMAP_DATABASE_URL"] = "sqlite://"; database_url()
    'sqlite://'
    >>> del os.environ["COILMAP_DATABASE_URL"]; database_url().startswith("sqlite:///")
    True
    """
    url = os.environ.get("COILMAP_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def shared_data_dir() -> Path:
    """Where the real defect images live (``COILMAP_SHARED_DATA`` or ``../shared/data``)."""
    env = os.environ.get("COILMAP_SHARED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    return here.parent / "shared" / "data"
