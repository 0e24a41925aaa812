"""Bad rows: by default next() raises BadRowError at the call, inside run(), naming the column,
the value and the schema type, so a subject can catch it and go on; on_bad_row="skip" counts and
logs them, "dead_letter" keeps them with the reason. Nothing is dropped silently. Also the
declarations read() refuses."""

from __future__ import annotations

import csv
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater import stream
from headwater.stream import BadRowError, StreamError, native

WAIT = 10.0


class Order(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    item: str
    quantity: int
    note: str | None


GOOD = {"key": 1, "item": "tea", "quantity": 2}

BAD_ROWS = [
    pytest.param(
        {"key": 2, "item": "tea", "quantity": "two"},
        ["'quantity'", "'two'", "int"],
        id="wrong-type",
    ),
    pytest.param({"key": 2, "item": "tea"}, ["'quantity'", "int", "no default"], id="missing"),
    pytest.param({**GOOD, "key": 2, "colour": "red"}, ["colour"], id="unknown-column"),
    pytest.param(
        {"key": 2, "item": None, "quantity": 1}, ["'item'", "None", "str"], id="none-not-optional"
    ),
    pytest.param({"key": 2.5, "item": "tea", "quantity": 1}, ["'key'", "2.5", "int"], id="float"),
]


@pytest.mark.parametrize(("bad", "named"), BAD_ROWS)
def test_a_bad_row_raises_at_the_call_and_the_subject_can_go_on(
    subject: Any, make_sink: Callable[..., Any], bad: dict[str, Any], named: list[str]
) -> None:
    caught: list[BadRowError] = []

    def script(s: Any) -> None:
        s.next(**GOOD)
        try:
            s.next(**bad)
        except BadRowError as error:
            caught.append(error)
        s.next(key=3, item="jam", quantity=1)

    table = stream.read(subject(script), schema=Order, name="orders")
    sink = make_sink(table)
    stream.run()

    assert len(caught) == 1
    message = str(caught[0])
    for part in [*named, "orders"]:
        assert part in message
    assert [(r["key"], r["diff"]) for r in sink.rows()] == [(1, 1), (3, 1)]


def test_skip_counts_and_logs_bad_rows_and_lands_the_others(
    subject: Any, make_sink: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    def script(s: Any) -> None:
        s.next(**GOOD)
        s.next(key=2, item="tea", quantity="many")
        s.next(key=3, item="jam", quantity=1)
        s.next(key=4, item=None, quantity=1)
        s.next(key=5)
        s.next(key=6, item="oil", quantity=3, note="ok")

    table = stream.read(subject(script), schema=Order, name="orders", on_bad_row="skip")
    sink = make_sink(table)
    with caplog.at_level(logging.WARNING, logger="headwater.stream"):
        stream.run()

    assert sorted(r["key"] for r in sink.rows()) == [1, 3, 6]
    warnings = [r for r in caplog.records if r.name == "headwater.stream"]
    assert [r.levelno for r in warnings] == [logging.WARNING] * 3
    messages = [r.getMessage() for r in warnings]
    assert "'quantity'" in messages[0]
    assert "'many'" in messages[0]
    assert "'item'" in messages[1]
    assert "'item'" in messages[2]  # the first missing column without a default
    assert [f"bad row {n}, skip" in m for n, m in enumerate(messages, 1)] == [True] * 3


def test_dead_letter_keeps_each_bad_row_with_its_reason(
    subject: Any, make_sink: Callable[..., Any], tmp_path: Path
) -> None:
    sent = [
        GOOD,
        {"key": 2, "item": "tea", "quantity": "many"},
        {"key": 3, "item": "jam", "quantity": 1},
        {"key": 4, "item": "jam", "quantity": 1, "colour": "red"},
    ]

    def script(s: Any) -> None:
        for values in sent[:2]:
            s.next(**values)
        s.commit()
        for values in sent[2:]:
            s.next(**values)

    table = stream.read(subject(script), schema=Order, on_bad_row="dead_letter")
    sink = make_sink(table)
    letters = make_sink(table.dead_letters, name="letters")
    stream.write_csv(table.dead_letters, tmp_path / "dead.csv")
    stream.run()

    assert [r["key"] for r in sink.rows()] == [1, 3]
    dead = letters.rows()
    assert [json.loads(r["row"]) for r in dead] == [sent[1], sent[3]]
    assert "'quantity'" in dead[0]["reason"]
    assert "'many'" in dead[0]["reason"]
    assert "colour" in dead[1]["reason"]
    assert [r["diff"] for r in dead] == [1, 1]
    # a dead letter carries the time of the commit that closed its batch
    assert dead[0]["time"] == sink.writes[0][1][0]["time"]
    assert dead[1]["time"] == sink.writes[1][1][0]["time"]
    with open(tmp_path / "dead.csv", newline="") as file:
        written = list(csv.DictReader(file))
    assert [(json.loads(r["row"]), r["reason"]) for r in written] == [
        (json.loads(r["row"]), r["reason"]) for r in dead
    ]


def test_a_dead_letter_lands_with_the_autocommit_like_a_row(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    landed: list[bool] = []

    def script(s: Any) -> None:
        s.next(key="one", item="tea", quantity=1)
        landed.append(letters.wait_for_rows(1, timeout=1.0))

    table = stream.read(
        subject(script), schema=Order, on_bad_row="dead_letter", autocommit_duration_ms=10
    )
    letters = make_sink(table.dead_letters)
    stream.run()
    assert landed == [True]


def test_dead_letters_need_the_dead_letter_policy(subject: Any) -> None:
    table = stream.read(subject(lambda s: None), schema=Order)
    with pytest.raises(StreamError, match="on_bad_row='dead_letter'"):
        _ = table.dead_letters


def test_an_unknown_bad_row_policy_is_refused(subject: Any) -> None:
    with pytest.raises(StreamError, match="drop"):
        stream.read(subject(lambda s: None), schema=Order, on_bad_row="drop")


@pytest.mark.parametrize("reserved", ["time", "diff"])
def test_read_refuses_a_column_named_time_or_diff(subject: Any, reserved: str) -> None:
    schema = type("Clock", (stream.Schema,), {"__annotations__": {"key": "int", reserved: "int"}})
    with pytest.raises(StreamError) as caught:
        stream.read(subject(lambda s: None), schema=schema)
    message = str(caught.value)
    assert reserved in message
    assert "rename" in message


def test_a_subject_object_can_be_read_once(subject: Any) -> None:
    once = subject(lambda s: None)
    stream.read(once, schema=Order)
    with pytest.raises(StreamError, match="read once"):
        stream.read(once, schema=Order)


def test_an_int_outside_int64_is_a_bad_row(subject: Any, make_sink: Callable[..., Any]) -> None:
    # C checks the range in next() itself. Python's twin leaves it to Arrow, which finds it
    # when the batch is handed over: the call that hands it over (here commit()) raises for
    # that row only. Either way the rest of the batch lands.
    caught: list[BadRowError] = []
    at_next = native.enabled()

    def script(s: Any) -> None:
        s.next(**GOOD)
        try:
            s.next(key=2**64, item="tea", quantity=1)
        except BadRowError as error:
            caught.append(error)
        assert bool(caught) == at_next
        try:
            s.commit()
        except BadRowError as error:
            caught.append(error)

    table = stream.read(subject(script), schema=Order, autocommit_duration_ms=None)
    sink = make_sink(table)
    stream.run()
    [error] = caught
    assert "column 'key' got 18446744073709551616" in str(error)
    assert "does not fit int64" in str(error)
    assert [r["key"] for r in sink.rows()] == [1]  # the good row of the batch landed


def test_a_batch_that_fails_to_convert_does_not_hang_the_run(
    subject: Any, make_sink: Callable[..., Any], run_in_background: Any
) -> None:
    errors: list[Exception] = []

    def script(s: Any) -> None:
        try:
            s.next(key=2**64, item="tea", quantity=1)  # (once fixed: a BadRowError here)
            s.commit()
        except Exception as error:
            errors.append(error)
        s.next(**GOOD)
        s.commit()

    table = stream.read(subject(script), schema=Order, autocommit_duration_ms=None)
    sink = make_sink(table)
    running = run_in_background()
    assert running.join(2.0), "stream.run() hangs"
    assert running.error is None
    assert [r["key"] for r in sink.rows()] == [1]
    assert len(errors) == 1


def test_delete_with_the_wrong_key_columns_raises_at_the_call(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    caught: list[BadRowError] = []
    done = threading.Event()

    def script(s: Any) -> None:
        s.next(**GOOD)
        for wrong in ({"item": "tea"}, {"key": 1, "item": "tea"}, {}, {"key": "one"}):
            try:
                s.delete(**wrong)
            except BadRowError as error:
                caught.append(error)
        done.set()

    table = stream.read(subject(script), schema=Order)
    sink = make_sink(table)
    stream.run()
    assert done.is_set()
    assert len(caught) == 4
    assert "exactly the primary key column(s) key" in str(caught[0])
    assert "'one'" in str(caught[3])
    assert [(r["key"], r["diff"]) for r in sink.rows()] == [(1, 1)]
