"""Dataflows: the dataflow graph rules (acyclic, no dangling input) under concurrent
requests on a PostgreSQL catalog, where two transactions each check a graph the other changes
(write skew at READ COMMITTED)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.catalog import definitions as catalog_definitions
from headwater.catalog.resources import ConflictError
from headwater.client import models
from headwater.client.graph import cycles
from headwater.server.convert import component_fields
from headwater.server.state import Server
from tests.conftest import _postgres_database
from tests.server.conftest import PREFIX, ok

COMPONENTS = f"{PREFIX}/data-services/sales/dataflows/daily/components"
EMPTY = "def list_objects(context, metadata):\n    return []\n"
HOLD = 2.0  # how long a check waits for the others to reach theirs


@pytest.fixture
def catalog_url() -> Iterator[str]:
    """PostgreSQL only (SQLite serialises writers; the race needs concurrent transactions)."""
    yield from _postgres_database()


def transform(id: str, inputs: list[str]) -> Any:
    sql = f"SELECT * FROM {inputs[0]}"
    return component_fields(
        models.Component(id=id, transform=models.TransformDefinition(inputs=inputs, sql=sql))
    )


def concurrently(monkeypatch: pytest.MonkeyPatch, *calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` in threads, each held after its graph check until all have checked; returns
    each call's result or exception. With the dataflow locked, the others cannot reach their
    check while one holds the lock: the wait then ends after HOLD seconds and that one goes on
    (a bounded wait for something that must not happen)."""
    barrier = threading.Barrier(len(calls), timeout=HOLD)
    check = catalog_definitions._cycle_through

    def checked_together(start: str, edges: dict[str, tuple[str, ...]]) -> list[str]:
        found = check(start, edges)
        with contextlib.suppress(threading.BrokenBarrierError):  # serialised: the others wait
            barrier.wait()
        return found

    monkeypatch.setattr(catalog_definitions, "_cycle_through", checked_together)
    results: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        try:
            results[n] = calls[n]()
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    return results


@pytest.mark.postgres
def test_concurrent_updates_cannot_close_a_cycle(
    api: TestClient, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(api.post(f"{PREFIX}/data-services", json={"id": "sales"}), 201)
    ok(api.post(f"{PREFIX}/data-services/sales/dataflows", json={"id": "daily"}), 201)
    code = EMPTY + "def read_records(context, metadata):\n    return []\n"
    ok(api.post(COMPONENTS, json={"id": "orders", "partitioned": {"code": code}}), 201)
    for id in ("a", "b"):
        body = {"id": id, "transform": {"inputs": ["orders"], "sql": "SELECT * FROM orders"}}
        ok(api.post(COMPONENTS, json=body), 201)
    defs, now = server.definitions, server.clock()

    concurrently(
        monkeypatch,
        lambda: defs.replace_component("sales", "daily", "a", transform("a", ["b"]), now),
        lambda: defs.replace_component("sales", "daily", "b", transform("b", ["a"]), now),
    )

    graph = {r.id: list(r.inputs) for r in defs.components("sales", "daily")}
    assert cycles(graph) == [], graph


@pytest.mark.postgres
def test_a_component_cannot_be_deleted_while_a_reader_of_it_is_created(
    api: TestClient, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(api.post(f"{PREFIX}/data-services", json={"id": "sales"}), 201)
    ok(api.post(f"{PREFIX}/data-services/sales/dataflows", json={"id": "daily"}), 201)
    code = EMPTY + "def read_records(context, metadata):\n    return []\n"
    ok(api.post(COMPONENTS, json={"id": "orders", "partitioned": {"code": code}}), 201)
    defs, now = server.definitions, server.clock()
    checked = threading.Event()
    deleted = threading.Event()
    check = catalog_definitions._cycle_through

    def check_then_wait(start: str, edges: dict[str, tuple[str, ...]]) -> list[str]:
        found = check(start, edges)
        checked.set()  # 'orders' was found to exist: now it is deleted, then this commits
        deleted.wait(HOLD)  # (with the dataflow locked, the delete waits for this commit)
        return found

    monkeypatch.setattr(catalog_definitions, "_cycle_through", check_then_wait)
    results: list[Any] = []

    def create() -> None:
        try:
            results.append(
                defs.create_component("sales", "daily", "t", transform("t", ["orders"]), now)
            )
        except Exception as exc:
            results.append(exc)

    thread = threading.Thread(target=create)
    thread.start()
    try:
        assert checked.wait(30)
        try:
            defs.delete_component("sales", "daily", "orders", now)
        except ConflictError as refused:  # it waited for the create, then saw its reader
            assert "'orders' is the input of t" in str(refused)
        finally:
            deleted.set()
    finally:
        thread.join(60)

    ids = {r.id for r in defs.components("sales", "daily")}
    dangling = {i for r in defs.components("sales", "daily") for i in r.inputs if i not in ids}
    assert dangling == set(), f"components {ids} read missing {dangling}"
