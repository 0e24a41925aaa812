"""Fixtures for write connectors: an upstream component whose partitions a test lands, changes
and removes in a real workspace, and unique PostgreSQL tables dropped after each test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from headwater import Workspace
from headwater.catalog import ComponentRecord

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Upstream:
    """A component of the workspace whose committed partitions the test sets directly."""

    def __init__(self, workspace: Workspace, name: str = "up") -> None:
        self.workspace = workspace
        self.name = name
        self.record: ComponentRecord = workspace.catalog.ensure_component(
            name,
            kind="partitioned",
            source_ref="test",
            settings={},
            code_version="v1",
            now=workspace.clock(),
        )
        self._runs = 0

    def land(self, partitions: dict[str, list[dict[str, Any]] | pa.Table]) -> None:
        """Commit each partition (a new version, fingerprint included) as one run."""
        catalog = self.workspace.catalog
        run_id = catalog.start_run(
            self.record.id, executor="thread", holder="test", now=self.workspace.clock()
        )
        self._runs += 1
        for name, rows in partitions.items():
            table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
            self.workspace.land_table(
                self.record, name, table, fingerprint=f"{name}-{self._runs}", run_id=run_id
            )
        catalog.finish_run(
            run_id,
            status="succeeded",
            counts={},
            failures=[],
            error=None,
            now=self.workspace.clock(),
        )

    def remove(self, *names: str) -> None:
        files = self.workspace.catalog.drop_partitions(self.record.id, list(names))
        self.workspace.store.delete(files)


@pytest.fixture
def upstream(workspace: Workspace) -> Upstream:
    return Upstream(workspace)


@pytest.fixture
def pg() -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test database (skips when PostgreSQL is down)."""
    try:
        connection = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL} ({exc}); these tests need it")
    with connection:
        yield connection


@pytest.fixture
def table(pg: psycopg.Connection[Any]) -> Iterator[str]:
    """A unique table name; the table and its bookkeeping rows are dropped afterwards."""
    name = f"hw_write_{uuid.uuid4().hex[:10]}"
    yield name
    pg.execute(f'DROP TABLE IF EXISTS "{name}"')
    for bookkeeping in ("headwater_writes", "headwater_write_keys"):
        if pg.execute("SELECT to_regclass(%s)", [bookkeeping]).fetchone() != (None,):
            pg.execute(
                f"DELETE FROM {bookkeeping} WHERE writer LIKE %s",
                [f"%:{name}:%"],
            )
