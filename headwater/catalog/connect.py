"""Opening a catalog database and bringing it to the current migration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from headwater.errors import CatalogError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every Headwater process on one database.
PG_MIGRATION_LOCK = 0x48574154


def create_engine(url: str) -> sa.Engine:
    """An engine for the catalog URL, tuned for concurrent runners on SQLite or PostgreSQL."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives process crashes
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


READ_ONLY = "headwater_read_only"


def _sqlite_begin(connection: sa.Connection) -> None:
    # Writers take the write lock up front (IMMEDIATE): a deferred transaction that reads and
    # then writes fails at once with "database is locked" when another writer got in between.
    # Readers stay deferred, so they never wait for, or hold up, a refresh.
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: sa.Engine) -> None:
    """Apply every migration the database has not seen yet (a no-op when current)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})"))
        current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
        known = {rev.revision for rev in script.walk_revisions()}
        if current is not None and current not in known:
            raise CatalogError(
                f"the catalog at {engine.url.render_as_string(hide_password=True)} is at "
                f"migration {current}, which this Headwater does not know; it was written by a "
                "newer release: upgrade headwater"
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
