"""From `next()` to the consumer: rows gathered column by column, handed over as Arrow batches.

`next()` checks a row against the schema and appends its values to per-column lists; no Python
object per row crosses threads. Full chunks (and commits) go to a Backlog as Arrow batches. The
backlog is bounded in rows (`max_backlog_size`): a producer that runs ahead blocks in `next()`.

Ordering: every hand-over takes a ticket under the takers' lock and the backlog releases
tickets in order, so a consumer-side cut (the autocommit) can never overtake a chunk the
producer is still converting.
"""

from __future__ import annotations

import datetime
import logging
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from headwater.errors import HeadwaterError
from headwater.stream import native
from headwater.stream.rows import SMALL, PlainRows, fits_arrow, plain_columns
from headwater.stream.schema import Column, json_text

log = logging.getLogger("headwater.stream")

OP = "__op__"  # +1 a row (insert or upsert), -1 a delete by key
UPSERT, DELETE = 1, -1
NO_OFFSET: Any = object()
_NEVER = type("_Never", (), {})  # a type no value has: JSON columns always take the slow path
# A subclass's value as its base type: the fast paths (and the sinks) see plain values only.
_EXACT: dict[type, Callable[[Any], Any]] = {
    int: int.__int__,
    float: float.__float__,
    str: str.__str__,
    bytes: bytes,
}


class BadRowError(HeadwaterError, ValueError):
    """A value passed to `next()` does not fit the schema."""


class StreamClosedError(HeadwaterError, RuntimeError):
    """`next()` (or commit, delete) after the stream was closed or stopped."""


@dataclass
class Event:
    """What travels from a subject to its consumer, in order."""

    rows: pa.RecordBatch | PlainRows | None = None  # data (with the OP column)
    commit: bool = False  # closes a micro-batch
    offset: Any = NO_OFFSET  # reported with this commit
    close: bool = False  # the stream ended
    error: BaseException | None = None  # run() raised
    dead: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # dead letters
    # Bad rows dropped (skipped or dead-lettered) since the last hand-over: a resume's skip
    # counts every row the subject sent, so they count toward it like the rows that landed.
    rejected: int = 0

    @property
    def size(self) -> int:
        return self.rows.num_rows if self.rows is not None else 0


class Backlog:
    """Ordered hand-over between one producer and one consumer, bounded in rows."""

    def __init__(self, max_rows: int | None) -> None:
        self.max_rows = max_rows
        self._cond = threading.Condition()
        self._ready: dict[int, Event] = {}
        self._issued = 0  # tickets handed out
        self._next = 0  # the next ticket to release
        self._rows = 0
        self._nudged = False

    def ticket(self) -> int:
        """Called under the buffer's lock, so tickets follow the order of the rows."""
        with self._cond:
            self._issued += 1
            return self._issued - 1

    def put(self, ticket: int, event: Event, *, wait: bool = True) -> None:
        with self._cond:
            # Block while full, but never while this ticket is the one the consumer awaits.
            while (
                wait
                and self.max_rows
                and self._rows
                and ticket != self._next
                and self._rows + event.size > self.max_rows
            ):
                self._cond.wait()
            self._ready[ticket] = event
            self._rows += event.size
            self._cond.notify_all()

    def get(self, timeout: float | None) -> Event | None:
        """The next event in order; None after `timeout`, or at once when nudged."""
        with self._cond:
            ready = self._cond.wait_for(lambda: self._next in self._ready or self._nudged, timeout)
            self._nudged = False
            if not ready or self._next not in self._ready:
                return None
            event = self._ready.pop(self._next)
            self._next += 1
            self._rows -= event.size
            self._cond.notify_all()
            return event

    def nudge(self) -> None:
        """Wake the consumer: rows are waiting in the buffer (for the autocommit)."""
        with self._cond:
            self._nudged = True
            self._cond.notify_all()


class RowBuffer:
    """Rows of one subject, column by column, until they are handed over.

    Where the C paths are built (`native`), `next` is C's `Rows.next`, which the subject calls
    directly: it checks and appends a row of plain values in C and hands anything else (a
    missing column, an int into a float column, a bad value) to the checks below.

    Otherwise, with no lock on the hot path: `next()` appends each value to its column's list
    and then an op to the ops list; a taker (a full chunk, a commit, the autocommit cut) reads
    the row count from the ops list, which is appended last, and slices then deletes that
    prefix of every list. Each list operation is atomic and appends only ever go to the end,
    so a taker never sees half a row. Takers serialise among themselves (`_take_lock`) and
    take a ticket there, so batches reach the consumer in the order of their rows.
    """

    def __init__(
        self,
        columns: tuple[Column, ...],
        primary_key: tuple[str, ...],
        backlog: Backlog,
        *,
        subject: str,
        on_bad_row: str,
        chunk_rows: int,
    ) -> None:
        self.columns = columns
        self.names = tuple(c.name for c in columns)
        self.primary_key = primary_key
        self.backlog = backlog
        self.subject = subject
        self.on_bad_row = on_bad_row
        self.chunk_rows = chunk_rows
        self.skipped = 0
        self._rejected = 0  # bad rows dropped since the last hand-over (see Event.rejected)
        self._to_skip = 0  # rows a resumed subject re-sends that had already landed
        self._closed = False
        self._take_lock = threading.Lock()
        # The fast path's test: exactly these types, in order (JSON columns never match it).
        self._exact = tuple(c.accepts[0] if not c.is_json else _NEVER for c in columns)
        single = self.names[0]
        self._get: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            operator.itemgetter(*self.names)
            if len(self.names) > 1
            else lambda values: (values[single],)
        )
        self._by_name = {c.name: c for c in columns}
        self._arrow = pa.schema(
            [pa.field(c.name, c.arrow_type) for c in columns] + [pa.field(OP, pa.int8())]
        )
        self._plain = plain_columns(columns)
        self._values: list[list[Any]] = [[] for _ in columns]
        self._appends = [v.append for v in self._values]
        self._ops: list[int] = []
        self._dead: list[tuple[dict[str, Any], str]] = []
        self._native = native.rows_for(
            columns,
            chunk_rows,
            check=self._checked,
            misfit=self._misfit,
            full=lambda: self._take(Event()),
            first=self.backlog.nudge,
        )
        # The subject's next(**values) when it can be C's own (None: ConnectorSubject.next).
        self.next: Callable[..., None] | None = None
        self._normal: Callable[[dict[str, Any]], None]
        if self._native is not None:
            self.next, self._normal = self._native.next, self._native.add
        else:
            self._normal = self._adder()
        self._add = self._normal

    @property
    def add(self) -> Callable[[dict[str, Any]], None]:
        """`add(values)`: one row from `next(**values)`."""
        return self._add

    @add.setter
    def add(self, add: Callable[[dict[str, Any]], None]) -> None:
        """Swap the per-row path (closed, skipping, an error to raise): in C, every row goes
        to `add` until it is swapped back."""
        self._add = add
        if self._native is not None:
            self._native.divert = None if add is self._normal else add

    @property
    def pending(self) -> int:
        """Rows (and dead letters) not yet handed over."""
        rows = self._native.rows if self._native is not None else len(self._ops)
        return int(rows) + len(self._dead)

    # -- the producer's side ------------------------------------------------------------------

    def _adder(self) -> Callable[[dict[str, Any]], None]:
        """`add(values)`: one row from `next(**values)`, checked, then appended column by
        column. A closure, because this runs once per row: no attribute lookups in it."""
        get, exact, appends, ops = self._get, self._exact, self._appends, self._ops
        append_op, call, chunk_rows = ops.append, operator.call, self.chunk_rows
        checked, take, nudge, width = self._checked, self._take, self.backlog.nudge, len(exact)

        def add(values: dict[str, Any]) -> None:
            row: Any = None
            if len(values) == width:  # all columns given, nothing else (or a KeyError below)
                try:  # noqa: SIM105 - per row: contextlib.suppress would cost a call
                    row = get(values)
                except KeyError:
                    pass
            if row is None or tuple(map(type, row)) != exact:
                row = checked(values)
                if row is None:
                    return  # a bad row, skipped or dead-lettered
            any(map(call, appends, row))  # one append per column, in C
            append_op(UPSERT)
            n = len(ops)
            if n >= chunk_rows:
                take(Event())
            elif n == 1:
                nudge()

        return add

    def delete(self, key: dict[str, Any]) -> None:
        if self.closed:
            raise StreamClosedError(f"{self.subject}: delete() after the stream was closed")
        if self._to_skip:
            self._skip_one(key)
            return
        if not self.primary_key:
            raise BadRowError(
                f"{self.subject}: delete() needs a primary key in the schema; "
                "declare one with column_definition(primary_key=True)"
            )
        if set(key) != set(self.primary_key):
            raise BadRowError(
                f"{self.subject}: delete() takes exactly the primary key column(s) "
                f"{', '.join(self.primary_key)}; got {', '.join(sorted(key)) or 'none'}"
            )
        row = [
            self._checked_value(column, key[column.name]) if column.primary_key else None
            for column in self.columns
        ]
        if self._native is not None:
            self._native.push(row, DELETE)
        else:
            any(map(operator.call, self._appends, row))
            self._ops.append(DELETE)
        self.backlog.nudge()

    @property
    def closed(self) -> bool:
        return self._closed

    @closed.setter
    def closed(self, value: bool) -> None:
        """Closing swaps `add` for one that raises: the per-row path tests nothing."""
        self._closed = value
        if value:
            self.add = self._refuse

    def _refuse(self, values: dict[str, Any]) -> None:
        raise StreamClosedError(f"{self.subject}: next() after the stream was closed")

    def skip(self, rows: int) -> None:
        """After a restart: drop the first `rows` rows (next or delete) the subject sends, as
        they had landed before it stopped. `add` is swapped while skipping, so the per-row
        path pays nothing once done."""
        if rows <= 0:
            return
        self._to_skip = rows
        self._adding = self.add
        self.add = self._skip_one

    def _skip_one(self, values: dict[str, Any]) -> None:
        self._to_skip -= 1
        if self._to_skip == 0:
            self.add = self._adding

    def commit(self, offset: Any = NO_OFFSET, *, close: bool = False) -> None:
        if self.closed:
            if close:
                return  # closing twice is harmless
            raise StreamClosedError(f"{self.subject}: commit() after the stream was closed")
        self._take(Event(commit=True, offset=offset, close=close))
        self.closed = close

    def fail(self, error: BaseException) -> None:
        """run() raised: the uncommitted rows are discarded, the error goes to the consumer."""
        self.closed = True
        with self._take_lock:
            for values in (*self._values, self._ops):
                values.clear()
            if self._native is not None:
                self._native.clear()
            self.backlog.put(self.backlog.ticket(), Event(error=error), wait=False)

    # -- the consumer's side ------------------------------------------------------------------

    def cut(self) -> bool:
        """Autocommit: commit the pending rows now. Returns whether there were any."""
        if not self.pending:
            return False
        self._take(Event(commit=True), wait=False, in_subject=False)
        return True

    def _take(self, event: Event, *, wait: bool = True, in_subject: bool = True) -> None:
        """Hand the rows so far (with `event`'s commit or close) to the consumer.
        `in_subject`: called from the subject's thread (next, commit), where a bad row found
        now can be raised; from the consumer's, it is raised at the subject's next call."""
        with self._take_lock:
            ticket = self.backlog.ticket()
            if self._native is not None:
                n = self._native.rows
                ops, columns = self._native.take(n < SMALL)  # (C rows are whole: GIL-atomic)
            else:
                n = len(self._ops)  # rows complete in every column: ops are appended last
                taken = [values[:n] for values in (*self._values, self._ops)]
                for values in (*self._values, self._ops):
                    del values[:n]
            dead = self._dead[: len(self._dead)]
            del self._dead[: len(dead)]
            rejected, self._rejected = self._rejected, 0
        bad: list[BadRowError] = []
        try:
            if self._native is not None:  # checked in C: every value fits Arrow
                if n and n < SMALL:
                    event.rows = PlainRows([*columns, ops])
                elif n:
                    arrays = native.arrays(columns, n, self._arrow)
                    arrays.append(pa.Array.from_buffers(pa.int8(), n, [None, pa.py_buffer(ops)]))
                    event.rows = pa.RecordBatch.from_arrays(arrays, schema=self._arrow)
            elif n and n < SMALL and self._plain and all(map(fits_arrow, taken, self.columns)):
                event.rows = PlainRows(taken)  # a few rows: Arrow's fixed costs would dominate
            elif n:
                try:
                    arrays = self._arrays(taken)
                except (pa.ArrowException, OverflowError, UnicodeEncodeError):
                    # A value that passed the type check but does not fit (an int beyond
                    # int64, a str with a lone surrogate): its row is bad like any other; the
                    # rest of the batch goes on.
                    taken, bad, unconvertible = self._without_unconvertible(taken)
                    arrays = self._arrays(taken)
                    if self.on_bad_row == "dead_letter":
                        dead += unconvertible
                event.rows = pa.RecordBatch.from_arrays(arrays, schema=self._arrow)
        except BaseException as exc:  # unforeseen: end the stream rather than leave its ticket
            self.backlog.put(ticket, Event(error=exc), wait=False)
            raise
        event.dead = dead
        event.rejected = rejected + (len(bad) if self.on_bad_row != "raise" else 0)
        self.backlog.put(ticket, event, wait=wait)
        for error in bad:
            if self.on_bad_row != "raise":
                self._count_bad(error)
            elif in_subject:
                raise error
            else:
                self._raise_later(error)
                break

    def _arrays(self, taken: list[list[Any]]) -> list[pa.Array]:
        return [pa.array(v, type=f.type) for v, f in zip(taken, self._arrow, strict=True)]

    def _without_unconvertible(
        self, taken: list[list[Any]]
    ) -> tuple[list[list[Any]], list[BadRowError], list[tuple[dict[str, Any], str]]]:
        """The batch without its rows Arrow cannot store, and an error for each of them."""
        rows = len(taken[-1])
        failing: dict[int, BadRowError] = {}
        for values, column in zip(taken, self._arrow, strict=False):
            for index, value in enumerate(values):
                try:
                    pa.array([value], type=column.type)
                except (pa.ArrowException, OverflowError, UnicodeEncodeError):
                    failing.setdefault(
                        index,
                        BadRowError(
                            f"{self.subject}: column '{column.name}' got {value!r}, which does not "
                            f"fit {column.type} (found when its batch was handed over; the other "
                            "rows of the batch were kept)"
                        ),
                    )
        kept = [[v for i, v in enumerate(values) if i not in failing] for values in taken]
        rejected = [
            ({c.name: taken[k][i] for k, c in enumerate(self.columns)}, str(failing[i]))
            for i in range(rows)
            if i in failing
        ]
        return kept, list(failing.values()), rejected

    def _misfit(self, values: dict[str, Any], name: str, value: Any) -> None:
        """C found a checked value it cannot store: a bad row like any other."""
        column = self._by_name[name]
        if isinstance(value, int):
            why = "it does not fit int64"
        elif isinstance(value, str):
            why = "it is not valid UTF-8 (a lone surrogate)"
        else:
            why = f"a {type(value).__name__} cannot be stored in this column"
        self._bad(values, self._wrong(column, value, why))

    def _raise_later(self, error: BadRowError) -> None:
        """Raise `error` from the subject's next call of next() (found by the consumer)."""
        adding = self.add

        def raise_once(values: dict[str, Any]) -> None:
            self.add = adding
            raise error

        self.add = raise_once

    # -- checking values ----------------------------------------------------------------------

    def _checked(self, values: dict[str, Any]) -> list[Any] | None:
        """The row as the schema wants it (defaults, int -> float, JSON as text), or None
        when it is bad and not raised (on_bad_row)."""
        try:
            return self._checked_slowly(values)
        except BadRowError as error:
            self._bad(values, error)
            return None

    def _checked_slowly(self, values: dict[str, Any]) -> list[Any]:
        unknown = [name for name in values if name not in self._by_name]
        if unknown:
            given = ", ".join(f"{name}={values[name]!r}" for name in unknown)
            raise BadRowError(
                f"{self.subject}: next() got {given}, but the schema has no such column "
                f"(it has {', '.join(self.names)})"
            )
        row = []
        for column in self.columns:
            if column.name in values:
                row.append(self._checked_value(column, values[column.name]))
            elif column.has_default:
                default = column.default
                row.append(
                    json_text(default) if column.is_json and default is not None else default
                )
            else:
                raise BadRowError(
                    f"{self.subject}: next() got no value for column '{column.name}' "
                    f"({column.type_name}), which has no default"
                )
        return row

    def _checked_value(self, column: Column, value: Any) -> Any:
        if value is None:
            if column.nullable:
                return None
            raise self._wrong(column, value, "it is not optional (declare it `| None`)")
        if column.is_json:
            try:
                return json_text(value)
            except (TypeError, ValueError) as exc:
                raise self._wrong(column, value, f"it is not JSON ({exc})") from None
        if isinstance(value, bool) and column.python_type is not bool:
            raise self._wrong(column, value, "a bool is not a number")
        if isinstance(value, column.accepts):
            if column.python_type is float and isinstance(value, int):
                try:
                    return float(value)  # an int into a float column
                except OverflowError:
                    raise self._wrong(column, value, "it is too large for a float") from None
            if column.python_type is bytes and isinstance(value, bytearray):
                return bytes(value)
            if column.python_type is datetime.date and isinstance(value, datetime.datetime):
                raise self._wrong(column, value, "a datetime is not a date (use .date())")
            exact = _EXACT.get(column.python_type)
            if exact is not None and type(value) is not column.python_type:
                return exact(value)  # numpy.float64, an IntEnum: the plain value, as stored
            return value
        raise self._wrong(column, value, None)

    def _wrong(self, column: Column, value: Any, why: str | None) -> BadRowError:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        reason = f"; {why}" if why else ""
        return BadRowError(
            f"{self.subject}: next(): column '{column.name}' got {shown} "
            f"({type(value).__name__}), but the schema says {column.type_name}{reason}"
        )

    def _bad(self, values: dict[str, Any], error: BadRowError) -> None:
        """Raise, or count, log and maybe keep the rejected row (on_bad_row)."""
        if self.on_bad_row == "raise":
            raise error
        with self._take_lock:  # (a hand-over from the consumer's thread resets the count)
            if self.on_bad_row == "dead_letter":
                self._dead.append((values, str(error)))
            self._rejected += 1
        self._count_bad(error)

    def _count_bad(self, error: BadRowError) -> None:
        self.skipped += 1
        if self.skipped <= 10 or self.skipped % 1000 == 0:
            log.warning("%s (bad row %d, %s)", error, self.skipped, self.on_bad_row)
