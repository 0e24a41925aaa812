"""Runs and data through the client (SQLite and PostgreSQL): a partitioned component created
with code, refreshed, its log followed to the end, its records read as JSON pages and as
Arrow; cancelling; a credential that reaches the connector but never comes back."""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable, Iterator

import httpx
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from headwater.client import (
    Client,
    Component,
    ConflictError,
    Connection,
    LogLine,
    NotFoundError,
    PartitionedDefinition,
    PartitionedSettings,
    Run,
)
from headwater.client.http import events, lines
from tests.client.conftest import GATED, AppTransport


def partitioned(id: str, code: str) -> Component:
    return Component(id=id, partitioned=PartitionedDefinition(code=code))


def follow(hw: Client, run_id: int) -> tuple[list[LogLine], Run]:
    items = list(hw.follow_run_logs(run_id))
    *log, end = items
    assert isinstance(end, Run) and all(isinstance(i, LogLine) for i in log), items
    return log, end  # type: ignore[return-value]


def test_a_component_is_refreshed_followed_and_read(
    hw: Client, flow: tuple[str, str], objects: Callable[..., str]
) -> None:
    hw.create_component(*flow, partitioned("orders", objects({"a": ("1", 3), "b": ("1", 2)})))
    run = hw.refresh_component(*flow, "orders")
    assert run.status in ("queued", "running") and run.component == "orders"
    log, ended = follow(hw, run.id)
    assert ended.status == "succeeded" and ended.finished, (ended, log)
    assert ended.plan is not None and (ended.plan.added, ended.landed, ended.rows) == (2, 2, 5)
    messages = [line.message for line in log]
    assert messages[0].startswith("queued: partitioned component 'orders'")
    assert "plan: 2 added, 0 changed, 0 removed, 0 unchanged" in messages
    assert messages[-1] == "ended succeeded"
    assert [line.seq for line in log] == sorted(line.seq for line in log)
    resumed = [i for i in hw.follow_run_logs(run.id, after=log[1].seq) if isinstance(i, LogLine)]
    assert resumed == log[2:]
    assert hw.get_run(run.id) == ended
    assert hw.wait_for_run(run.id) == ended  # an ended run answers at once

    partitions = hw.get_partitions(*flow, "orders")
    assert [(p.name, p.row_count) for p in partitions] == [("a", 3), ("b", 2)]
    assert {p.engine_run_id for p in partitions} == {ended.engine_run_id}
    schema = hw.get_schema(*flow, "orders")
    assert [(f.name, f.type) for f in schema.fields] == [("id", "int64"), ("tag", "string")]

    first = hw.get_records(*flow, "orders", limit=2)
    assert first.rows == [{"id": 0, "tag": "a"}, {"id": 1, "tag": "a"}] and first.next_cursor
    second = hw.get_records(*flow, "orders", limit=2, cursor=first.next_cursor)
    assert second.rows == [{"id": 2, "tag": "a"}, {"id": 0, "tag": "b"}]
    every = list(hw.iter_records(*flow, "orders", page_size=2))
    assert [(r["tag"], r["id"]) for r in every] == [
        ("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)
    ]  # fmt: skip
    assert list(hw.iter_records(*flow, "orders", partition="b")) == every[3:]

    table = hw.get_records_arrow(*flow, "orders")
    assert table.schema == pa.schema([("id", pa.int64()), ("tag", pa.string())])
    assert table.to_pylist() == every
    assert hw.get_records_arrow(*flow, "orders", partition="b").num_rows == 2
    with pytest.raises(NotFoundError, match="no partition 'zz'"):
        hw.get_records_arrow(*flow, "orders", partition="zz")

    objects({"a": ("1", 3), "b": ("2", 1), "c": ("1", 1)})
    again = hw.wait_for_run(hw.refresh_component(*flow, "orders").id, timeout=60)
    assert again.plan is not None and (again.plan.added, again.plan.changed) == (1, 1)
    assert [r.id for r in hw.list_component_runs(*flow, "orders")] == [again.id, run.id]
    assert [r.id for r in hw.list_component_runs(*flow, "orders", limit=1)] == [again.id]


def test_an_empty_component_reads_empty(hw: Client, flow: tuple[str, str]) -> None:
    hw.create_component(*flow, partitioned("later", "def list_objects(c, m):\n    return []\n"
                                          "def read_records(c, m):\n    return []\n"))  # fmt: skip
    assert hw.get_partitions(*flow, "later") == []
    assert hw.get_schema(*flow, "later").fields == []
    assert list(hw.iter_records(*flow, "later")) == []
    assert hw.get_records_arrow(*flow, "later").num_rows == 0


def test_cancel_and_one_writer_per_component(
    hw: Client, flow: tuple[str, str], gate: types.SimpleNamespace
) -> None:
    settings = PartitionedSettings(concurrency=1)
    hw.create_component(
        *flow,
        Component(id="orders", partitioned=PartitionedDefinition(code=GATED, settings=settings)),
    )
    run = hw.refresh_component(*flow, "orders")
    assert gate.started.wait(30)
    with pytest.raises(ConflictError) as busy:
        hw.refresh_component(*flow, "orders")
    assert f"run {run.id} running" in busy.value.message
    cancelled = hw.cancel_run(run.id)
    assert cancelled.cancel_requested and cancelled.status == "running"
    gate.release.set()
    ended = hw.wait_for_run(run.id, timeout=60)
    assert ended.status == "cancelled"
    assert [p.name for p in hw.get_partitions(*flow, "orders")] == ["a"]
    assert hw.cancel_run(run.id).status == "cancelled"  # changes nothing once ended
    with pytest.raises(NotFoundError):
        hw.cancel_run(999_999)
    with pytest.raises(NotFoundError):
        hw.get_run(999_999)


PLANTED = "PLANTED-client-s3cr3t-7c1d"
DIGEST = hashlib.sha256(PLANTED.encode()).hexdigest()
USES_CREDENTIAL = f"""
import hashlib

def context(credentials):
    assert hashlib.sha256(credentials.encode()).hexdigest() == {DIGEST!r}
    return "ok"

def list_objects(context, metadata):
    yield {{"name": "a", "fingerprint": "1", "is_prefix": False}}

def read_records(context, metadata):
    yield {{"got": context}}
"""


class Recording(AppTransport):
    """Keeps every answer's body (read whole) to look for a secret in."""

    def __init__(self, app_client: TestClient) -> None:
        super().__init__(app_client)
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = super().handle_request(request)
        body = answer.read()
        self.bodies.append(body)
        return httpx.Response(answer.status_code, headers=answer.headers, content=body)


def test_a_credential_reaches_the_connector_and_never_comes_back(
    client: TestClient, connect: Callable[..., Client], flow: tuple[str, str]
) -> None:
    recording = Recording(client)
    with connect(transport=recording) as watched:
        watched.put_credential("sales", "token", PLANTED)
        watched.create_connection("sales", Connection(id="api", credential="token"))
        watched.create_component(
            *flow,
            Component(
                id="orders",
                connection="api",
                partitioned=PartitionedDefinition(code=USES_CREDENTIAL),
            ),
        )
        ended = watched.wait_for_run(watched.refresh_component(*flow, "orders").id, timeout=60)
        assert ended.status == "succeeded", ended
        assert list(watched.iter_records(*flow, "orders")) == [{"got": "ok"}]
        watched.list_credentials("sales")
        watched.get_credential("sales", "token")
        with pytest.raises(ConflictError):
            watched.delete_credential("sales", "token")
    assert len(recording.bodies) >= 8
    assert not [b for b in recording.bodies if PLANTED.encode() in b]


class _Cut(httpx.SyncByteStream):
    """A body that breaks after its first event, as a dropped connection would."""

    def __init__(self, inner: httpx.SyncByteStream) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        buffer = b""
        for chunk in self._inner:
            buffer += chunk
            if b"\n\n" in buffer:
                yield buffer[: buffer.index(b"\n\n") + 2]
                raise httpx.ReadError("connection dropped by the test")

    def close(self) -> None:
        self._inner.close()


class BreaksFirstLogStream(AppTransport):
    def __init__(self, app_client: TestClient) -> None:
        super().__init__(app_client)
        self.afters: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = super().handle_request(request)
        if not request.url.path.endswith("/logs"):
            return answer
        self.afters.append(request.url.params.get("after"))
        if len(self.afters) > 1:
            return answer
        assert isinstance(answer.stream, httpx.SyncByteStream)
        cut = _Cut(answer.stream)
        return httpx.Response(answer.status_code, headers=answer.headers, stream=cut)


def test_a_broken_log_stream_resumes_after_its_last_line(
    client: TestClient,
    connect: Callable[..., Client],
    flow: tuple[str, str],
    objects: Callable[..., str],
) -> None:
    breaking = BreaksFirstLogStream(client)
    hw = connect(transport=breaking)
    hw.create_component(*flow, partitioned("orders", objects({"a": ("1", 3)})))
    run = hw.refresh_component(*flow, "orders")
    log, ended = follow(hw, run.id)
    assert ended.status == "succeeded"
    assert breaking.afters == ["0", str(log[0].seq)]  # resumed after the line it had
    assert log == follow(hw, run.id)[0]  # every line once, in order


def test_server_sent_events_are_parsed_as_the_spec_says() -> None:
    chunks = [
        b': keep-alive\n\nid: 1\nevent: log\ndata: {"m": "a\xe2\x80',  # split inside UTF-8
        b'\xa8b"}\r\n\r\nevent: end\ndata: one\ndata:two\n\n',
        b"data: last without a blank line",
    ]
    found = list(events(lines(chunks)))
    assert [(e.event, e.data, e.id) for e in found] == [
        ("log", '{"m": "a\u2028b"}', "1"),  # U+2028 stays inside its line
        ("end", "one\ntwo", "1"),
        ("message", "last without a blank line", "1"),
    ]
