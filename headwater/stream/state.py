"""Keyed state: a commit's rows (upserts and deletes, in order) become a change batch.

With a primary key, a commit is reduced to the last operation per key, then compared with the
stored row: a new value emits -1 old / +1 new, an identical re-send emits nothing, a delete emits
-1. Without a primary key every row is appended (+1).

Memory matters here (a million keys should not cost a gigabyte), so stored rows live in Arrow
chunks and an integer key's index is two sorted numpy arrays (a small recent level merged into a
large base level), about 16 bytes per key; where the C paths are built it is a hash table
instead (`native.IntIndex`, about 34 bytes per key, no sorting). Other keys use a dict (exact, but
larger).

Small commits (`apply_small`) keep the keys they touch in a plain dict in front of that storage,
the overlay, so a one-row commit costs dict lookups rather than a dozen Arrow and numpy calls.
The overlay is folded into the storage when it grows past OVERLAY_LIMIT keys, and before any
large commit, so each key lives in exactly one place that answers for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.stream import native
from headwater.stream.buffer import DELETE, OP, UPSERT
from headwater.stream.rows import SMALL

DIFF = "diff"
ABSENT = -1
RECENT_LIMIT = 65_536
OVERLAY_LIMIT = 4_096


def _merge(
    keys: np.ndarray, pos: np.ndarray, new_keys: np.ndarray, new_pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (keys, pos) with sorted unique new_keys merged in; new positions win."""
    at = np.searchsorted(keys, new_keys)
    inside = at < len(keys)
    found = np.zeros(len(new_keys), dtype=bool)
    found[inside] = keys[at[inside]] == new_keys[inside]
    pos = pos.copy()
    pos[at[found]] = new_pos[found]
    fresh = ~found
    return np.insert(keys, at[fresh], new_keys[fresh]), np.insert(pos, at[fresh], new_pos[fresh])


class IntIndex:
    """int64 key -> row position, in two sorted levels. ABSENT marks a deleted key."""

    def __init__(self) -> None:
        empty = np.empty(0, dtype=np.int64)
        self.base_keys, self.base_pos = empty, empty
        self.recent_keys, self.recent_pos = empty, empty

    def codes(self, table: pa.Table, key: Sequence[str]) -> np.ndarray:
        return np.asarray(table.column(key[0]).to_numpy(), dtype=np.int64)

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        result = self._find(self.base_keys, self.base_pos, codes)
        if len(self.recent_keys):
            recent = self._find(self.recent_keys, self.recent_pos, codes, missing=-2)
            hit = recent != -2
            result[hit] = recent[hit]
        return result

    @staticmethod
    def _find(
        keys: np.ndarray, pos: np.ndarray, codes: np.ndarray, missing: int = ABSENT
    ) -> np.ndarray:
        result = np.full(len(codes), missing, dtype=np.int64)
        if not len(keys):
            return result
        at = np.searchsorted(keys, codes)
        inside = at < len(keys)
        hit = np.zeros(len(codes), dtype=bool)
        hit[inside] = keys[at[inside]] == codes[inside]
        result[hit] = pos[at[hit]]
        return result

    def set(self, codes: np.ndarray, positions: np.ndarray) -> None:
        """Set (or, with ABSENT, delete) keys; `codes` unique."""
        order = np.argsort(codes, kind="stable")
        self.recent_keys, self.recent_pos = _merge(
            self.recent_keys, self.recent_pos, codes[order], positions[order]
        )
        if len(self.recent_keys) > max(RECENT_LIMIT, len(self.base_keys) // 8):
            keys, pos = _merge(self.base_keys, self.base_pos, self.recent_keys, self.recent_pos)
            live = pos != ABSENT
            self.base_keys, self.base_pos = keys[live], pos[live]
            self.recent_keys = self.recent_pos = np.empty(0, dtype=np.int64)

    def remap(self, old_to_new: np.ndarray) -> None:
        """After compaction: every stored position p becomes old_to_new[p]."""
        for name in ("base_pos", "recent_pos"):
            pos = getattr(self, name)
            live = pos != ABSENT
            pos = pos.copy()
            pos[live] = old_to_new[pos[live]]
            setattr(self, name, pos)


class DictIndex:
    """Any key (str, several columns) -> row position: a dict, exact."""

    def __init__(self) -> None:
        self.positions: dict[Any, int] = {}
        self.keys: list[Any] = []  # this batch's distinct keys; codes index into it

    def codes(self, table: pa.Table, key: Sequence[str]) -> np.ndarray:
        columns = [table.column(k).to_pylist() for k in key]
        values = columns[0] if len(columns) == 1 else list(zip(*columns, strict=True))
        ids: dict[Any, int] = {}
        codes = np.fromiter((ids.setdefault(v, len(ids)) for v in values), np.int64, len(values))
        self.keys = list(ids)
        return codes

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        get = self.positions.get
        return np.fromiter((get(self.keys[i], ABSENT) for i in codes), np.int64, len(codes))

    def set(self, codes: np.ndarray, positions: np.ndarray) -> None:
        for i, p in zip(codes.tolist(), positions.tolist(), strict=True):
            if p == ABSENT:
                self.positions.pop(self.keys[i], None)
            else:
                self.positions[self.keys[i]] = p

    def remap(self, old_to_new: np.ndarray) -> None:
        self.positions = {k: int(old_to_new[p]) for k, p in self.positions.items()}


class KeyedState:
    """The current row of every key, and the changes a commit makes to them."""

    def __init__(
        self,
        columns: Sequence[str],
        primary_key: Sequence[str],
        int_key: bool,
        row_schema: pa.Schema | None = None,
    ) -> None:
        """`row_schema`: the Arrow schema of a commit's rows (the columns, then the op); the
        overlay of small commits is folded into the storage as that (without it, only when a
        large commit comes)."""
        self.row_schema = row_schema
        self.columns = list(columns)
        self.primary_key = list(primary_key)
        self.index: IntIndex | native.IntIndex | DictIndex = (
            DictIndex() if not int_key else native.IntIndex() if native.enabled() else IntIndex()
        )
        self.chunks: list[pa.Table] = []
        self.stored = 0  # rows in chunks, live or not
        self.live = 0
        # Keys touched by small commits since the last fold: key -> current row (None: gone).
        self.overlay: dict[Any, tuple[Any, ...] | None] = {}
        self._key_at = [self.columns.index(k) for k in self.primary_key]

    def apply(self, rows: pa.Table) -> pa.Table:
        """Changes (the columns plus `diff`) that `rows` (with the op column) make."""
        if self.overlay:
            self._fold(rows.schema)
        return self._apply(rows)

    def apply_small(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """`apply` for a few rows as tuples (the columns, then the op): the changes as tuples
        (the columns, then diff), in the order `apply` gives them: retractions, then
        insertions, each in the order of the keys' last operations."""
        last: dict[Any, tuple[Any, ...]] = {}
        key_at = self._key_at
        for row in rows:
            key = row[key_at[0]] if len(key_at) == 1 else tuple(row[i] for i in key_at)
            last.pop(key, None)  # re-inserted: the dict's order becomes last-operation order
            last[key] = row
        retracted: list[tuple[Any, ...]] = []
        inserted: list[tuple[Any, ...]] = []
        overlay = self.overlay
        for key, row in last.items():
            old = overlay[key] if key in overlay else self._stored_row(key)
            values = row[:-1]
            if row[-1] == DELETE:
                if old is not None:
                    retracted.append((*old, -1))
                overlay[key] = None
            elif old is None or not _same(old, values):
                if old is not None:
                    retracted.append((*old, -1))
                inserted.append((*values, 1))
                overlay[key] = values
        if len(overlay) > OVERLAY_LIMIT and self.row_schema is not None:
            self._fold(self.row_schema)
        return retracted + inserted

    def _stored_row(self, key: Any) -> tuple[Any, ...] | None:
        """The stored row of one key (outside the overlay), or None."""
        if not isinstance(self.index, DictIndex):
            position = int(self.index.lookup(np.array([key], dtype=np.int64))[0])
        else:
            position = self.index.positions.get(key, ABSENT)
        if position == ABSENT:
            return None
        row = self._table().slice(position, 1).to_pylist()[0]
        return tuple(row[name] for name in self.columns)

    def _fold(self, schema: pa.Schema) -> None:
        """Move the overlay into the Arrow storage (its changes were emitted already)."""
        overlay, self.overlay = self.overlay, {}
        rows = []
        for key, values in overlay.items():
            if values is not None:
                rows.append((*values, UPSERT))
                continue
            gone: list[Any] = [None] * len(self.columns)  # a delete: the key, nulls elsewhere
            parts = key if len(self._key_at) > 1 else (key,)
            for at, part in zip(self._key_at, parts, strict=True):
                gone[at] = part
            rows.append((*gone, DELETE))
        columns = list(zip(*rows, strict=True))
        self._apply(
            pa.Table.from_arrays(
                [pa.array(list(c), f.type) for c, f in zip(columns, schema, strict=True)],
                schema=schema,
            )
        )

    def _apply(self, rows: pa.Table) -> pa.Table:
        if not rows.num_rows:
            return _empty_changes(rows.select(self.columns))
        codes = self.index.codes(rows, self.primary_key)
        last = _last_per_key(codes)
        rows = rows.take(pa.array(last))
        codes = codes[last]
        ops = rows.column(OP).to_numpy()
        values = rows.select(self.columns)
        old_pos = self.index.lookup(codes)
        existed = old_pos != ABSENT
        changed = np.ones(len(codes), dtype=bool)
        old = None
        if existed.any():
            old = self._table().take(pa.array(old_pos[existed]))
            same = _rows_equal(old, values.filter(pa.array(existed)))
            changed[np.flatnonzero(existed)] = ~same
        upsert = ops == UPSERT
        retract = existed & ((ops == DELETE) | changed)
        insert = upsert & changed
        out = []
        if retract.any() and old is not None:
            out.append(_with_diff(old.filter(pa.array(retract[existed])), -1))
        if insert.any():
            out.append(_with_diff(values.filter(pa.array(insert)), 1))
        self._store(values, codes, insert, existed & ~upsert, existed)
        return pa.concat_tables(out) if out else _empty_changes(values)

    def load(self, changes: pa.Table) -> None:
        """Rebuild from a stored change batch (replayed after a restart)."""
        ops = pc.if_else(pc.equal(changes.column(DIFF), -1), DELETE, UPSERT).cast(pa.int8())
        self.apply(changes.select(self.columns).append_column(OP, ops))

    def _store(
        self,
        values: pa.Table,
        codes: np.ndarray,
        insert: np.ndarray,
        delete: np.ndarray,
        existed: np.ndarray,
    ) -> None:
        positions = np.full(len(codes), ABSENT, dtype=np.int64)
        count = int(insert.sum())
        if count:
            self.chunks.append(values.filter(pa.array(insert)))
            positions[insert] = np.arange(self.stored, self.stored + count, dtype=np.int64)
            self.stored += count
        touched = insert | delete
        replaced = int((touched & existed).sum())
        self.index.set(codes[touched], positions[touched])
        self.live += count - replaced
        if self.stored > 1_000 and self.stored > 2 * self.live:
            self._compact()

    def _table(self) -> pa.Table:
        if len(self.chunks) > 1:
            self.chunks = [pa.concat_tables(self.chunks).combine_chunks()]
        return self.chunks[0]

    def _compact(self) -> None:
        """Drop rows no key points at any more."""
        live = np.zeros(self.stored, dtype=bool)
        for positions in _stored_positions(self.index):
            live[positions] = True
        old_to_new = np.cumsum(live) - 1
        self.chunks = [self._table().filter(pa.array(live))]
        self.index.remap(old_to_new)
        self.stored = self.live = int(live.sum())


def _stored_positions(index: IntIndex | native.IntIndex | DictIndex) -> list[np.ndarray]:
    if isinstance(index, native.IntIndex):
        return [index.positions()]
    if isinstance(index, DictIndex):
        return [np.fromiter(index.positions.values(), np.int64, len(index.positions))]
    _, merged_pos = _merge(index.base_keys, index.base_pos, index.recent_keys, index.recent_pos)
    return [merged_pos[merged_pos != ABSENT]]


def _last_per_key(codes: np.ndarray) -> np.ndarray:
    """Indices of each key's last row, in arrival order."""
    if len(codes) < 2 or bool(np.all(codes[1:] > codes[:-1])):
        return np.arange(len(codes))  # strictly increasing: no key repeats
    reverse = codes[::-1]
    _, first_in_reverse = np.unique(reverse, return_index=True)
    return np.sort(len(codes) - 1 - first_in_reverse)


def _same(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Equal rows (None equals None, NaN equals NaN: re-sending NaN changes nothing)."""
    return all(x == y or (x != x and y != y) for x, y in zip(old, new, strict=True))


def _rows_equal(a: pa.Table, b: pa.Table) -> np.ndarray:
    """Row by row: are all values equal (None equals None, NaN equals NaN)?"""
    if a.num_rows < SMALL:
        return np.fromiter(
            (_same(r, s) for r, s in zip(_tuples(a), _tuples(b), strict=True)),
            dtype=bool,
            count=a.num_rows,
        )
    same = np.ones(a.num_rows, dtype=bool)
    for name in a.column_names:
        x, y = a.column(name), b.column(name)
        equal = pc.or_(pc.fill_null(pc.equal(x, y), False), pc.and_(pc.is_null(x), pc.is_null(y)))
        if pa.types.is_floating(x.type):  # NaN is a value: re-sending it changes nothing
            equal = pc.or_(equal, pc.fill_null(pc.and_(pc.is_nan(x), pc.is_nan(y)), False))
        same &= equal.to_numpy(zero_copy_only=False)
    return same


def _tuples(table: pa.Table) -> list[tuple[Any, ...]]:
    return list(zip(*(c.to_pylist() for c in table.columns), strict=True))


def _with_diff(table: pa.Table, diff: int) -> pa.Table:
    return table.append_column(DIFF, pa.array(np.full(table.num_rows, diff, np.int8)))


def _empty_changes(values: pa.Table) -> pa.Table:
    return values.schema.empty_table().append_column(DIFF, pa.array([], pa.int8()))


def append_changes(rows: pa.Table, columns: Sequence[str]) -> pa.Table:
    """Without a primary key: every row is an insertion."""
    return _with_diff(rows.select(list(columns)), 1)
