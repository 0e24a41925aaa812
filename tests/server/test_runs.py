"""Runs through the API: a partitioned component created from text, refreshed and followed
over server-sent events to its end; one writer per component (409); cancel; a processor and a
task; and runs a killed server left behind, closed at the next start."""

from __future__ import annotations

import datetime
import subprocess
import sys
import types
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from headwater.catalog.lease import HOST
from headwater.catalog.tables import leases, server_runs
from headwater.server import ServerSettings, create_app
from headwater.server.state import Server
from tests.server.conftest import COMPONENTS, EMPTY, PREFIX, follow, ok, shared_events

GATED = """
import hw_server_gate as gate

def list_objects(context, metadata):
    for name in ("a", "b", "c"):
        yield {"name": name, "fingerprint": "1", "is_prefix": False}

def read_records(context, metadata):
    if metadata["name"] == "a":
        gate.started.set()
        assert gate.release.wait(60), "the test never released partition a"
    yield {"id": 1, "tag": metadata["name"]}
"""


@pytest.fixture
def gate() -> Iterator[types.SimpleNamespace]:
    """Events a connector's code (running in the server's pool) and the test share: the read
    of partition "a" says it started, then waits to be released."""
    with shared_events("hw_server_gate", "started", "release") as events:
        yield events


def create_partitioned(api: TestClient, code: str, id: str = "orders", **settings: object) -> None:
    component = {"id": id, "partitioned": {"code": code, "settings": settings}}
    ok(api.post(COMPONENTS, json=component), 201)


def trigger(api: TestClient, component: str = "orders") -> dict[str, object]:
    run: dict[str, object] = ok(api.post(f"{COMPONENTS}/{component}/refresh"), 202)
    return run


def test_a_partitioned_component_runs_and_is_followed_to_its_end(
    api: TestClient, flow: str, objects: Callable[..., str]
) -> None:
    create_partitioned(api, objects({"a": ("1", 3), "b": ("1", 2)}))
    run = trigger(api)
    assert run["status"] in ("queued", "running") and run["component"] == "orders"
    assert run["requested_by"] is not None
    lines, ended = follow(api, int(run["id"]))  # type: ignore[call-overload]
    assert ended["status"] == "succeeded", (ended, lines)
    assert ended["plan"] == {"added": 2, "changed": 0, "removed": 0, "unchanged": 0}
    assert (ended["landed"], ended["rows"], ended["failed"]) == (2, 5, 0)
    assert ended["engine_run_id"] is not None and ended["finished_at"] is not None
    assert lines[0].startswith("queued: partitioned component 'orders'")
    assert "plan: 2 added, 0 changed, 0 removed, 0 unchanged" in lines
    assert {line for line in lines if line.startswith("landed")} == {
        "landed partition 'a': 3 rows, " + line.split(", ")[1] for line in lines if "'a'" in line
    } | {"landed partition 'b': 2 rows, " + line.split(", ")[1] for line in lines if "'b'" in line}
    assert lines[-1] == "ended succeeded"
    assert ok(api.get(f"{PREFIX}/runs/{run['id']}")) == ended

    # a second run reads only what changed; logs can be read again after the end
    objects({"a": ("1", 3), "b": ("2", 1), "c": ("1", 1)})
    second = trigger(api)
    lines, ended = follow(api, int(second["id"]))  # type: ignore[call-overload]
    assert ended["plan"] == {"added": 1, "changed": 1, "removed": 0, "unchanged": 1}
    again, _ = follow(api, int(second["id"]))  # type: ignore[call-overload]
    assert again == lines
    resumed = api.get(f"{PREFIX}/runs/{second['id']}/logs", headers={"Last-Event-ID": "2"})
    assert "id: 1\n" not in resumed.text and "id: 3\n" in resumed.text
    history = ok(api.get(f"{COMPONENTS}/orders/runs"))
    assert [r["id"] for r in history] == [second["id"], run["id"]]


def test_a_failing_connector_ends_its_run_failed_with_the_error_logged(
    api: TestClient, flow: str
) -> None:
    code = EMPTY.replace("return []", "raise RuntimeError('listing broke')", 1)
    create_partitioned(api, code)
    lines, ended = follow(api, int(trigger(api)["id"]))  # type: ignore[call-overload]
    assert ended["status"] == "failed"
    assert "listing broke" in ended["error"]
    assert ended["failures"][0]["function"] == "list_objects"
    assert any("listing broke" in line for line in lines)
    unloadable = "def read_records(context, metadata):\n    return []\n"  # no list_objects
    create_partitioned(api, unloadable, id="broken")
    lines, ended = follow(api, int(trigger(api, "broken")["id"]))  # type: ignore[call-overload]
    assert ended["status"] == "failed" and ended["engine_run_id"] is None
    assert "list_objects" in ended["error"]


def test_a_second_trigger_while_running_is_refused_naming_the_run(
    api: TestClient, flow: str, gate: types.SimpleNamespace
) -> None:
    create_partitioned(api, GATED, concurrency=1)
    first = trigger(api)
    assert gate.started.wait(30)
    second = api.post(f"{COMPONENTS}/orders/refresh")
    assert second.status_code == 409
    assert f"run {first['id']} running" in second.json()["message"]
    busy_delete = api.delete(f"{COMPONENTS}/orders")
    assert busy_delete.status_code == 409 and f"run {first['id']}" in busy_delete.text
    gate.release.set()
    _, ended = follow(api, int(first["id"]))  # type: ignore[call-overload]
    assert ended["status"] == "succeeded" and ended["landed"] == 3
    third = trigger(api)  # free again
    assert follow(api, int(third["id"]))[1]["status"] == "succeeded"  # type: ignore[call-overload]


def test_cancel_stops_a_partitioned_run_between_partitions(
    api: TestClient, flow: str, gate: types.SimpleNamespace
) -> None:
    create_partitioned(api, GATED, concurrency=1)
    run = trigger(api)
    assert gate.started.wait(30)
    cancelled = ok(api.post(f"{PREFIX}/runs/{run['id']}/cancel"))
    assert cancelled["cancel_requested"] is True and cancelled["status"] == "running"
    gate.release.set()
    lines, ended = follow(api, int(run["id"]))  # type: ignore[call-overload]
    assert ended["status"] == "cancelled", lines
    assert "cancel requested" in lines and "stopping: cancelled" in lines
    names = [p["name"] for p in ok(api.get(f"{COMPONENTS}/orders/partitions"))]
    assert names == ["a"]  # the partition in hand committed; the others never landed
    assert ok(api.post(f"{PREFIX}/runs/{run['id']}/cancel"))["status"] == "cancelled"
    assert api.post(f"{PREFIX}/runs/999999/cancel").status_code == 404


def test_a_processor_component_runs_over_its_input(
    api: TestClient, flow: str, objects: Callable[..., str]
) -> None:
    create_partitioned(api, objects({"a": ("1", 3), "b": ("1", 2)}))
    follow(api, int(trigger(api)["id"]))  # type: ignore[call-overload]
    totals = {
        "id": "totals",
        "processor": {
            "statement": "log.info('counting')\n"
            "return [{'n': len(INPUT_DATA), 'tags': len({r['tag'] for r in INPUT_DATA})}]",
            "output_schema": {"n": "int", "tags": "int"},
            "processing": "bulk",
            "input": "orders",
        },
    }
    ok(api.post(COMPONENTS, json=totals), 201)
    lines, ended = follow(api, int(trigger(api, "totals")["id"]))  # type: ignore[call-overload]
    assert ended["status"] == "succeeded", (ended, lines)
    assert ended["rows"] == 1 and ended["landed"] == 1
    assert any("counting" in line for line in lines)
    assert ok(api.get(f"{COMPONENTS}/totals/records"))["rows"] == [{"n": 5, "tags": 2}]

    bad = {
        **totals,
        "id": "bad",
        "processor": {**totals["processor"], "statement": "import os\nreturn []"},
    }  # type: ignore[dict-item]
    ok(api.post(COMPONENTS, json=bad), 201)
    _, ended = follow(api, int(trigger(api, "bad")["id"]))  # type: ignore[call-overload]
    assert ended["status"] == "failed" and "os" in ended["error"]


def test_a_task_component_runs_its_connector(api: TestClient, flow: str) -> None:
    code = (
        "from headwater.tasks import Resource, SyncConnector, TaskExecution\n\n"
        "class Answer(SyncConnector):\n"
        "    name = 'Answer'\n"
        "    task_type_name = 'answer'\n\n"
        "    def do(self, task_template, output_prefix, inputs=None, **kwargs):\n"
        "        rows = [{'answer': inputs['x'] * 2}]\n"
        "        return Resource(phase=TaskExecution.SUCCEEDED, outputs={'rows': rows})\n"
    )
    job = {"id": "answer", "task": {"code": code, "inputs": {"x": 21}, "output": "rows"}}
    ok(api.post(COMPONENTS, json=job), 201)
    lines, ended = follow(api, int(trigger(api, "answer")["id"]))  # type: ignore[call-overload]
    assert ended["status"] == "succeeded", (ended, lines)
    assert ok(api.get(f"{COMPONENTS}/answer/records"))["rows"] == [{"answer": 42}]


def test_runs_left_by_a_killed_server_are_closed_at_the_next_start(
    api: TestClient, flow: str, server: Server, server_settings: ServerSettings,
    objects: Callable[..., str],
) -> None:  # fmt: skip
    create_partitioned(api, objects({"a": ("1", 1)}))
    definition = server.definitions.component("sales", "daily", "orders")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    holder = f"{HOST}:{dead.stdout.strip()}:deadbeef"
    now = datetime.datetime.now(datetime.UTC)
    catalog = server.workspace.catalog
    engine_run = catalog.start_run(
        definition.component_id, executor="thread", holder=holder, now=now
    )
    with catalog.engine.begin() as c:
        c.execute(
            leases.insert().values(
                component_id=definition.component_id,
                holder=holder,
                acquired_at=now,
                expires_at=now + datetime.timedelta(hours=1),
            )
        )
        left = c.execute(
            server_runs.insert().values(
                component_id=definition.component_id, status="running", run_id=engine_run,
                holder=holder, requested_by=None, cancel_requested=False, requested_at=now,
                started_at=now,
            )
        ).inserted_primary_key[0]  # fmt: skip

    with TestClient(create_app(server_settings)) as restarted:
        again: Server = restarted.app.state.headwater  # type: ignore[attr-defined]
        assert again.runs.get(left).status == "abandoned"
        assert again.workspace.catalog.run(engine_run).status == "abandoned"
        with catalog.engine.connect() as c:
            assert c.execute(sa.select(leases)).first() is None
    run = trigger(api)
    assert follow(api, int(run["id"]))[1]["status"] == "succeeded"  # type: ignore[call-overload]

    # a trigger, too, closes what a dead server process of this host left queued
    with catalog.engine.begin() as c:
        stale = c.execute(
            server_runs.insert().values(
                component_id=definition.component_id, status="queued", holder=holder,
                requested_by=None, cancel_requested=False, requested_at=now,
            )
        ).inserted_primary_key[0]  # fmt: skip
    run = trigger(api)
    assert server.runs.get(stale).status == "abandoned"
    assert follow(api, int(run["id"]))[1]["status"] == "succeeded"  # type: ignore[call-overload]
