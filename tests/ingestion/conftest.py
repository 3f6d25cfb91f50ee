"""Session fixtures: one small simulated plant (with images) and one tiny fitted detector."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingestion.helpers import tiny_detector


@pytest.fixture(scope="session")
def plant_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``coilmap simulate --size small --seed 1`` (read-only for the tests: copy what you change)."""
    from plant.run import simulate_to

    out = tmp_path_factory.mktemp("plant") / "small"
    simulate_to(out, size="small", seed=1)
    return out


@pytest.fixture(scope="session")
def detector(plant_src: Path):  # type: ignore[no-untyped-def]
    return tiny_detector(plant_src / "stations" / "HSM-T" / "frames")
