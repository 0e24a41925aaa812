"""Propagation: a run that succeeds and changes its component's data queues its readers, down
the whole graph; a failure stops there, naming the component; nothing changed, nothing queued;
a busy reader runs again once its run ends."""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import COMPONENTS, PREFIX, follow, ok, shared_events

BULK_COUNT = {
    "statement": "return [{'n': len(INPUT_DATA)}]",
    "output_schema": {"n": "int"},
    "processing": "bulk",
}


def create(api: TestClient, component: dict[str, object]) -> None:
    ok(api.post(COMPONENTS, json=component), 201)


def refresh(api: TestClient, component: str) -> tuple[list[str], dict[str, object]]:
    run = ok(api.post(f"{COMPONENTS}/{component}/refresh"), 202)
    return follow(api, run["id"])


def triggered(api: TestClient, run: dict[str, object]) -> list[dict[str, object]]:
    found: list[dict[str, object]] = ok(api.get(f"{PREFIX}/runs/{run['id']}/triggered"))
    return found


def chain(
    api: TestClient, objects: Callable[..., str], listing: dict[str, tuple[str, int]]
) -> None:
    """orders (partitioned) -> totals (processor) -> again (processor over totals)."""
    create(api, {"id": "orders", "partitioned": {"code": objects(listing)}})
    create(api, {"id": "totals", "processor": {**BULK_COUNT, "input": "orders"}})
    create(api, {"id": "again", "processor": {**BULK_COUNT, "input": "totals"}})


def test_a_change_upstream_flows_down_the_whole_graph(
    api: TestClient, flow: str, objects: Callable[..., str]
) -> None:
    chain(api, objects, {"a": ("1", 3), "b": ("1", 2)})
    lines, ended = refresh(api, "orders")
    assert ended["status"] == "succeeded", lines
    [totals] = triggered(api, ended)
    assert totals["component"] == "totals" and totals["triggered_by"] == ended["id"]
    lines, totals = follow(api, totals["id"])  # type: ignore[arg-type]
    assert totals["status"] == "succeeded", lines
    assert any(f"triggered by run {ended['id']}" in line for line in lines)
    [again] = triggered(api, totals)
    _, again = follow(api, again["id"])  # type: ignore[arg-type]
    assert again["status"] == "succeeded" and again["component"] == "again"
    assert ok(api.get(f"{COMPONENTS}/totals/records"))["rows"] == [{"n": 5}]
    assert triggered(api, again) == []  # the end of the graph


def test_nothing_changed_upstream_queues_nothing(
    api: TestClient, flow: str, objects: Callable[..., str]
) -> None:
    chain(api, objects, {"a": ("1", 3)})
    _, first = refresh(api, "orders")
    [totals] = triggered(api, first)
    follow(api, totals["id"])  # type: ignore[arg-type]
    lines, second = refresh(api, "orders")  # same listing: nothing lands
    assert second["status"] == "succeeded" and second["landed"] == 0
    assert triggered(api, second) == []
    assert any("nothing changed: 'totals' not refreshed" in line for line in lines)


def test_a_failure_stops_propagation_and_names_the_component(
    api: TestClient, flow: str, objects: Callable[..., str]
) -> None:
    chain(api, objects, {"a": ("1", 3)})
    code = "def list_objects(context, metadata):\n    raise RuntimeError('source is down')\n"
    code += "def read_records(context, metadata):\n    return []\n"
    ok(api.put(f"{COMPONENTS}/orders", json={"id": "orders", "partitioned": {"code": code}}))
    lines, ended = refresh(api, "orders")
    assert ended["status"] == "failed"
    assert triggered(api, ended) == []
    stop = [line for line in lines if "propagation stops" in line]
    assert stop == [
        "propagation stops at 'orders' (failed): 'totals' not refreshed; they keep their last "
        "good data"
    ]
    assert ok(api.get(f"{COMPONENTS}/totals/runs")) == []


SLOW = """
import hw_propagation_gate as gate

def transform(orders):
    gate.started.set()
    assert gate.release.wait(60), "the test never released the transform"
    return orders
"""


@pytest.fixture
def gate() -> Iterator[types.SimpleNamespace]:
    """Events the transform (running in the server's pool) and the test share."""
    with shared_events("hw_propagation_gate", "started", "release") as events:
        yield events


def test_a_busy_reader_runs_again_after_its_current_run(
    api: TestClient, flow: str, objects: Callable[..., str], gate: types.SimpleNamespace
) -> None:
    create(api, {"id": "orders", "partitioned": {"code": objects({"a": ("1", 3)})}})
    create(api, {"id": "slow", "transform": {"inputs": ["orders"], "python": SLOW}})
    _, first = refresh(api, "orders")
    [busy] = triggered(api, first)
    assert gate.started.wait(30)  # the transform's first run is in progress
    objects({"a": ("2", 4)})  # (the connector reads its listing file on every refresh)
    lines, second = refresh(api, "orders")
    assert f"'slow' is busy (run {busy['id']}); it runs again after that run" in lines
    assert triggered(api, second) == []  # not yet: slow is still running
    gate.release.set()
    _, busy = follow(api, busy["id"])  # type: ignore[arg-type]
    [rerun] = _eventually(lambda: triggered(api, second))
    _, rerun = follow(api, rerun["id"])  # type: ignore[arg-type]
    assert busy["status"] == rerun["status"] == "succeeded"
    assert ok(api.get(f"{COMPONENTS}/slow/records"))["rows"] == [
        {"id": i, "tag": "a"} for i in range(4)
    ]


def _eventually(
    probe: Callable[[], list[dict[str, object]]], seconds: float = 30.0
) -> list[dict[str, object]]:
    """What `probe` returns once it is not empty (it is asked again until `seconds` pass)."""
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        assert time.monotonic() < deadline, "nothing appeared in time"
        time.sleep(0.05)
    return found
