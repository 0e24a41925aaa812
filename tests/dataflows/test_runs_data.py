"""Dataflows: transforms and write connectors against the real catalog, store and
PostgreSQL, checked against what docs/dataflows.md promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from headwater import Workspace
from headwater.transforms.component import TransformSpec, run_transform
from headwater.writes import WriteSpec, run_write
from tests.transforms.conftest import land_partitions
from tests.writes.conftest import PG_URL, Upstream
from tests.writes.conftest import pg as pg
from tests.writes.conftest import table as table
from tests.writes.conftest import upstream as upstream

Connection = psycopg.Connection[Any]

ORDERS = {"2024-01": [{"id": 1, "total": 150}], "2024-02": [{"id": 2, "total": 300}]}


def test_removing_every_input_partition_removes_every_output_partition(
    workspace: Workspace,
) -> None:
    spec = TransformSpec(("orders",), ("orders",), sql="SELECT * FROM orders", partition_wise=True)
    land_partitions(workspace, "orders", ORDERS)
    assert run_transform(workspace, "copy", spec).landed == 2

    land_partitions(workspace, "orders", {})  # the source was emptied: both partitions removed
    run = run_transform(workspace, "copy", spec)

    # docs/dataflows.md: "a removed input partition removes its output partition".
    assert run.removed == 2
    assert [p.name for p in workspace.partitions("copy")] == []


def test_a_whole_transform_over_an_emptied_input_no_longer_serves_its_rows(
    workspace: Workspace,
) -> None:
    spec = TransformSpec(("orders",), ("orders",), sql="SELECT id FROM orders WHERE total > 100")
    land_partitions(workspace, "orders", ORDERS)
    run_transform(workspace, "big", spec)
    assert workspace.read_arrow("big").num_rows == 2

    land_partitions(workspace, "orders", {})
    run_transform(workspace, "big", spec)

    stored = workspace.partitions("big")
    rows = workspace.read_arrow("big").num_rows if stored else 0
    assert rows == 0


@pytest.mark.postgres
def test_upsert_removing_one_of_two_partitions_sharing_a_key_keeps_the_row(
    workspace: Workspace,
    upstream: Upstream,
    pg: Connection,
    table: str,
) -> None:
    target = {"table": table, "mode": "upsert", "key": ["id"], "url": PG_URL}
    spec = WriteSpec("up", {"postgres": target})
    upstream.land({"a": [{"id": 1, "v": "from a"}], "b": [{"id": 1, "v": "from b"}]})
    assert run_write(workspace, "out", spec).status == "succeeded"

    upstream.remove("b")
    assert run_write(workspace, "out", spec).status == "succeeded"

    # The upstream still holds id 1 (partition a): "keeps the table equal to the upstream by key".
    assert pg.execute(f'SELECT id, v FROM "{table}"').fetchall() == [(1, "from a")]


def test_a_partition_removed_after_a_format_change_leaves_no_file(
    workspace: Workspace,
    upstream: Upstream,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"

    def spec(fmt: str) -> WriteSpec:
        return WriteSpec("up", {"files": {"path": str(out), "format": fmt}})

    upstream.land({"a": [{"id": 1}], "b": [{"id": 2}]})
    assert run_write(workspace, "out", spec("parquet")).written == 2
    assert run_write(workspace, "out", spec("csv")).written == 2

    upstream.remove("b")
    assert run_write(workspace, "out", spec("csv")).removed == 1

    # docs/dataflows.md: "a removed partition's file is deleted".
    left = sorted(p.name for p in out.iterdir() if p.name.startswith(("b-", "b.")))
    assert left == [], f"files of removed partition 'b' still in {out}: {left}"
