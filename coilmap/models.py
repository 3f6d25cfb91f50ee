"""The shared SQL coil model: lines, stations, pieces and their genealogy, defect observations.

Every position is in mm in the frame of the piece the row belongs to (DOMAIN.md: ``x`` from the
head, ``y`` from the centreline, positive toward the operator side). Every time is timezone
aware (UTC is what the writers store). The tables are portable: the same revision runs on the
embedded SQLite file and on the PostgreSQL server all lines share.

The coil map reads ``observations`` by ``(piece_id, side, x_mm)``; the defect history reads it
by ``(plant_class, observed_at)`` and ``(station_id, observed_at)``. Writers deduplicate through
the unique ``source_key`` of each observation and mark sighting, so a job that runs twice stores
nothing twice.

``docs/data-model.md`` explains every column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints let Alembic drop and alter them (SQLite batch mode needs the names) and
# keep the names identical on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A 64-bit key on PostgreSQL; SQLite only auto-increments an ``INTEGER PRIMARY KEY``.
BigId = BigInteger().with_variant(Integer(), "sqlite")

SIDES = ("top", "bottom")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        datetime: DateTime(timezone=True),
        float: Float(),
    }


def _side_check() -> CheckConstraint:
    return CheckConstraint("side IN ('top', 'bottom')", name="side")


class Line(Base):
    """A production line (HSM, PL, TCM, ...)."""

    __tablename__ = "lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    # How a coil is set on this line's payoff reel: "flip_cross" (same way round: the tail
    # leads) or "turn" (the other way round). Configuration, never guessed.
    unwind: Mapped[str | None] = mapped_column(String(16))


class Station(Base):
    """An inspection station: one camera system looking at one surface on one line."""

    __tablename__ = "stations"
    __table_args__ = (_side_check(),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id"), index=True)
    side: Mapped[str] = mapped_column(String(6))
    vendor: Mapped[str | None] = mapped_column(String(64))
    # What the station exports: "images" (we detect) or "defect_table" (a vendor system's
    # defect list, read-only).
    export_kind: Mapped[str | None] = mapped_column(String(32))
    # Vendor label -> plant class (DOMAIN.md: the mapping is configuration).
    label_map: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Encoder scale/offset, mm per pixel, lateral reference: whatever the station's reader needs.
    calibration: Mapped[dict[str, Any]] = mapped_column(default=dict)


class EventImport(Base):
    """One tracking events file stored in one transaction."""

    __tablename__ = "event_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    imported_at: Mapped[datetime]
    n_operations: Mapped[int] = mapped_column(Integer)
    n_pieces: Mapped[int] = mapped_column(Integer)


class Operation(Base):
    """One tracking event (create, crop, trim, orient, elongate, weld, cut, slit, mark)."""

    __tablename__ = "operations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The whole JSON object of the event, extra fields kept: the operation's parameters.
    params: Mapped[dict[str, Any]]
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id"))
    at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(512))
    line_no: Mapped[int] = mapped_column(Integer)
    import_id: Mapped[int] = mapped_column(ForeignKey("event_imports.id"), index=True)


class Piece(Base):
    """One state of material with its own frame (a coil as it leaves a line, a band, ...)."""

    __tablename__ = "pieces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    piece_id: Mapped[str] = mapped_column(String(64), unique=True)
    length_mm: Mapped[float]
    width_mm: Mapped[float]
    thickness_mm: Mapped[float | None]
    grade: Mapped[str | None] = mapped_column(String(32), index=True)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id"), index=True)
    made_at: Mapped[datetime | None]
    coil_no: Mapped[str | None] = mapped_column(String(64))
    produced_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("operations.id"), index=True)
    # The piece's own fields from its events that have no column (customer, order, ...).
    record: Mapped[dict[str, Any]] = mapped_column(default=dict)


class GenealogyEdge(Base):
    """Material of ``parent`` went into ``child`` through ``operation``."""

    __tablename__ = "genealogy_edges"
    __table_args__ = (UniqueConstraint("parent_id", "child_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operation_id: Mapped[int] = mapped_column(BigId, ForeignKey("operations.id"), index=True)
    parent_id: Mapped[int] = mapped_column(BigId, ForeignKey("pieces.id"), index=True)
    child_id: Mapped[int] = mapped_column(BigId, ForeignKey("pieces.id"), index=True)
    # Position of the parent among the operation's inputs (weld order) and of the child among
    # its outputs (cut / slit order), both from 0.
    parent_ordinal: Mapped[int] = mapped_column(Integer)
    child_ordinal: Mapped[int] = mapped_column(Integer)


class ReferenceMark(Base):
    """An explicit reference mark (punched hole, paint mark) at a known spot of a piece."""

    __tablename__ = "reference_marks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    piece_id: Mapped[int] = mapped_column(BigId, ForeignKey("pieces.id"), index=True)
    # Unique in the whole plant (a hole punched once has one id wherever the strip goes).
    mark_id: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    x_mm: Mapped[float]
    y_mm: Mapped[float | None]
    operation_id: Mapped[int] = mapped_column(BigId, ForeignKey("operations.id"), index=True)


class IngestionRun(Base):
    """One run of a scheduled ingestion job for one line or station."""

    __tablename__ = "ingestion_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"), index=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # "running", "ok", "failed"
    status: Mapped[str] = mapped_column(String(16))
    n_files: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_observations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_quarantined: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Seconds from the newest exported file's time to the end of the run.
    lag_s: Mapped[float | None]
    errors: Mapped[list[Any]] = mapped_column(default=list)
    # Which worker (host:pid) ran it, and how many records wait for their piece's events.
    worker: Mapped[str | None] = mapped_column(String(128))
    n_pending: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class MarkSighting(Base):
    """A station's observation of a reference mark, in the station's own encoder frame."""

    __tablename__ = "mark_sightings"
    __table_args__ = (Index(None, "piece_id", "station_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    piece_id: Mapped[int] = mapped_column(BigId, ForeignKey("pieces.id"))
    mark_id: Mapped[str] = mapped_column(String(128))
    x_obs_mm: Mapped[float]
    seen_at: Mapped[datetime]
    source_key: Mapped[str] = mapped_column(String(255), unique=True)
    ingestion_run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ingestion_runs.id"), index=True)


class Observation(Base):
    """One defect seen by one station on one surface of one piece.

    Geometry in the piece's frame: the centre ``(x_mm, y_mm)`` and the bounding box
    ``[x0_mm, x1_mm] x [y0_mm, y1_mm]`` (equal to the centre for a point); a polygon, when the
    station gives one, as WKT in the same frame.
    """

    __tablename__ = "observations"
    __table_args__ = (
        _side_check(),
        CheckConstraint("x0_mm <= x1_mm AND y0_mm <= y1_mm", name="box"),
        # The coil map reads every observation of a few pieces: this index covers that query
        # (the database never visits the table), at the price of about doubling the table.
        Index(
            "ix_observations_coil_map",
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
        ),
        # The few observations with a polygon, found without visiting the others.
        Index(
            "ix_observations_polygons",
            "piece_id",
            sqlite_where=text("geometry_wkt IS NOT NULL"),
            postgresql_where=text("geometry_wkt IS NOT NULL"),
        ),
        Index(None, "plant_class", "observed_at"),
        Index(None, "station_id", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    piece_id: Mapped[int] = mapped_column(BigId, ForeignKey("pieces.id"))
    side: Mapped[str] = mapped_column(String(6))
    x_mm: Mapped[float]
    y_mm: Mapped[float]
    x0_mm: Mapped[float]
    y0_mm: Mapped[float]
    x1_mm: Mapped[float]
    y1_mm: Mapped[float]
    geometry_wkt: Mapped[str | None] = mapped_column(Text)
    # The station's raw encoder position before re-registration through reference marks.
    x_obs_mm: Mapped[float | None]
    station_label: Mapped[str | None] = mapped_column(String(64))
    station_confidence: Mapped[float | None]
    plant_class: Mapped[str | None] = mapped_column(String(64))
    anomaly_score: Mapped[float | None]
    image_ref: Mapped[str | None] = mapped_column(String(1024))
    # The anomaly heatmap (PNG, relative to the image store) of the frame it was detected in.
    heatmap_ref: Mapped[str | None] = mapped_column(String(1024))
    observed_at: Mapped[datetime]
    # Unique name of the observation at its source (export file + row, image + region): what
    # makes a second run of an ingestion job store nothing twice.
    source_key: Mapped[str] = mapped_column(String(255), unique=True)
    # The ingestion run that stored it: provenance, joined when wanted. Deliberately no foreign
    # key: checked per row it cost PostgreSQL a sixth of a vendor table's import time.
    ingestion_run_id: Mapped[int | None] = mapped_column(BigId, index=True)


class QuarantinedRecord(Base):
    """An exported record an ingestion run could not read, kept with the reason."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("ingestion_runs.id"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    path: Mapped[str] = mapped_column(String(1024))
    line_no: Mapped[int | None] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    # A short reason code for grouping on the dashboard (corrupt_image, bad_value, ...).
    kind: Mapped[str | None] = mapped_column(String(32))
    # The record's source key when it has one (a table row): quarantined once, however often
    # its file is read again.
    source_key: Mapped[str | None] = mapped_column(String(255), index=True, unique=True)


class IngestionFile(Base):
    """The ingestion manifest and work table: one row per export file of a station.

    A worker claims rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` inside the batch's own
    transaction, so a killed worker's claim ends with its connection and the batch is done
    once by whoever claims it next (``docs/ingestion.md``).
    """

    __tablename__ = "ingestion_files"
    __table_args__ = (UniqueConstraint("station_id", "path"), Index(None, "station_id", "state"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    # Relative to the station's export folder.
    path: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    # "new", "pending" (waits for tracking events), "done", "quarantined"
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_try_at: Mapped[datetime | None]
    discovered_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ingestion_runs.id"), index=True)
    n_observations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class PendingRecord(Base):
    """An exported record whose piece (or its reference marks) is not known yet: retried on
    every run, quarantined once it has waited longer than the grace period."""

    __tablename__ = "ingestion_pending"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"), index=True)
    file_id: Mapped[int] = mapped_column(BigId, ForeignKey("ingestion_files.id"), index=True)
    source_key: Mapped[str] = mapped_column(String(255), unique=True)
    piece: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class FusionResult(Base):
    """The fused decision on one observation: class, probabilities, and the upstream evidence
    it used (station, piece, distance, class, probability of each matched upstream observation),
    so a person can see why."""

    __tablename__ = "fusion_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    observation_id: Mapped[int] = mapped_column(BigId, ForeignKey("observations.id"), unique=True)
    fused_class: Mapped[str] = mapped_column(String(64), index=True)
    fused_probability: Mapped[float]
    # Probability that the observation is a real defect (not dirt, oil, water or nothing).
    real_probability: Mapped[float]
    evidence: Mapped[list[Any]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
