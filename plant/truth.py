"""Reading a plant folder's ground truth (``truth/``), for evaluation only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from coilmap.datasplit import PSEUDO
from coilmap.errors import InputError
from plant.evaluate import Truth


def reviewed_label(kind: str, true_class: str) -> str:
    """What a reviewer calls a sighting the truth records as ``kind`` (``real``/``pseudo``):
    a real defect's class, else ``pseudo``.

    >>> reviewed_label("real", "scratches"), reviewed_label("pseudo", "oil")
    ('scratches', 'pseudo')
    """
    return str(true_class) if kind == "real" else PSEUDO


def read_truth(plant_dir: Path) -> Truth:
    """The truth tables of a simulator output folder; :class:`InputError` if it is not one."""
    tdir = Path(plant_dir) / "truth"
    files = {"observations": "observations.csv", "positions": "positions.csv",
             "frame_boxes": "frame_boxes.csv"}
    tables = {}
    for name, file in files.items():
        path = tdir / file
        if not path.is_file():
            raise InputError("not a simulated plant folder: ground-truth file missing",
                             source=str(path))
        tables[name] = pd.read_csv(path, keep_default_na=False,
                                   na_values={"confidence": [""]} if name == "observations"
                                   else None)
    return Truth(**tables)
