"""Observations keep the run that stored them as a plain column, without a foreign key.

The link to ``ingestion_runs`` is provenance (which run stored a row), looked up by join when
wanted; checked per row as a foreign key it cost PostgreSQL about 2.3 microseconds of every
observation a vendor table imports (``coilmap bench ingestion``), for a table that is only
ever appended to. The column and its index stay.

Revision ID: d5a8c3f1e6b9
Revises: c4f1a9e2d7b3
Create Date: 2026-11-21 13:25:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "d5a8c3f1e6b9"
down_revision: str | Sequence[str] | None = "c4f1a9e2d7b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_observations_ingestion_run_id_ingestion_runs"


def upgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.create_foreign_key(FK, "ingestion_runs", ["ingestion_run_id"], ["id"])
