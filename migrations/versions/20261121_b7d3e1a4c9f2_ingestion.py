"""Ingestion jobs: the per-station file manifest / work table, records waiting for their
piece's tracking events, heatmaps of observations, run workers, quarantine reason codes.

Revision ID: b7d3e1a4c9f2
Revises: fe81ff778ced
Create Date: 2026-11-21 11:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "b7d3e1a4c9f2"
down_revision: str | Sequence[str] | None = "fe81ff778ced"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("observations", sa.Column("heatmap_ref", sa.String(length=1024), nullable=True))
    op.add_column("ingestion_runs", sa.Column("worker", sa.String(length=128), nullable=True))
    op.add_column(
        "ingestion_runs", sa.Column("n_pending", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("quarantine", sa.Column("kind", sa.String(length=32), nullable=True))
    op.add_column("quarantine", sa.Column("source_key", sa.String(length=255), nullable=True))
    op.create_index(op.f("ix_quarantine_source_key"), "quarantine", ["source_key"], unique=True)

    op.create_table(
        "ingestion_files",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", BIG_ID, nullable=True),
        sa.Column("n_observations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["ingestion_runs.id"], name=op.f("fk_ingestion_files_run_id_ingestion_runs")
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_ingestion_files_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestion_files")),
        sa.UniqueConstraint("station_id", "path", name=op.f("uq_ingestion_files_station_id_path")),
    )
    op.create_index(op.f("ix_ingestion_files_run_id"), "ingestion_files", ["run_id"], unique=False)
    op.create_index(
        op.f("ix_ingestion_files_station_id_state"), "ingestion_files", ["station_id", "state"], unique=False
    )

    op.create_table(
        "ingestion_pending",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("file_id", BIG_ID, nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("piece", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["ingestion_files.id"], name=op.f("fk_ingestion_pending_file_id_ingestion_files")
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_ingestion_pending_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestion_pending")),
        sa.UniqueConstraint("source_key", name=op.f("uq_ingestion_pending_source_key")),
    )
    op.create_index(op.f("ix_ingestion_pending_file_id"), "ingestion_pending", ["file_id"], unique=False)
    op.create_index(
        op.f("ix_ingestion_pending_station_id"), "ingestion_pending", ["station_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ingestion_pending_station_id"), table_name="ingestion_pending")
    op.drop_index(op.f("ix_ingestion_pending_file_id"), table_name="ingestion_pending")
    op.drop_table("ingestion_pending")
    op.drop_index(op.f("ix_ingestion_files_station_id_state"), table_name="ingestion_files")
    op.drop_index(op.f("ix_ingestion_files_run_id"), table_name="ingestion_files")
    op.drop_table("ingestion_files")
    op.drop_index(op.f("ix_quarantine_source_key"), table_name="quarantine")
    # SQLite cannot drop a column in place everywhere: batch mode copies the table there and
    # issues plain ALTERs on PostgreSQL.
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("source_key")
        batch.drop_column("kind")
    with op.batch_alter_table("ingestion_runs") as batch:
        batch.drop_column("n_pending")
        batch.drop_column("worker")
    with op.batch_alter_table("observations") as batch:
        batch.drop_column("heatmap_ref")
