"""Upstream components for transforms: partitions landed exactly as a test lists them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from headwater import Workspace

Rows = list[dict[str, Any]]
Land = Callable[[Workspace, str, dict[str, Rows]], None]


def land_partitions(ws: Workspace, component: str, partitions: dict[str, Rows]) -> None:
    """Make `component` hold exactly `partitions`, as a refresh would: a partition whose rows
    changed is landed again (its fingerprint is a hash of its rows), a missing one is dropped."""
    catalog = ws.catalog
    record = catalog.ensure_component(
        component,
        kind="partitioned",
        source_ref="test",
        settings={},
        code_version="v1",
        now=ws.clock(),
    )
    stored = catalog.stored_partitions(record.id)
    run_id = catalog.start_run(record.id, executor="thread", holder="test", now=ws.clock())
    for name, rows in partitions.items():
        fingerprint = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:12]
        if name not in stored or stored[name].fingerprint != fingerprint:
            table = pa.Table.from_pylist(rows)
            ws.land_table(record, name, table, fingerprint=fingerprint, run_id=run_id)
    gone = [name for name in stored if name not in partitions]
    if gone:
        ws.store.delete(catalog.drop_partitions(record.id, gone))
    catalog.finish_run(
        run_id, status="succeeded", counts={}, failures=[], error=None, now=ws.clock()
    )


@pytest.fixture
def land() -> Land:
    return land_partitions
