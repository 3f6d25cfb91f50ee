"""Reviewed labels for the demo plant's observations, from its ground truth.

In a plant, labels come from operators reviewing defects; on the demo plant the ground truth
plays that part. Each stored observation links to the record it came from (a vendor row, or a
detection in a frame) and takes that record's true class: a real defect's class, ``pseudo``
for dirt, oil and water, and ``pseudo`` too for a detection that hits no true defect (not a
defect at all). Used to train and evaluate the fused classifier, never by the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, select

from coilmap import models as m
from coilmap.db import session_factory
from plant.db_mapping import _with_links
from plant.evaluate import link
from plant.truth import PSEUDO, read_truth, reviewed_label


def truth_labels(plant_dir: Path, engine: Engine) -> pd.DataFrame:
    """``source_key, label`` for every observation in the database."""
    truth = read_truth(plant_dir)
    with session_factory(engine)() as s:
        rows = s.execute(
            select(m.Observation.id, m.Observation.source_key, m.Station.code).join(
                m.Station, m.Station.id == m.Observation.station_id
            )
        ).all()
    if not rows:
        return pd.DataFrame(columns=["source_key", "label"])
    table = pd.DataFrame(rows, columns=["observation_id", "source_key", "station"])
    keys = dict(zip(table["observation_id"], table["source_key"], strict=True))
    linked = _with_links(table[["observation_id", "station"]], keys)
    truth_key = link(linked, truth)
    obs = truth.observations.set_index("obs_key")
    labels = []
    for k in truth_key:
        if not k or k not in obs.index:
            labels.append(PSEUDO)
            continue
        rec = obs.loc[k]
        labels.append(reviewed_label(rec["kind"], rec["true_class"]))
    return pd.DataFrame({"source_key": table["source_key"], "label": labels})
