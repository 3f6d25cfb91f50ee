"""One simulated plant run, in memory (no files): the route plus what every station saw.

:func:`simulate_plant` runs the lines (:mod:`plant.lines`) and then each inspection station over
the pieces it inspects (:mod:`plant.stations`). Every random draw comes from a generator seeded
by ``(seed, component, index)``, so the same seed gives the same plant, and a station's draws
do not depend on how many defects another component drew.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coilmap.errors import InputError
from plant.crops import Catalogue
from plant.defects import CATALOGUE_COLUMNS
from plant.lines import SPEED_MM_S, Route, run_plant
from plant.params import PlantParams, StationSpec, validate
from plant.stations import (
    Encoder,
    concat_columns,
    edge_sightings,
    mark_sightings,
    piece_encoder,
    pseudo_sightings,
    real_sightings,
    station_scale_error,
    vendor_labels,
)


@dataclass
class StationRun:
    """What one station saw: marks, edges and defect sightings of every piece it inspected."""

    spec: StationSpec
    pieces: list[str]
    encoders: dict[str, Encoder]
    marks: pd.DataFrame  # piece, mark_id, x_true_mm, x_obs_mm, time_s
    edges: pd.DataFrame  # piece, x_obs_mm, os_edge_mm, ds_edge_mm
    sightings: pd.DataFrame  # one row per real defect on its surface (seen or missed) or pseudo


@dataclass
class PlantRun:
    params: PlantParams
    seed: int
    route: Route
    catalogue: pd.DataFrame  # one row per physical defect (CATALOGUE_COLUMNS)
    stations: list[StationRun]


def simulate_plant(p: PlantParams, seed: int, cat: Catalogue) -> PlantRun:
    """The whole plant and its stations for one seed."""
    validate(p)
    if seed < 0:
        raise InputError(f"the seed must be a non-negative integer, got {seed}", field="seed")
    route = run_plant(p, cat, seed)
    catalogue = pd.DataFrame(route.book.rows, columns=list(CATALOGUE_COLUMNS))
    stations = [_station(p, seed, si, spec, route, catalogue)
                for si, spec in enumerate(p.stations)]
    return PlantRun(p, seed, route, catalogue, stations)


def _station(p: PlantParams, seed: int, si: int, spec: StationSpec, route: Route,
             catalogue: pd.DataFrame) -> StationRun:
    rng = np.random.default_rng([seed, 1000 + si])
    scale_err, calib_err = station_scale_error(rng, spec)
    pieces = route.stage.get((spec.line, spec.stage), [])
    speed = SPEED_MM_S[spec.line]
    encoders: dict[str, Encoder] = {}
    marks, edges, sights = [], [], []
    for pi, pid in enumerate(pieces):
        prng = np.random.default_rng([seed, 1000 + si, pi])
        piece = route.ledger.pieces[pid]
        enc = piece_encoder(prng, spec, scale_err, calib_err)
        encoders[pid] = enc
        t0 = route.start_s[pid]
        m = mark_sightings(prng, enc, piece)
        m["piece"] = np.full(len(m["x_obs_mm"]), pid, dtype=object)
        m["time_s"] = t0 + m["x_true_mm"] / speed
        marks.append(m)
        e = edge_sightings(prng, enc, piece, p.edge_sample_mm)
        e["piece"] = np.full(len(e["x_obs_mm"]), pid, dtype=object)
        edges.append(e)
        s = concat_columns([real_sightings(prng, spec, enc, piece),
                            pseudo_sightings(prng, spec, enc, piece, p.pseudo_rate_scale)])
        order = np.lexsort((s["y_obs_mm"], s["x_obs_mm"]))
        s = {k: v[order] for k, v in s.items()}
        s["piece"] = np.full(len(order), pid, dtype=object)
        s["time_s"] = np.round(t0 + s["x_true_mm"] / speed, 3)
        sights.append(s)
    marks_df = pd.DataFrame(concat_columns(marks))[["piece", "mark_id", "x_true_mm", "x_obs_mm",
                                                    "time_s"]]
    edges_df = pd.DataFrame(concat_columns(edges))[["piece", "x_obs_mm", "os_edge_mm",
                                                    "ds_edge_mm"]]
    sightings = pd.DataFrame(concat_columns(sights))
    sightings = sightings[["piece", *[c for c in sightings.columns if c != "piece"]]]
    cls_of = dict(zip(catalogue["defect_id"], catalogue["true_class"], strict=True))
    sightings["true_class"] = [
        cls_of[int(d)] if k == "real" else pc
        for d, k, pc in zip(sightings["defect_id"], sightings["kind"],
                            sightings["pseudo_class"], strict=True)
    ]
    sightings = sightings.drop(columns="pseudo_class")
    sightings.insert(0, "station", spec.name)
    sightings.insert(2, "side", spec.side)
    # The station's running defect number (what a vendor calls its defect id).
    seen = sightings["seen"].to_numpy()
    obs_no = np.zeros(len(sightings), dtype=np.int64)
    obs_no[seen] = np.arange(1, int(seen.sum()) + 1)
    sightings.insert(1, "obs_no", obs_no)
    if spec.export != "frames":
        lrng = np.random.default_rng([seed, 2000 + si])
        labels, conf = vendor_labels(lrng, spec.vendor, sightings["true_class"].to_numpy(),
                                     spec.class_accuracy)
        sightings["vendor_class"] = np.where(seen, labels, "")
        sightings["confidence"] = np.where(seen, conf, np.nan)
    return StationRun(spec, list(pieces), encoders, marks_df, edges_df, sightings)


def truth_positions(route: Route) -> pd.DataFrame:
    """Every physical defect's true position in every piece that holds it."""
    rows = []
    for pid, st in route.ledger.pieces.items():
        d = st.defects
        if not len(d):
            continue
        rows.append(pd.DataFrame({
            "defect_id": d.defect_id, "piece": pid, "side": np.where(d.top, "top", "bottom"),
            "x_mm": np.round(d.x_mm, 3), "y_mm": np.round(d.y_mm, 3),
            "x0_mm": np.round(d.x0_mm, 3), "x1_mm": np.round(d.x1_mm, 3),
            "y0_mm": np.round(d.y0_mm, 3), "y1_mm": np.round(d.y1_mm, 3),
            "clipped": d.clipped, "final": not st.consumed,
        }))
    return pd.concat(rows, ignore_index=True)
