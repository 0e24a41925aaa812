"""Rows (Python dicts) into Arrow record batches, a batch at a time.

Rows are gathered into a list and converted with one `from_pylist` per batch: no per-row work
beyond the append. Each batch's types are inferred from its own values and merging them with
the earlier batches' is left to the writer, where the schema policy lives. (Converting with an
earlier batch's schema would be no faster, and pyarrow would silently truncate 10.75 into an
int64 column.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from headwater.errors import SchemaError, Where

Sink = Callable[[pa.RecordBatch], None]


class RecordBatcher:
    """Buffers rows and hands `sink` one RecordBatch per `batch_rows` rows."""

    def __init__(self, sink: Sink, batch_rows: int, where: Where) -> None:
        self.sink = sink
        self.batch_rows = batch_rows
        self.where = where
        self.rows: list[dict[str, Any]] = []
        self.schema: pa.Schema | None = None
        self.row_offset = 0  # rows handed on so far, to name rows in errors

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def extend(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        batch = self._convert(rows)
        self.schema = batch.schema
        self.row_offset += len(rows)
        self.sink(batch)

    def _convert(self, rows: list[dict[str, Any]]) -> pa.RecordBatch:
        try:
            batch = pa.RecordBatch.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            raise self._locate_bad_value(rows) from None
        # from_pylist orders columns by first appearance; keep earlier columns first.
        if self.schema is not None and batch.schema.names != self.schema.names:
            order = [n for n in self.schema.names if n in batch.schema.names]
            order += [n for n in batch.schema.names if n not in set(order)]
            batch = batch.select(order)
        return batch

    def _locate_bad_value(self, rows: list[dict[str, Any]]) -> SchemaError:
        """Find the column and row whose values Arrow cannot put in one column."""
        columns = list(dict.fromkeys(k for r in rows for k in r))
        for column in columns:
            values = [r.get(column) for r in rows]
            try:
                pa.array(values)
            except (
                pa.ArrowInvalid,
                pa.ArrowTypeError,
                pa.ArrowNotImplementedError,
                OverflowError,
            ) as exc:
                row = self._first_odd_row(values)
                return SchemaError(
                    f"column '{column}' mixes values Arrow cannot store in one column "
                    f"(first odd value at row {self.row_offset + row}: {values[row]!r}): {exc}",
                    self.where,
                    hint="return one type per column (convert values, or use strings)",
                )
        return SchemaError("rows could not be converted to Arrow", self.where)

    @staticmethod
    def _first_odd_row(values: list[Any]) -> int:
        first = next((type(v) for v in values if v is not None), None)
        for index, value in enumerate(values):
            if value is not None and type(value) is not first:
                return index
        return 0
