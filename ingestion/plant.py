"""One-shot ingestion of a whole plant: what ``coilmap demo`` calls.

Use: ``ingest_plant("/tmp/plant", engine=make_engine(url))`` (events, then every station once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ingestion.config import PlantConfig, config_from_plant, load_config
from ingestion.job import EventsSummary, RunSummary, import_events_files, run_station


@dataclass
class PlantSummary:
    events: EventsSummary
    runs: list[RunSummary] = field(default_factory=list)

    @property
    def n_observations(self) -> int:
        return sum(r.counts.n_observations for r in self.runs)

    @property
    def n_quarantined(self) -> int:
        return sum(r.counts.n_quarantined for r in self.runs)

    def text(self) -> str:
        lines = [f"events: {len(self.events.imported)} imported, {len(self.events.skipped)} already in"]
        lines += [f"events error: {e}" for e in self.events.errors]
        lines += [r.line() for r in self.runs]
        return "\n".join(lines)


def resolve_config(plant: str | Path | PlantConfig, image_root: str | Path | None = None) -> PlantConfig:
    """A configuration from a plant folder (``plant.json``), a TOML file or as given."""
    if isinstance(plant, PlantConfig):
        return plant
    path = Path(plant)
    if path.is_dir():
        return config_from_plant(path, image_root=image_root)
    return load_config(path)


def ingest_plant(
    plant: str | Path | PlantConfig,
    *,
    engine: Engine,
    detector: Any = None,
    image_root: str | Path | None = None,
    lines: list[str] | None = None,
) -> PlantSummary:
    """Import the tracking events, then run every station's job once (all its due batches).

    ``plant``: a simulated plant folder (its configuration is derived), a configuration file
    or a :class:`PlantConfig`. ``detector``: the frame detector (default: the configured or
    default model files). The database must be migrated (``coilmap db upgrade``).
    """
    cfg = resolve_config(plant, image_root)
    summary = PlantSummary(import_events_files(cfg, engine=engine))
    for st in cfg.stations:
        if lines and st.line not in lines:
            continue
        summary.runs.append(run_station(cfg, st, engine=engine, detector=detector))
    return summary
