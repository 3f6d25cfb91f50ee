"""Evidence features for every observation in the coil model (the shell around
:mod:`fusion.evidence`: SQL in, arrays out).

For each piece that carries observations, its central coil map (every observation of it and
of its ancestors, mapped into its frame) gives the targets (the piece's own observations) and
the upstream (its ancestors'). Stations that inspected an ancestor are known from their mark
sightings even where they saw no defect, so persistence counts the stations that could have
seen a defect, not only those that did. The group of an observation for coil-grouped
validation is the hot coil its material came from (its position mapped back to the roots).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from coilmap import models as m
from coilmap.db import session_factory
from fusion.evidence import FUSION_CLASSES, MatchTolerance, evidence, feature_names, prob_columns
from fusion.roll_marks import find_roll_marks
from tracking.coil_map import build_coil_map
from tracking.genealogy import Genealogy

# Periodic-series search on the coil map (fast settings: a flag for the classifier, not a report).
ROLL_SEARCH = {"n_null": 19, "alpha": 0.05, "min_members": 5}
MAX_GROUP_FOR_ROLLS = 3000
ID_CHUNK = 10_000


@dataclass
class FeatureTable:
    observation_id: np.ndarray
    source_key: np.ndarray
    station: np.ndarray
    piece: np.ndarray
    group: np.ndarray  # root hot coil
    features: np.ndarray
    names: list[str]
    used: list[list[dict]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.observation_id)


def own_probabilities(
    plant_class: Sequence[object], confidence: Sequence[float], classes=FUSION_CLASSES
) -> np.ndarray:
    """A class-probability vector from a label and its confidence (the confidence on the
    label, the rest spread evenly); unknown labels and missing labels are uniform."""
    n, c = len(plant_class), len(classes)
    out = np.full((n, c), 1.0 / c)
    index = {k: i for i, k in enumerate(classes)}
    for r, (label, conf) in enumerate(zip(plant_class, confidence, strict=True)):
        i = index.get(label) if isinstance(label, str) else None
        if i is None:
            continue
        p = 0.9 if conf is None or not np.isfinite(conf) else float(np.clip(conf, 1.0 / c, 1.0))
        out[r] = (1.0 - p) / (c - 1)
        out[r, i] = p
    return out


def pieces_with_observations(engine: Engine) -> list[str]:
    with session_factory(engine)() as s:
        keys = select(m.Observation.piece_id).distinct()
        return list(
            s.scalars(select(m.Piece.piece_id).where(m.Piece.id.in_(keys)).order_by(m.Piece.piece_id))
        )


def _inspecting_stations(s, g: Genealogy, piece: str, keys: dict[str, int]) -> list[tuple[str, bool]]:  # type: ignore[no-untyped-def]
    """(station, surface in this piece's terms) of every station that inspected an ancestor."""
    anc = [a for a in g.ancestors(piece) if a in keys]
    if not anc:
        return []
    rows = s.execute(
        select(m.Piece.piece_id, m.Station.code, m.Station.side)
        .join(m.MarkSighting, m.MarkSighting.piece_id == m.Piece.id)
        .join(m.Station, m.Station.id == m.MarkSighting.station_id)
        .where(m.Piece.id.in_([keys[a] for a in anc]))
        .distinct()
    ).all()
    out = set()
    for anc_piece, code, side in rows:
        flips = g.path_map(anc_piece, piece).flips_side
        out.add((code, (side == "top") != flips))
    return sorted(out)


def _periodic(frame: pd.DataFrame, g: Genealogy, piece: str) -> np.ndarray:
    """Observations (all kept ones on the piece) that belong to a periodic series."""
    flag = np.zeros(len(frame), dtype=bool)
    for _, grp in frame.groupby(["is_top", "plant_class"], dropna=True):
        if not ROLL_SEARCH["min_members"] <= len(grp) <= MAX_GROUP_FOR_ROLLS:
            continue
        x, y = grp["x_mm"].to_numpy(), grp["y_mm"].to_numpy()
        for _frame, series in find_roll_marks(x, y, g, piece, **ROLL_SEARCH):
            members = np.concatenate([series.members, series.also_seen]).astype(int)
            flag[frame.index.get_indexer(grp.index[members])] = True
    return flag


def build_features(
    engine: Engine,
    *,
    grades: Sequence[str] | None = None,
    tolerance: MatchTolerance | None = None,
    pieces: Sequence[str] | None = None,
) -> tuple[FeatureTable, list[str]]:
    """Features of every observation (or of those on ``pieces``); returns the table and the
    grade list used for one-hot columns (pass the training grades when applying a model)."""
    pcols = prob_columns()
    parts, used = [], []
    with session_factory(engine)() as s:
        keys = dict(s.execute(select(m.Piece.piece_id, m.Piece.id)).all())
        grade_of = dict(s.execute(select(m.Piece.piece_id, m.Piece.grade)).all())
        if grades is None:
            grades = sorted({g for g in grade_of.values() if g})
        for piece in pieces or pieces_with_observations(engine):
            cmap = build_coil_map(piece, session=s)
            obs = cmap.observations
            if obs.empty:
                continue
            g = cmap.genealogy
            frame = obs.assign(is_top=obs["side"] == "top", kept=obs["status"] == "kept").reset_index(
                drop=True
            )
            probs = own_probabilities(
                frame["plant_class"].tolist(), frame["station_confidence"].to_numpy(float)
            )
            frame = pd.concat([frame, pd.DataFrame(probs, columns=pcols)], axis=1)
            mine = frame["source_piece"] == piece
            targets = frame[mine].copy()
            upstream = frame[~mine]
            targets["grade"] = grade_of.get(piece) or ""
            targets["periodic"] = _periodic_for(frame, g, piece, mine)
            ev = evidence(
                targets.rename(columns={"observation_id": "obs_id"}),
                upstream.rename(columns={"observation_id": "obs_id"}),
                length_mm=cmap.length_mm,
                marks_x_mm=np.array([k.x_mm for k in g.marks(piece)]),
                upstream_stations=_inspecting_stations(s, g, piece, keys),
                grades=grades,
                tolerance=tolerance,
            )
            parts.append(
                pd.DataFrame(
                    {
                        "observation_id": targets["observation_id"].to_numpy(),
                        "station": targets["station"].to_numpy(),
                        "piece": piece,
                        "group": _root_coils(g, piece, targets),
                    }
                ).join(pd.DataFrame(ev.features, columns=ev.names))
            )
            used.extend(ev.used)
        names = feature_names(grades)
        if not parts:
            empty = np.zeros(0)
            return FeatureTable(empty, empty, empty, empty, empty, np.zeros((0, len(names))), names), list(
                grades
            )
        table = pd.concat(parts, ignore_index=True)
        ids = table["observation_id"].to_numpy()
        src: dict[int, str] = {}
        # In chunks: one run may fuse a million observations, over the drivers' parameter limit.
        for k in range(0, len(ids), ID_CHUNK):
            chunk = ids[k : k + ID_CHUNK].tolist()
            src.update(
                s.execute(
                    select(m.Observation.id, m.Observation.source_key).where(m.Observation.id.in_(chunk))
                ).all()
            )
    return (
        FeatureTable(
            ids,
            np.array([src[i] for i in ids], dtype=object),
            table["station"].to_numpy(dtype=object),
            table["piece"].to_numpy(dtype=object),
            table["group"].to_numpy(dtype=object),
            table[names].to_numpy(dtype=np.float64),
            names,
            used,
        ),
        list(grades),
    )


def _periodic_for(frame: pd.DataFrame, g: Genealogy, piece: str, mine: pd.Series) -> np.ndarray:
    kept = frame[frame["kept"]]
    flags = pd.Series(_periodic(kept, g, piece), index=kept.index)
    return flags.reindex(frame.index[mine], fill_value=False).to_numpy()


def _root_coils(g: Genealogy, piece: str, targets: pd.DataFrame) -> np.ndarray:
    """The hot coil each observation's material came from (its position mapped back)."""
    roots = [r for r in g.roots() if r == piece or r in g.ancestors(piece)]
    out = np.full(len(targets), piece, dtype=object)
    x, y = targets["x_mm"].to_numpy(float), targets["y_mm"].to_numpy(float)
    top = targets["is_top"].to_numpy(bool)
    for r in roots:
        if r == piece:
            continue
        back = g.map_points(piece, r, x, y, top)
        out[back.kept] = r
    return out
