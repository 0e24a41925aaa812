"""Dataflows: propagation in the server's RunPool, against the real app. A reader must
not be left on stale data while its upstream is healthy and has succeeded."""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.catalog.server_runs import RunConflictError
from headwater.server.state import Server
from tests.server.conftest import COMPONENTS, PREFIX, follow, ok, shared_events

# Objects come from objects.json (the `objects` fixture); an object named "bad" cannot be read.
FAILING = """
import json, pathlib
OBJECTS = pathlib.Path({path!r})

def list_objects(context, metadata):
    for name, (fingerprint, rows) in json.loads(OBJECTS.read_text()).items():
        yield {{"name": name, "fingerprint": fingerprint, "is_prefix": False, "rows": rows}}

def read_records(context, metadata):
    if metadata["name"] == "bad":
        raise ValueError("object 'bad' is corrupt")
    for i in range(metadata["rows"]):
        yield {{"id": i, "tag": metadata["name"]}}
"""

SLOW = """
import hw_dataflows_gate as gate

def transform(orders):
    gate.started.set()
    assert gate.release.wait(60), "the test never released the transform"
    return orders
"""


@pytest.fixture
def gate() -> Iterator[types.SimpleNamespace]:
    """Events the transform (running in the server's pool) and the test share."""
    with shared_events("hw_dataflows_gate", "started", "release") as events:
        yield events


def refresh(api: TestClient, component: str) -> tuple[list[str], dict[str, Any]]:
    run = ok(api.post(f"{COMPONENTS}/{component}/refresh"), 202)
    return follow(api, run["id"])


def triggered(api: TestClient, run: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(api.get(f"{PREFIX}/runs/{run['id']}/triggered"))
    return found


def wait_idle(server: Server, seconds: float = 30.0) -> None:
    """Until the pool holds no run (queued or running)."""
    deadline = time.monotonic() + seconds
    while server.pool._active:
        assert time.monotonic() < deadline, f"runs still active: {list(server.pool._active)}"
        time.sleep(0.02)


def test_data_landed_by_a_partial_run_reaches_readers_once_upstream_succeeds(
    api: TestClient, flow: str, objects: Callable[..., str], tmp_path: Any
) -> None:
    objects({"good": ("1", 3), "bad": ("1", 1)})
    code = FAILING.format(path=str(tmp_path / "objects.json"))
    ok(api.post(COMPONENTS, json={"id": "orders", "partitioned": {"code": code}}), 201)
    sql = {"inputs": ["orders"], "sql": "SELECT * FROM orders"}
    ok(api.post(COMPONENTS, json={"id": "copy", "transform": sql}), 201)

    _, first = refresh(api, "orders")
    assert first["status"] == "partial"  # 'good' landed, 'bad' failed: propagation stops

    objects({"good": ("1", 3)})  # the corrupt object is deleted at the source
    lines, second = refresh(api, "orders")
    assert second["status"] == "succeeded", lines

    # Upstream is healthy and holds 'good', which 'copy' has never seen: it must be refreshed.
    assert triggered(api, second) != [], lines


def test_a_busy_reader_that_ends_during_propagation_still_runs_again(
    api: TestClient,
    flow: str,
    objects: Callable[..., str],
    gate: types.SimpleNamespace,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = server.pool
    orders = {"id": "orders", "partitioned": {"code": objects({"a": ("1", 3)})}}
    ok(api.post(COMPONENTS, json=orders), 201)
    slow = {"id": "slow", "transform": {"inputs": ["orders"], "python": SLOW}}
    ok(api.post(COMPONENTS, json=slow), 201)
    _, first = refresh(api, "orders")
    [busy] = triggered(api, first)
    assert gate.started.wait(30)

    # The interleaving under test, forced: the upstream's propagation finds 'slow' busy, and
    # 'slow' then ends completely (its _run_again included) before _propagate notes _again.
    reader_done = threading.Event()
    run_again, trigger = pool._run_again, pool.trigger

    def noted_run_again(definition: Any) -> None:
        run_again(definition)
        if definition.id == "slow":
            reader_done.set()

    def racing_trigger(definition: Any, requested_by: Any, **kw: Any) -> Any:
        try:
            return trigger(definition, requested_by, **kw)
        except RunConflictError:
            if kw.get("triggered_by") is not None and definition.id == "slow":
                gate.release.set()
                assert reader_done.wait(30), "the busy reader never ended"
            raise

    monkeypatch.setattr(pool, "_run_again", noted_run_again)
    monkeypatch.setattr(pool, "trigger", racing_trigger)

    objects({"a": ("2", 4)})
    lines, second = refresh(api, "orders")
    # (it found 'slow' busy, then no longer running: so it queued it at once)
    assert any("queued run" in line and "'slow'" in line for line in lines), lines
    _, busy = follow(api, busy["id"])
    assert busy["status"] == "succeeded"
    wait_idle(server)

    # docs/dataflows.md: "A reader that is busy ... runs once more after that run ends, so the
    # last change upstream is never missed."
    assert triggered(api, second) != []
