"""Upserts by primary key, as each commit's change batch shows them (`diff` +1 / -1): a new key
inserts, a changed value retracts the old row and inserts the new one at the same time, an
identical re-send and a delete of an unknown key emit nothing. Without a primary key, rows append.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from headwater import stream
from headwater.stream import BadRowError


class Item(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    value: str


class Named(stream.Schema):
    name: str = stream.column_definition(primary_key=True)
    count: int


class Located(stream.Schema):
    region: str = stream.column_definition(primary_key=True)
    id: int = stream.column_definition(primary_key=True)
    value: float


class Tagged(stream.Schema):
    key: str = stream.column_definition(primary_key=True)
    value: str


class Logged(stream.Schema):
    name: str
    count: int


def run_script(
    subject: Any,
    make_sink: Callable[..., Any],
    script: Callable[[Any], None],
    schema: type[stream.Schema] = Item,
) -> Any:
    table = stream.read(subject(script), schema=schema, autocommit_duration_ms=None)
    sink = make_sink(table)
    stream.run()
    return sink


def test_a_new_key_is_inserted(subject: Any, make_sink: Callable[..., Any]) -> None:
    def script(s: Any) -> None:
        s.next(key=1, value="a")
        s.commit()
        s.next(key=2, value="b")
        s.commit()

    sink = run_script(subject, make_sink, script)
    assert sink.batches() == [[(1, "a", 1)], [(2, "b", 1)]]


def test_a_changed_value_retracts_the_old_row_at_the_new_rows_time(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(key=1, value="a")
        s.commit()
        s.next(key=1, value="b")
        s.commit()

    sink = run_script(subject, make_sink, script)
    assert sink.batches() == [[(1, "a", 1)], [(1, "a", -1), (1, "b", 1)]]
    (_, first), (_, second) = sink.writes
    assert {row["time"] for row in second} == {second[0]["time"]}  # -1 and +1 share a time
    assert second[0]["time"] > first[0]["time"]


def test_an_identical_resend_emits_nothing(subject: Any, make_sink: Callable[..., Any]) -> None:
    def script(s: Any) -> None:
        s.next(key=1, value="a")
        s.commit()
        s.next(key=1, value="a")
        s.commit()
        s.next(key=1, value="a")
        s.next(key=2, value="b")
        s.commit()

    sink = run_script(subject, make_sink, script)
    changes = [(r["key"], r["value"], r["diff"]) for r in sink.rows()]
    assert changes == [(1, "a", 1), (2, "b", 1)]


def test_delete_by_key_retracts_the_stored_row(subject: Any, make_sink: Callable[..., Any]) -> None:
    def script(s: Any) -> None:
        s.next(key=1, value="a")
        s.next(key=2, value="b")
        s.commit()
        s.delete(key=1)
        s.commit()

    sink = run_script(subject, make_sink, script)
    assert sink.batches() == [[(1, "a", 1), (2, "b", 1)], [(1, "a", -1)]]


class Reading(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    value: float
    meta: dict


def test_an_identical_resend_of_a_nan_emits_nothing(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(key=1, value=float("nan"), meta={})
        s.commit()
        s.next(key=1, value=float("nan"), meta={})
        s.commit()

    sink = run_script(subject, make_sink, script, schema=Reading)
    assert [r["diff"] for r in sink.rows()] == [1]


def test_an_identical_resend_of_a_json_value_emits_nothing(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(key=1, value=1.0, meta={"a": 1, "b": 2})
        s.commit()
        s.next(key=1, value=1.0, meta={"b": 2, "a": 1})
        s.commit()

    sink = run_script(subject, make_sink, script, schema=Reading)
    assert [r["diff"] for r in sink.rows()] == [1]


def test_deleting_an_unknown_or_deleted_key_emits_nothing(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(key=1, value="a")
        s.commit()
        s.delete(key=99)  # never seen
        s.commit()
        s.delete(key=1)
        s.commit()
        s.delete(key=1)  # already gone
        s.commit()

    sink = run_script(subject, make_sink, script)
    changes = [(r["key"], r["value"], r["diff"]) for r in sink.rows()]
    assert changes == [(1, "a", 1), (1, "a", -1)]


def test_several_operations_on_a_key_inside_one_commit_net_to_one_change(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(key=1, value="a")
        s.next(key=4, value="same")
        s.commit()
        s.next(key=1, value="b")  # updated three times: one -1 / +1
        s.next(key=1, value="c")
        s.next(key=1, value="d")
        s.next(key=2, value="x")  # new, then updated: one +1 with the last value
        s.next(key=2, value="y")
        s.next(key=3, value="z")  # new, then deleted: nothing
        s.delete(key=3)
        s.delete(key=4)  # deleted, then re-sent unchanged: nothing
        s.next(key=4, value="same")
        s.commit()

    sink = run_script(subject, make_sink, script)
    assert sink.batches()[1] == [(1, "a", -1), (1, "d", 1), (2, "y", 1)]
    assert len(sink.writes) == 2


def test_a_multi_column_primary_key(subject: Any, make_sink: Callable[..., Any]) -> None:
    caught: list[BadRowError] = []

    def script(s: Any) -> None:
        s.next(region="eu", id=1, value=1.0)
        s.next(region="us", id=1, value=2.0)  # same id, other region: another row
        s.commit()
        s.next(region="eu", id=1, value=1.5)
        s.next(region="us", id=1, value=2.0)  # unchanged
        s.delete(region="us", id=1)
        s.next(region="us", id=2, value=3.0)
        try:
            s.delete(region="eu")  # half a key
        except BadRowError as error:
            caught.append(error)
        s.commit()

    sink = run_script(subject, make_sink, script, schema=Located)
    assert sink.batches() == [
        [("eu", 1, 1.0, 1), ("us", 1, 2.0, 1)],
        [("eu", 1, 1.0, -1), ("eu", 1, 1.5, 1), ("us", 1, 2.0, -1), ("us", 2, 3.0, 1)],
    ]
    assert len(caught) == 1
    assert "region, id" in str(caught[0])


def test_a_str_primary_key(subject: Any, make_sink: Callable[..., Any]) -> None:
    def script(s: Any) -> None:
        s.next(name="ada", count=1)
        s.next(name="bob", count=1)
        s.commit()
        s.next(name="ada", count=2)
        s.next(name="bob", count=1)
        s.next(name="", count=0)  # an empty string is a key like any other
        s.commit()
        s.delete(name="bob")
        s.delete(name="carol")
        s.commit()

    sink = run_script(subject, make_sink, script, schema=Named)
    assert sink.batches() == [
        [("ada", 1, 1), ("bob", 1, 1)],
        [("", 0, 1), ("ada", 1, -1), ("ada", 2, 1)],
        [("bob", 1, -1)],
    ]


def test_without_a_primary_key_rows_append_and_duplicates_are_kept(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    caught: list[BadRowError] = []

    def script(s: Any) -> None:
        s.next(name="a", count=1)
        s.next(name="a", count=1)
        s.commit()
        s.next(name="a", count=1)
        try:
            s.delete(name="a", count=1)
        except BadRowError as error:
            caught.append(error)
        s.commit()

    sink = run_script(subject, make_sink, script, schema=Logged)
    assert sink.batches() == [[("a", 1, 1), ("a", 1, 1)], [("a", 1, 1)]]
    assert len(caught) == 1
    message = str(caught[0])
    assert "delete() needs a primary key" in message
    assert "primary_key=True" in message


def _model_changes(
    commits: list[list[tuple[str, Any, Any]]],
) -> list[list[tuple[Any, ...]]]:
    """What a correct upsert stream emits per commit: the last operation per key, compared
    with the state before the commit."""
    state: dict[Any, Any] = {}
    expected = []
    for ops in commits:
        last: dict[Any, tuple[str, Any]] = {}
        for op, key, value in ops:
            last[key] = (op, value)
        changes: list[tuple[Any, ...]] = []
        for key, (op, value) in last.items():
            old = state.get(key)
            if op == "upsert" and old == value:
                continue
            if old is not None:
                changes.append((key, old, -1))
                del state[key]
            if op == "upsert":
                changes.append((key, value, 1))
                state[key] = value
        expected.append(sorted(changes, key=repr))
    return expected


@pytest.mark.parametrize(
    ("schema", "first_keys", "commit_count", "ops_per_commit"),
    [
        # > 65,536 keys move the int index's recent level into its base level; the updates
        # then store more than twice the live rows, which compacts the state.
        pytest.param(Item, 70_000, 30, 6_000, id="int-key"),
        pytest.param(Tagged, 3_000, 30, 300, id="str-key"),  # the dict index
    ],
)
def test_random_upserts_and_deletes_match_a_model(
    subject: Any,
    make_sink: Callable[..., Any],
    schema: type[stream.Schema],
    first_keys: int,
    commit_count: int,
    ops_per_commit: int,
) -> None:
    rng = random.Random(20240601)
    key_space = int(first_keys * 1.2)  # some deletes and upserts hit keys never seen

    def key(n: int) -> Any:
        return n if schema is Item else f"k{n}"

    commits = [[("upsert", key(n), "v0") for n in range(first_keys)]]
    for _ in range(commit_count):
        ops = []
        for _ in range(ops_per_commit):
            n = rng.randrange(key_space)
            if rng.random() < 0.2:
                ops.append(("delete", key(n), None))
            else:
                ops.append(("upsert", key(n), rng.choice(["v0", "v1", "v2"])))
        commits.append(ops)

    def script(s: Any) -> None:
        for ops in commits:
            for op, k, value in ops:
                if op == "upsert":
                    s.next(key=k, value=value)
                else:
                    s.delete(key=k)
            s.commit()

    sink = run_script(subject, make_sink, script, schema=schema)
    assert [seq for seq, _ in sink.writes] == list(range(1, len(commits) + 1))
    assert sink.batches() == _model_changes(commits)
