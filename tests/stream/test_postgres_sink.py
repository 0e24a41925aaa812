"""The PostgreSQL sink against the real server (a fresh database per test: the root conftest's
postgres_dsn fixture): upserts and deletes by primary key keep the table equal to the
stream's state, a stream without a key appends, a schema-qualified table name works, and a bad
DSN fails clearly before anything runs."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from headwater import stream
from headwater.stream.postgres import PostgresSinkError

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(postgres_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        yield connection


def table_rows(db: psycopg.Connection[Any], table: str, order: str) -> list[tuple[Any, ...]]:
    return db.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()


class Cat(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    name: str
    weight: float


def cats(s: Any) -> None:
    s.next(key=1, name="manul", weight=4.5)
    s.next(key=2, name="lynx", weight=20.0)
    s.next(key=3, name="sand cat", weight=2.5)
    s.commit()
    s.next(key=1, name="manul", weight=5.0)  # update
    s.next(key=2, name="lynx", weight=20.0)  # identical
    s.delete(key=3)
    s.next(key=4, name="serval", weight=12.0)
    s.commit()
    s.delete(key=4)
    s.next(key=4, name="serval", weight=13.0)  # deleted and re-inserted in one commit
    s.next(key=5, name="caracal", weight=15.0)
    s.delete(key=5)  # inserted and deleted in one commit
    s.delete(key=99)
    s.commit()


CATS_STATE = [(1, "manul", 5.0), (2, "lynx", 20.0), (4, "serval", 13.0)]


def test_upserts_and_deletes_by_key_reach_the_table(
    subject: Any, postgres_dsn: str, db: psycopg.Connection[Any]
) -> None:
    table = stream.read(subject(cats), schema=Cat, autocommit_duration_ms=None, name="cats")
    stream.write_postgres(table, postgres_dsn, "cats")
    stream.run()

    assert table_rows(db, "cats", "key") == CATS_STATE
    columns = db.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'cats' ORDER BY ordinal_position"
    ).fetchall()
    assert columns == [("key", "bigint"), ("name", "text"), ("weight", "double precision")]
    key = db.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = 'cats'::regclass AND i.indisprimary"
    ).fetchall()
    assert key == [("key",)]


def test_each_commit_is_in_the_table_once_the_sink_wrote_it(
    subject: Any, postgres_dsn: str, db: psycopg.Connection[Any], make_sink: Callable[..., Any]
) -> None:
    states: list[list[tuple[Any, ...]]] = []

    def script(s: Any) -> None:
        for n in range(3):
            s.next(key=n, name=f"cat {n}", weight=float(n))
            s.commit()
            assert recorder.wait_for_rows(n + 1)  # after the PostgreSQL sink wrote the commit
            states.append(table_rows(db, "cats", "key"))

    table = stream.read(subject(script), schema=Cat, autocommit_duration_ms=None)
    stream.write_postgres(table, postgres_dsn, "cats")
    recorder = make_sink(table)
    stream.run()
    assert [len(state) for state in states] == [1, 2, 3]
    assert states[-1] == [(0, "cat 0", 0.0), (1, "cat 1", 1.0), (2, "cat 2", 2.0)]


def test_a_commit_the_table_refuses_is_rolled_back_whole(
    subject: Any, postgres_dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute(
        "CREATE TABLE cats (key BIGINT PRIMARY KEY, name TEXT, "
        "weight DOUBLE PRECISION CHECK (weight > 0))"
    )

    def script(s: Any) -> None:
        s.next(key=1, name="manul", weight=4.5)
        s.commit()
        s.next(key=1, name="manul", weight=5.0)
        s.next(key=2, name="lynx", weight=20.0)
        s.next(key=3, name="ghost", weight=-1.0)  # the table refuses this one
        s.commit()

    table = stream.read(subject(script), schema=Cat, autocommit_duration_ms=None)
    stream.write_postgres(table, postgres_dsn, "cats")
    with pytest.raises(psycopg.errors.CheckViolation):
        stream.run()
    assert table_rows(db, "cats", "key") == [(1, "manul", 4.5)]


class Visit(stream.Schema):
    page: str
    visitor: str


def test_without_a_key_rows_append(
    subject: Any, postgres_dsn: str, db: psycopg.Connection[Any]
) -> None:
    def script(s: Any) -> None:
        s.next(page="/", visitor="ada")
        s.next(page="/", visitor="ada")  # a duplicate is a second row
        s.commit()
        s.next(page="/about", visitor="bob")

    table = stream.read(subject(script), schema=Visit, autocommit_duration_ms=None)
    stream.write_postgres(table, postgres_dsn, "visits")
    stream.run()
    assert table_rows(db, "visits", "page, visitor") == [
        ("/", "ada"),
        ("/", "ada"),
        ("/about", "bob"),
    ]


def test_a_keyed_stream_written_without_a_key_removes_retracted_rows(
    subject: Any, postgres_dsn: str, db: psycopg.Connection[Any]
) -> None:
    table = stream.read(subject(cats), schema=Cat, autocommit_duration_ms=None)
    stream.write_postgres(table, postgres_dsn, "cat_log", primary_key=[])
    stream.run()
    assert table_rows(db, "cat_log", "key") == CATS_STATE


def test_a_table_name_with_a_schema_prefix(
    subject: Any, postgres_dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("CREATE SCHEMA zoo")
    table = stream.read(subject(cats), schema=Cat, autocommit_duration_ms=None)
    stream.write_postgres(table, postgres_dsn, "zoo.cats")
    stream.run()
    assert table_rows(db, "zoo.cats", "key") == CATS_STATE
    tables = db.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_name LIKE '%cats%'"
    ).fetchall()
    assert tables == [("zoo", "cats")]


def test_an_existing_table_is_upserted_into(
    subject: Any, postgres_dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("CREATE TABLE cats (key BIGINT PRIMARY KEY, name TEXT, weight DOUBLE PRECISION)")
    db.execute("INSERT INTO cats VALUES (1, 'old manul', 1.0), (50, 'kept', 50.0)")
    table = stream.read(subject(cats), schema=Cat, autocommit_duration_ms=None)
    stream.write_postgres(table, postgres_dsn, "cats")
    stream.run()
    assert table_rows(db, "cats", "key") == [*CATS_STATE, (50, "kept", 50.0)]


class Everything(stream.Schema):
    id: str = stream.column_definition(primary_key=True)
    flag: bool
    count: int
    ratio: float
    blob: bytes
    at: datetime.datetime
    day: datetime.date
    meta: dict
    note: str | None


def test_column_types_round_trip(
    subject: Any, postgres_dsn: str, db: psycopg.Connection[Any]
) -> None:
    at = datetime.datetime(2024, 6, 1, 12, 30, 15, 123456)
    values = {
        "id": "a",
        "flag": True,
        "count": -(2**40),
        "ratio": 0.125,
        "blob": b"\x00\xff",
        "at": at,
        "day": at.date(),
        "meta": {"k": [1, None]},
        "note": None,
    }
    table = stream.read(subject(lambda s: s.next(**values)), schema=Everything)
    stream.write_postgres(table, postgres_dsn, "everything")
    stream.run()
    (row,) = table_rows(db, "everything", "id")
    assert row == ("a", True, -(2**40), 0.125, b"\x00\xff", at, at.date(), '{"k":[1,null]}', None)


def test_a_bad_dsn_fails_clearly_before_the_subject_runs(subject: Any) -> None:
    ran: list[bool] = []
    table = stream.read(subject(lambda s: ran.append(True)), schema=Cat)
    stream.write_postgres(table, "postgresql://postgres@127.0.0.1:1/nowhere", "cats")
    with pytest.raises(PostgresSinkError) as caught:
        stream.run()
    message = str(caught.value)
    assert "cannot connect to PostgreSQL" in message
    assert "postgres:cats" in message
    assert "127.0.0.1" in message
    assert ran == []
