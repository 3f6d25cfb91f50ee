"""Ingestion: scheduled, idempotent per-line jobs that feed the shared coil model."""
