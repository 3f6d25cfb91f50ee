"""Fusion results: the fused class of each observation with the evidence it used.

Revision ID: c4f1a9e2d7b3
Revises: b7d3e1a4c9f2
Create Date: 2026-11-21 11:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "c4f1a9e2d7b3"
down_revision: str | Sequence[str] | None = "b7d3e1a4c9f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fusion_results",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("observation_id", BIG_ID, nullable=False),
        sa.Column("fused_class", sa.String(length=64), nullable=False),
        sa.Column("fused_probability", sa.Float(), nullable=False),
        sa.Column("real_probability", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["observation_id"], ["observations.id"],
            name=op.f("fk_fusion_results_observation_id_observations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fusion_results")),
        sa.UniqueConstraint("observation_id", name=op.f("uq_fusion_results_observation_id")),
    )
    op.create_index(op.f("ix_fusion_results_fused_class"), "fusion_results", ["fused_class"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_fusion_results_fused_class"), table_name="fusion_results")
    op.drop_table("fusion_results")
