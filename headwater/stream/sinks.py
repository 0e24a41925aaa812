"""Sinks: where a stream's commits go. Each receives one change batch per commit: the columns,
then `time` (the commit's time in milliseconds, even and increasing, as Pathway writes it) and
`diff` (+1 an insertion, -1 a retraction).

Durable sinks (`durable = True`) record the last commit they applied together with its data,
so after a restart they are fed, from the stream's log, exactly the commits they lack.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from headwater import failpoints
from headwater.stream import native
from headwater.stream.rows import ChangeRows, Changes

TIME = "time"
DIFF = "diff"


class Sink(Protocol):
    name: str
    durable: bool

    def open(self, schema: pa.Schema, *, stream: str, durable: bool) -> int | None:
        """Prepare to write batches of `schema` (the columns plus time and diff) of `stream`.
        On a durable stream (one with a log) a durable sink returns the sequence number of the
        last commit it holds; otherwise it starts afresh and returns None."""
        ...

    def write(self, seq: int, changes: pa.Table) -> None:
        """Apply one commit's changes. A sink whose class sets `takes_rows = True` may also
        be given a small batch as Python rows (a ChangeRows)."""
        ...

    def close(self) -> None: ...


class CsvSink:
    """Pathway's CSV change stream: every value quoted, the header written with the first rows.
    The file is rewritten by each run (it is not durable)."""

    durable = False
    takes_rows = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"csv:{self.path}"
        self._file: io.BufferedWriter | None = None
        self._writer: pacsv.CSVWriter | None = None

    def open(self, schema: pa.Schema, *, stream: str, durable: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - held open for the run, closed in close()
        self._schema = pa.schema(
            [f.with_type(pa.string()) if _as_text(f.type) else f for f in schema]
        )
        self._header = False

    def write(self, seq: int, changes: Changes) -> None:
        if not changes.num_rows:
            return
        assert self._file is not None
        if not self._header:  # written here, not by Arrow, so both paths below can follow
            self._file.write(",".join(_quoted(f.name) for f in self._schema).encode() + b"\n")
            self._header = True
        if isinstance(changes, ChangeRows):
            self._file.write(_csv_lines(changes.rows))
        elif (lines := native.csv_lines(changes)) is not None:
            self._file.write(lines)  # made in C, without the GIL
        else:
            if self._writer is None:
                options = pacsv.WriteOptions(quoting_style="all_valid", include_header=False)
                self._writer = pacsv.CSVWriter(self._file, self._schema, write_options=options)
            self._writer.write_table(_csv_text(changes, self._schema))
        self._file.flush()  # visible to readers at once: a commit is the unit of latency

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()


def _as_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_floating(t) or pa.types.is_binary(t))


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _csv_value(value: object) -> str:
    """One value as Arrow's CSV writer writes it, with floats as Pathway does (1.0)."""
    if value is None:
        return ""
    if value is True or value is False:
        return '"true"' if value else '"false"'
    if isinstance(value, bytes):
        return _quoted(value.decode("utf-8", "backslashreplace"))
    return _quoted(value if isinstance(value, str) else repr(value))


def _csv_lines(rows: list[tuple[object, ...]]) -> bytes:
    """Rows of Python values as CSV lines, byte for byte what the Arrow path writes."""
    return "".join(",".join(map(_csv_value, row)) + "\n" for row in rows).encode()


def _csv_text(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Floats as Pathway writes them (1.0, not 1), bytes as text (invalid UTF-8 escaped)."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_floating(field.type):  # (Arrow's own cast writes 1e-05 as 0.00001)
            column = pa.array(
                [None if v is None else repr(v) for v in column.to_pylist()], pa.string()
            )
        elif pa.types.is_binary(field.type):
            column = pa.array(
                [
                    None if v is None else v.decode("utf-8", "backslashreplace")
                    for v in column.to_pylist()
                ],
                pa.string(),
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


class JsonLinesSink:
    """Pathway's JSON Lines change stream: one object per change, with time and diff."""

    durable = False
    takes_rows = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"jsonlines:{self.path}"
        self._file: io.TextIOWrapper | None = None

    def open(self, schema: pa.Schema, *, stream: str, durable: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._binary = [f.name for f in schema if pa.types.is_binary(f.type)]

    def write(self, seq: int, changes: Changes) -> None:
        if not changes.num_rows:
            return
        assert self._file is not None
        lines = []
        for row in _dicts(changes):
            for name in self._binary:  # JSON has no bytes: write them as text
                if row[name] is not None:
                    row[name] = row[name].decode("utf-8", "backslashreplace")
            lines.append(json.dumps(row, default=str, separators=(",", ":")))
        self._file.write("\n".join(lines) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _dicts(changes: Changes) -> list[dict[str, Any]]:
    if isinstance(changes, ChangeRows):
        names = changes.schema.names
        return [dict(zip(names, row, strict=True)) for row in changes.rows]
    rows: list[dict[str, Any]] = changes.to_pylist()
    return rows


class ParquetSink:
    """One Parquet file per commit, `<seq>.parquet`, written under a temporary name, made
    durable and renamed: a commit's file is there whole or not at all. Durable: the highest
    sequence number present is the last commit it holds."""

    durable = True
    _FILE = re.compile(r"^(\d{12})\.parquet$")

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.name = f"parquet:{self.directory}"

    def open(self, schema: pa.Schema, *, stream: str, durable: bool) -> int | None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for tmp in self.directory.glob("*.parquet.tmp"):
            tmp.unlink()  # left by a crash: never renamed, so never part of the output
        held = sorted(
            int(m.group(1)) for p in self.directory.iterdir() if (m := self._FILE.match(p.name))
        )
        if not durable:  # no log to resume from: each run starts the directory afresh
            for seq in held:
                (self.directory / f"{seq:012d}.parquet").unlink()
            return None
        return held[-1] if held else None

    def write(self, seq: int, changes: pa.Table) -> None:
        final = self.directory / f"{seq:012d}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        pq.write_table(changes, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        failpoints.hit("stream.parquet_before_rename")
        os.replace(tmp, final)

    def close(self) -> None:
        pass


def read_parquet_output(directory: str | Path) -> pa.Table:
    """All commits a Parquet sink wrote, in order (a helper for tests and notebooks)."""
    files = sorted(Path(directory).glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else pa.table({})
