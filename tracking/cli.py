"""``coilmap track ...`` and ``coilmap coil ...``.

``track map`` needs no database; ``track import`` and ``coil map`` (in ``cli_store.py``) use the
shared coil model.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from tracking.cli_store import COIL_COMMANDS, TRACK_COMMANDS


@click.group()
def track() -> None:
    """Tracking events: store them, or map defects through them."""


@click.group()
def coil() -> None:
    """A coil's central map: every station's observations in one frame."""


@track.command("map")
@click.option(
    "--events",
    "events_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Tracking events (JSON Lines).",
)
@click.option(
    "--defects",
    "defects_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV: defect_id,piece,side,x_mm,y_mm[,w_mm,h_mm] (w along, h across the strip).",
)
@click.option("--to", "to_piece", required=True, help="The piece whose frame to map into.")
def map_cmd(events_path: Path, defects_path: Path, to_piece: str) -> None:
    """Map defects into one piece's frame (no database). Prints CSV
    defect_id,x_mm,y_mm,side,status (status kept or removed:<op>)."""
    from tracking.defect_table import map_defects, read_defects
    from tracking.events import read_events
    from tracking.genealogy import Genealogy

    g = Genealogy.from_operations(read_events(events_path))
    table = read_defects(defects_path)
    rows = map_defects(g, table, to_piece, source=str(defects_path))
    fields = ["defect_id", "x_mm", "y_mm", "side", "status"] + (["w_mm", "h_mm"] if table.has_size else [])
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


for _command in TRACK_COMMANDS:
    track.add_command(_command)
for _command in COIL_COMMANDS:
    coil.add_command(_command)
