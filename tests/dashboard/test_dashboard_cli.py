"""``coilmap dashboard``: the server command and the read-only PostgreSQL role."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from coilmap.cli import main
from coilmap.db import make_engine
from dashboard.cli import APP, create_readonly_role, server_command, server_env, shown_url


def test_server_command_runs_the_app_headless_on_the_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cmd = server_command(8765)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(APP)
    assert cmd[cmd.index("--server.port") + 1] == "8765" and "--server.headless" in cmd
    env = server_env("sqlite:///x.sqlite", tmp_path)
    assert env["COILMAP_DATABASE_URL"] == "sqlite:///x.sqlite" and env["COILMAP_IMAGE_ROOT"] == str(tmp_path)
    assert "secret" not in shown_url("postgresql://u:secret@h/db")


def test_readonly_role_is_refused_on_sqlite(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_:
        main(["dashboard", "create-readonly-role", "--url", f"sqlite:///{tmp_path / 'x.sqlite'}"])
    assert exit_.value.code == 2
    assert "read-only roles are for PostgreSQL" in capsys.readouterr().err


@pytest.mark.db
def test_readonly_role_reads_and_cannot_write(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("roles are a PostgreSQL matter (SQLite: PRAGMA query_only, tested with the engine)")
    from coilmap.migrate import upgrade

    upgrade(db_url)
    role = f"coilmap_test_reader_{uuid.uuid4().hex[:8]}"
    admin = make_engine(db_url)
    try:
        with pytest.raises(Exception, match="identifier"):
            create_readonly_role(admin, db_url, 'bad"; DROP TABLE pieces; --', "pw")
        reader_url = create_readonly_role(admin, db_url, role, f"pw-{uuid.uuid4().hex}")
        with admin.begin() as conn:  # a table a later migration adds is readable too
            conn.execute(sa.text("CREATE TABLE later_table (x integer)"))
        reader = make_engine(reader_url)
        try:
            with reader.connect() as conn:
                assert conn.scalar(sa.text("SELECT current_user")) == role
                assert conn.scalar(sa.text("SELECT count(*) FROM pieces")) == 0
                assert conn.scalar(sa.text("SELECT count(*) FROM later_table")) == 0
                with pytest.raises(sa.exc.DBAPIError, match="read-only|permission denied"):
                    conn.execute(sa.text("INSERT INTO lines (code) VALUES ('X')"))
        finally:
            reader.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
