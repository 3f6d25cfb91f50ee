"""``coilmap ingest ...`` and ``coilmap scheduler``.

The database is ``--db``, else ``COILMAP_DATABASE_URL``, else the configuration's
``database_url``, else the embedded SQLite file. The configuration is ``--config``, else
``COILMAP_INGEST_CONFIG``, else ``coilmap-ingest.toml`` in the working directory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click
from sqlalchemy import Engine, select

from coilmap.errors import CoilmapError, InputError

DEFAULT_CONFIG = "coilmap-ingest.toml"

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help=f"plant configuration (TOML; default $COILMAP_INGEST_CONFIG or {DEFAULT_CONFIG})",
)
_db_option = click.option("--db", "db_url", default=None, help="database URL (default $COILMAP_DATABASE_URL)")


def _config(path: Path | None):  # type: ignore[no-untyped-def]
    from ingestion.config import load_config

    path = path or Path(os.environ.get("COILMAP_INGEST_CONFIG", DEFAULT_CONFIG))
    return load_config(path)


def _engine(db_url: str | None, cfg=None) -> Engine:  # type: ignore[no-untyped-def]
    from coilmap import migrate
    from coilmap.db import make_engine

    url = db_url or os.environ.get("COILMAP_DATABASE_URL") or (cfg.database_url if cfg else None)
    engine = make_engine(url)
    current, head = migrate.current(str(engine.url.render_as_string(hide_password=False))), migrate.head()
    if current != head:
        engine.dispose()
        raise CoilmapError(
            f"the database is at revision {current or 'base (empty)'}, the code needs {head}: "
            "run `coilmap db upgrade` first"
        )
    return engine


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group(invoke_without_command=True)
@click.option("--line", "lines", multiple=True, help="run this line's stations (repeatable)")
@click.option("--station", "stations", multiple=True, help="run only this station (repeatable)")
@click.option(
    "--once", is_flag=True, help="run each job once and exit (default: keep running on its interval)"
)
@_config_option
@_db_option
@click.option("-v", "--verbose", is_flag=True)
@click.pass_context
def ingest(
    ctx: click.Context,
    lines: tuple[str, ...],
    stations: tuple[str, ...],
    once: bool,
    config_path: Path | None,
    db_url: str | None,
    verbose: bool,
) -> None:
    """Ingest stations' exports into the coil model: ``coilmap ingest --line PL --once``."""
    if ctx.invoked_subcommand is not None:
        return
    if not lines and not stations:
        click.echo(ctx.get_help())
        raise click.UsageError("give --line (or --station), or a sub-command")
    _logging(verbose)
    cfg = _config(config_path)
    chosen = [cfg.station(s) for s in stations] + [s for line in lines for s in cfg.line_stations(line)]
    engine = _engine(db_url, cfg)
    try:
        if not once:
            from ingestion.scheduler import run_scheduler

            run_scheduler(cfg, engine=engine, lines=list(lines), stations=list(stations))
            return
        from ingestion.job import import_events_files, run_station

        ev = import_events_files(cfg, engine=engine)
        click.echo(f"events: {len(ev.imported)} imported, {len(ev.skipped)} already in")
        for e in ev.errors:
            click.echo(f"events error: {e}", err=True)
        failed = False
        for code in dict.fromkeys(st.code for st in chosen):
            summary = run_station(cfg, code, engine=engine)
            click.echo(summary.line())
            failed |= summary.status != "ok"
        if failed:
            raise SystemExit(1)
    finally:
        engine.dispose()


@click.command()
@click.option("--line", "lines", multiple=True, help="only these lines' jobs (default: all)")
@click.option("--run-for", "run_for_s", type=float, default=None, help="stop after this many seconds")
@_config_option
@_db_option
@click.option("-v", "--verbose", is_flag=True)
def scheduler(
    lines: tuple[str, ...],
    run_for_s: float | None,
    config_path: Path | None,
    db_url: str | None,
    verbose: bool,
) -> None:
    """Run every configured line's ingestion jobs on their intervals until stopped."""
    from ingestion.scheduler import run_scheduler

    _logging(True if verbose else False)
    logging.getLogger("coilmap.ingestion").setLevel(logging.INFO)
    cfg = _config(config_path)
    engine = _engine(db_url, cfg)
    try:
        run_scheduler(cfg, engine=engine, lines=list(lines) or None, run_for_s=run_for_s)
    finally:
        engine.dispose()


@ingest.command("config")
@click.option(
    "--from-plant",
    "plant_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="a simulated plant folder (coilmap simulate --out)",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path(DEFAULT_CONFIG), show_default=True)
@click.option(
    "--image-root", type=click.Path(path_type=Path), default=None, help="image store (default PLANT/images)"
)
@click.option("--interval-s", type=float, default=60.0, show_default=True)
def config_cmd(plant_dir: Path, out: Path, image_root: Path | None, interval_s: float) -> None:
    """Write the ingestion configuration of a simulated plant folder."""
    from ingestion.config import config_from_plant, load_config, to_toml

    cfg = config_from_plant(plant_dir, image_root=image_root, interval_s=interval_s)
    out.write_text(to_toml(cfg), encoding="utf-8")
    load_config(out)  # what was written reads back
    click.echo(f"wrote {out}: {len(cfg.lines)} lines, {len(cfg.stations)} stations")


@ingest.command("status")
@click.option("--runs", "n_runs", type=int, default=10, show_default=True, help="latest runs to list")
@_config_option
@_db_option
def status_cmd(n_runs: int, config_path: Path | None, db_url: str | None) -> None:
    """Per station: the last run, the backlog, what waits and what was quarantined."""
    from ingestion.status import status_text

    cfg = None
    try:
        cfg = _config(config_path)
    except InputError:
        if config_path is not None:
            raise
    engine = _engine(db_url, cfg)
    try:
        click.echo(status_text(engine, n_runs=n_runs))
    finally:
        engine.dispose()


@ingest.command("quarantine")
@click.option("--station", default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@_config_option
@_db_option
def quarantine_cmd(station: str | None, limit: int, config_path: Path | None, db_url: str | None) -> None:
    """The latest quarantined records with their reasons."""
    from ingestion.status import quarantine_text

    engine = _engine(db_url)
    try:
        click.echo(quarantine_text(engine, station=station, limit=limit))
    finally:
        engine.dispose()


@ingest.command("requeue")
@click.option("--station", required=True)
@click.option(
    "--path", "paths", multiple=True, help="only these export files (relative to the station folder)"
)
@_db_option
def requeue_cmd(station: str, paths: tuple[str, ...], db_url: str | None) -> None:
    """Process a station's quarantined files again (after fixing a model or the input)."""
    from sqlalchemy import update

    from coilmap import models as m
    from coilmap.db import transaction

    engine = _engine(db_url)
    try:
        with transaction(engine) as s:
            sid = s.scalar(select(m.Station.id).where(m.Station.code == station))
            if sid is None:
                raise InputError(f"no station {station!r} in the coil model")
            stmt = update(m.IngestionFile).where(
                m.IngestionFile.station_id == sid, m.IngestionFile.state == "quarantined"
            )
            if paths:
                stmt = stmt.where(m.IngestionFile.path.in_(list(paths)))
            n = s.execute(stmt.values(state="new", attempts=0, next_try_at=None)).rowcount
        click.echo(f"{n} files of {station} queued again")
    finally:
        engine.dispose()
