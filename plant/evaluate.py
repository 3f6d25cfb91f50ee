"""Evaluating what the pipeline made of the demo plant against its ground truth (pure).

Input: the pipeline's observations, mapped to the final pieces, as a DataFrame with columns

- ``station``: the station name (``"PL-T"``);
- ``final_piece``, ``x_mm``, ``y_mm``, ``side``: where the pipeline put the observation on a
  final piece (``side`` ``top``/``bottom`` of that piece);
- ``plant_class``: the pipeline's plant class (one of the six NEU classes, or any other label
  for "not a defect", e.g. ``pseudo``; empty when it did not classify: left out of accuracy);
- which export record it came from, either ``obs_key`` (``"<station>:<DefectNo>"`` for vendor
  tables: ``DefectNo`` of ``defects.csv`` or ``id`` of ``inspex.sqlite``) or ``frame`` (the
  image file name) with ``row_px`` and ``col_px`` (the detection's centre in that image);
- optionally ``group``: the fused physical-defect id the pipeline gave it.

and the ground truth of the plant folder (``truth/observations.csv``, ``truth/positions.csv``,
``truth/frame_boxes.csv``). :func:`evaluate` returns per-station figures and the share of
physical defects matched across stations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coilmap.datasplit import NEU_CLASSES
from coilmap.errors import InputError

REQUIRED = ("station", "final_piece", "x_mm", "y_mm", "side", "plant_class")
FRAME_MARGIN_PX = 8.0  # a detection centre this close to a true box still hits it


@dataclass(frozen=True)
class Truth:
    observations: pd.DataFrame  # truth/observations.csv
    positions: pd.DataFrame  # truth/positions.csv
    frame_boxes: pd.DataFrame  # truth/frame_boxes.csv


@dataclass(frozen=True)
class Report:
    stations: pd.DataFrame  # one row per station
    matched_share: float  # physical defects seen at >= 2 stations that the pipeline matched
    n_multi_station: int  # how many such defects there were
    linked: pd.DataFrame  # the pipeline rows with their truth link and errors

    def text(self) -> str:
        cols = ["station", "n_pipeline", "n_claims", "n_real_visible", "recall", "precision",
                "class_accuracy", "n_positioned", "median_dx_mm", "p95_dx_mm", "median_dy_mm",
                "p95_dy_mm", "misplaced"]
        table = self.stations[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")
        return (f"{table}\nphysical defects seen at >= 2 stations: {self.n_multi_station}, "
                f"matched across stations: {self.matched_share:.3f}")


def check_columns(mapped: pd.DataFrame, source: str = "mapped observations") -> None:
    missing = [c for c in REQUIRED if c not in mapped.columns]
    if missing:
        raise InputError(f"missing columns {missing}", source=source)
    if "obs_key" not in mapped.columns and not {"frame", "row_px", "col_px"} <= set(mapped):
        raise InputError("need obs_key or frame, row_px and col_px to link to the truth",
                         source=source)


def link(mapped: pd.DataFrame, truth: Truth) -> pd.Series:
    """The truth ``obs_key`` each pipeline row came from ('' when it hits nothing)."""
    keys = np.full(len(mapped), "", dtype=object)
    seen = truth.observations[truth.observations["seen"].astype(bool)]
    known = set(seen["obs_key"].astype(str))
    if "obs_key" in mapped.columns:
        k = mapped["obs_key"].fillna("").astype(str).to_numpy()
        keys = np.where(np.isin(k, list(known)), k, keys)
    if "frame" in mapped.columns:
        boxes = truth.frame_boxes
        by_frame = {f: g for f, g in boxes.groupby(["station", "frame"])}
        for i, (st, fr, r, c) in enumerate(zip(mapped["station"], mapped["frame"],
                                               mapped["row_px"], mapped["col_px"], strict=True)):
            if keys[i] or not isinstance(fr, str) or (st, fr) not in by_frame:
                continue
            g = by_frame[(st, fr)]
            m = FRAME_MARGIN_PX
            hit = ((g["r0"] - m <= r) & (r <= g["r1"] + m) & (g["c0"] - m <= c)
                   & (c <= g["c1"] + m)).to_numpy()
            if hit.any():
                gh = g[hit]
                d = ((gh["r0"] + gh["r1"]) / 2 - r) ** 2 + ((gh["c0"] + gh["c1"]) / 2 - c) ** 2
                keys[i] = gh["obs_key"].to_numpy()[int(np.argmin(d.to_numpy()))]
    return pd.Series(keys, index=mapped.index, name="truth_key")


def _q(v: pd.Series, q: float) -> float:
    return float(np.quantile(v, q)) if len(v) else float("nan")


def evaluate(mapped: pd.DataFrame, truth: Truth, *, match_dx_mm: float = 100.0,
             match_dy_mm: float = 50.0) -> Report:
    """Position error, detection recall and precision, class accuracy per station, and the
    share of multi-station physical defects whose observations the pipeline brought together
    (same ``group`` when given, else same final piece within ``match_dx_mm`` x
    ``match_dy_mm``)."""
    check_columns(mapped)
    obs = truth.observations.copy()
    obs["obs_key"] = obs["obs_key"].fillna("").astype(str)
    m = mapped.reset_index(drop=True).copy()
    m["truth_key"] = link(m, truth)
    info = obs[obs["obs_key"] != ""].set_index("obs_key")
    linked = m["truth_key"] != ""
    m["kind"] = np.where(linked, info["kind"].reindex(m["truth_key"]).fillna("").to_numpy(), "")
    m["defect_id"] = np.where(linked, info["defect_id"].reindex(m["truth_key"]).fillna(-1)
                              .to_numpy(), -1).astype(np.int64)
    m["true_class"] = np.where(linked, info["true_class"].reindex(m["truth_key"]).fillna("")
                               .to_numpy(), "")
    pos = truth.positions[truth.positions["final"].astype(bool)]
    pos = pos.set_index(["defect_id", "piece"])[["x_mm", "y_mm", "side"]]
    idx = pd.MultiIndex.from_arrays([m["defect_id"], m["final_piece"].astype(str)])
    true = pos.reindex(idx)
    real = (m["kind"] == "real").to_numpy()
    placed = real & true["x_mm"].notna().to_numpy() & (true["side"].to_numpy() == m["side"])
    m["dx_mm"] = np.where(placed, np.abs(m["x_mm"].to_numpy() - true["x_mm"].to_numpy()), np.nan)
    m["dy_mm"] = np.where(placed, np.abs(m["y_mm"].to_numpy() - true["y_mm"].to_numpy()), np.nan)
    rows = []
    # A row the pipeline labelled as no defect (a class outside the plant's list, e.g.
    # "pseudo") is not a claim: it counts for neither recall nor precision.
    label = m["plant_class"].fillna("").astype(str)
    m["claim"] = (label == "") | label.isin(NEU_CLASSES)
    for st in sorted(set(obs["station"]) | set(m["station"])):
        ms = m[(m["station"] == st) & m["claim"]]
        ts = obs[(obs["station"] == st) & (obs["kind"] == "real")]
        real_keys = set(ms.loc[ms["kind"] == "real", "truth_key"])
        hits = ms[ms["kind"] == "real"]
        labelled = hits[hits["plant_class"].fillna("").astype(str) != ""]
        # Position errors of every row linked to a real defect, classified or not.
        every = m[m["station"] == st]
        dx, dy = every["dx_mm"].dropna(), every["dy_mm"].dropna()
        rows.append({
            "station": st, "n_pipeline": int((m["station"] == st).sum()), "n_claims": len(ms),
            "n_real_visible": len(ts),
            "recall": len(real_keys) / len(ts) if len(ts) else float("nan"),
            "precision": float((ms["kind"] == "real").mean()) if len(ms) else float("nan"),
            "class_accuracy": (float((labelled["plant_class"] == labelled["true_class"]).mean())
                               if len(labelled) else float("nan")),
            "n_positioned": len(dx), "median_dx_mm": _q(dx, 0.5), "p95_dx_mm": _q(dx, 0.95),
            "median_dy_mm": _q(dy, 0.5), "p95_dy_mm": _q(dy, 0.95),
            "misplaced": int((every["kind"] == "real").sum() - len(dx)),
        })
    share, n_multi = _matched_share(m, obs, pos, match_dx_mm, match_dy_mm)
    return Report(pd.DataFrame(rows), share, n_multi, m)


def _matched_share(m: pd.DataFrame, obs: pd.DataFrame, pos: pd.DataFrame, dx_tol: float,
                   dy_tol: float) -> tuple[float, int]:
    seen_real = obs[(obs["kind"] == "real") & obs["seen"].astype(bool)]
    n_st = seen_real.groupby("defect_id")["station"].nunique()
    final_ids = set(pos.index.get_level_values(0))
    multi = [int(d) for d in n_st[n_st >= 2].index if int(d) in final_ids]
    if not multi:
        return float("nan"), 0
    rows = m[m["defect_id"].isin(multi)]
    ok = 0
    for _, g in rows.groupby("defect_id"):
        if g["station"].nunique() < 2:
            continue
        if "group" in g.columns:
            ok += int(g["group"].nunique() == 1 and g["group"].notna().all())
            continue
        if g["final_piece"].nunique() != 1 or g["side"].nunique() != 1:
            continue
        span_x = g["x_mm"].max() - g["x_mm"].min()
        span_y = g["y_mm"].max() - g["y_mm"].min()
        ok += int(span_x <= dx_tol and span_y <= dy_tol)
    return ok / len(multi), len(multi)
