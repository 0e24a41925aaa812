"""The stream's hot paths in C (`_native.c`), where they were built, and their Python faces.

Three per-row paths run in C when the extension is there: gathering `next()` rows column by
column (`Rows`), the index of an integer primary key (`IntIndex`) and the CSV change-stream text
(`csv_lines`, made without the GIL so the subject's thread runs meanwhile). Each has a
pure-Python twin, which is the reference: the tests run every stream both ways and compare.

`HEADWATER_STREAM_NATIVE=0` turns the C paths off (read when a stream starts). Without a C
compiler at install time they are simply absent and the Python twins run, only slower.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from headwater.stream.schema import Column

_native: ModuleType | None
try:
    from headwater.stream import _native
except ImportError:  # not built (no C compiler when installed): the Python twins run
    _native = None

AVAILABLE = _native is not None
ENV = "HEADWATER_STREAM_NATIVE"


def enabled() -> bool:
    """Whether streams started now use the C paths."""
    return AVAILABLE and os.environ.get(ENV, "1") != "0"


def _kinds() -> dict[Any, int]:
    if _native is None:
        return {}
    return {
        int: _native.INT,
        float: _native.FLOAT,
        str: _native.STR,
        bool: _native.BOOL,
        bytes: _native.BYTES,
    }


_KINDS = _kinds()
_ARROW_KINDS = {
    pa.int64(): "INT",
    pa.float64(): "FLOAT",
    pa.string(): "STR",
    pa.bool_(): "BOOL",
    pa.binary(): "BYTES",
    pa.int8(): "INT8",
}


def rows_for(columns: tuple[Column, ...], chunk_rows: int, **hooks: Any) -> Any | None:
    """A C row buffer for these columns, or None when a column's type has no C path (JSON,
    dates and times) or the C paths are off."""
    if not enabled() or len(columns) > 64:  # (C keeps a row's values on its stack)
        return None
    if any(c.is_json or c.python_type not in _KINDS for c in columns):
        return None
    spec = [(c.name, _KINDS[c.python_type], c.nullable) for c in columns]
    assert _native is not None  # (enabled())
    return _native.Rows(spec, chunk_rows, **hooks)


def arrays(
    columns: list[tuple[bytes | None, bytes, bytes | None]], rows: int, schema: pa.Schema
) -> list[pa.Array]:
    """`Rows.take()`'s buffers as Arrow arrays of `schema`'s types (no copy)."""
    out = []
    for (valid, data, offsets), field in zip(columns, schema, strict=False):
        buffers = [None if valid is None else pa.py_buffer(valid)]
        if offsets is not None:
            buffers.append(pa.py_buffer(offsets))
        buffers.append(pa.py_buffer(data))
        out.append(pa.Array.from_buffers(field.type, rows, buffers))
    return out


class IntIndex:
    """`state.IntIndex`'s interface on the C hash table: int64 key -> row position."""

    def __init__(self) -> None:
        assert _native is not None, "native.IntIndex() needs the built extension (enabled())"
        self._index = _native.IntIndex()

    def codes(self, table: pa.Table, key: Any) -> np.ndarray:
        return np.ascontiguousarray(table.column(key[0]).to_numpy(), dtype=np.int64)

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        keys = np.ascontiguousarray(codes, dtype=np.int64)
        return np.frombuffer(self._index.lookup(keys), dtype=np.int64)

    def set(self, codes: np.ndarray, positions: np.ndarray) -> None:
        self._index.set(
            np.ascontiguousarray(codes, dtype=np.int64),
            np.ascontiguousarray(positions, dtype=np.int64),
        )

    def remap(self, old_to_new: np.ndarray) -> None:
        self._index.remap(np.ascontiguousarray(old_to_new, dtype=np.int64))

    def positions(self) -> np.ndarray:
        return np.frombuffer(self._index.positions(), dtype=np.int64)


def csv_lines(table: pa.Table) -> bytes | None:
    """The table's rows as Pathway's CSV lines (every value quoted, null empty, floats as
    Python writes them, bytes as text), or None when a column's type has no C path."""
    if not enabled():
        return None
    if not table.num_rows:
        return b""
    assert _native is not None  # (enabled())
    spec = []
    for column in table.combine_chunks().columns:
        kind = _ARROW_KINDS.get(column.type)
        if kind is None:
            return None
        array = column.chunk(0)
        buffers = array.buffers()
        valid = buffers[0] if array.null_count else None
        if len(buffers) == 3:
            spec.append((getattr(_native, kind), array.offset, valid, buffers[2], buffers[1]))
        else:
            spec.append((getattr(_native, kind), array.offset, valid, buffers[1], None))
    result: bytes = _native.csv_lines(table.num_rows, spec)
    return result
