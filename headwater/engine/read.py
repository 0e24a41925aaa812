"""Reading one partition: call the connector's read function and turn what it returns into
Arrow batches, once, at the boundary."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from headwater import parsers
from headwater.component import ComponentSettings
from headwater.connectors.partitioned import PartitionedConnector
from headwater.engine.boundary import guard
from headwater.errors import ConnectorError, HeadwaterError, SchemaError, StoreError, Where
from headwater.records import RecordBatcher, Sink

ARROW_SHAPE = "a pyarrow Table, a RecordBatch, or an iterator of them"


def read_partition(
    connector: PartitionedConnector,
    context: Any,
    metadata: dict[str, Any],
    settings: ComponentSettings,
    sink: Sink,
    where: Where,
    secret: str | None = None,
) -> None:
    """Read one partition into `sink`, batch by batch. Errors name the partition."""
    where = where.at(function=connector.read_function)
    sink = _store_faults(sink)
    with guard(where, secret):
        result = connector.read(context, metadata)
        interface = connector.interface
        if interface == "records":
            _records(result, settings.batch_rows, sink, where)
        elif interface == "arrow":
            _arrow(result, settings.batch_rows, sink)
        elif interface == "pandas_dataframe":
            _pandas(result, settings.batch_rows, sink)
        else:
            _bytes(connector, result, settings, sink, where, secret)


def _store_faults(sink: Sink) -> Sink:
    """Errors of the store are Headwater's, not the connector's: keep them apart."""

    def write(batch: pa.RecordBatch) -> None:
        try:
            sink(batch)
        except HeadwaterError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"writing partition data to the store failed: {exc}") from exc

    return write


def _records(result: Any, batch_rows: int, sink: Sink, where: Where) -> None:
    if isinstance(result, dict | str | bytes) or not isinstance(result, Iterable):
        raise ConnectorError(
            f"returned a {type(result).__name__}; read_records must yield dicts "
            "(or lists of dicts)",
            hint="yield one dict per row, e.g. `yield {'id': 1, 'name': 'a'}`",
        )
    batcher = RecordBatcher(sink, batch_rows, where)
    rows = batcher.rows
    # The hot loop of the records interface: one type check and one append per row.
    for index, item in enumerate(result):
        if type(item) is dict:
            rows.append(item)
            if len(rows) >= batch_rows:
                batcher.flush()
                rows = batcher.rows
        elif isinstance(item, list):
            odd = next((r for r in item if not isinstance(r, dict)), None)
            if odd is not None:
                raise _not_a_row(odd, index)
            rows.extend(item)
            if len(rows) >= batch_rows:
                batcher.flush()
                rows = batcher.rows
        elif isinstance(item, dict):  # a dict subclass (OrderedDict, ...)
            rows.append(dict(item))
        else:
            raise _not_a_row(item, index)
    batcher.flush()


def _not_a_row(item: Any, index: int) -> ConnectorError:
    return ConnectorError(
        f"yielded a {type(item).__name__} at item {index}; rows must be dicts",
        hint="yield dicts like {'column': value}, or lists of them",
    )


def _arrow(result: Any, batch_rows: int, sink: Sink) -> None:
    if isinstance(result, pa.Table | pa.RecordBatch):
        _arrow_item(result, batch_rows, sink)
    elif isinstance(result, pa.RecordBatchReader | Iterator):
        for index, item in enumerate(result):
            if not isinstance(item, pa.Table | pa.RecordBatch):
                raise ConnectorError(
                    f"yielded a {type(item).__name__} at item {index}; expected {ARROW_SHAPE}",
                    hint=_arrow_hint(item),
                )
            _arrow_item(item, batch_rows, sink)
    else:
        raise ConnectorError(
            f"returned a {type(result).__name__}; read_arrow must return {ARROW_SHAPE}",
            hint=_arrow_hint(result),
        )


def _arrow_item(item: pa.Table | pa.RecordBatch, batch_rows: int, sink: Sink) -> None:
    batches = item.to_batches(max_chunksize=batch_rows) if isinstance(item, pa.Table) else [item]
    for batch in batches:
        sink(batch)


def _arrow_hint(value: Any) -> str:
    if _is_dataframe(value):
        return "this is a pandas DataFrame: name the function read_pandas_dataframe instead"
    return "return pa.table({...}) or yield pa.RecordBatch objects"


def _is_dataframe(value: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _pandas(result: Any, batch_rows: int, sink: Sink) -> None:
    if not _is_dataframe(result):
        hint = (
            "this is Arrow data: name the function read_arrow instead"
            if isinstance(result, pa.Table | pa.RecordBatch)
            else "return a pandas.DataFrame"
        )
        raise ConnectorError(
            f"returned a {type(result).__name__}; read_pandas_dataframe must return a "
            "pandas DataFrame",
            hint=hint,
        )
    try:
        table = _plain_strings(pa.Table.from_pandas(result, preserve_index=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(
            f"the DataFrame cannot be converted to Arrow: {exc}",
            hint="give each column one type (mixed object columns cannot be stored)",
        ) from None
    _arrow_item(table, batch_rows, sink)


def _plain_strings(table: pa.Table) -> pa.Table:
    """pandas 3 stores text as large_string; land it as string, as every other interface does."""
    schema = pa.schema(
        [f.with_type(pa.string()) if f.type == pa.large_string() else f for f in table.schema]
    )
    return table if schema.equals(table.schema) else table.cast(schema)


def _bytes(
    connector: PartitionedConnector,
    result: Any,
    settings: ComponentSettings,
    sink: Sink,
    where: Where,
    secret: str | None,
) -> None:
    if isinstance(result, bytes | bytearray):
        result = iter([bytes(result)])
    if not isinstance(result, Iterator):
        raise ConnectorError(
            f"returned a {type(result).__name__}; read_bytes must yield bytes",
            hint="yield the object's bytes in chunks: `yield response.content`",
        )
    chunks = _guarded(parsers.checked_chunks(result, where), where, secret)
    if connector.parser_function is not None:
        with guard(where.at(function="parser_function"), secret):
            parsers.parse_with(connector.parser_function, chunks, settings.batch_rows, sink, where)
    else:
        assert settings.parser is not None  # checked before the refresh starts
        parsers.parse(
            chunks, settings.parser, settings.parser_options, settings.batch_rows, sink, where
        )


def _guarded(chunks: Iterator[bytes], where: Where, secret: str | None) -> Iterator[bytes]:
    """Chunks whose failures are read_bytes's, even when a parser is the one pulling them."""
    while True:
        with guard(where, secret):
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk
