"""The migrations build exactly the models, and every revision can be undone and redone."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from coilmap import migrate
from coilmap.db import make_engine
from coilmap.models import Base

pytestmark = pytest.mark.db


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    model_tables = set(Base.metadata.tables)
    assert migrate.current(db_url) is None

    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head()
    assert model_tables <= _tables(db_url)

    migrate.downgrade(db_url, "base")
    assert migrate.current(db_url) is None
    assert _tables(db_url) & model_tables == set()

    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head()
    assert migrate.check(db_url) == []


def test_models_and_migrations_agree(db_url: str) -> None:
    migrate.upgrade(db_url)
    assert migrate.check(db_url) == []


def test_check_sees_a_difference(db_url: str) -> None:
    """The check is not vacuous: a column the migrations do not make is reported."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE pieces ADD COLUMN stray_mm FLOAT"))
    finally:
        engine.dispose()
    diffs = migrate.check(db_url)
    assert any(d[0] == "remove_column" and d[3].name == "stray_mm" for d in diffs), diffs


def test_db_cli_round_trip(db_url: str) -> None:
    from click.testing import CliRunner

    from coilmap.db_cli import db

    runner = CliRunner()
    result = runner.invoke(db, ["upgrade", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert migrate.head() in result.output
    result = runner.invoke(db, ["check", "--url", db_url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(db, ["downgrade", "base", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert "at base" in result.output
    result = runner.invoke(db, ["current", "--url", db_url])
    assert "base (empty)" in result.output


def test_commands_on_an_unmigrated_database_say_so(db_url: str) -> None:
    from click.testing import CliRunner

    from coilmap.errors import CoilmapError
    from tracking.cli_store import coil_map_cmd

    result = CliRunner().invoke(coil_map_cmd, ["F1", "--url", db_url])
    assert isinstance(result.exception, CoilmapError)
    assert "not migrated" in str(result.exception) and "coilmap db upgrade" in str(result.exception)
