"""``coilmap demo``: the main job on the demo plant, end to end.

Simulate the plant (tracking events and every station's exports), migrate a fresh coil model,
ingest every line once (detection on frame stations, vendor tables read as they are, positions
re-registered through the reference marks), fuse upstream evidence where a fused model exists,
measure everything against the plant's ground truth, print the central coil map of one final
coil, and say how to open the dashboard on the result.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from coilmap.errors import CoilmapError


def _say(title: str) -> None:
    click.echo(f"\n== {title}")


@click.command()
@click.option(
    "--size",
    type=click.Choice(["small", "default"]),
    default="default",
    show_default=True,
    help="small: seconds; default: about 20 hot coils, 5 lines, 6 stations.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("coilmap-demo"),
    show_default=True,
    help="Where the plant, the images and the demo database go.",
)
@click.option(
    "--url", default=None, help="Database for the demo (default: a fresh SQLite file in the work folder)."
)
@click.option(
    "--coil", default=None, help="Final coil whose map to print (default: the one with most defects)."
)
def demo(size: str, seed: int, workdir: Path, url: str | None, coil: str | None) -> None:
    """Run the whole pipeline on the simulated demo plant and print what it found."""
    from coilmap import migrate
    from coilmap.db import make_engine, session_factory
    from ingestion.config import config_from_plant, to_toml
    from ingestion.plant import ingest_plant
    from plant.db_mapping import final_pieces, mapped_observations
    from plant.evaluate import evaluate
    from plant.run import simulate_to
    from plant.truth import read_truth
    from tracking.cli_store import summary_text
    from tracking.coil_map import build_coil_map

    t_start = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    plant_dir = workdir / "plant"
    image_root = workdir / "images"

    _say(f"1/5 simulating the {size} plant (seed {seed}) into {plant_dir}")
    t = time.perf_counter()
    counts = simulate_to(plant_dir, size=size, seed=seed)
    click.echo(
        f"{counts['hot_coils']} hot coils -> {counts['final_pieces']} final pieces through "
        f"{counts['events']} tracking events; {counts['observations']} station observations "
        f"({counts['physical_defects']} physical defects), {counts['images']} images "
        f"[{time.perf_counter() - t:.0f} s]"
    )

    _say("2/5 the coil model")
    if url is None:
        db_file = workdir / "coilmap.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)  # the demo's own database: start fresh
        url = f"sqlite:///{db_file.resolve()}"
    migrate.upgrade(url)
    engine = make_engine(url)
    click.echo(f"{engine.url.render_as_string(hide_password=True)} at revision {migrate.current(url)}")

    _say("3/5 ingesting every line once (detection on frame stations, vendor tables as exported)")
    t = time.perf_counter()
    cfg = config_from_plant(plant_dir, image_root=image_root)
    config_file = workdir / "coilmap-ingest.toml"
    config_file.write_text(to_toml(cfg), encoding="utf-8")
    summary = ingest_plant(cfg, engine=engine)
    click.echo(summary.text())
    click.echo(
        f"[{time.perf_counter() - t:.0f} s]; the scheduler runs the same jobs: "
        f"coilmap scheduler --config {config_file} --db {url}"
    )

    _say("4/5 fusion: upstream evidence for every observation (coilmap fuse apply)")
    from fusion.model_file import load

    if cfg.fused_model is not None:
        from sqlalchemy import func, select

        from coilmap import models as m

        model = load(cfg.fused_model)
        with session_factory(engine)() as s:
            n_fused = s.scalar(select(func.count()).select_from(m.FusionResult))
        click.echo(
            f"the ingestion jobs stored a fused decision for {n_fused} observations with {model.version}, "
            f"trained on {model.manifest.get('trained_on', '?')}"
        )
    else:
        click.echo("no fused model in fusion/default_models: classes are the stations' own")

    _say("5/5 compared with the plant's ground truth (coilmap eval plant)")
    table = mapped_observations(engine)
    report = evaluate(table, read_truth(plant_dir))
    click.echo(report.text())

    _say("the central coil map")
    if coil is None:
        per_leaf = table.groupby("final_piece").size() if len(table) else None
        coil = str(per_leaf.idxmax()) if per_leaf is not None and len(per_leaf) else final_pieces(engine)[0]
    with session_factory(engine)() as s:
        cmap = build_coil_map(coil, session=s)
    if cmap.observations.empty and not final_pieces(engine):
        raise CoilmapError("the demo plant produced no final coils")
    click.echo(summary_text(cmap, cmap.observations, limit=15))

    click.echo(
        f"\nDemo finished in {time.perf_counter() - t_start:.0f} s. Open the dashboard on it:\n"
        f"  coilmap dashboard --url {url} --image-root {image_root}\n"
        f"  then browse http://localhost:8501"
    )
    engine.dispose()
