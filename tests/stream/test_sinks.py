"""The file sinks: CSV and JSON Lines in Pathway's change-stream format (the columns, then `time`
and `diff`), and Parquet with one file per commit."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from headwater import stream
from headwater.stream.sinks import read_parquet_output

QUOTED_LINE = re.compile(r'^"(?:[^"]|"")*"(?:,"(?:[^"]|"")*")*$')


class Cat(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    name: str
    weight: float


def cats(s: Any) -> None:
    s.next(key=1, name="manul", weight=4.5)
    s.next(key=2, name='say "hi", ok', weight=3.25)
    s.commit()
    s.next(key=1, name="manul", weight=5.5)
    s.delete(key=2)
    s.commit()


EXPECTED_CHANGES = [
    [("1", "manul", "4.5", "1"), ("2", 'say "hi", ok', "3.25", "1")],
    [("1", "manul", "4.5", "-1"), ("1", "manul", "5.5", "1"), ("2", 'say "hi", ok', "3.25", "-1")],
]


def by_time(rows: list[dict[str, Any]], columns: list[str]) -> list[list[tuple[str, ...]]]:
    times = sorted({str(r["time"]) for r in rows}, key=int)
    return [
        sorted(tuple(str(r[c]) for c in columns) for r in rows if str(r["time"]) == at)
        for at in times
    ]


def test_csv_is_pathways_change_stream(
    subject: Any, make_sink: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "out" / "cats.csv"
    seen_mid_stream: list[str] = []

    def script(s: Any) -> None:
        s.next(key=1, name="manul", weight=4.5)
        s.next(key=2, name='say "hi", ok', weight=3.25)
        s.commit()
        # once the commit reached the sinks, the file holds the header and its rows
        assert recorder.wait_for_rows(2)
        seen_mid_stream.append(path.read_text())
        s.next(key=1, name="manul", weight=5.5)
        s.delete(key=2)
        s.commit()

    table = stream.read(subject(script), schema=Cat, autocommit_duration_ms=None)
    stream.write_csv(table, path)
    recorder = make_sink(table)  # after the CSV sink: sinks are written in order
    stream.run()

    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == '"key","name","weight","time","diff"'
    assert len(lines) == 1 + 5
    assert all(QUOTED_LINE.match(line) for line in lines), lines
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert by_time(rows, ["key", "name", "weight", "diff"]) == EXPECTED_CHANGES
    assert [int(r["time"]) for r in rows] == [r["time"] for r in recorder.rows()]
    assert seen_mid_stream[0].splitlines()[0] == lines[0]
    assert len(seen_mid_stream[0].splitlines()) == 3


def test_an_empty_stream_gives_an_empty_csv_file(subject: Any, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("left by an earlier run\n")

    def script(s: Any) -> None:
        s.commit()  # commits with no rows...
        s.delete(key=7)  # ...and a commit whose changes are empty
        s.commit()

    table = stream.read(subject(script), schema=Cat, autocommit_duration_ms=None)
    stream.write_csv(table, path)
    stream.run()
    assert path.read_bytes() == b""


class Reading(stream.Schema):
    sensor: str
    value: float


def test_csv_writes_whole_floats_like_pathway(subject: Any, tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    table = stream.read(subject(lambda s: s.next(sensor="a", value=1.0)), schema=Reading)
    stream.write_csv(table, path)
    stream.run()
    (row,) = csv.reader(path.read_text().splitlines()[1:])
    assert row[:2] == ["a", "1.0"]


class Blob(stream.Schema):
    data: bytes


def test_csv_writes_bytes_that_are_not_utf8(subject: Any, tmp_path: Path) -> None:
    path = tmp_path / "blobs.csv"

    def script(s: Any) -> None:
        s.next_bytes(b"ok")
        s.next_bytes(b"\xff\x00")

    table = stream.read(subject(script), schema=Blob)
    stream.write_csv(table, path)
    stream.run()
    assert len(path.read_bytes().splitlines()) == 3


def test_jsonlines_is_one_object_per_change(subject: Any, tmp_path: Path) -> None:
    path = tmp_path / "cats.jsonl"
    table = stream.read(subject(cats), schema=Cat, autocommit_duration_ms=None)
    stream.write_jsonlines(table, path)
    stream.run()

    lines = path.read_text().splitlines()
    objects = [json.loads(line) for line in lines]
    assert len(objects) == 5
    assert all(list(o) == ["key", "name", "weight", "time", "diff"] for o in objects)
    assert all(type(o["key"]) is int and type(o["weight"]) is float for o in objects)
    assert all(o["time"] % 2 == 0 and o["diff"] in (1, -1) for o in objects)
    expected = [
        [(int(k), n, float(w), int(d)) for k, n, w, d in batch] for batch in EXPECTED_CHANGES
    ]
    times = sorted({o["time"] for o in objects})
    assert [
        sorted((o["key"], o["name"], o["weight"], o["diff"]) for o in objects if o["time"] == at)
        for at in times
    ] == expected


def test_jsonlines_writes_bytes_as_text(subject: Any, tmp_path: Path) -> None:
    path = tmp_path / "blobs.jsonl"

    def script(s: Any) -> None:
        s.next_bytes(b"plain")
        s.next_bytes("héllo".encode())
        s.next_bytes(b"\xff")

    table = stream.read(subject(script), schema=Blob)
    stream.write_jsonlines(table, path)
    stream.run()
    assert [json.loads(line)["data"] for line in path.read_text().splitlines()] == [
        "plain",
        "héllo",
        "\\xff",
    ]


def test_an_empty_stream_gives_an_empty_jsonlines_file(subject: Any, tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    table = stream.read(subject(lambda s: None), schema=Cat)
    stream.write_jsonlines(table, path)
    stream.run()
    assert path.read_bytes() == b""


def run_parquet(subject: Any, directory: Path, script: Callable[[Any], None]) -> None:
    table = stream.read(subject(script), schema=Cat, autocommit_duration_ms=None)
    stream.write_parquet(table, directory)
    stream.run()


def test_parquet_writes_one_file_per_commit_named_by_seq(subject: Any, tmp_path: Path) -> None:
    directory = tmp_path / "parquet"
    directory.mkdir()
    (directory / "000000000009.parquet.tmp").write_bytes(b"half a file from a crash")
    run_parquet(subject, directory, cats)

    assert sorted(p.name for p in directory.iterdir()) == [
        "000000000001.parquet",
        "000000000002.parquet",
    ]
    first = pq.read_table(directory / "000000000001.parquet")
    second = pq.read_table(directory / "000000000002.parquet")
    assert first.schema.names == ["key", "name", "weight", "time", "diff"]
    assert first.schema.field("time").type == pa.int64()
    assert first.schema.field("diff").type == pa.int8()
    for table, expected in zip((first, second), EXPECTED_CHANGES, strict=True):
        rows = table.to_pylist()
        assert len({r["time"] for r in rows}) == 1
        changes = [(str(r["key"]), r["name"], str(r["weight"]), str(r["diff"])) for r in rows]
        assert sorted(changes) == expected
    assert first.column("time")[0].as_py() < second.column("time")[0].as_py()
    assert read_parquet_output(directory).num_rows == 5


def test_a_fresh_parquet_run_starts_the_directory_afresh(subject: Any, tmp_path: Path) -> None:
    directory = tmp_path / "parquet"
    run_parquet(subject, directory, cats)
    assert len(list(directory.glob("*.parquet"))) == 2

    def again(s: Any) -> None:
        s.next(key=3, name="lynx", weight=9.0)

    run_parquet(subject, directory, again)
    assert sorted(p.name for p in directory.iterdir()) == ["000000000001.parquet"]
    assert [(r["key"], r["diff"]) for r in read_parquet_output(directory).to_pylist()] == [(3, 1)]
