"""Alembic migrations of the shared coil model."""
