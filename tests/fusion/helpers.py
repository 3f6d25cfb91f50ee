"""Labelled image tables with metadata, made up for the data-tool tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")


def coil_table(*, n_coils: int = 60, per_coil: int = 8, seed: int = 0) -> pd.DataFrame:
    """Each coil shows one class (the confounding the audit must catch), has one grade and
    one production time; grades do not depend on the class."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    for c in range(n_coils):
        label = CLASSES[c % len(CLASSES)]
        grade = ["S235JR", "S355MC", "DC04"][int(rng.integers(3))]
        when = t0 + pd.Timedelta(days=float(rng.uniform(0, 180)))
        for i in range(per_coil):
            rows.append(
                {
                    "path": f"img/{c}_{i}.png",
                    "label": label,
                    "coil": f"H{c:04d}",
                    "grade": grade,
                    "line": "CAL" if i % 2 else "PL",
                    "station": "CAL-T" if i % 2 else "PL-T",
                    "time": (when + pd.Timedelta(minutes=i)).isoformat(),
                }
            )
    return pd.DataFrame(rows)
