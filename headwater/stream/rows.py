"""Small batches as plain Python values: the latency path.

A commit of a few rows (a trickle, `commit()` after every row) would spend most of its time in
the fixed cost of Arrow and numpy calls, about 5-20 µs each, a dozen of them per stage. Below
`SMALL` rows, and only for columns whose Python values are exactly what Arrow stores (int,
float, str, bool, bytes and JSON text), a batch stays a list of Python values from `next()` to
the sink; it becomes Arrow only where a sink or the log needs Arrow (`as_table`). Both paths
give the same changes: the tests compare them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pyarrow as pa

from headwater.stream.schema import Column

SMALL = 256  # rows: below this, Python beats the fixed cost of Arrow's calls

_PLAIN = (int, float, str, bool, bytes)
_INT64 = (-(2**63), 2**63 - 1)


def plain_columns(columns: tuple[Column, ...]) -> bool:
    """Whether a schema's values can travel as Python values (their Arrow form is equal)."""
    return all(c.is_json or c.python_type in _PLAIN for c in columns)


def fits_arrow(values: list[Any], column: Column) -> bool:
    """Whether Arrow can store these checked values (an int beyond int64, a str with a lone
    surrogate cannot: such a batch takes the Arrow path, which rejects that row alone)."""
    if column.python_type is int:
        low, high = _INT64
        return all(v is None or low <= v <= high for v in values)
    if column.python_type is str or column.is_json:
        try:
            for v in values:
                if v is not None and not v.isascii():
                    v.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


@dataclass
class PlainRows:
    """A small batch from the buffer: one list per column, the op column last."""

    columns: list[list[Any]]

    @property
    def num_rows(self) -> int:
        return len(self.columns[-1])

    def tuples(self) -> list[tuple[Any, ...]]:
        return list(zip(*self.columns, strict=True))

    def to_batch(self, schema: pa.Schema) -> pa.RecordBatch:
        arrays = [pa.array(v, f.type) for v, f in zip(self.columns, schema, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass
class ChangeRows:
    """A small change batch: tuples of the columns, then time and diff (as `schema`)."""

    rows: list[tuple[Any, ...]]
    schema: pa.Schema
    _table: pa.Table | None = field(default=None, repr=False)

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def to_arrow(self) -> pa.Table:
        if self._table is None:
            columns = zip(*self.rows, strict=True) if self.rows else [[] for _ in self.schema]
            self._table = pa.Table.from_arrays(
                [pa.array(list(c), f.type) for c, f in zip(columns, self.schema, strict=True)],
                schema=self.schema,
            )
        return self._table


Changes: TypeAlias = pa.Table | ChangeRows


def as_table(changes: Changes) -> pa.Table:
    """The change batch as Arrow, whichever path made it."""
    return changes.to_arrow() if isinstance(changes, ChangeRows) else changes
