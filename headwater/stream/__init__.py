"""Stream (push) connectors, with Pathway's API: a Pathway program becomes a Headwater one by
replacing `pw.io.python.` and `pw.` with `stream.`.

    from headwater import stream

    class InputSchema(stream.Schema):
        key: int = stream.column_definition(primary_key=True)
        genus: str
        epithet: str

    class FileStreamSubject(stream.ConnectorSubject):
        def run(self):
            with open("cats.jsonl") as file:
                for line in file:
                    self.next(**json.loads(line))

    table = stream.read(FileStreamSubject(), schema=InputSchema)
    stream.write_csv(table, "output.csv")
    stream.run()
"""

from __future__ import annotations

from pathlib import Path

from headwater.stream.buffer import BadRowError, StreamClosedError
from headwater.stream.graph import Graph, StreamError, Table
from headwater.stream.postgres import PostgresSink
from headwater.stream.schema import Schema, column_definition
from headwater.stream.sinks import CsvSink, JsonLinesSink, ParquetSink, Sink
from headwater.stream.subject import ConnectorSubject

__all__ = [
    "BadRowError",
    "ConnectorSubject",
    "Schema",
    "StreamClosedError",
    "StreamError",
    "Table",
    "column_definition",
    "read",
    "run",
    "write_component",
    "write_csv",
    "write_jsonlines",
    "write_parquet",
    "write_postgres",
]

# Pathway's API declares streams and sinks first and runs them all with one run() call, so the
# declarations gather here until run() takes (and clears) them.
_graph = Graph()


def read(
    subject: ConnectorSubject,
    *,
    schema: type[Schema] | None = None,
    autocommit_duration_ms: int | None = 1500,
    name: str | None = None,
    max_backlog_size: int | None = None,
    on_bad_row: str = "raise",
) -> Table:
    """Read a subject as a stream.

    Args:
        subject: the ConnectorSubject; it can be read once.
        schema: the columns (a Schema class); without one, a single `data: str` column.
        autocommit_duration_ms: the longest a row waits before its micro-batch is committed
            (Headwater commits sooner when the subject goes quiet); None: only commit() does.
        name: the stream's name (in errors, and the default component for write_component).
        max_backlog_size: rows that may wait for the consumer before next() blocks
            (default 100,000; 0 for unbounded); the chunk being filled, at most half as
            large, comes on top.
        on_bad_row: "raise" (default: next() raises at the call), "skip" (counted, logged) or
            "dead_letter" (kept with the reason in `table.dead_letters`).

    Example:
        >>> table = stream.read(MySubject(), schema=InputSchema)     # doctest: +SKIP
    """
    return _graph.read(
        subject,
        schema=schema,
        autocommit_duration_ms=autocommit_duration_ms,
        name=name,
        max_backlog_size=max_backlog_size,
        on_bad_row=on_bad_row,
    )


def _attach(table: Table, sink: Sink) -> None:
    if not isinstance(table, Table):
        raise StreamError(f"sinks take a table from stream.read(), got {type(table).__name__}")
    table.sinks.append(sink)


def write_csv(table: Table, path: str | Path) -> None:
    """Write the change stream as CSV: the columns, `time` and `diff` (+1 / -1)."""
    _attach(table, CsvSink(path))


def write_jsonlines(table: Table, path: str | Path) -> None:
    """Write the change stream as JSON Lines: one object per change, with time and diff."""
    _attach(table, JsonLinesSink(path))


def write_parquet(table: Table, directory: str | Path) -> None:
    """Write one Parquet file per commit into `directory` (exactly once on a durable stream)."""
    _attach(table, ParquetSink(directory))


def write_postgres(
    table: Table, dsn: str, table_name: str, *, primary_key: list[str] | None = None
) -> None:
    """Keep a PostgreSQL table equal to the stream: upserts and deletes by primary key (the
    schema's by default), one transaction per commit (exactly once on a durable stream)."""
    key = list(primary_key) if primary_key is not None else list(table.schema.primary_key())
    _attach(table, PostgresSink(dsn, table_name, key))


def write_component(table: Table, component: str | None = None) -> None:
    """Land the stream in a Headwater component: each commit one partition, stored with the
    offset the subject reported. This makes the stream durable: after a restart it resumes
    from the last offset, and its Parquet and PostgreSQL sinks get each commit exactly once."""
    if table.component is not None:
        raise StreamError(f"stream '{table.name}' already lands in component '{table.component}'")
    table.component = component or table.name


def run(*, home: str | Path | None = None) -> None:
    """Run every stream read since the last run() until each finite subject has finished.

    Args:
        home: the Headwater home for streams landed with write_component
            (default: $HEADWATER_HOME, else ./.headwater).

    Raises:
        The first subject's error, after the other streams were stopped (a note names it).
    """
    _graph.run(home=home)
