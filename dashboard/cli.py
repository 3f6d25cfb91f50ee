"""``coilmap dashboard``: start the Streamlit dashboard; ``coilmap dashboard create-readonly-role``.

Plain ``coilmap dashboard`` runs ``streamlit run dashboard/app.py`` with the database and image
root passed through the environment (``COILMAP_DATABASE_URL``, ``COILMAP_IMAGE_ROOT``).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import click
from sqlalchemy import text
from sqlalchemy.engine import make_url

from coilmap.errors import InputError

APP = Path(__file__).resolve().parent / "app.py"
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def server_command(port: int, address: str = "127.0.0.1") -> list[str]:
    """The command that serves the dashboard (also what the browser tests start)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", address, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def server_env(url: str | None, image_root: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if url:
        env["COILMAP_DATABASE_URL"] = url
    if image_root:
        env["COILMAP_IMAGE_ROOT"] = str(image_root.resolve())
    return env


@contextmanager
def serving(
    env: dict[str, str], port: int, *, output: int | IO[str] = subprocess.DEVNULL, timeout_s: float = 60
) -> Iterator[str]:
    """The dashboard served by a child process for the block (the browser tests, the
    benchmark): yields its base URL once it answers its health check; ``RuntimeError`` if it
    exits or stays silent for ``timeout_s``. Its output goes to ``output``."""
    proc = subprocess.Popen(server_command(port), env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def shown_url(url: str) -> str:
    """A database URL safe to print (password hidden)."""
    return make_url(url).render_as_string(hide_password=True)


@click.group(invoke_without_command=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0: reachable from the plant network).")  # fmt: skip
@click.option("--url", default=None, help="Database URL (default: COILMAP_DATABASE_URL or the SQLite file).")
@click.option("--image-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder the observations' image references are relative to (default: COILMAP_IMAGE_ROOT, "
                   "else images/ beside the SQLite file).")  # fmt: skip
@click.pass_context
def dashboard(ctx: click.Context, port: int, address: str, url: str | None, image_root: Path | None) -> None:
    """Start the dashboard (coil map, genealogy, defect history, ingestion, data tools)."""
    if ctx.invoked_subcommand is not None:
        return
    from coilmap.config import database_url

    env = server_env(url, image_root)
    shown = shown_url(url or database_url())
    host = "localhost" if address in ("127.0.0.1", "0.0.0.0") else address
    click.echo(f"coilmap dashboard: http://{host}:{port}  (database {shown}; Ctrl+C stops it)")
    sys.stdout.flush()
    command = server_command(port, address)
    # Streamlit replaces this process, so Ctrl+C and a service manager's SIGTERM reach it directly.
    os.execve(command[0], command, env)


@dashboard.command("create-readonly-role")
@click.option(
    "--url", default=None, help="Admin URL of the PostgreSQL coil model (default: COILMAP_DATABASE_URL)."
)
@click.option("--role", default="coilmap_reader", show_default=True)
@click.option("--password", default=None, help="Default: a new random one (printed in the URL).")
def create_readonly_role_cmd(url: str | None, role: str, password: str | None) -> None:
    """Create (or update) a PostgreSQL login role that can only read the coil model, and print
    the URL the dashboard should use. Run it as the role that runs the migrations, so tables
    added later are readable too."""
    from coilmap.config import database_url
    from coilmap.db import make_engine

    admin_url = url or database_url()
    engine = make_engine(admin_url)
    try:
        reader_url = create_readonly_role(engine, admin_url, role, password or secrets.token_urlsafe(18))
    finally:
        engine.dispose()
    click.echo(
        f"read-only role {role} ready; start the dashboard with:\n  coilmap dashboard --url '{reader_url}'"
    )


# Values reach the DDL through set_config (bound parameters) and format(%I, %L) on the server:
# no identifier or password is ever pasted into SQL text here.
_GRANTS = """
DO $$
DECLARE
    r text := current_setting('coilmap.role');
    s text := current_setting('coilmap.schema');
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', r, current_setting('coilmap.password'));
    ELSE
        EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r, current_setting('coilmap.password'));
    END IF;
    EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', r);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', s, r);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO %I', s, r);
END
$$
"""


def create_readonly_role(engine, admin_url: str, role: str, password: str) -> str:  # type: ignore[no-untyped-def]
    """Create or update ``role`` with SELECT on every table of the current schema (and on
    tables created there later by the calling role); the URL to connect as it."""
    if engine.dialect.name != "postgresql":
        raise InputError(
            f"read-only roles are for PostgreSQL; this database is {engine.dialect.name} "
            "(on SQLite the dashboard opens the file with PRAGMA query_only)",
            field="url",
        )
    if not ROLE_NAME.match(role):
        raise InputError(f"must be a lower-case PostgreSQL identifier, got {role!r}", field="role")
    with engine.begin() as conn:
        schema = conn.scalar(text("SELECT current_schema()"))
        conn.execute(
            text(
                "SELECT set_config('coilmap.role', :role, true), set_config('coilmap.password', :pw, true), "
                "set_config('coilmap.schema', :schema, true)"
            ),
            {"role": role, "pw": password, "schema": schema},
        )
        conn.execute(text(_GRANTS))
    reader = make_url(admin_url).set(username=role, password=password)
    if reader.drivername == "postgresql+psycopg" and admin_url.startswith("postgresql://"):
        reader = reader.set(drivername="postgresql")
    return reader.render_as_string(hide_password=False)
