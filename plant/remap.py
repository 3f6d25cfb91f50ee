"""Mapping every station observation of a plant folder to the final pieces, without the truth.

This is the measurement behind the acceptance figure of the simulator issue: using only what
the lines hand over (the tracking events, each station's mark sightings and strip edges, and
each station's reported positions), re-register each station's encoder frame through the
reference marks (:class:`tracking.registration.MarkRegistration`), remove lateral wander with
the edges (:func:`tracking.registration.lateral_true_y`), and map the positions through the
genealogy to the final pieces. Frame stations report positions as a perfect detector would (the
``x_obs_mm`` / ``y_obs_mm`` of ``truth/observations.csv``: the station's own encoder and camera
readings, not the true positions); table stations' positions are read from their exports.
The result goes into :func:`plant.evaluate.evaluate`.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from coilmap.datasplit import PSEUDO
from coilmap.errors import InputError
from plant.evaluate import Truth
from plant.params import PSEUDO_CLASSES
from plant.stations import VENDOR_CLASSES
from tracking.events import read_events
from tracking.genealogy import Genealogy
from tracking.registration import MarkRegistration, lateral_true_y


def station_observations(plant_dir: Path) -> pd.DataFrame:
    """Every station's observations in its own frame: ``station, obs_key, piece, x_obs_mm,
    y_obs_mm, side``, read from the exports (frame stations: from the truth's readings)."""
    parts = []
    truth_obs = pd.read_csv(plant_dir / "truth" / "observations.csv")
    for sdir in sorted((plant_dir / "stations").iterdir()):
        meta = json.loads((sdir / "station.json").read_text(encoding="utf-8"))
        st = meta["station"]
        if meta["export"] == "csv_table":
            t = pd.read_csv(sdir / "defects.csv", sep=";")
            df = pd.DataFrame({"obs_key": st + ":" + t["DefectNo"].astype(str),
                               "piece": t["CoilId"], "x_obs_mm": t["MdPos_mm"],
                               "y_obs_mm": t["CdPos_mm"]})
        elif meta["export"] == "sqlite_table":
            con = sqlite3.connect(f"file:{sdir / 'inspex.sqlite'}?mode=ro", uri=True)
            try:
                t = pd.read_sql_query("SELECT id, coil, pos_md_m, pos_cd_mm FROM defects", con)
            finally:
                con.close()
            df = pd.DataFrame({"obs_key": st + ":" + t["id"].astype(str), "piece": t["coil"],
                               "x_obs_mm": t["pos_md_m"] * 1000.0, "y_obs_mm": t["pos_cd_mm"]})
        else:
            t = truth_obs[(truth_obs["station"] == st) & truth_obs["seen"]]
            df = t[["obs_key", "piece", "x_obs_mm", "y_obs_mm"]].copy()
        df.insert(0, "station", st)
        df["side"] = meta["side"]
        df["y_axis_toward"] = meta["y_axis_toward"]
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def map_to_final(plant_dir: Path, g: Genealogy | None = None) -> pd.DataFrame:
    """Every station observation on the final pieces: ``station, obs_key, final_piece, x_mm,
    y_mm, side`` (observations on material that was cut away are left out)."""
    if g is None:
        g = Genealogy.from_operations(read_events(plant_dir / "events.jsonl"))
    obs = station_observations(plant_dir)
    leaves = set(g.leaves())
    out = []
    tables: dict[Path, pd.DataFrame] = {}
    for (st, piece), o in obs.groupby(["station", "piece"], sort=True):
        sdir = plant_dir / "stations" / st
        marks = _station_table(tables, sdir / "marks.csv")
        edges = _station_table(tables, sdir / "edges.csv")
        seen = marks[marks["piece"] == piece]
        true = {m.mark_id: m.x_mm for m in g.marks(piece)}
        seen = seen[seen["mark_id"].isin(list(true))]
        if seen.empty:
            raise InputError(f"station {st} saw no reference mark of piece {piece}",
                             source=str(sdir / "marks.csv"))
        reg = MarkRegistration(seen["x_obs_mm"].to_numpy(),
                               np.array([true[k] for k in seen["mark_id"]]))
        x = reg.true_x(o["x_obs_mm"].to_numpy())
        e = edges[edges["piece"] == piece]
        sign = -1.0 if o["y_axis_toward"].iloc[0] == "ds" else 1.0
        y = lateral_true_y(x, sign * o["y_obs_mm"].to_numpy(),
                           edge_x_mm=reg.true_x(e["x_obs_mm"].to_numpy()),
                           edge_os_obs_mm=sign * e["os_edge_mm"].to_numpy(),
                           edge_ds_obs_mm=sign * e["ds_edge_mm"].to_numpy(),
                           width_mm=g.pieces[piece].width_mm)
        is_top = np.full(len(o), o["side"].iloc[0] == "top")
        targets = [piece] if piece in leaves else [d for d in g.descendants(piece) if d in leaves]
        for leaf in targets:
            mp = g.map_points(piece, leaf, x, y, is_top) if leaf != piece else None
            kept = mp.kept if mp is not None else np.ones(len(o), dtype=bool)
            if not kept.any():
                continue
            out.append(pd.DataFrame({
                "station": st, "obs_key": o["obs_key"].to_numpy()[kept], "final_piece": leaf,
                "x_mm": (mp.x_mm if mp is not None else x)[kept],
                "y_mm": (mp.y_mm if mp is not None else y)[kept],
                "side": np.where((mp.is_top if mp is not None else is_top)[kept], "top",
                                 "bottom"),
            }))
    return pd.concat(out, ignore_index=True)


def _station_table(tables: dict[Path, pd.DataFrame], path: Path) -> pd.DataFrame:
    if path not in tables:
        if not path.is_file():
            raise InputError("station file missing", source=str(path))
        tables[path] = pd.read_csv(path)
    return tables[path]


def vendor_to_plant(vendor: str, label: str) -> str:
    """A vendor's class name as a plant class (``pseudo`` for dirt, oil and water).

    >>> vendor_to_plant("SurfSpec", "Sliver/Inclusion"), vendor_to_plant("InspeX", "WAT")
    ('inclusion', 'pseudo')
    """
    for cls, name in VENDOR_CLASSES[vendor].items():
        if name == label:
            return PSEUDO if cls in PSEUDO_CLASSES else cls
    raise InputError(f"unknown {vendor} class {label!r}", field="class")


def reference_mapping(plant_dir: Path, truth: Truth) -> pd.DataFrame:
    """:func:`map_to_final` with the vendors' classes as plant classes (none for frame
    stations): the figures the stations' own exports allow before any detection runs."""
    m = map_to_final(plant_dir)
    obs = truth.observations
    seen = obs[obs["seen"].astype(bool)].set_index("obs_key")
    labels = seen["vendor_class"].reindex(m["obs_key"]).fillna("").to_numpy()
    vendors = {}
    for sdir in (plant_dir / "stations").iterdir():
        meta = json.loads((sdir / "station.json").read_text(encoding="utf-8"))
        vendors[meta["station"]] = meta["vendor"] if meta["export"] != "frames" else None
    m["plant_class"] = [vendor_to_plant(vendors[st], lab) if vendors.get(st) and lab else ""
                        for st, lab in zip(m["station"], labels, strict=True)]
    return m
