"""The scheduler inside the real app (in-process): a component on a one-second interval runs
again and again, requested by "schedule"; a run still going when its next slot comes is not
piled up; removing the schedule stops the runs; an invalid cron is refused (422); errors in the
loop are logged and retried. With the thread off, passes at pinned times show that missed slots
are not caught up and that a slot already served (by another server, or by hand) is skipped."""

from __future__ import annotations

import datetime
import logging
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient

from headwater.errors import SettingsError
from headwater.server import ServerSettings, create_app, scheduler
from headwater.server.state import Server
from headwater.vault import SECRET_KEY_ENV, ServerKey
from tests.server.conftest import COMPONENTS, follow, ok, shared_events

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
SECONDS = 15.0  # the longest wait for a condition (normally 1-4 s)
T = TypeVar("T")

ONE = """
def list_objects(context, metadata):
    yield {"name": "a", "fingerprint": "1", "is_prefix": False}

def read_records(context, metadata):
    yield {"id": 1}
"""
GATED = """
import hw_schedule_gate as gate

def list_objects(context, metadata):
    yield {"name": "a", "fingerprint": "1", "is_prefix": False}

def read_records(context, metadata):
    gate.started.set()
    assert gate.release.wait(60), "the test never released the read"
    yield {"id": 1}
"""


@pytest.fixture
def gate() -> Iterator[types.SimpleNamespace]:
    """Events the connector's code (in the server's pool) and the test share."""
    with shared_events("hw_schedule_gate", "started", "release") as events:
        yield events


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="headwater.server.scheduler")
    return caplog


def component(schedule: dict[str, Any] | None, code: str = ONE) -> dict[str, Any]:
    return {"id": "orders", "partitioned": {"code": code}, "schedule": schedule}


def runs(api: TestClient) -> list[dict[str, Any]]:
    """The component's runs, oldest first."""
    found: list[dict[str, Any]] = ok(api.get(f"{COMPONENTS}/orders/runs?limit=100"))
    return found[::-1]


def all_ended(api: TestClient) -> list[dict[str, Any]]:
    """The component's runs once there are some and all have ended, else []."""
    found = runs(api)
    return found if found and all(r["finished_at"] for r in found) else []


def wait_for(condition: Callable[[], T], what: str) -> T:
    """Poll `condition` until it holds (returning its value), for at most SECONDS."""
    deadline = time.monotonic() + SECONDS
    while not (value := condition()):
        assert time.monotonic() < deadline, f"waited {SECONDS} s for {what}"
        time.sleep(0.05)
    return value


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def component_id(server: Server) -> str:
    return server.definitions.component("sales", "daily", "orders").component_id


def test_an_interval_schedule_refreshes_the_component_again_and_again(
    api: TestClient, flow: str
) -> None:
    ok(api.post(COMPONENTS, json=component({"interval_seconds": 1})), 201)
    done = wait_for(
        lambda: len(ended := [r for r in runs(api) if r["finished_at"]]) >= 2 and ended,
        "two scheduled runs to end",
    )
    assert [r["status"] for r in done] == ["succeeded"] * len(done), [r["error"] for r in done]
    assert {r["requested_by"] for r in runs(api)} == {scheduler.REQUESTED_BY}
    slots = [at(r["requested_at"]).replace(microsecond=0) for r in done]
    assert len(set(slots)) == len(slots)  # one run per slot (slots are whole seconds)
    lines, _ = follow(api, done[0]["id"])
    assert lines[0].endswith("requested by schedule"), lines


def test_a_run_still_going_when_its_next_slot_comes_is_not_piled_up(
    api: TestClient,
    flow: str,
    server: Server,
    gate: types.SimpleNamespace,
    logs: pytest.LogCaptureFixture,
) -> None:
    ok(api.post(COMPONENTS, json=component({"interval_seconds": 1}, GATED)), 201)
    server.scheduler.wake()  # (rather than wait for its next read of the definitions)
    assert gate.started.wait(SECONDS), "the schedule never started a run"
    [first] = runs(api)
    assert first["status"] == "running"

    # The scheduler goes past two more slots while the run is held
    planned = wait_for(lambda: server.scheduler.planned.get(component_id(server)), "the plan")
    beyond = at(first["requested_at"]) + datetime.timedelta(seconds=3)
    wait_for(lambda: planned.due >= beyond, "two more slots")
    assert [r["id"] for r in runs(api)] == [first["id"]]
    skipped = [r.getMessage() for r in logs.records if "is skipped" in r.getMessage()]
    assert len(skipped) >= 2, logs.text
    assert all(f"run {first['id']} is still queued or running" in m for m in skipped), skipped

    gate.release.set()  # the run ends; the next slot runs again
    _, ended = follow(api, first["id"])
    assert ended["status"] == "succeeded", ended
    second = wait_for(lambda: runs(api)[1:], "the next scheduled run")[0]
    assert second["requested_by"] == "schedule"
    assert follow(api, second["id"])[1]["status"] == "succeeded"


def test_removing_the_schedule_stops_the_runs(api: TestClient, flow: str, server: Server) -> None:
    server.scheduler.reload_seconds = 0.25  # reads the definitions more often: a shorter test
    ok(api.post(COMPONENTS, json=component({"interval_seconds": 1})), 201)
    server.scheduler.wake()
    wait_for(lambda: runs(api), "a scheduled run")
    cid = component_id(server)
    assert cid in server.scheduler.planned

    changed = ok(api.put(f"{COMPONENTS}/orders", json=component(None)))
    assert changed["schedule"] is None
    removed_at = server.clock()
    wait_for(lambda: (server.scheduler.loaded_at or removed_at) > removed_at, "a reload")
    assert cid not in server.scheduler.planned
    before = wait_for(lambda: all_ended(api), "the runs to end")

    # The scheduler looks again after more than one slot of the old schedule: no new run
    later = removed_at + datetime.timedelta(seconds=1.25)
    wait_for(lambda: (server.scheduler.loaded_at or removed_at) > later, "another reload")
    assert runs(api) == before and cid not in server.scheduler.planned
    # ... and a manual refresh still works
    manual = ok(api.post(f"{COMPONENTS}/orders/refresh"), 202)
    assert manual["requested_by"] not in (None, "schedule")
    assert follow(api, manual["id"])[1]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron": "61 * * * *"}, "the schedule of component 'orders' has an invalid cron"),
        ({"cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_an_invalid_schedule_is_refused_when_the_component_is_created(
    api: TestClient, flow: str, schedule: dict[str, Any], message: str
) -> None:
    answer = ok(api.post(COMPONENTS, json=component(schedule)), 422)
    assert message in str(answer), answer
    assert api.get(f"{COMPONENTS}/orders").status_code == 404


def test_errors_in_the_loop_are_logged_and_retried(
    api: TestClient,
    flow: str,
    server: Server,
    logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scheduler, "RETRY_SECONDS", 0.2)
    failures = {"scheduled": 2, "trigger": 1}

    def flaky(name: str, real: Callable[..., T]) -> Callable[..., T]:
        def call(*args: Any, **kwargs: Any) -> T:
            if failures[name] > 0:
                failures[name] -= 1
                raise RuntimeError(f"database hiccup in {name}")
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(
        server.definitions, "scheduled", flaky("scheduled", server.definitions.scheduled)
    )
    monkeypatch.setattr(server.pool, "trigger", flaky("trigger", server.pool.trigger))
    ok(api.post(COMPONENTS, json=component({"interval_seconds": 1})), 201)
    server.scheduler.wake()
    [run] = wait_for(lambda: runs(api), "a scheduled run")
    assert follow(api, run["id"])[1]["status"] == "succeeded"
    assert failures == {"scheduled": 0, "trigger": 0}
    errors = [r.getMessage() for r in logs.records if r.levelno == logging.ERROR]
    assert any(m.startswith("the scheduler failed; trying again") for m in errors), errors
    assert any(m.endswith("could not be queued") for m in errors), errors
    assert "database hiccup in scheduled" in logs.text  # (with the traceback)
    assert "database hiccup in trigger" in logs.text


# -- passes at pinned times (the thread off) ----------------------------------------------------


@pytest.mark.parametrize("scheduler_on", [False])
def test_slots_missed_while_the_server_was_down_are_not_caught_up(
    api: TestClient, flow: str, server: Server
) -> None:
    ok(api.post(COMPONENTS, json=component({"cron": "0 * * * *"})), 201)
    assert server.scheduler.loaded_at is None  # the thread is off
    planned_at = at("2100-01-01T00:00:30Z")
    wake_at = server.scheduler.tick(planned_at)
    planned = server.scheduler.planned[component_id(server)]
    assert planned.due == at("2100-01-01T01:00:00Z")
    assert wake_at == planned_at + datetime.timedelta(seconds=scheduler.RELOAD_SECONDS)
    assert runs(api) == []

    server.scheduler.tick(at("2100-01-01T05:20:00Z"))  # five slots passed: one run
    [run] = runs(api)
    assert run["requested_by"] == "schedule"
    assert planned.due == at("2100-01-01T06:00:00Z")
    assert follow(api, run["id"])[1]["status"] == "succeeded"
    server.scheduler.tick(at("2100-01-01T05:59:59Z"))
    assert len(runs(api)) == 1
    server.scheduler.tick(at("2100-01-01T06:00:00Z"))
    assert len(runs(api)) == 2


@pytest.mark.parametrize("scheduler_on", [False])
def test_a_slot_already_served_is_skipped(
    api: TestClient, flow: str, server: Server, logs: pytest.LogCaptureFixture
) -> None:
    """Another server (or a person) ran the component at or after the slot's time: servers
    sharing a catalog fire each slot once."""
    ok(api.post(COMPONENTS, json=component({"cron": "0 * * * *"})), 201)
    server.scheduler.tick(server.clock() - datetime.timedelta(hours=1))
    planned = server.scheduler.planned[component_id(server)]
    slot = planned.due
    assert slot <= server.clock()

    manual = ok(api.post(f"{COMPONENTS}/orders/refresh"), 202)
    follow(api, manual["id"])
    server.scheduler.tick(slot)
    assert [r["id"] for r in runs(api)] == [manual["id"]]
    assert planned.due == slot + datetime.timedelta(hours=1)
    assert f"is skipped: run {manual['id']} was requested at" in logs.text

    server.scheduler.tick(planned.due)  # the next slot was not served: it runs
    assert [r["requested_by"] for r in runs(api)][1:] == ["schedule"]


@pytest.mark.parametrize("scheduler_on", [False])
def test_servers_sharing_a_catalog_fire_a_slot_once(
    api: TestClient, flow: str, server: Server, server_settings: ServerSettings
) -> None:
    ok(api.post(COMPONENTS, json=component({"cron": "0 * * * *"})), 201)
    start = server.clock() - datetime.timedelta(hours=1)
    with TestClient(create_app(server_settings)) as started:
        other: Server = started.app.state.headwater  # type: ignore[attr-defined]
        for each in (server, other):
            each.scheduler.tick(start)
        slot = server.scheduler.planned[component_id(server)].due
        assert other.scheduler.planned[component_id(server)].due == slot

        server.scheduler.tick(slot)
        [run] = runs(api)
        other.scheduler.tick(slot)  # refused while the run is queued or running
        follow(api, run["id"])
        other.scheduler.tick(slot)  # (it has moved on to the next slot already)
        assert [r["id"] for r in runs(api)] == [run["id"]]
        for each in (server, other):
            assert each.scheduler.planned[component_id(server)].due == slot + HOUR


@pytest.mark.parametrize("scheduler_on", [False])
def test_a_schedule_changed_or_removed_takes_effect_at_the_next_read(
    api: TestClient, flow: str, server: Server
) -> None:
    ok(api.post(COMPONENTS, json=component({"cron": "0 6 * * *", "timezone": "Europe/Paris"})), 201)
    now = at("2100-01-01T00:00:00Z")
    server.scheduler.tick(now)
    cid = component_id(server)
    assert server.scheduler.planned[cid].due == at("2100-01-01T05:00:00Z")

    ok(api.put(f"{COMPONENTS}/orders", json=component({"interval_seconds": 600})))
    server.scheduler.tick(now + datetime.timedelta(seconds=1))  # before the next read: as it was
    assert server.scheduler.planned[cid].due == at("2100-01-01T05:00:00Z")
    server.scheduler.tick(now + datetime.timedelta(seconds=scheduler.RELOAD_SECONDS))
    assert server.scheduler.planned[cid].due == at("2100-01-01T00:10:00Z")

    # A component is read again just before it fires (here, with no read of them all first)
    ok(api.put(f"{COMPONENTS}/orders", json=component(None)))
    server.scheduler.reload_seconds = 3600
    server.scheduler.tick(at("2100-01-01T00:10:00Z"))
    assert cid not in server.scheduler.planned and runs(api) == []


def test_the_scheduler_can_be_turned_off_in_the_settings(tmp_path: Path) -> None:
    env = {SECRET_KEY_ENV: ServerKey.generate()}
    assert ServerSettings.from_env(env, home=tmp_path).scheduler is True
    for off in ("0", "off", "false", " No "):
        settings = ServerSettings.from_env({**env, "HEADWATER_SCHEDULER": off}, home=tmp_path)
        assert settings.scheduler is False
    with pytest.raises(SettingsError, match="HEADWATER_SCHEDULER='maybe' is neither on nor off"):
        ServerSettings.from_env({**env, "HEADWATER_SCHEDULER": "maybe"}, home=tmp_path)
