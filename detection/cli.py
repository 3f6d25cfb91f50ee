"""``coilmap detect ...``: the classifier and anomaly-scorer commands.

The commands themselves live in ``detection/cli_classify.py`` and ``detection/cli_anomaly.py``;
this group only gathers them.
"""

from __future__ import annotations

import importlib

import click


@click.group()
def detect() -> None:
    """Tile, score, localise and classify defect images."""


for _module in ("detection.cli_classify", "detection.cli_anomaly"):
    try:
        _mod = importlib.import_module(_module)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise
        continue
    for _command in getattr(_mod, "COMMANDS", ()):
        detect.add_command(_command)
