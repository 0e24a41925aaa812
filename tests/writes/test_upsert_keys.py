"""An upsert's keys held by several upstream partitions, on the machine's real PostgreSQL: the
row written last wins, and removing (or changing) one holder keeps the key with the row of a
partition that still holds it; only keys no partition holds any more are deleted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from headwater import Workspace
from headwater.writes import WriteSpec, run_write
from tests.writes.conftest import PG_URL, Upstream

Connection = psycopg.Connection[Any]


def upsert(table: str) -> WriteSpec:
    target = {"table": table, "mode": "upsert", "key": ["id"], "url": PG_URL}
    return WriteSpec("up", {"postgres": target})


def rows(pg: Connection, table: str) -> list[tuple[Any, ...]]:
    return pg.execute(f"SELECT id, v FROM {table} ORDER BY id").fetchall()


def test_within_a_run_the_partition_last_in_upstream_order_wins(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    # Landed b first: the upstream's order is by partition name, not by landing.
    upstream.land({"b": [{"id": 1, "v": "from b"}], "a": [{"id": 1, "v": "from a"}]})

    run = run_write(workspace, "out", upsert(table))

    assert (run.status, run.written) == ("succeeded", 2)
    assert rows(pg, table) == [(1, "from b")]


def test_removing_a_holder_that_was_not_written_last_changes_nothing(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land({"a": [{"id": 1, "v": "from a"}], "b": [{"id": 1, "v": "from b"}]})
    run_write(workspace, "out", upsert(table))
    upstream.remove("a")
    lines: list[str] = []

    run = run_write(workspace, "out", upsert(table), log=lines.append)

    assert (run.status, run.removed) == ("succeeded", 1)
    assert rows(pg, table) == [(1, "from b")]
    assert "removed partition 'a': deleted 0 row(s) by key" in lines, "nothing read back"


def test_a_key_falls_back_to_the_holder_written_most_recently(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land(
        {
            "a": [{"id": 1, "v": "from a"}],
            "b": [{"id": 1, "v": "from b"}, {"id": 2, "v": "only b"}],
            "c": [{"id": 1, "v": "from c"}],
        }
    )
    run_write(workspace, "out", upsert(table))
    assert rows(pg, table) == [(1, "from c"), (2, "only b")]

    upstream.land({"a": [{"id": 1, "v": "from a, again"}]})  # written last now
    run_write(workspace, "out", upsert(table))
    assert rows(pg, table) == [(1, "from a, again"), (2, "only b")]

    upstream.remove("a")
    lines: list[str] = []
    run_write(workspace, "out", upsert(table), log=lines.append)
    assert rows(pg, table) == [(1, "from c"), (2, "only b")], "c was written after b"
    assert (
        "removed partition 'a': deleted 0 row(s) by key, wrote back 1 row(s) of keys other "
        "partitions still hold"
    ) in lines

    upstream.remove("c")
    run_write(workspace, "out", upsert(table))
    assert rows(pg, table) == [(1, "from b"), (2, "only b")]

    upstream.remove("b")
    run_write(workspace, "out", upsert(table))
    assert rows(pg, table) == []


def test_a_changed_partition_that_drops_a_key_leaves_it_to_another_holder(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land(
        {
            "a": [{"id": 1, "v": "from a"}],
            "b": [{"id": 1, "v": "from b"}, {"id": 2, "v": "b2"}, {"id": 3, "v": "b3"}],
        }
    )
    run_write(workspace, "out", upsert(table))

    upstream.land({"b": [{"id": 2, "v": "b2 new"}]})  # no longer has 1 (a has) nor 3 (none has)
    run = run_write(workspace, "out", upsert(table))

    assert (run.status, run.written, run.unchanged) == ("succeeded", 1, 1)
    assert rows(pg, table) == [(1, "from a"), (2, "b2 new")]


def test_a_fallback_to_a_partition_removed_in_the_same_run_goes_on_to_the_next(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land(
        {
            "a": [{"id": 1, "v": "from a"}],
            "b": [{"id": 1, "v": "from b"}],
            "c": [{"id": 1, "v": "from c"}],
        }
    )
    run_write(workspace, "out", upsert(table))

    # c (written last) drops id 1: it falls back to b, which this same run removes.
    upstream.land({"c": [{"id": 3, "v": "c3"}]})
    upstream.remove("b")
    run = run_write(workspace, "out", upsert(table))

    assert (run.status, run.written, run.removed) == ("succeeded", 1, 1)
    assert rows(pg, table) == [(1, "from a"), (3, "c3")]


def test_a_holder_is_read_back_at_the_upstreams_committed_version(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    """The holder falling back in is changed too, and fails to be written: the row read back
    is its committed version's, not the one it wrote before."""
    pg.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, v TEXT CHECK (v <> 'bad'))")
    upstream.land({"a": [{"id": 1, "v": "a v1"}], "b": [{"id": 1, "v": "b v1"}]})
    run_write(workspace, "out", upsert(table))
    upstream.land({"a": [{"id": 1, "v": "a v2"}]})
    run_write(workspace, "out", upsert(table))  # a is the last writer of 1
    assert rows(pg, table) == [(1, "a v2")]

    upstream.land(
        {"a": [{"id": 2, "v": "a2"}], "b": [{"id": 1, "v": "b v2"}, {"id": 5, "v": "bad"}]}
    )
    run = run_write(workspace, "out", upsert(table))

    assert (run.status, run.written) == ("partial", 1)
    assert run.failures[0].partition == "b"
    assert rows(pg, table) == [(1, "b v2"), (2, "a2")]


@pytest.fixture
def schema(pg: Connection) -> Iterator[str]:
    """A schema of its own, for bookkeeping tables no other test shares."""
    name = f"hw_keys_{uuid.uuid4().hex[:10]}"
    pg.execute(f'CREATE SCHEMA "{name}"')
    yield name
    pg.execute(f'DROP SCHEMA "{name}" CASCADE')


def test_bookkeeping_in_the_first_layout_is_upgraded_and_every_partition_rewritten(
    workspace: Workspace, upstream: Upstream, pg: Connection, schema: str
) -> None:
    table = f"{schema}.t"
    keys = f"{schema}.headwater_write_keys"
    upstream.land({"a": [{"id": 1, "v": "from a"}], "b": [{"id": 1, "v": "from b"}]})
    run_write(workspace, "out", upsert(table))
    # What the first layout held: one partition per key, the last writer.
    pg.execute(f"DELETE FROM {keys} WHERE partition = 'a'")
    pg.execute(f"ALTER TABLE {keys} DROP COLUMN seq")
    pg.execute(f"ALTER TABLE {keys} DROP CONSTRAINT headwater_write_keys_pkey")
    pg.execute(f"ALTER TABLE {keys} ADD PRIMARY KEY (writer, key)")
    upstream.remove("b")
    lines: list[str] = []

    run = run_write(workspace, "out", upsert(table), log=lines.append)

    assert (run.status, run.written, run.removed) == ("succeeded", 1, 1)
    assert rows(pg, table) == [(1, "from a")]
    assert any(
        line.startswith(f'upgraded "{schema}"."headwater_write_keys" from one partition per key')
        and "every partition of its 1 upsert writer(s) is written again" in line
        for line in lines
    ), lines
    held = pg.execute(f"SELECT key, partition FROM {keys}").fetchall()
    assert held == [([1], "a")]
    again = run_write(workspace, "out", upsert(table))
    assert (again.written, again.unchanged) == (0, 1)


def test_a_holder_that_cannot_be_read_back_fails_the_removal_naming_it(
    workspace: Workspace, upstream: Upstream, pg: Connection, table: str
) -> None:
    upstream.land({"a": [{"id": 1, "v": "from a"}], "b": [{"id": 1, "v": "from b"}]})
    run_write(workspace, "out", upsert(table))
    (a,) = [p for p in workspace.catalog.partitions(upstream.record.id) if p.name == "a"]
    workspace.store.delete(a.files)  # lost from the store behind the catalog's back
    upstream.remove("b")

    run = run_write(workspace, "out", upsert(table))

    assert run.status == "failed"
    assert run.error is not None
    assert "partition 'b': removing failed" in run.error
    assert rows(pg, table) == [(1, "from b")], "rolled back: b is still written"
