"""The shared coil model: lines, stations, pieces, genealogy, marks, observations, runs.

Revision ID: fe81ff778ced
Revises:
Create Date: 2026-11-21 10:46:24.184831
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# 64-bit keys on PostgreSQL; SQLite auto-increments only an INTEGER PRIMARY KEY.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "fe81ff778ced"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_operations", sa.Integer(), nullable=False),
        sa.Column("n_pieces", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_imports")),
    )
    op.create_index(op.f("ix_event_imports_sha256"), "event_imports", ["sha256"], unique=False)

    op.create_table(
        "lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("unwind", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lines")),
        sa.UniqueConstraint("code", name=op.f("uq_lines_code")),
    )
    op.create_table(
        "operations",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["event_imports.id"], name=op.f("fk_operations_import_id_event_imports")
        ),
        sa.ForeignKeyConstraint(["line_id"], ["lines.id"], name=op.f("fk_operations_line_id_lines")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
    )
    op.create_index(op.f("ix_operations_import_id"), "operations", ["import_id"], unique=False)

    op.create_table(
        "stations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=6), nullable=False),
        sa.Column("vendor", sa.String(length=64), nullable=True),
        sa.Column("export_kind", sa.String(length=32), nullable=True),
        sa.Column("label_map", sa.JSON(), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=False),
        sa.CheckConstraint("side IN ('top', 'bottom')", name=op.f("ck_stations_side")),
        sa.ForeignKeyConstraint(["line_id"], ["lines.id"], name=op.f("fk_stations_line_id_lines")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stations")),
        sa.UniqueConstraint("code", name=op.f("uq_stations_code")),
    )
    op.create_index(op.f("ix_stations_line_id"), "stations", ["line_id"], unique=False)

    op.create_table(
        "ingestion_runs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=True),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n_files", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_observations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_skipped", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_quarantined", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lag_s", sa.Float(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["line_id"], ["lines.id"], name=op.f("fk_ingestion_runs_line_id_lines")),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_ingestion_runs_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestion_runs")),
    )
    op.create_index(op.f("ix_ingestion_runs_line_id"), "ingestion_runs", ["line_id"], unique=False)
    op.create_index(op.f("ix_ingestion_runs_station_id"), "ingestion_runs", ["station_id"], unique=False)

    op.create_table(
        "pieces",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("piece_id", sa.String(length=64), nullable=False),
        sa.Column("length_mm", sa.Float(), nullable=False),
        sa.Column("width_mm", sa.Float(), nullable=False),
        sa.Column("thickness_mm", sa.Float(), nullable=True),
        sa.Column("grade", sa.String(length=32), nullable=True),
        sa.Column("line_id", sa.Integer(), nullable=True),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("coil_no", sa.String(length=64), nullable=True),
        sa.Column("produced_by_id", BIG_ID, nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["line_id"], ["lines.id"], name=op.f("fk_pieces_line_id_lines")),
        sa.ForeignKeyConstraint(
            ["produced_by_id"], ["operations.id"], name=op.f("fk_pieces_produced_by_id_operations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pieces")),
        sa.UniqueConstraint("piece_id", name=op.f("uq_pieces_piece_id")),
    )
    op.create_index(op.f("ix_pieces_grade"), "pieces", ["grade"], unique=False)
    op.create_index(op.f("ix_pieces_line_id"), "pieces", ["line_id"], unique=False)
    op.create_index(op.f("ix_pieces_produced_by_id"), "pieces", ["produced_by_id"], unique=False)

    op.create_table(
        "genealogy_edges",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("operation_id", BIG_ID, nullable=False),
        sa.Column("parent_id", BIG_ID, nullable=False),
        sa.Column("child_id", BIG_ID, nullable=False),
        sa.Column("parent_ordinal", sa.Integer(), nullable=False),
        sa.Column("child_ordinal", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["child_id"], ["pieces.id"], name=op.f("fk_genealogy_edges_child_id_pieces")),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_genealogy_edges_operation_id_operations"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["pieces.id"], name=op.f("fk_genealogy_edges_parent_id_pieces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_genealogy_edges")),
        sa.UniqueConstraint("parent_id", "child_id", name=op.f("uq_genealogy_edges_parent_id_child_id")),
    )
    op.create_index(op.f("ix_genealogy_edges_child_id"), "genealogy_edges", ["child_id"], unique=False)
    op.create_index(
        op.f("ix_genealogy_edges_operation_id"), "genealogy_edges", ["operation_id"], unique=False
    )
    op.create_index(op.f("ix_genealogy_edges_parent_id"), "genealogy_edges", ["parent_id"], unique=False)

    op.create_table(
        "mark_sightings",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("piece_id", BIG_ID, nullable=False),
        sa.Column("mark_id", sa.String(length=128), nullable=False),
        sa.Column("x_obs_mm", sa.Float(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("ingestion_run_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["ingestion_run_id"],
            ["ingestion_runs.id"],
            name=op.f("fk_mark_sightings_ingestion_run_id_ingestion_runs"),
        ),
        sa.ForeignKeyConstraint(["piece_id"], ["pieces.id"], name=op.f("fk_mark_sightings_piece_id_pieces")),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_mark_sightings_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mark_sightings")),
        sa.UniqueConstraint("source_key", name=op.f("uq_mark_sightings_source_key")),
    )
    op.create_index(
        op.f("ix_mark_sightings_ingestion_run_id"),
        "mark_sightings",
        ["ingestion_run_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_mark_sightings_piece_id_station_id"),
        "mark_sightings",
        ["piece_id", "station_id"],
        unique=False,
    )

    op.create_table(
        "observations",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("piece_id", BIG_ID, nullable=False),
        sa.Column("side", sa.String(length=6), nullable=False),
        sa.Column("x_mm", sa.Float(), nullable=False),
        sa.Column("y_mm", sa.Float(), nullable=False),
        sa.Column("x0_mm", sa.Float(), nullable=False),
        sa.Column("y0_mm", sa.Float(), nullable=False),
        sa.Column("x1_mm", sa.Float(), nullable=False),
        sa.Column("y1_mm", sa.Float(), nullable=False),
        sa.Column("geometry_wkt", sa.Text(), nullable=True),
        sa.Column("x_obs_mm", sa.Float(), nullable=True),
        sa.Column("station_label", sa.String(length=64), nullable=True),
        sa.Column("station_confidence", sa.Float(), nullable=True),
        sa.Column("plant_class", sa.String(length=64), nullable=True),
        sa.Column("anomaly_score", sa.Float(), nullable=True),
        sa.Column("image_ref", sa.String(length=1024), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("ingestion_run_id", BIG_ID, nullable=True),
        sa.CheckConstraint("side IN ('top', 'bottom')", name=op.f("ck_observations_side")),
        sa.CheckConstraint("x0_mm <= x1_mm AND y0_mm <= y1_mm", name=op.f("ck_observations_box")),
        sa.ForeignKeyConstraint(
            ["ingestion_run_id"],
            ["ingestion_runs.id"],
            name=op.f("fk_observations_ingestion_run_id_ingestion_runs"),
        ),
        sa.ForeignKeyConstraint(["piece_id"], ["pieces.id"], name=op.f("fk_observations_piece_id_pieces")),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_observations_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
        sa.UniqueConstraint("source_key", name=op.f("uq_observations_source_key")),
    )
    op.create_index(
        op.f("ix_observations_ingestion_run_id"), "observations", ["ingestion_run_id"], unique=False
    )
    op.create_index(
        "ix_observations_coil_map",
        "observations",
        [
            "piece_id",
            "side",
            "x_mm",
            "y_mm",
            "x0_mm",
            "y0_mm",
            "x1_mm",
            "y1_mm",
            "station_id",
            "plant_class",
            "station_label",
            "station_confidence",
            "anomaly_score",
            "id",
        ],
        unique=False,
    )
    op.create_index(
        "ix_observations_polygons",
        "observations",
        ["piece_id"],
        unique=False,
        sqlite_where=sa.text("geometry_wkt IS NOT NULL"),
        postgresql_where=sa.text("geometry_wkt IS NOT NULL"),
    )
    op.create_index(
        op.f("ix_observations_plant_class_observed_at"),
        "observations",
        ["plant_class", "observed_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_observations_station_id_observed_at"),
        "observations",
        ["station_id", "observed_at"],
        unique=False,
    )

    op.create_table(
        "quarantine",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["ingestion_runs.id"], name=op.f("fk_quarantine_run_id_ingestion_runs")
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_quarantine_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    op.create_index(op.f("ix_quarantine_run_id"), "quarantine", ["run_id"], unique=False)

    op.create_table(
        "reference_marks",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("piece_id", BIG_ID, nullable=False),
        sa.Column("mark_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("x_mm", sa.Float(), nullable=False),
        sa.Column("y_mm", sa.Float(), nullable=True),
        sa.Column("operation_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_reference_marks_operation_id_operations"),
        ),
        sa.ForeignKeyConstraint(["piece_id"], ["pieces.id"], name=op.f("fk_reference_marks_piece_id_pieces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_marks")),
        sa.UniqueConstraint("mark_id", name=op.f("uq_reference_marks_mark_id")),
    )
    op.create_index(
        op.f("ix_reference_marks_operation_id"), "reference_marks", ["operation_id"], unique=False
    )
    op.create_index(op.f("ix_reference_marks_piece_id"), "reference_marks", ["piece_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reference_marks_piece_id"), table_name="reference_marks")
    op.drop_index(op.f("ix_reference_marks_operation_id"), table_name="reference_marks")

    op.drop_table("reference_marks")
    op.drop_index(op.f("ix_quarantine_run_id"), table_name="quarantine")

    op.drop_table("quarantine")
    op.drop_index(op.f("ix_observations_station_id_observed_at"), table_name="observations")
    op.drop_index(op.f("ix_observations_plant_class_observed_at"), table_name="observations")
    op.drop_index("ix_observations_polygons", table_name="observations")
    op.drop_index("ix_observations_coil_map", table_name="observations")
    op.drop_index(op.f("ix_observations_ingestion_run_id"), table_name="observations")

    op.drop_table("observations")
    op.drop_index(op.f("ix_mark_sightings_piece_id_station_id"), table_name="mark_sightings")
    op.drop_index(op.f("ix_mark_sightings_ingestion_run_id"), table_name="mark_sightings")

    op.drop_table("mark_sightings")
    op.drop_index(op.f("ix_genealogy_edges_parent_id"), table_name="genealogy_edges")
    op.drop_index(op.f("ix_genealogy_edges_operation_id"), table_name="genealogy_edges")
    op.drop_index(op.f("ix_genealogy_edges_child_id"), table_name="genealogy_edges")

    op.drop_table("genealogy_edges")
    op.drop_index(op.f("ix_pieces_produced_by_id"), table_name="pieces")
    op.drop_index(op.f("ix_pieces_line_id"), table_name="pieces")
    op.drop_index(op.f("ix_pieces_grade"), table_name="pieces")

    op.drop_table("pieces")
    op.drop_index(op.f("ix_ingestion_runs_station_id"), table_name="ingestion_runs")
    op.drop_index(op.f("ix_ingestion_runs_line_id"), table_name="ingestion_runs")

    op.drop_table("ingestion_runs")
    op.drop_index(op.f("ix_stations_line_id"), table_name="stations")

    op.drop_table("stations")
    op.drop_index(op.f("ix_operations_import_id"), table_name="operations")

    op.drop_table("operations")
    op.drop_table("lines")
    op.drop_index(op.f("ix_event_imports_sha256"), table_name="event_imports")

    op.drop_table("event_imports")
