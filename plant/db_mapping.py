"""What the coil model holds, mapped to the final pieces, in the form the plant evaluation
reads (:func:`plant.evaluate.evaluate`): the database side of ``coilmap eval plant``.

Every observation of every final piece's ancestry comes through the same central coil map the
dashboard draws (:func:`tracking.coil_map.build_coil_map`), so the evaluation measures what
users see. Observations link back to the ground truth by their source keys: a vendor row is
``<station>:<record no>`` (the truth's ``obs_key``); a frame detection is
``<station>:<frame stem>:<n>@<row px>,<col px>`` (frame and detection centre).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sqlalchemy import Engine, inspect, select

from coilmap import models as m
from coilmap.db import session_factory
from tracking.coil_map import build_coil_map

_FRAME_KEY = re.compile(
    r"^(?P<station>[^:]+):(?P<stem>[^:]+):(?P<n>\d+)@(?P<row>-?[\d.]+),(?P<col>-?[\d.]+)$"
)


def final_pieces(engine: Engine) -> list[str]:
    """Pieces no operation consumed, that carry observations in their ancestry."""
    with session_factory(engine)() as s:
        parents = select(m.GenealogyEdge.parent_id)
        return list(
            s.scalars(select(m.Piece.piece_id).where(m.Piece.id.not_in(parents)).order_by(m.Piece.piece_id))
        )


def mapped_observations(engine: Engine, *, use_fused: bool = True) -> pd.DataFrame:
    """One row per (observation, final piece it survives on)."""
    parts = []
    with session_factory(engine)() as s:
        for leaf in final_pieces(engine):
            obs = build_coil_map(leaf, session=s).observations
            kept = obs[obs["status"] == "kept"]
            if kept.empty:
                continue
            parts.append(
                pd.DataFrame(
                    {
                        "observation_id": kept["observation_id"].to_numpy(),
                        "station": kept["station"].to_numpy(),
                        "final_piece": leaf,
                        "x_mm": kept["x_mm"].to_numpy(),
                        "y_mm": kept["y_mm"].to_numpy(),
                        "side": kept["side"].to_numpy(),
                        "plant_class": kept["plant_class"].fillna("").to_numpy(),
                    }
                )
            )
        if not parts:
            return pd.DataFrame(
                columns=["station", "final_piece", "x_mm", "y_mm", "side", "plant_class", "obs_key"]
            )
        table = pd.concat(parts, ignore_index=True)
        ids = sorted(set(table["observation_id"].tolist()))
        keys = dict(
            s.execute(
                select(m.Observation.id, m.Observation.source_key).where(m.Observation.id.in_(ids))
            ).all()
        )
        fusion = getattr(m, "FusionResult", None)
        if use_fused and fusion is not None and inspect(s.get_bind()).has_table("fusion_results"):
            fused = dict(
                s.execute(
                    select(fusion.observation_id, fusion.fused_class).where(fusion.observation_id.in_(ids))
                ).all()
            )
            table["plant_class"] = [
                fused.get(i, c) for i, c in zip(table["observation_id"], table["plant_class"], strict=True)
            ]
    return _with_links(table, keys)


def _with_links(table: pd.DataFrame, keys: dict[int, str]) -> pd.DataFrame:
    src = [keys[i] for i in table["observation_id"]]
    frame, row, col, obs_key = [], [], [], []
    for k in src:
        hit = _FRAME_KEY.match(k)
        if hit:
            frame.append(f"{hit['stem']}.png")
            row.append(float(hit["row"]))
            col.append(float(hit["col"]))
            obs_key.append("")
        else:
            frame.append("")
            row.append(np.nan)
            col.append(np.nan)
            obs_key.append(k)
    return table.assign(source_key=src, obs_key=obs_key, frame=frame, row_px=row, col_px=col)
