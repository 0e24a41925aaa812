"""Stream components in the server: exactly-once landing across a cancelled run and the run that
resumes it, and errors that name the component."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater import Workspace
from headwater.connectors.loading import ConnectorSource
from headwater.stream.component import StreamSpec, run_stream
from tests.server.conftest import COMPONENTS, follow, ok, shared_events

# Resumable (it defines seek), with a bad row among its good ones. Its first run commits the
# rows with commit() (no offset yet), then cancels itself and waits to be stopped; the next
# run sends the same rows again, then reports its offset and ends.
BAD_ROW_FEED = """
import pathlib
import hw_review_gate as gate
from headwater import stream

FIRST = pathlib.Path({marker!r})

class Row(stream.Schema):
    n: int

class Feed(stream.ConnectorSubject):
    start = 0

    def seek(self, offset):
        self.start = offset

    def run(self):
        rows = [1, "not a number", 2]
        for value in rows[self.start:]:
            self.next(n=value)
        if not FIRST.exists():
            FIRST.touch()
            self.commit()
            gate.cancel.set()
            gate.stopped.wait()
            return
        self.report_offset(len(rows))

    def on_stop(self):
        gate.stopped.set()
"""


@pytest.fixture
def gate() -> Iterator[types.SimpleNamespace]:
    with shared_events("hw_review_gate", "cancel", "stopped") as events:
        yield events


@pytest.mark.parametrize("on_bad_row", ["skip", "dead_letter"])
def test_a_resumed_run_lands_each_row_once_when_a_bad_row_was_dropped(
    workspace: Workspace, tmp_path: Path, gate: types.SimpleNamespace, on_bad_row: str
) -> None:
    code = BAD_ROW_FEED.format(marker=str(tmp_path / "first-run"))
    spec = StreamSpec(
        ConnectorSource.from_text(code, "feed"), autocommit_duration_ms=None, on_bad_row=on_bad_row
    )
    first = run_stream(workspace, "feed", spec, cancel=gate.cancel)
    assert (first.status, first.commits) == ("interrupted", 1)
    assert [r["n"] for r in workspace.read_arrow("feed").to_pylist()] == [1, 2]
    gate.cancel.clear()
    second = run_stream(workspace, "feed", spec, cancel=gate.cancel)
    assert second.status == "succeeded", second
    # 1 and 2 landed in the first run: the second must land neither again
    assert [r["n"] for r in workspace.read_arrow("feed").to_pylist()] == [1, 2]


# A schema with a column the change stream reserves (`time`): refused only when it runs.
RESERVED = """
from headwater import stream

class Event(stream.Schema):
    time: int

class Events(stream.ConnectorSubject):
    def run(self):
        self.next(time=1)
"""


def test_a_schema_with_a_reserved_column_fails_its_run_naming_the_component(
    api: TestClient, flow: str
) -> None:
    body: dict[str, Any] = {"id": "events", "stream": {"code": RESERVED}}
    ok(api.post(COMPONENTS, json=body), 201)
    started = ok(api.post(f"{COMPONENTS}/events/refresh"), 202)
    lines, ended = follow(api, int(started["id"]))
    assert ended["status"] == "failed", (ended, lines)
    assert "time" in ended["error"]  # it failed for the reason planted
    assert "'events'" in ended["error"], ended["error"]
