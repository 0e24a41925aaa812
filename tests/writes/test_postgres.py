"""The PostgreSQL target on the machine's real server: append and upsert, only what changed,
removed partitions, the table created from the Arrow schema, and clear errors."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from headwater import Workspace
from headwater.catalog.marks import clear_marks, read_marks
from headwater.writes import WriteError, WriteSpec, run_write
from headwater.writes.postgres_values import pg_type
from tests.writes.conftest import PG_URL, Upstream

Connection = psycopg.Connection[Any]


def pg_spec(table: str, mode: str = "append", key: list[str] | None = None) -> WriteSpec:
    target = {"table": table, "mode": mode, "key": key or [], "url": PG_URL}
    return WriteSpec("up", {"postgres": target})


def rows(pg: Connection, table: str, order: str = "id") -> list[tuple[Any, ...]]:
    return pg.execute(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall()


def test_append_creates_the_table_and_appends_only_what_changed(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land({"a": [{"id": 1, "v": "a1"}, {"id": 2, "v": "a2"}], "b": [{"id": 3, "v": "b"}]})
    lines: list[str] = []

    first = run_write(workspace, "out", pg_spec(table), log=lines.append)

    assert (first.status, first.written, first.rows) == ("succeeded", 2, 3)
    assert rows(pg, table) == [(1, "a1"), (2, "a2"), (3, "b")]
    assert any(line.startswith(f"created postgres table '{table}'") for line in lines)

    again = run_write(workspace, "out", pg_spec(table))
    assert (again.written, again.unchanged) == (0, 2)
    assert len(rows(pg, table)) == 3, "nothing appended twice"

    upstream.land({"a": [{"id": 1, "v": "a1 new"}]})
    upstream.remove("b")
    lines.clear()
    third = run_write(workspace, "out", pg_spec(table), log=lines.append)

    assert (third.written, third.removed, third.rows) == (1, 1, 1)
    assert rows(pg, table, "id, v") == [(1, "a1"), (1, "a1 new"), (2, "a2"), (3, "b")]
    assert "removed partition 'b': its rows stay (an append never deletes)" in lines
    held = pg.execute(
        "SELECT partition, rows FROM headwater_writes WHERE writer = %s", [f"out:{table}:append"]
    ).fetchall()
    assert held == [("a", 1)]


def test_a_lost_catalog_mark_does_not_append_twice(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    """A run that died after PostgreSQL committed but before the catalog recorded the mark:
    the target's own bookkeeping says the partition is there."""
    upstream.land({"a": [{"id": 1}], "b": [{"id": 2}]})
    run_write(workspace, "out", pg_spec(table))
    component = workspace.catalog.component("out")
    clear_marks(workspace.catalog, component.id)

    again = run_write(workspace, "out", pg_spec(table))

    assert (again.written, again.unchanged) == (0, 2)
    assert rows(pg, table) == [(1,), (2,)]
    assert sorted(read_marks(workspace.catalog, component.id)) == ["a", "b"], "marks restored"


def test_upsert_keeps_the_table_equal_to_the_upstream_by_key(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land(
        {
            "a": [{"id": 1, "v": "a1"}, {"id": 2, "v": "a2"}],
            "b": [{"id": 3, "v": "b3"}],
            "c": [{"id": 5, "v": "c5"}],
        }
    )
    spec = pg_spec(table, "upsert", ["id"])
    run_write(workspace, "out", spec)
    assert rows(pg, table) == [(1, "a1"), (2, "a2"), (3, "b3"), (5, "c5")]
    key = pg.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
        [table],
    ).fetchall()
    assert key == [("id",)]

    # a: id 1 updated, id 2 gone, id 4 new; b removed upstream; c unchanged.
    upstream.land({"a": [{"id": 1, "v": "a1 new"}, {"id": 4, "v": "a4"}]})
    upstream.remove("b")
    lines: list[str] = []
    run = run_write(workspace, "out", spec, log=lines.append)

    assert (run.status, run.written, run.removed, run.unchanged) == ("succeeded", 1, 1, 1)
    assert rows(pg, table) == [(1, "a1 new"), (4, "a4"), (5, "c5")]
    assert "removed partition 'b': deleted 1 row(s) by key" in lines


def test_a_key_that_moved_to_another_partition_outlives_the_old_one(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    spec = pg_spec(table, "upsert", ["id"])
    upstream.land({"old": [{"id": 1, "v": "from old"}, {"id": 2, "v": "only old"}]})
    run_write(workspace, "out", spec)

    upstream.land({"new": [{"id": 1, "v": "from new"}]})
    upstream.remove("old")
    run_write(workspace, "out", spec)

    assert rows(pg, table) == [(1, "from new")]


def test_within_a_partition_the_last_row_of_a_key_wins(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land({"a": [{"k": "x", "n": 1, "v": 1}, {"k": "x", "n": 1, "v": 2}]})

    run = run_write(workspace, "out", pg_spec(table, "upsert", ["k", "n"]))

    assert (run.status, run.rows) == ("succeeded", 2)
    assert rows(pg, table, "k") == [("x", 1, 2)]


def test_the_table_is_created_from_the_arrow_schema(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)
    data = pa.table(
        {
            "id": pa.array([1], pa.int64()),
            "small": pa.array([7], pa.int16()),
            "ratio": pa.array([0.5], pa.float64()),
            "ok": pa.array([True]),
            "name": pa.array(["é"]),
            "at": pa.array([when], pa.timestamp("us", "UTC")),
            "local": pa.array([when.replace(tzinfo=None)], pa.timestamp("ns")),
            "day": pa.array([datetime.date(2024, 5, 6)]),
            "price": pa.array([decimal.Decimal("12.34")], pa.decimal128(10, 2)),
            "raw": pa.array([b"\x00\xff"]),
            "tags": pa.array([["x", "y"]]),
            "meta": pa.array([{"a": 1}]),
        }
    )
    upstream.land({"p": data})

    run = run_write(workspace, "out", pg_spec(table))

    assert run.status == "succeeded", run.error
    types = dict(
        pg.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            [table],
        ).fetchall()
    )
    assert types == {
        "id": "bigint",
        "small": "smallint",
        "ratio": "double precision",
        "ok": "boolean",
        "name": "text",
        "at": "timestamp with time zone",
        "local": "timestamp without time zone",
        "day": "date",
        "price": "numeric",
        "raw": "bytea",
        "tags": "jsonb",
        "meta": "jsonb",
    }
    (row,) = rows(pg, table)
    assert row == (
        1,
        7,
        0.5,
        True,
        "é",
        when,
        when.replace(tzinfo=None),
        datetime.date(2024, 5, 6),
        decimal.Decimal("12.34"),
        b"\x00\xff",
        ["x", "y"],
        {"a": 1},
    )


def test_an_unsupported_type_is_named_with_its_column() -> None:
    union = pa.field("choice", pa.dense_union([pa.field("i", pa.int64())]))
    with pytest.raises(WriteError, match="column 'choice' has Arrow type dense_union"):
        pg_type("out", union)


def test_a_key_that_is_not_an_upstream_column_fails_naming_it(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land({"a": [{"id": 1}]})

    run = run_write(workspace, "out", pg_spec(table, "upsert", ["code"]))

    assert run.status == "failed"
    assert run.error is not None
    assert "key column 'code' is not a column of the upstream (its columns: id)" in run.error
    assert "write connector 'out'" in run.error and table in run.error
    assert pg.execute("SELECT to_regclass(%s)", [table]).fetchone() == (None,)


def test_an_upsert_into_a_table_without_a_unique_key_says_how_to_fix_it(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    pg.execute(f'CREATE TABLE "{table}" (id BIGINT, v TEXT)')
    upstream.land({"a": [{"id": 1, "v": "x"}]})
    spec = pg_spec(table, "upsert", ["id"])

    run = run_write(workspace, "out", spec)

    assert run.status == "failed"
    assert run.error is not None
    assert "needs a unique constraint on exactly those columns" in run.error
    assert f'ALTER TABLE "{table}" ADD PRIMARY KEY ("id")' in run.error
    assert read_marks(workspace.catalog, workspace.catalog.component("out").id) == {}

    pg.execute(f'CREATE UNIQUE INDEX ON "{table}" (id)')  # the fix it offers, in its other form
    fixed = run_write(workspace, "out", spec)
    assert (fixed.status, fixed.written) == ("succeeded", 1)
    assert rows(pg, table) == [(1, "x")]


def test_a_table_missing_an_upstream_column_says_how_to_add_it(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    pg.execute(f"CREATE TABLE \"{table}\" (id BIGINT, extra TEXT DEFAULT 'd')")
    upstream.land({"a": [{"id": 1, "v": "x"}]})

    run = run_write(workspace, "out", pg_spec(table))

    assert run.error is not None
    assert "the table has no column 'v' of the upstream" in run.error
    assert f'ALTER TABLE "{table}" ADD COLUMN "v" TEXT' in run.error

    pg.execute(f'ALTER TABLE {table} ADD COLUMN "v" TEXT')
    assert run_write(workspace, "out", pg_spec(table)).status == "succeeded"
    assert rows(pg, table) == [(1, "d", "x")]


def test_dropping_the_table_writes_everything_again(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land({"a": [{"id": 1}], "b": [{"id": 2}]})
    run_write(workspace, "out", pg_spec(table))
    pg.execute(f'DROP TABLE "{table}"')

    again = run_write(workspace, "out", pg_spec(table))

    assert again.written == 2
    assert rows(pg, table) == [(1,), (2,)]


def test_the_url_may_come_from_the_connection(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land({"a": [{"id": 1}]})
    target = {"postgres": {"table": table}}

    missing = run_write(workspace, "out", WriteSpec("up", target))
    assert missing.status == "failed"
    assert missing.error is not None and "has no database URL" in missing.error

    run = run_write(workspace, "out", WriteSpec("up", target, {"url": PG_URL}))
    assert run.status == "succeeded"
    assert rows(pg, table) == [(1,)]


def test_a_rejected_row_fails_the_partition_and_the_credential_never_shows(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    secret = "s3cr3t-Passw0rd"
    pg.execute(f"CREATE TABLE \"{table}\" (id BIGINT, v TEXT CHECK (v <> '{secret}'))")
    upstream.land({"a": [{"id": 1, "v": "fine"}], "b": [{"id": 2, "v": secret}]})
    lines: list[str] = []

    run = run_write(workspace, "out", pg_spec(table), credential=secret, log=lines.append)

    assert (run.status, run.written) == ("partial", 1)
    assert run.failures[0].partition == "b"
    assert run.error is not None
    assert "partition 'b'" in run.error and "violates check constraint" in run.error
    assert "Failing row contains (2, ***)" in run.error, "the row is quoted, the secret masked"
    everything = " ".join([run.error, *lines, *(f.message for f in run.failures)])
    everything += str(workspace.run(run.run_id)) + str(workspace.failures(run.run_id))
    assert secret not in everything
    assert sorted(read_marks(workspace.catalog, workspace.catalog.component("out").id)) == ["a"]


def test_an_unreachable_server_fails_the_run_without_the_password(
    workspace: Workspace, upstream: Upstream, table: str
) -> None:
    upstream.land({"a": [{"id": 1}]})
    url = "postgresql://postgres@127.0.0.1:1/test"  # (a password in a URL is refused)
    spec = WriteSpec("up", {"postgres": {"table": table, "url": url}})
    lines: list[str] = []

    run = run_write(workspace, "out", spec, credential="Planted-Pw-123", log=lines.append)

    assert run.status == "failed"
    assert run.error is not None
    assert f"write connector 'out' to postgres table '{table}' on 127.0.0.1:1/test" in run.error
    assert "connecting failed" in run.error
    text = " ".join([run.error, *lines, str(workspace.components())])
    assert "Planted-Pw-123" not in text
