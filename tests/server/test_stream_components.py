"""Stream components through the API: a subject defined in code text, run until it finishes
(one partition per commit, upserts by key), cancelled while it runs forever (the committed
batches kept), failing, resuming from its last offset on the next run; and code that cannot
run, refused at create (a syntax error) or failing its run with the reason."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.stream import graph
from tests.server.conftest import COMPONENTS, FLOW, PREFIX, follow, ok, shared_events

WAIT = 30.0  # seconds; a bound no passing test comes near

WORDS = """
from headwater import stream

class Word(stream.Schema):
    n: int
    word: str

class Words(stream.ConnectorSubject):
    def run(self):
        self.next(n=1, word="one")
        self.next(n=2, word="two")
        self.commit()
        self.next(n=3, word="three")  # lands when run() returns
"""

PRICES = """
from headwater import stream

class Price(stream.Schema):
    sku: str = stream.column_definition(primary_key=True)
    price: float

class Prices(stream.ConnectorSubject):
    def run(self):
        self.next(sku="a", price=1.0)
        self.next(sku="b", price=2.0)
        self.commit()
        self.next(sku="a", price=1.5)  # an update: -1 the old row, +1 the new
        self.next(sku="b", price=2.0)  # the same row again: no change
        self.commit()
        self.delete(sku="b")
"""

# Runs until it is stopped: two commits, then a row it never commits, then it waits for
# on_stop() (which the cancel calls).
FOREVER = """
import hw_stream_gate as gate
from headwater import stream

class Ticks(stream.ConnectorSubject):
    def run(self):
        n = 0
        while not gate.stopped.is_set():
            self.next(data=f"tick{n}")
            n += 1
            if n % 2 == 0:
                self.commit()
            if n == 5:
                gate.started.set()
                gate.stopped.wait()

    def on_stop(self):
        gate.stopped.set()
"""

# Ignores being stopped: run() returns only when the test releases it.
STUCK = """
import hw_stream_gate as gate
from headwater import stream

class Stuck(stream.ConnectorSubject):
    def run(self):
        self.next(data="kept")
        self.commit()
        gate.started.set()
        gate.release.wait(60)
"""

FAILING = """
from headwater import stream

class Feed(stream.ConnectorSubject):
    def run(self):
        self.next(data="landed")
        self.commit()
        self.next(data="lost")
        raise RuntimeError("the feed broke")
"""

# Reads the numbers in a file from the offset it is given; each row says where its run started.
LINES = """
import pathlib
from headwater import stream

SOURCE = pathlib.Path({path!r})

class Number(stream.Schema):
    n: int
    start: int

class Lines(stream.ConnectorSubject):
    start = 0

    def seek(self, offset):
        self.start = offset

    def run(self):
        lines = SOURCE.read_text().split()
        for number in range(self.start, len(lines)):
            self.next(n=int(lines[number]), start=self.start)
        self.report_offset(len(lines))
"""


@pytest.fixture
def gate() -> Iterator[types.SimpleNamespace]:
    """Events a subject (running in the server's pool) and the test share."""
    with shared_events("hw_stream_gate", "started", "stopped", "release") as events:
        yield events


def create(api: TestClient, id: str, code: str, **declared: Any) -> dict[str, Any]:
    body = {"id": id, "stream": {"code": code, **declared}}
    created: dict[str, Any] = ok(api.post(COMPONENTS, json=body), 201)
    return created


def run(api: TestClient, id: str) -> tuple[list[str], dict[str, Any]]:
    """Trigger a run of component `id` and follow it to its end."""
    started = ok(api.post(f"{COMPONENTS}/{id}/refresh"), 202)
    return follow(api, int(started["id"]))


def records(api: TestClient, id: str, *columns: str) -> list[tuple[Any, ...]]:
    page = ok(api.get(f"{COMPONENTS}/{id}/records", params={"limit": 1000}))
    assert page["next_cursor"] is None
    return [tuple(row[c] for c in columns) for row in page["rows"]]


def partitions(api: TestClient, id: str) -> list[str]:
    return [p["name"] for p in ok(api.get(f"{COMPONENTS}/{id}/partitions"))]


def test_a_finite_stream_runs_to_its_end_landing_a_partition_per_commit(
    api: TestClient, flow: str
) -> None:
    created = create(api, "words", WORDS, schema="Word", autocommit_duration_ms=None)
    assert created["kind"] == "stream"
    assert created["stream"]["schema"] == "Word" and created["stream"]["subject"] is None
    lines, ended = run(api, "words")
    assert ended["status"] == "succeeded", (ended, lines)
    assert ended["error"] is None and ended["engine_run_id"] is None  # streams have no engine run
    changes = records(api, "words", "n", "word", "diff")
    assert changes == [(1, "one", 1), (2, "two", 1), (3, "three", 1)]
    assert partitions(api, "words") == ["000000000001", "000000000002"]
    assert lines[0].startswith("queued: stream component 'words'")
    assert (
        "stream 'words': subject Words, columns (n, word), landing in component "
        "'sales__daily__words'" in lines
    )
    assert "landed commit 1: 2 change row(s)" in lines
    assert "landed commit 2: 1 change row(s)" in lines
    assert "the subject finished; 2 commit(s) landed, 3 change row(s)" in lines
    assert lines[-1] == "ended succeeded"

    # its kind shows in the listing and in the dataflow's graph
    listed = ok(api.get(COMPONENTS))
    assert [(c["id"], c["kind"]) for c in listed] == [("words", "stream")]
    graph_nodes = ok(api.get(f"{FLOW}/graph"))["nodes"]
    assert graph_nodes == [{"id": "words", "kind": "stream", "name": "words"}]
    fetched = ok(api.get(f"{COMPONENTS}/words"))
    assert fetched["stream"] == created["stream"]


def test_a_keyed_stream_upserts_and_deletes(api: TestClient, flow: str) -> None:
    create(api, "prices", PRICES, autocommit_duration_ms=None)  # the only Schema: no name
    lines, ended = run(api, "prices")
    assert ended["status"] == "succeeded", (ended, lines)
    changes = records(api, "prices", "sku", "price", "diff")
    assert changes == [
        ("a", 1.0, 1), ("b", 2.0, 1),  # commit 1
        ("a", 1.0, -1), ("a", 1.5, 1),  # commit 2: a changed; b sent again, unchanged
        ("b", 2.0, -1),  # commit 3: the delete, as run() returned
    ]  # fmt: skip
    assert partitions(api, "prices") == ["000000000001", "000000000002", "000000000003"]
    state: dict[tuple[str, float], int] = {}
    for sku, price, diff in changes:
        state[(sku, price)] = state.get((sku, price), 0) + diff
    assert {key for key, count in state.items() if count > 0} == {("a", 1.5)}


def test_cancel_stops_a_stream_that_runs_forever_keeping_its_commits(
    api: TestClient, flow: str, gate: types.SimpleNamespace
) -> None:
    create(api, "ticks", FOREVER, autocommit_duration_ms=None)
    started = ok(api.post(f"{COMPONENTS}/ticks/refresh"), 202)
    assert gate.started.wait(WAIT)
    cancelled = ok(api.post(f"{PREFIX}/runs/{started['id']}/cancel"))
    assert cancelled["cancel_requested"] is True
    lines, ended = follow(api, int(started["id"]))
    assert ended["status"] == "cancelled", (ended, lines)
    assert gate.stopped.is_set()  # on_stop() ran, and ended run()
    # the two committed batches landed; tick4, never committed, was discarded
    assert records(api, "ticks", "data") == [("tick0",), ("tick1",), ("tick2",), ("tick3",)]
    assert partitions(api, "ticks") == ["000000000001", "000000000002"]
    assert "cancel requested" in lines
    assert "stopped: cancelled; 2 commit(s) landed, 4 change row(s)" in lines
    assert lines[-1] == "ended cancelled"


def test_cancel_leaves_behind_a_run_that_does_not_stop(
    api: TestClient, flow: str, gate: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph, "SUBJECT_GRACE_SECONDS", 0.2)
    create(api, "stuck", STUCK, autocommit_duration_ms=None)
    started = ok(api.post(f"{COMPONENTS}/stuck/refresh"), 202)
    assert gate.started.wait(WAIT)
    ok(api.post(f"{PREFIX}/runs/{started['id']}/cancel"))
    lines, ended = follow(api, int(started["id"]))
    assert ended["status"] == "cancelled", (ended, lines)
    assert not gate.release.is_set()  # its run() is still waiting: the run ended without it
    assert records(api, "stuck", "data") == [("kept",)]
    assert any("the run() of stream 'stuck' did not return" in line for line in lines), lines
    # the component is free again: the next run resumes (and is itself cancelled)
    gate.started.clear()
    again = ok(api.post(f"{COMPONENTS}/stuck/refresh"), 202)
    assert gate.started.wait(WAIT)
    ok(api.post(f"{PREFIX}/runs/{again['id']}/cancel"))
    assert follow(api, int(again["id"]))[1]["status"] == "cancelled"
    assert records(api, "stuck", "data") == [("kept",), ("kept",)]  # an append stream


def test_a_subject_that_raises_fails_its_run_naming_the_error(api: TestClient, flow: str) -> None:
    create(api, "feed", FAILING, autocommit_duration_ms=None)
    lines, ended = run(api, "feed")
    assert ended["status"] == "failed", (ended, lines)
    assert ended["error"] == "stream 'feed' failed: RuntimeError: the feed broke"
    assert records(api, "feed", "data") == [("landed",)]  # committed before; "lost" was not
    assert any(line.startswith("stream 'feed' failed") for line in lines)


def test_a_second_run_resumes_from_the_last_offset(
    api: TestClient, flow: str, tmp_path: Path
) -> None:
    source = tmp_path / "numbers.txt"
    source.write_text("10 11 12")
    create(api, "numbers", LINES.format(path=str(source)))
    lines, ended = run(api, "numbers")
    assert ended["status"] == "succeeded", (ended, lines)
    assert not any("resuming" in line for line in lines)
    source.write_text("10 11 12 13 14")
    lines, ended = run(api, "numbers")
    assert ended["status"] == "succeeded", (ended, lines)
    assert any(line.endswith(", resuming after commit 1 (offset 3)") for line in lines), lines
    # each number once; the second run's rows started at the offset seek() was given
    assert records(api, "numbers", "n", "start") == [
        (10, 0), (11, 0), (12, 0), (13, 3), (14, 3),
    ]  # fmt: skip


def test_code_that_cannot_run_is_refused_or_fails_its_run_with_the_reason(
    api: TestClient, flow: str
) -> None:
    # a syntax error, a connection or a bad setting: refused at create (422)
    bad = api.post(COMPONENTS, json={"id": "bad", "stream": {"code": "class (:"}})
    assert bad.status_code == 422 and "syntax error at line 1" in bad.json()["message"]
    ok(api.post(f"{PREFIX}/data-services/sales/connections", json={"id": "api"}), 201)
    linked = {"id": "linked", "connection": "api", "stream": {"code": WORDS}}
    refused = api.post(COMPONENTS, json=linked)
    assert refused.status_code == 422 and "cannot use a connection" in refused.json()["message"]
    zero = {"id": "zero", "stream": {"code": WORDS, "autocommit_duration_ms": 0}}
    assert api.post(COMPONENTS, json=zero).status_code == 422
    create(api, "replaced", WORDS)
    broken = api.put(f"{COMPONENTS}/replaced", json={"id": "replaced", "stream": {"code": "1 +"}})
    assert broken.status_code == 422

    # what shows only when the code runs (it is never executed at create): the run fails
    two = WORDS + "\nclass Other(stream.ConnectorSubject):\n    def run(self):\n        pass\n"
    needs_argument = WORDS.replace(
        "def run(self):", "def __init__(self, url):\n        pass\n\n    def run(self):"
    )
    cases = {
        "nosubject": ("from headwater import stream\n", {}, "defines no ConnectorSubject subclass"),
        "twosubjects": (two, {}, "defines 2 ConnectorSubject subclasses (Words, Other)"),
        "unknown": (WORDS, {"subject": "Missing"}, "defines no class 'Missing' (`subject`)"),
        "notasubject": (
            WORDS,
            {"subject": "Word"},
            "'Word' (`subject`) is not a ConnectorSubject",
        ),
        "notaschema": (
            WORDS,
            {"schema": "Words"},
            "'Words' (`schema`) is not a Schema subclass",
        ),
        "arguments": (needs_argument, {}, "Words() raised TypeError"),
        "raising": ("raise ValueError('no config')\n", {}, "raised ValueError: no config"),
    }
    for id, (code, declared, reason) in cases.items():
        create(api, id, code, **declared)
        _, ended = run(api, id)
        assert ended["status"] == "failed", (id, ended)
        assert reason in ended["error"] and f"component '{id}'" in ended["error"], (id, ended)
        assert partitions(api, id) == []

    # naming the subject picks it out of two
    create(api, "picked", two, subject="Words", autocommit_duration_ms=None)
    assert run(api, "picked")[1]["status"] == "succeeded"
    assert records(api, "picked", "n") == [(1,), (2,), (3,)]
