"""Upstream evidence for one observation: what earlier stations saw at the same spot.

Pure core (numpy/pandas, no I/O). Input: the observations of one piece in its own frame (the
*targets*) and the observations of all its ancestors mapped into the same frame (the
*upstream*; :func:`tracking.coil_map.build_coil_map` produces both). A target matches an
upstream observation on the same surface when the two lie within a tolerance that grows with
the distance to the nearest reference mark (DOMAIN.md: re-registration is exact at marks and
drifts between them).

Features per target (names in :func:`feature_names`):

- ``own_<c>``: the target's own class probabilities (image classifier or vendor label);
- ``up_<c>``: upstream class probabilities, weighted by closeness (1 at the same spot, 0 at
  the tolerance) and normalised by the total weight;
- ``up_weight``, ``up_stations`` (distinct stations that saw it), ``up_persistence`` (the
  share of upstream stations inspecting this surface that saw it), ``up_nearest`` (distance
  to the nearest match over the tolerance; 2 when none);
- ``coil_<c>_per_m``: the coil's upstream observations of each class per metre;
- ``periodic``: the target belongs to a periodic (roll-mark) series;
- ``grade=<g>``: the steel grade, one-hot over the grades seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from coilmap.datasplit import NEU_CLASSES, PSEUDO

FUSION_CLASSES: tuple[str, ...] = (*NEU_CLASSES, PSEUDO)
NO_MATCH = 2.0


def prob_columns(classes: Sequence[str] = FUSION_CLASSES) -> list[str]:
    return [f"p_{c}" for c in classes]


@dataclass(frozen=True)
class MatchTolerance:
    """``base_x_mm`` at a reference mark, growing by ``per_m_x_mm`` per metre of distance to the
    nearest mark; ``y_mm`` across the strip."""

    base_x_mm: float = 60.0
    per_m_x_mm: float = 0.3
    y_mm: float = 40.0

    def x_mm(self, x: np.ndarray, marks_x_mm: np.ndarray) -> np.ndarray:
        marks = np.sort(np.asarray(marks_x_mm, dtype=np.float64))
        if marks.size == 0:
            return np.full(np.shape(x), self.base_x_mm + self.per_m_x_mm * 1000.0)
        idx = np.clip(np.searchsorted(marks, x), 1, max(marks.size - 1, 1))
        left = marks[np.clip(idx - 1, 0, marks.size - 1)]
        right = marks[np.clip(idx, 0, marks.size - 1)]
        dist = np.minimum(np.abs(x - left), np.abs(x - right))
        return self.base_x_mm + self.per_m_x_mm * dist / 1000.0


@dataclass
class Evidence:
    """Features of each target and the upstream observations each one used."""

    features: np.ndarray
    names: list[str]
    used: list[list[dict]] = field(default_factory=list)


def feature_names(grades: Sequence[str], classes: Sequence[str] = FUSION_CLASSES) -> list[str]:
    return (
        [f"own_{c}" for c in classes]
        + [f"up_{c}" for c in classes]
        + ["up_weight", "up_stations", "up_persistence", "up_nearest"]
        + [f"coil_{c}_per_m" for c in classes]
        + ["periodic"]
        + [f"grade={g}" for g in grades]
    )


def evidence(
    targets: pd.DataFrame,
    upstream: pd.DataFrame,
    *,
    length_mm: float,
    marks_x_mm: np.ndarray,
    upstream_stations: Sequence[tuple[str, bool]],
    grades: Sequence[str],
    tolerance: MatchTolerance | None = None,
    classes: Sequence[str] = FUSION_CLASSES,
) -> Evidence:
    """Features for every target (one piece's observations, in its frame).

    ``targets`` and ``upstream`` need ``obs_id, station, x_mm, y_mm, is_top`` and the
    ``p_<class>`` columns; ``upstream`` also ``kept`` (material that survived to this piece)
    and ``targets`` optionally ``grade`` and ``periodic``. ``upstream_stations`` lists
    ``(station, is_top)`` of every upstream station that inspected this material (in this
    piece's surface terms), so persistence counts the stations that could have seen it."""
    tol = tolerance or MatchTolerance()
    pcols = prob_columns(classes)
    n, c = len(targets), len(classes)
    # An empty frame may come without columns: give it the ones read here, so every column
    # below is read the same way whether there are rows or not.
    targets = _with_columns(targets, ["x_mm", "y_mm", "is_top", *pcols])
    upstream = _with_columns(upstream, ["obs_id", "station", "x_mm", "y_mm", "is_top", "kept", *pcols])
    own = targets[pcols].to_numpy(dtype=np.float64)
    up = upstream[upstream["kept"].astype(bool)]
    order = np.argsort(up["x_mm"].to_numpy(dtype=np.float64), kind="stable")
    up = up.iloc[order]
    ux = up["x_mm"].to_numpy(dtype=np.float64)
    uy = up["y_mm"].to_numpy(dtype=np.float64)
    utop = up["is_top"].to_numpy(dtype=bool)
    uprob = up[pcols].to_numpy(dtype=np.float64)
    ust = up["station"].to_numpy(dtype=object)
    uid = up["obs_id"].to_numpy(dtype=object)
    upiece = (
        up["source_piece"].astype(object).to_numpy() if "source_piece" in up else np.full(len(up), "", object)
    )

    tx = targets["x_mm"].to_numpy(dtype=np.float64)
    ty = targets["y_mm"].to_numpy(dtype=np.float64)
    ttop = targets["is_top"].to_numpy(dtype=bool)
    tolx = tol.x_mm(tx, marks_x_mm)
    lo = np.searchsorted(ux, tx - tolx, side="left")
    hi = np.searchsorted(ux, tx + tolx, side="right")

    up_probs = np.zeros((n, c))
    up_weight = np.zeros(n)
    up_stations = np.zeros(n)
    persistence = np.zeros(n)
    nearest = np.full(n, NO_MATCH)
    covering = {
        True: {s for s, t in upstream_stations if t},
        False: {s for s, t in upstream_stations if not t},
    }
    used: list[list[dict]] = []
    for i in range(n):
        sl = slice(lo[i], hi[i])
        dx = ux[sl] - tx[i]
        dy = uy[sl] - ty[i]
        ok = (utop[sl] == ttop[i]) & (np.abs(dy) <= tol.y_mm)
        rows = []
        if ok.any():
            # Normalised distance: 0 at the same spot, 1 at the tolerance in either direction.
            d = np.hypot(dx[ok] / tolx[i], dy[ok] / tol.y_mm)
            w = np.clip(1.0 - d, 0.0, 1.0)
            keep = w > 0
            if keep.any():
                w = w[keep]
                probs = uprob[sl][ok][keep]
                stations = ust[sl][ok][keep]
                ids = uid[sl][ok][keep]
                pieces = upiece[sl][ok][keep]
                up_probs[i] = (w[:, None] * probs).sum(axis=0) / w.sum()
                up_weight[i] = w.sum()
                distinct = set(stations.tolist())
                up_stations[i] = len(distinct)
                cover = covering[bool(ttop[i])] | distinct
                persistence[i] = len(distinct) / max(len(cover), 1)
                nearest[i] = float(d[keep].min())
                for j in range(w.size):
                    k = int(np.argmax(probs[j]))
                    jdx, jdy = float(dx[ok][keep][j]), float(dy[ok][keep][j])
                    rows.append(
                        {
                            "observation_id": _plain(ids[j]),
                            "station": str(stations[j]),
                            "piece": str(pieces[j]),
                            "dx_mm": round(jdx, 1),
                            "dy_mm": round(jdy, 1),
                            "distance_mm": round(float(np.hypot(jdx, jdy)), 1),
                            "weight": round(float(w[j]), 3),
                            "class": classes[k],
                            "probability": round(float(probs[j, k]), 3),
                        }
                    )
        used.append(rows)

    # Coil-level: what upstream stations saw on this material, per metre and class.
    coil_rates = np.zeros(c)
    if len(up):
        counts = np.bincount(np.argmax(uprob, axis=1), minlength=c)
        coil_rates = counts / max(length_mm / 1000.0, 1e-9)
    periodic = targets["periodic"].to_numpy(dtype=np.float64) if "periodic" in targets else np.zeros(n)
    grade_col = targets["grade"].astype(str).to_numpy() if "grade" in targets else np.full(n, "")
    grade_onehot = np.array([[g == gg for gg in grades] for g in grade_col], dtype=np.float64).reshape(
        n, len(grades)
    )
    feats = np.column_stack(
        [
            own,
            up_probs,
            up_weight,
            up_stations,
            persistence,
            nearest,
            np.broadcast_to(coil_rates, (n, c)),
            periodic,
            grade_onehot,
        ]
    )
    return Evidence(feats, feature_names(grades, classes), used)


def _with_columns(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """An empty frame with (at least) these columns; a frame with rows is returned as it is."""
    if len(frame):
        return frame
    return frame.assign(**{name: pd.Series(dtype=object) for name in names if name not in frame})


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v
