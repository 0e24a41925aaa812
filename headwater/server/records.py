"""Reading a component's rows for the API: JSON pages with a cursor, or an Arrow IPC stream.

Rows come in partition order (by name), then in file and row order within a partition. A
cursor is where the next page starts: a partition name and a row offset within it. It stays
valid as partitions come and go: a page starts at the first partition named at or after it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import io
import json
import math
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from headwater import schema as schemas
from headwater.catalog.catalog import PartitionRecord
from headwater.errors import HeadwaterError
from headwater.store import Store

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class CursorError(HeadwaterError, ValueError):
    """A cursor the server did not make (answer 422)."""


def encode_cursor(partition: str, offset: int) -> str:
    raw = json.dumps([partition, offset], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        partition, offset = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise CursorError(f"cursor {cursor[:40]!r} is not one this server made") from None
    if not isinstance(partition, str) or not isinstance(offset, int) or offset < 0:
        raise CursorError(f"cursor {cursor[:40]!r} is not one this server made")
    return partition, offset


def page(
    store: Store,
    partitions: list[PartitionRecord],
    schema: pa.Schema,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` rows from `cursor` on (partitions sorted by name), and the next cursor."""
    start, offset = decode_cursor(cursor) if cursor else ("", 0)
    remaining = [p for p in partitions if p.name >= start]
    if remaining and remaining[0].name != start:
        offset = 0  # the cursor's partition is gone: start at the next one
    rows: list[dict[str, Any]] = []
    for index, partition in enumerate(remaining):
        skip = offset if index == 0 else 0
        taken = 0
        for batch in _batches(store, partition.files, schema, skip):
            want = limit - len(rows)
            rows.extend(_json_row(row) for row in batch.slice(0, want).to_pylist())
            taken += min(want, batch.num_rows)
            if len(rows) >= limit:
                break
        if len(rows) >= limit:
            if skip + taken < partition.row_count:
                return rows, encode_cursor(partition.name, skip + taken)
            following = remaining[index + 1 : index + 2]
            return rows, encode_cursor(following[0].name, 0) if following else None
    return rows, None


def _batches(
    store: Store, files: list[str], schema: pa.Schema, skip: int
) -> Iterator[pa.RecordBatch]:
    """The partition's rows from row `skip` on, skipping whole files and row groups unread."""
    for relative in files:
        with store.arrow_fs.open_input_file(store.path(relative)) as handle:
            reader = pq.ParquetFile(handle)
            if skip >= reader.metadata.num_rows:
                skip -= reader.metadata.num_rows
                continue
            groups: list[int] = []
            for group in range(reader.metadata.num_row_groups):
                size = reader.metadata.row_group(group).num_rows
                if skip >= size and not groups:
                    skip -= size
                    continue
                groups.append(group)
            for batch in reader.iter_batches(row_groups=groups):
                if skip:
                    cut = min(skip, batch.num_rows)
                    batch, skip = batch.slice(cut), skip - cut
                if batch.num_rows:
                    yield schemas.conform(batch, schema, reading=True)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in row.items()}


def _json_value(value: Any) -> Any:
    """A value as JSON holds it: see `headwater.client.models.Records`."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return str(value)


def arrow_stream(
    store: Store, partitions: list[PartitionRecord], schema: pa.Schema
) -> Iterator[bytes]:
    """The rows of `partitions` as an Arrow IPC stream, one message at a time."""
    sink = io.BytesIO()
    writer = pa.ipc.new_stream(sink, schema)

    def drain() -> bytes:
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        return data

    yield drain()  # the schema, so a reader knows the columns even when there are no rows
    for partition in partitions:
        for batch in store.read_batches(partition.files, schema):
            writer.write_batch(batch)
            yield drain()
    writer.close()
    yield drain()
