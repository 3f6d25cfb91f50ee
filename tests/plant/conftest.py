"""One small simulated plant (with images), shared by the plant tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from plant.run import simulate_to

SEED = 3


@pytest.fixture(scope="session")
def small_seed() -> int:
    return SEED


@pytest.fixture(scope="session")
def small_plant(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("plant") / "small"
    simulate_to(out, size="small", seed=SEED, data_dir=shared_data)
    return out


@pytest.fixture(scope="session")
def genealogy(small_plant: Path):  # type: ignore[no-untyped-def]
    from tracking.events import read_events
    from tracking.genealogy import Genealogy

    return Genealogy.from_operations(read_events(small_plant / "events.jsonl"))
