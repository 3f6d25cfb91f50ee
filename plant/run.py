"""The simulator's entry point for code: simulate a plant of a size and write it to a folder."""

from __future__ import annotations

from pathlib import Path

from coilmap.config import shared_data_dir
from plant.crops import CropLibrary, load_catalogue
from plant.params import override, plant_params, validate
from plant.simulate import simulate_plant
from plant.writer import write_plant


def simulate_to(out_dir: Path, *, size: str = "default", seed: int = 0,
                images: bool | None = None, data_dir: Path | None = None,
                overrides: list[str] | None = None) -> dict[str, int]:
    """Simulate the plant of ``size`` with ``seed`` into ``out_dir``; returns counts.

    ``images`` None takes the size's default (frames and ROI images for small and default,
    none for large). ``data_dir`` is the shared data folder (``COILMAP_SHARED_DATA``).
    ``overrides`` are ``name=value`` changes of the size's parameters (:func:`override`).
    """
    p = validate(override(plant_params(size), overrides or []))
    neu = (data_dir or shared_data_dir()) / "neu_det"
    cat = load_catalogue(neu)
    run = simulate_plant(p, seed, cat)
    want_images = p.images if images is None else images
    return write_plant(run, Path(out_dir), CropLibrary(neu) if want_images else None)
