"""Storing fused decisions: one transaction replaces the results of the observations fused."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select

from coilmap import models as m
from coilmap.db import session_factory, transaction
from coilmap.errors import CoilmapError
from fusion.db_features import build_features
from fusion.model_file import FusedModel

CHUNK = 500


def apply_model(engine: Engine, model: FusedModel, *, pieces: list[str] | None = None) -> int:
    """Fuse the observations (all, or those on ``pieces``); returns how many were stored."""
    table, _ = build_features(engine, grades=model.grades, tolerance=model.tolerance, pieces=pieces)
    if table.names != model.feature_names:
        raise CoilmapError("the fused model was trained on other features: retrain it (`coilmap fuse train`)")
    if not len(table):
        return 0
    proba = model.estimator.predict_proba(table.features)
    classes = model.estimator.classes_
    best = model.estimator.decide(proba)
    real = model.estimator.real_from_proba(proba)
    now = datetime.now(UTC)
    rows = [
        {
            "observation_id": int(table.observation_id[i]),
            "fused_class": str(classes[best[i]]),
            "fused_probability": float(proba[i, best[i]]),
            "real_probability": float(real[i]),
            "evidence": table.used[i],
            "model_version": model.version,
            "created_at": now,
        }
        for i in range(len(table))
    ]
    ids = [r["observation_id"] for r in rows]
    with transaction(engine) as s:
        for k in range(0, len(ids), CHUNK):
            s.execute(delete(m.FusionResult).where(m.FusionResult.observation_id.in_(ids[k : k + CHUNK])))
        s.execute(insert(m.FusionResult), rows)
    return len(rows)


def apply_unfused(engine: Engine, model: FusedModel) -> int:
    """Fuse the observations that have no fused decision yet (what an ingestion run stored):
    every observation of the pieces they lie on (a piece's evidence is computed together)."""
    with session_factory(engine)() as s:
        fused = select(m.FusionResult.observation_id)
        keys = select(m.Observation.piece_id).where(m.Observation.id.not_in(fused)).distinct()
        pieces = list(
            s.scalars(select(m.Piece.piece_id).where(m.Piece.id.in_(keys)).order_by(m.Piece.piece_id))
        )
    return apply_model(engine, model, pieces=pieces) if pieces else 0
