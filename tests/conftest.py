"""Shared fixtures: a workspace in tmp_path, connector files, and catalogs on SQLite and
PostgreSQL (a fresh database per test, on the server at HEADWATER_TEST_PG_URL)."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from headwater import Settings, Workspace
from headwater.console import state
from headwater.settings import normalize_catalog_url

PG_URL = os.environ.get("HEADWATER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def fresh_cli_state() -> Iterator[None]:
    """The CLI's options (`--home`, `--debug`) live in a module-level state that a real command
    line sets once per process; tests invoke many commands in one process, and a sub-app
    invoked alone does not reset it, so each test starts from the defaults."""
    yield
    state.home, state.debug = None, False


@pytest.fixture
def write_connector(tmp_path: Path) -> Callable[..., Path]:
    """Write connector source (dedented) to a .py file and return its path."""

    def write(code: str, name: str = "conn") -> Path:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(code))
        return path

    return write


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on the embedded default: SQLite + local Parquet under tmp_path."""
    with Workspace(home=tmp_path / "home") as ws:
        yield ws


def _postgres_database() -> Iterator[str]:
    admin_url = normalize_catalog_url(PG_URL)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(
            f"PostgreSQL is not reachable at {PG_URL} ({exc.orig}); "
            "set HEADWATER_TEST_PG_URL to run the PostgreSQL catalog tests"
        )
    name = f"hw_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A fresh PostgreSQL database, as a libpq URL (what psycopg and the stream sink take)."""
    for url in _postgres_database():
        yield url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A catalog URL on each database the catalog suite runs on."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def any_workspace(catalog_url: str, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace whose catalog runs on SQLite and on PostgreSQL in turn."""
    settings = Settings(home=tmp_path, catalog_url=catalog_url, store_url=str(tmp_path / "store"))
    with Workspace(settings) as ws:
        yield ws
