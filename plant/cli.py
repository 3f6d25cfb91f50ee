"""``coilmap simulate`` and ``coilmap eval plant``: the demo plant's thin command-line shell."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import click
import pandas as pd

from coilmap.errors import InputError
from plant.params import SIZES


@click.command()
@click.option("--size", type=click.Choice(SIZES), default="default", show_default=True,
              help="small: seconds, for tests; default: the demo; large: benchmarks.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Output folder (created; an earlier plant there is replaced).")
@click.option("--images/--no-images", default=None,
              help="Write frame and ROI images (default: yes, except for --size large).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Shared data folder (default: COILMAP_SHARED_DATA).")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Change a plant parameter (plant/params.py), e.g. n_hot_coils=8 or "
                   "pl_crop_mm=1000,2500. Repeatable.")
def simulate(size: str, seed: int, out_dir: Path, images: bool | None,
             data_dir: Path | None, overrides: tuple[str, ...]) -> None:
    """Simulate the demo plant: tracking events, station exports and ground truth."""
    from plant.run import simulate_to

    t0 = time.perf_counter()
    counts = simulate_to(out_dir, size=size, seed=seed, images=images, data_dir=data_dir,
                         overrides=list(overrides))
    per_station = ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in counts.items()
                            if k.startswith("observations:"))
    click.echo(f"plant {size} seed {seed} -> {out_dir} in {time.perf_counter() - t0:.1f} s: "
               f"{counts['hot_coils']} hot coils, {counts['pieces']} pieces, "
               f"{counts['final_pieces']} final, {counts['events']} events, "
               f"{counts['physical_defects']} physical defects, {counts['observations']} "
               f"observations ({per_station}), {counts['images']} images")


@click.group("eval")
def eval_group() -> None:
    """Evaluate the pipeline against a simulated plant's ground truth."""


@eval_group.command("plant")
@click.argument("plant_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--mapped", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of observations mapped to final pieces (columns: docs/plant.md).")
@click.option("--reference", is_flag=True,
              help="Instead of --mapped: map the stations' own reported positions through the "
                   "events and mark sightings (no detection, vendor classes taken as read).")
@click.option("--url", default=None,
              help="Coil model to evaluate (default: COILMAP_DATABASE_URL or the SQLite file).")
@click.option("--fusion", is_flag=True,
              help="Also the fusion gain: image-only against fused classification per station, "
                   "coil-grouped cross-validation on the truth labels (takes minutes).")
def eval_plant(plant_dir: Path, mapped: Path | None, reference: bool, url: str | None,
               fusion: bool) -> None:
    """Compare what the coil model holds (or --mapped, or --reference) with the plant's
    ground truth."""
    from plant.evaluate import evaluate
    from plant.truth import read_truth

    truth = read_truth(plant_dir)
    if reference:
        from plant.remap import reference_mapping

        table = reference_mapping(plant_dir, truth)
    elif mapped is not None:
        if not mapped.is_file():
            raise InputError("no such file", source=str(mapped))
        try:
            table = pd.read_csv(mapped)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"not a readable CSV ({exc})", source=str(mapped)) from exc
    else:
        from coilmap.db import make_engine
        from plant.db_mapping import mapped_observations

        table = mapped_observations(make_engine(url))
    click.echo(evaluate(table, truth).text())
    if fusion:
        from coilmap.db import make_engine
        from fusion.cli_fused import gain_from_db
        from plant.labels import truth_labels

        engine = make_engine(url)
        click.echo("\nfusion gain (coil-grouped cross-validation, labels from the plant's truth):")
        click.echo(gain_from_db(engine, truth_labels(plant_dir, engine)).text())


@eval_group.command("labels")
@click.argument("plant_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--url", default=None, help="Coil model (default: COILMAP_DATABASE_URL or the SQLite file).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def eval_labels(plant_dir: Path, url: str | None, out_path: Path) -> None:
    """Reviewed labels (source_key,label) of the stored observations, from the plant's truth
    (for training and evaluating the fused classifier)."""
    from coilmap.db import make_engine
    from plant.labels import truth_labels

    labels = truth_labels(plant_dir, make_engine(url))
    labels.to_csv(out_path, index=False)
    click.echo(f"{len(labels)} labels -> {out_path}: "
               + ", ".join(f"{k} {v}" for k, v in labels["label"].value_counts().items()))


def _material_options(out_help: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The arguments both training-material commands take: the plant, --out, --station."""

    def wrap(f: Callable[..., None]) -> Callable[..., None]:
        f = click.option("--station", "stations", multiple=True,
                         help="Only this frame station (repeatable; default: every frame station).")(f)
        f = click.option("--out", "out_dir", required=True,
                         type=click.Path(file_okay=False, path_type=Path), help=out_help)(f)
        return click.argument("plant_dir",
                              type=click.Path(exists=True, file_okay=False, path_type=Path))(f)

    return wrap


def _say_counts(what: str, out_dir: Path, counts: dict[str, int]) -> None:
    click.echo(f"{sum(counts.values())} {what} -> {out_dir}: "
               + ", ".join(f"{k} {v}" for k, v in counts.items()))


@eval_group.command("normal-frames")
@_material_options("Folder for the frames (created): <station>__<frame>.png.")
def eval_normal_frames(plant_dir: Path, out_dir: Path, stations: tuple[str, ...]) -> None:
    """Copy the frames on which the plant's truth draws nothing (no defect, no pseudo-defect):
    the defect-free frames a station's anomaly scorer trains on (`coilmap detect train-anomaly
    --normal OUT`). Use a plant of another seed than the one you measure."""
    from plant.training_material import copy_normal_frames

    _say_counts("defect-free frames", out_dir, copy_normal_frames(plant_dir, out_dir, stations))


@eval_group.command("labelled-crops")
@_material_options("Folder for the crops (created): OUT/<class>/<station>__<frame>__<n>.png.")
def eval_labelled_crops(plant_dir: Path, out_dir: Path, stations: tuple[str, ...]) -> None:
    """Cut every defect and pseudo-defect the plant's truth draws in its frames out, with the
    frame detector's margin, into a folder per class (the six plant classes and `pseudo`): the
    labelled crops a frame station's classifier trains on (`coilmap detect train-classifier
    --data OUT`). Use a plant of another seed than the one you measure."""
    from plant.training_material import copy_labelled_crops

    _say_counts("labelled crops", out_dir, copy_labelled_crops(plant_dir, out_dir, stations))
