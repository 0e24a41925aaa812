"""Streams and running them: `read` makes a table handle, sinks attach to it, `run` runs all.

Each stream has two threads: the subject's `run()` (the producer) and a consumer that closes
micro-batches, turns them into changes (upserts against the keyed state) and writes them to the
sinks. A stream landed in a component (`write_component`) is durable: every commit is logged
there with its offset, and after a restart the state, the offset and the durable sinks resume
from that log, so each commit reaches each durable sink once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater import failpoints
from headwater.errors import HeadwaterError
from headwater.stream.buffer import NO_OFFSET, OP, Backlog, RowBuffer, StreamClosedError
from headwater.stream.rows import ChangeRows, Changes, PlainRows, as_table
from headwater.stream.schema import Schema, schema_from_columns
from headwater.stream.sinks import DIFF, TIME, Sink
from headwater.stream.state import KeyedState, append_changes
from headwater.stream.subject import ConnectorSubject, SubjectError

if TYPE_CHECKING:
    from headwater.stream.log import StreamLog
    from headwater.workspace import Workspace

log = logging.getLogger("headwater.stream")
BAD_ROW_POLICIES = ("raise", "skip", "dead_letter")
IDLE_SECONDS = 0.001  # a producer quiet this long has nothing more for the open batch
SUBJECT_GRACE_SECONDS = 5.0  # for run() to return once its stream has ended
CHUNK_ROWS = 8_192
DEFAULT_BACKLOG = 100_000
DEAD_LETTER_SCHEMA = pa.schema([("row", pa.string()), ("reason", pa.string())])


class StreamError(HeadwaterError):
    """A stream is declared wrongly (checked before anything runs)."""


@dataclass(eq=False)
class Table:
    """A stream, as `read()` returns it: give it to sinks (`write_csv(table, path)`)."""

    name: str
    schema: type[Schema]
    subject: ConnectorSubject | None
    autocommit_ms: int | None
    max_backlog_size: int | None
    on_bad_row: str
    sinks: list[Sink] = field(default_factory=list)
    component: str | None = None  # landed in this component: the stream's durable log
    _dead: Table | None = field(default=None, repr=False)  # its dead-letter table, once asked

    @property
    def dead_letters(self) -> Table:
        """The rows `next()` rejected, with the reason (with on_bad_row="dead_letter")."""
        if self.on_bad_row != "dead_letter":
            raise StreamError(
                f"stream '{self.name}' keeps no dead letters; read it with on_bad_row='dead_letter'"
            )
        if self._dead is None:
            schema = schema_from_columns("DeadLetters", {"row": str, "reason": str})
            self._dead = Table(f"{self.name}.dead_letters", schema, None, None, None, "raise")
        return self._dead


class Graph:
    """The streams declared since the last `run()`."""

    def __init__(self) -> None:
        self.tables: list[Table] = []

    def read(
        self,
        subject: ConnectorSubject,
        *,
        schema: type[Schema] | None,
        autocommit_duration_ms: int | None,
        name: str | None,
        max_backlog_size: int | None,
        on_bad_row: str,
    ) -> Table:
        if not isinstance(subject, ConnectorSubject):
            raise StreamError(f"read() takes a ConnectorSubject, got {type(subject).__name__}")
        if getattr(subject, "_read_once", False):
            raise StreamError(
                f"{type(subject).__name__} object was already read; a subject can be read once "
                "(create a new one for each read())"
            )
        subject._read_once = True  # type: ignore[attr-defined]
        if on_bad_row not in BAD_ROW_POLICIES:
            raise StreamError(f"on_bad_row={on_bad_row!r}; choose one of {BAD_ROW_POLICIES}")
        if schema is None:
            schema = schema_from_columns("DataSchema", {"data": str})
        reserved = {TIME, DIFF} & {c.name for c in schema.columns()}
        if reserved:
            raise StreamError(
                f"schema {schema.__name__} has column(s) {', '.join(sorted(reserved))}, which "
                "the change stream uses for the commit time and +1/-1; rename them"
            )
        table = Table(
            name or f"{type(subject).__name__}_{len(self.tables)}",
            schema,
            subject,
            autocommit_duration_ms,
            DEFAULT_BACKLOG if max_backlog_size is None else max_backlog_size or None,
            on_bad_row,
        )
        self.tables.append(table)
        return table

    def run(
        self,
        *,
        home: str | Path | None = None,
        workspace: Workspace | None = None,
        cancel: threading.Event | None = None,
    ) -> bool:
        """Run every stream until each finite subject has finished; re-raise a subject's
        error (with its name in a note) after stopping the others.

        Args:
            home: the Headwater home of streams landed in a component.
            workspace: instead of `home`, an open workspace to land them in (the caller's
                to close; the server passes its own).
            cancel: set it (from another thread) to stop every stream as Ctrl-C does: the
                committed batches stay landed, the open one is discarded, on_stop() runs.

        Returns:
            Whether `cancel` stopped the streams (else each subject finished).
        """
        if home is not None and workspace is not None:
            raise StreamError("run() takes a home or a workspace, not both")
        tables, self.tables = self.tables, []
        if not tables:
            raise StreamError("nothing to run: read() a subject first")
        runners = [StreamRunner(t, home, workspace) for t in tables if t.subject is not None]
        cancelled_at: float | None = None
        try:
            for runner in runners:
                runner.prepare()
            for runner in runners:
                runner.start()
            while any(r.alive() for r in runners):
                if cancelled_at is None and cancel is not None and cancel.is_set():
                    cancelled_at = time.monotonic()
                if cancelled_at is not None or any(r.error is not None for r in runners):
                    for runner in runners:
                        runner.stop()
                if cancelled_at is not None and time.monotonic() - cancelled_at > (
                    SUBJECT_GRACE_SECONDS
                ):
                    for runner in runners:  # a run() that on_stop() did not end: leave it
                        runner.abandon()
                for runner in runners:
                    runner.join(0.05)
            for runner in runners:
                runner.join_subject(SUBJECT_GRACE_SECONDS)
        except KeyboardInterrupt:
            for runner in runners:
                runner.stop()
            for runner in runners:
                runner.join(None)
                runner.join_subject(SUBJECT_GRACE_SECONDS)
            raise
        finally:
            for runner in runners:
                runner.close()
        errors = [r.error for r in runners if r.error is not None]
        if errors:
            raise errors[0]
        return cancelled_at is not None


class StreamRunner:
    """One stream at run time: its subject thread, its consumer thread, state and sinks."""

    def __init__(
        self, table: Table, home: str | Path | None, workspace: Workspace | None = None
    ) -> None:
        assert table.subject is not None
        self.table = table
        self.subject = table.subject
        self.home = home
        self.borrowed = workspace  # an open workspace, the caller's to close
        self.error: BaseException | None = None
        self.columns = [c.name for c in table.schema.columns()]
        key = table.schema.primary_key()
        self.row_schema = _row_schema(table.schema)  # a commit's rows: the columns, the op
        self.state = (
            KeyedState(self.columns, key, _is_int_key(table.schema), self.row_schema)
            if key
            else None
        )
        self.backlog = Backlog(table.max_backlog_size)
        # Chunks no larger than half the backlog bound: at most max_backlog_size rows wait,
        # plus the chunk being filled.
        bound = table.max_backlog_size
        chunk_rows = min(CHUNK_ROWS, max(1, bound // 2)) if bound else CHUNK_ROWS
        self.buffer = RowBuffer(
            table.schema.columns(),
            key,
            self.backlog,
            subject=table.name,
            on_bad_row=table.on_bad_row,
            chunk_rows=chunk_rows,
        )
        self.sinks = list(table.sinks)
        self.dead_sinks = list(table._dead.sinks) if table._dead is not None else []
        self.log: StreamLog | None = None
        self.applied: dict[int, int] = {}  # sink index -> last seq it holds
        self.seq = 0
        self.last_time = 0
        # Resume: the last offset the subject reported, and how many rows landed after it.
        self.offset: Any = None
        self.after_offset = 0
        self._threads: list[threading.Thread] = []
        # Set when the consumer is done. Waiting on it, not on Thread.join: before Python 3.13 a
        # join interrupted by Ctrl-C marks a running thread as finished (CPython gh-90882), and
        # the sinks would then be closed under it.
        self._consumed = threading.Event()
        self._stopping = False
        self._abandoned = False  # stopped, and no longer waiting for run() to return
        self._workspace: Any = None

    # -- before running -----------------------------------------------------------------------

    def prepare(self) -> None:
        changes_schema = self.changes_schema
        if self.table.component is not None:
            # Only a durable stream needs the catalog: import it (SQLAlchemy, Alembic) here.
            from headwater.stream.log import StreamLog
            from headwater.workspace import Workspace

            if self.borrowed is None:
                self._workspace = Workspace(home=self.home)
            self.log = StreamLog(
                self.borrowed or self._workspace, self.table.component, self.table.name
            )
            checkpoint = self.log.open()
            if checkpoint is not None:
                self.seq, self.last_time = checkpoint.seq, checkpoint.time
                self.offset = checkpoint.offset["offset"]
                self.after_offset = checkpoint.offset["after"]
                if self.state is not None:
                    for _, changes in self.log.replay():
                        self.state.load(changes)
        durable = self.log is not None
        for index, sink in enumerate(self.sinks):
            held = sink.open(changes_schema, stream=self.table.name, durable=durable)
            self.applied[index] = held or 0
            if sink.durable and self.log is not None and (held or 0) < self.seq:
                for seq, changes in self.log.replay(after=held or 0):
                    sink.write(seq, changes)  # catch up from the log: exactly once
                self.applied[index] = self.seq
        for sink in self.dead_sinks:
            sink.open(
                _with_change_columns(DEAD_LETTER_SCHEMA), stream=self.table.name, durable=False
            )
        pa.array([0])  # pyarrow imports pandas on first use: here, not in the first commit
        self.subject._buffer = self.buffer
        if self.buffer.next is not None and type(self.subject).next is ConnectorSubject.next:
            vars(self.subject)["next"] = self.buffer.next  # C's next(**values), called directly
        if self.offset is not None:
            self.subject.seek(self.offset)
        if self.offset is not None or _resumable(self.subject):
            # Rows that landed after the offset (autocommits) come again: drop them once. A
            # resumable subject (one with seek) that was stopped before its first offset landed
            # starts from its beginning, so the rows it had landed are dropped the same way.
            # (A subject without seek starts afresh: its rows may have changed, and an upsert
            # stream drops the identical ones by itself.)
            self.buffer.skip(self.after_offset)

    @property
    def changes_schema(self) -> pa.Schema:
        return _with_change_columns(self.table.schema.arrow_schema())

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        name = self.table.name
        self._threads = [
            threading.Thread(target=self._produce, name=f"stream-{name}-subject", daemon=True),
            threading.Thread(target=self._consume, name=f"stream-{name}-consumer", daemon=True),
        ]
        # The consumer first: a subject may commit, or even be interrupted, at once.
        self._threads[1].start()
        self._threads[0].start()

    def _produce(self) -> None:
        name = self.table.name
        try:
            self.subject.run()
        except StreamClosedError as exc:
            if self._stopping:  # stopped from outside: next() raising ended run(), as meant
                return
            self._fail(SubjectError(f"stream '{name}': run() used the stream after close()"), exc)
            return
        except BaseException as exc:
            _name(exc, name)
            self._fail(exc)
            return
        try:
            self._stop_subject()
            self.buffer.commit(close=True)  # run() returned: what is pending lands, then done
        except BaseException as exc:
            _name(exc, name)
            self._fail(exc)

    def _fail(self, error: BaseException, cause: BaseException | None = None) -> None:
        """run() (or on_stop, or the last commit) failed: keep the first error, stop the
        subject, and end the consumer (the uncommitted rows are discarded)."""
        if cause is not None:
            error.__cause__ = cause
        if self.error is None:
            self.error = error
        with contextlib.suppress(BaseException):  # on_stop failing too: the first error counts
            self._stop_subject()
        self.buffer.fail(error)

    def _stop_subject(self) -> None:
        self.subject._stop_once()

    def _consume(self) -> None:
        try:
            self._consume_events()
        finally:
            self._consumed.set()

    def _consume_events(self) -> None:
        pending: list[pa.RecordBatch | PlainRows] = []  # handed over, not yet committed
        dead: list[tuple[dict[str, Any], str]] = []
        rejected = 0  # bad rows dropped among them
        autocommit = self.table.autocommit_ms
        oldest: float | None = None  # when the oldest uncommitted row was first seen
        seen = -1  # the buffer's rows at the previous look: unchanged means the subject is quiet
        try:
            while True:
                waiting = bool(pending or dead or self.buffer.pending)
                event = self.backlog.get(
                    IDLE_SECONDS if waiting and autocommit is not None else 0.05
                )
                now = time.monotonic()
                if event is not None:
                    if event.error is not None:
                        if self.error is None:
                            self.error = event.error
                        return
                    if event.rows is not None:
                        pending.append(event.rows)
                    dead.extend(event.dead)
                    rejected += event.rejected
                    if event.commit:
                        self._commit(pending, event.offset, dead, rejected)
                        pending, dead, rejected, oldest, seen = [], [], 0, None, -1
                    if event.close:
                        if self._threads[0].is_alive():
                            # close() was called while run() goes on: on_stop() is its cue to
                            # release the client it waits on, so run() returns.
                            self._stop_subject()
                        return
                elif self._stopping and (self._abandoned or not self._threads[0].is_alive()):
                    return
                if autocommit is None:
                    continue
                buffered = self.buffer.pending
                if not (pending or dead or buffered):
                    oldest = None
                    continue
                oldest = oldest or now
                quiet = event is None and buffered == seen
                seen = buffered
                if quiet or now - oldest >= autocommit / 1000:
                    if buffered:
                        self.buffer.cut()  # its commit arrives next, after anything older
                    else:
                        self._commit(pending, NO_OFFSET, dead, rejected)
                        pending, dead, rejected = [], [], 0
                    oldest, seen = None, -1
        except BaseException as exc:  # a sink or the log failed: this stream stops
            if self.error is None:
                self.error = exc
            self.stop()

    def _commit(
        self,
        pending: list[pa.RecordBatch | PlainRows],
        offset: Any,
        dead: list[tuple[dict[str, Any], str]],
        rejected: int = 0,
    ) -> None:
        plain = bool(pending) and all(isinstance(p, PlainRows) for p in pending)
        if plain:
            small = [row for p in pending if isinstance(p, PlainRows) for row in p.tuples()]
            count = len(small)
        else:
            batches = [_batch(p, self.row_schema) for p in pending]
            rows = pa.Table.from_batches(batches, schema=self.row_schema)
            count = rows.num_rows
        if offset is NO_OFFSET:
            # What the subject sent since the offset (landed or dropped as bad): a resume
            # skips that many of the rows it sends again.
            self.after_offset += count + rejected
            if not count and not dead:
                return  # an empty commit with nothing to record
        else:  # this commit's rows are the ones before the offset
            self.offset, self.after_offset = offset, 0
        changes: Changes
        if plain:
            changed = (
                self.state.apply_small(small)
                if self.state is not None
                else [(*row[:-1], 1) for row in small]
            )
            if not changed and offset is NO_OFFSET and not dead:
                return  # identical re-sends only: nothing changed, nothing to record
            self._next_commit()
            at = self.last_time
            changes = ChangeRows([(*c[:-1], at, c[-1]) for c in changed], self.changes_schema)
        else:
            if self.state is not None:
                table = self.state.apply(rows)
            else:
                table = append_changes(rows, self.columns)
            if not table.num_rows and offset is NO_OFFSET and not dead:
                return
            self._next_commit()
            changes = _stamp(table, self.last_time)
        if self.log is not None:
            resume = {"offset": self.offset, "after": self.after_offset}
            self.log.append(self.seq, self.last_time, resume, as_table(changes))
            failpoints.hit("stream.after_log")
        for index, sink in enumerate(self.sinks):
            if self.seq > self.applied[index]:
                rows_ok = getattr(sink, "takes_rows", False)  # other sinks get Arrow
                sink.write(self.seq, changes if rows_ok else as_table(changes))
                self.applied[index] = self.seq
                failpoints.hit("stream.after_sink")
        if dead and self.dead_sinks:
            letters = _dead_letters(dead, self.last_time)
            for sink in self.dead_sinks:
                sink.write(self.seq, letters)

    def _next_commit(self) -> None:
        self.seq += 1
        self.last_time = _next_time(self.last_time)

    # -- stopping -----------------------------------------------------------------------------

    def alive(self) -> bool:
        return bool(self._threads) and not self._consumed.is_set()

    def join(self, timeout: float | None) -> None:
        if self._threads:  # never started (interrupted before start()): nothing to wait for
            self._consumed.wait(timeout)

    def join_subject(self, grace: float) -> None:
        """Wait for run() to return after the stream ended; a subject stuck in I/O that its
        on_stop() did not release is left behind (its thread is a daemon)."""
        if not self._threads:
            return
        subject = self._threads[0]
        subject.join(0 if self._abandoned else grace)  # (abandoned: it had its grace)
        if subject.is_alive():
            log.warning(
                "the run() of stream '%s' did not return within %.0f s after the stream "
                "stopped; make on_stop() end it (close the client it waits on)",
                self.table.name,
                grace,
            )

    def stop(self) -> None:
        """Stop from outside: next() raises from now on, and on_stop() may end run()."""
        if self._stopping:
            return
        self._stopping = True
        self.buffer.closed = True
        try:
            self._stop_subject()
        except Exception as exc:  # on_stop failing while stopping must not hide why we stop
            if self.error is None:
                self.error = exc

    def abandon(self) -> None:
        """Stopped, but run() has not returned: end the consumer without waiting for it (the
        batches handed over are committed first; whatever run() sends later is refused)."""
        self._abandoned = True
        self.backlog.nudge()

    def close(self) -> None:
        for sink in [*self.sinks, *self.dead_sinks]:
            sink.close()
        if self.log is not None:
            self.log.close()
        if self._workspace is not None:
            self._workspace.close()


def _resumable(subject: ConnectorSubject) -> bool:
    """Whether the subject defines seek(), that is, can continue where it stopped."""
    return type(subject).seek is not ConnectorSubject.seek


def _row_schema(schema: type[Schema]) -> pa.Schema:
    fields = [pa.field(c.name, c.arrow_type) for c in schema.columns()]
    return pa.schema([*fields, pa.field(OP, pa.int8())])


def _batch(rows: pa.RecordBatch | PlainRows, schema: pa.Schema) -> pa.RecordBatch:
    return rows.to_batch(schema) if isinstance(rows, PlainRows) else rows


def _is_int_key(schema: type[Schema]) -> bool:
    key = [c for c in schema.columns() if c.primary_key]
    return len(key) == 1 and key[0].python_type is int


def _with_change_columns(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(TIME, pa.int64())).append(pa.field(DIFF, pa.int8()))


def _next_time(last: int) -> int:
    """Milliseconds since the epoch, even (as Pathway's times are), always increasing."""
    now = int(time.time() * 1000) & ~1
    return now if now > last else last + 2


def _stamp(changes: pa.Table, at: int) -> pa.Table:
    diff = changes.column(DIFF)
    values = changes.drop_columns([DIFF])
    times = pa.array([at] * changes.num_rows, pa.int64())
    return values.append_column(TIME, times).append_column(DIFF, diff)


def _dead_letters(dead: list[tuple[dict[str, Any], str]], at: int) -> pa.Table:
    rows = [json.dumps(values, default=repr) for values, _ in dead]
    reasons = [reason for _, reason in dead]
    return pa.table(
        {
            "row": rows,
            "reason": reasons,
            TIME: pa.array([at] * len(dead), pa.int64()),
            DIFF: pa.array([1] * len(dead), pa.int8()),
        }
    )


def _name(exc: BaseException, stream: str) -> None:
    exc.add_note(f"raised in the run() of stream '{stream}'")
