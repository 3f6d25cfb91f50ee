"""Entry points that use the shared coil model: ``coilmap track import`` and ``coilmap coil map``.

``tracking/cli.py`` adds :data:`TRACK_COMMANDS` to the ``track`` group and :data:`COIL_COMMANDS`
to the ``coil`` group.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pandas as pd
from sqlalchemy.exc import IntegrityError

from coilmap.db import make_engine, session_factory, transaction
from coilmap.db_cli import database_errors
from coilmap.errors import CoilmapError
from tracking.coil_map import COLUMNS

url_option = click.option(
    "--url",
    default=None,
    help="SQLAlchemy URL of the coil model (default: COILMAP_DATABASE_URL or the SQLite file).",
)

# What the CSV of a coil map holds: the coil map's columns less those for programs (the
# source frame's position and side, the polygon).
CSV_COLUMNS = tuple(
    c for c in COLUMNS if c not in ("source_side", "source_x_mm", "source_y_mm", "geometry_wkt")
)


def _require_head(url: str | None) -> None:
    from coilmap import migrate

    with database_errors(url):
        at, head = migrate.current(url), migrate.head()
    if at != head:
        raise CoilmapError(
            f"the coil model is at revision {at or 'base (empty)'}, not {head}: "
            "run `coilmap db upgrade` first"
        )


@click.command("import")
@click.argument("events_file", type=click.Path(dir_okay=False, path_type=Path))
@url_option
def import_events_cmd(events_file: Path, url: str | None) -> None:
    """Store the tracking events of EVENTS_FILE (JSON Lines) in the coil model.

    The file is one transaction: after any error nothing of it is stored, and the error names
    the line and the field.
    """
    from coilmap.files import file_sha256
    from tracking.events import read_events
    from tracking.store import import_events

    ops = read_events(events_file)
    _require_head(url)
    engine = make_engine(url)
    try:
        with database_errors(url), transaction(engine) as session:
            summary = import_events(
                ops, session=session, source=str(events_file), sha256=file_sha256(events_file)
            )
    except IntegrityError as exc:
        # Only a concurrent writer gets here (everything else is checked first).
        first = str(exc.orig).splitlines()[0]
        raise CoilmapError(
            f"{events_file}: nothing stored: another import stored the same ids meanwhile ({first})"
        ) from None
    finally:
        engine.dispose()
    click.echo(
        f"{events_file}: stored {summary.n_operations} operations, {summary.n_pieces} new "
        f"pieces, {summary.n_edges} genealogy edges, {summary.n_marks} reference marks "
        f"(import {summary.import_id})"
    )


@click.command("map")
@click.argument("piece")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "text"]),
    default="csv",
    show_default=True,
    help="csv: one row per observation; text: a summary and the kept defects along the piece.",
)
@click.option("--kept-only", is_flag=True, help="Leave out observations on removed material.")
@click.option("--side", type=click.Choice(["top", "bottom"]), default=None, help="One surface.")
@click.option("--limit", type=int, default=50, show_default=True, help="Rows in the text table.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@url_option
def coil_map_cmd(
    piece: str,
    fmt: str,
    kept_only: bool,
    side: str | None,
    limit: int,
    output: Path | None,
    url: str | None,
) -> None:
    """Print the central coil map of PIECE: every observation of every station on the piece
    and on all its ancestors, in the piece's frame (mm), kept or removed."""
    from tracking.coil_map import build_coil_map

    engine = make_engine(url)
    try:
        with database_errors(url), session_factory(engine)() as session:
            cmap = build_coil_map(piece, session=session, with_images=fmt == "csv")
    finally:
        engine.dispose()
    frame = cmap.observations
    if kept_only:
        frame = frame[frame["status"] == "kept"]
    if side:
        frame = frame[frame["side"] == side]
    text = (
        frame.to_csv(columns=list(CSV_COLUMNS), index=False, float_format="%.3f")
        if fmt == "csv"
        else summary_text(cmap, frame, limit=limit)
    )
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{output}: {len(frame)} observations of {piece}", err=True)


def summary_text(cmap, frame: pd.DataFrame, *, limit: int = 50) -> str:  # type: ignore[no-untyped-def]
    """What a quality engineer asks first: which coil, where it came from, how many defects
    of which class each station saw on it, what was cut away, and the defects along it."""
    g = cmap.genealogy
    piece = g.pieces[cmap.piece_id]
    lines = [
        f"coil map of {cmap.piece_id}: {cmap.length_mm:.0f} mm x {cmap.width_mm:.0f} mm"
        + (f", grade {piece.grade}" if piece.grade else "")
        + (f", thickness {piece.thickness_mm:.3f} mm" if piece.thickness_mm else "")
        + (f", line {piece.line}" if piece.line else ""),
        "ancestors (nearest first): " + (", ".join(g.ancestors(cmap.piece_id)) or "-"),
        "reference marks: " + (", ".join(f"{k.mark_id}@{k.x_mm:.0f}" for k in g.marks(cmap.piece_id)) or "-"),
        "",
    ]
    if frame.empty:
        lines.append("no observations")
        return "\n".join(lines) + "\n"
    kept = frame[frame["status"] == "kept"]
    lines.append(f"observations: {len(frame)} ({len(kept)} on the piece, {len(frame) - len(kept)} removed)")
    by_station = (
        frame.assign(kept=frame["status"] == "kept")
        .groupby(["station", "source_piece"], dropna=False)["kept"]
        .agg(kept="sum", total="size")
        .reset_index()
    )
    lines.append("per station (seen on):")
    for row in by_station.itertuples(index=False):
        lines.append(
            f"  {row.station:<16} {row.source_piece:<16} "
            f"kept {int(row.kept):>7}  removed {int(row.total - row.kept):>7}"
        )
    classes = (
        kept.fillna({"plant_class": "(unclassified)"})
        .groupby(["plant_class", "side"])
        .size()
        .unstack(fill_value=0)
    )
    lines.append("kept defects per class and side:")
    for cls, counts in classes.iterrows():
        lines.append(f"  {cls:<20} " + "  ".join(f"{s} {int(counts[s]):>6}" for s in classes.columns))
    removed = frame[frame["status"] != "kept"]
    if not removed.empty:
        lines.append("removed by:")
        for (status, at), count in removed.groupby(["status", "removed_at"]).size().items():
            lines.append(f"  {status} of {at}: {count}")
    lines.append("")
    lines.append(f"kept defects along the piece (first {min(limit, len(kept))} of {len(kept)}):")
    shown = ["x_mm", "y_mm", "side", "plant_class", "station", "source_piece"]
    shown += ["station_confidence", "anomaly_score"]
    table = kept.head(limit)[shown].rename(
        columns={"station_confidence": "confidence", "anomaly_score": "anomaly"}
    )
    one_decimal = {c: "{:.1f}".format for c in ("x_mm", "y_mm")}
    three = {c: "{:.3f}".format for c in ("confidence", "anomaly")}
    lines.append(table.to_string(index=False, formatters={**one_decimal, **three}, na_rep="-"))
    return "\n".join(lines) + "\n"


TRACK_COMMANDS = [import_events_cmd]
COIL_COMMANDS = [coil_map_cmd]
