"""Parsers for `read_bytes`: CSV, JSON lines and Parquet built in, or the author's own.

Bytes stream from the connector's generator straight into pyarrow's streaming readers,
so a large object is never held whole (Parquet excepted: its footer sits at the end).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from headwater.errors import ConnectorError, ParseError, Where
from headwater.records import RecordBatcher, Sink

BLOCK_BYTES = 4 << 20


def checked_chunks(chunks: Iterable[Any], where: Where) -> Iterator[bytes]:
    """The connector's chunks, each checked to be bytes."""
    for index, chunk in enumerate(chunks):
        if isinstance(chunk, bytes | bytearray | memoryview):
            yield bytes(chunk)
        else:
            raise ConnectorError(
                f"yielded a {type(chunk).__name__} as chunk {index}, not bytes",
                where,
                hint="yield bytes: encode text with .encode('utf-8')",
            )


class ChunkStream(io.RawIOBase):
    """A readable file over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.pending = memoryview(chunk)
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def parse(
    chunks: Iterator[bytes],
    parser: str,
    options: Mapping[str, Any],
    batch_rows: int,
    sink: Sink,
    where: Where,
) -> None:
    """Parse a byte stream with a built-in parser, handing batches to `sink`."""
    try:
        for batch in _batches(chunks, parser, options, batch_rows):
            sink(batch)
    except pa.ArrowException as exc:
        raise ParseError(
            f"the {parser} parser could not read the bytes: {exc}",
            where,
            hint=f"check that the object really is {parser}, or choose another parser",
        ) from None


def _batches(
    chunks: Iterator[bytes], parser: str, options: Mapping[str, Any], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    stream = io.BufferedReader(ChunkStream(chunks), BLOCK_BYTES)
    if parser == "csv":
        header = options.get("header", True)
        names = options.get("column_names")
        read = pacsv.ReadOptions(
            block_size=BLOCK_BYTES,
            column_names=names,
            autogenerate_column_names=not header and not names,
            skip_rows=1 if header and names else 0,
        )
        parse_options = pacsv.ParseOptions(
            delimiter=options.get("delimiter", ","), quote_char=options.get("quote_char", '"')
        )
        try:
            reader = pacsv.open_csv(stream, read_options=read, parse_options=parse_options)
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return  # an empty object is an empty partition
            raise
        yield from reader
    elif parser == "jsonl":
        first = stream.peek(1)
        if not first:
            return
        yield from pajson.open_json(stream, read_options=pajson.ReadOptions(block_size=BLOCK_BYTES))
    elif parser == "parquet":
        data = stream.read()
        if data:
            yield from pq.ParquetFile(io.BytesIO(data)).iter_batches(batch_size=batch_rows)
    else:  # settings validate the parser name; this is a guard against new names
        raise ValueError(f"unknown parser {parser!r}")


def parse_with(
    parser_function: Callable[[Any, Callable[[dict[str, Any]], None]], Any],
    chunks: Iterator[bytes],
    batch_rows: int,
    sink: Sink,
    where: Where,
) -> None:
    """Run the author's `parser_function(reader, on_next)`: reader yields the byte chunks,
    and each `on_next(record)` call adds one row."""
    batcher = RecordBatcher(sink, batch_rows, where)

    def on_next(record: dict[str, Any]) -> None:
        if not isinstance(record, dict):
            raise ConnectorError(
                f"on_next() got a {type(record).__name__}, not a dict",
                where.at(function="parser_function"),
                hint="call on_next with one dict per record: on_next({'column': value})",
            )
        batcher.add(record)

    parser_function(chunks, on_next)
    batcher.flush()
