"""``coilmap detect ...``: the classifier and anomaly-scorer commands.

The commands themselves live in ``detection/cli_classify.py``, ``detection/cli_anomaly.py``,
``detection/cli_ensemble.py``, ``detection/cli_segmenter_ensemble.py``,
``detection/cli_classifier_ensemble.py``, ``detection/cli_compare.py`` and
``detection/cli_stacked.py``; this group only
gathers them.
"""

from __future__ import annotations

import click

from coilmap.cli import add_module_commands


@click.group()
def detect() -> None:
    """Tile, score, localise and classify defect images."""


add_module_commands(
    detect,
    ("detection.cli_classify", "detection.cli_anomaly", "detection.cli_ensemble",
     "detection.cli_segmenter_ensemble", "detection.cli_classifier_ensemble", "detection.cli_compare",
     "detection.cli_stacked"),
)
