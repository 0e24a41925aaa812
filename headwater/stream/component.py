"""A stream component run once: a subject (and schema) defined in source text, read until the
subject finishes or the run is cancelled, landed in a component (each commit one partition,
with the offset the subject reported; the next run resumes from the last one). This is how the
server runs its stream components.

Streams create no engine runs in the catalog (`runs`): a commit's partition is its record, with
its checkpoint. The counts of a run come back in `StreamRun` instead.
"""

from __future__ import annotations

import inspect
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headwater.connectors.loading import ConnectorSource
from headwater.errors import ConnectorLoadError, NotFoundError, Where
from headwater.stream.graph import Graph, StreamError
from headwater.stream.rows import Changes
from headwater.stream.schema import Schema
from headwater.stream.subject import ConnectorSubject
from headwater.workspace import Workspace


@dataclass(frozen=True)
class StreamSpec:
    """A stream component's declaration (see `headwater.client.models.StreamDefinition`).

    Args:
        source: the code, defining a ConnectorSubject subclass and optionally a Schema one.
        subject: the subject class's name; None: the only (concrete) one the code defines.
        schema: the schema class's name; None: the only one the code defines, if any (none:
            a single `data: str` column).
        autocommit_duration_ms, max_backlog_size, on_bad_row: as `stream.read()` takes them.

    Example:
        >>> StreamSpec(ConnectorSource.from_text(CODE, "ticks"), subject="Ticks")  # doctest: +SKIP
    """

    source: ConnectorSource
    subject: str | None = None
    schema: str | None = None
    autocommit_duration_ms: int | None = 1500
    max_backlog_size: int | None = None
    on_bad_row: str = "raise"


@dataclass(frozen=True)
class StreamRun:
    """How a stream run ended: "succeeded" (the subject finished), "interrupted" (cancelled)
    or "failed" (with the error); and the commits and change rows it landed."""

    status: str
    commits: int
    rows: int
    error: str | None = None


def run_stream(
    workspace: Workspace,
    component: str,
    spec: StreamSpec,
    *,
    name: str | None = None,
    log: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> StreamRun:
    """Load the code, build its subject (with no arguments) and run it as a stream landed in
    `component` until the subject finishes or `cancel` is set.

    A failing stream (its run(), its on_stop(), a bad row with on_bad_row="raise") is returned
    as "failed", what it committed before staying landed.

    Args:
        name: the stream's name in messages (default: `component`).
        log: called with a line per landed commit, and at the start and the end.

    Raises:
        ConnectorLoadError: the code does not load, or does not define the classes.
        ComponentBusyError: another stream or run holds the component's lease.
    """
    say = log or _silent
    name = name or component
    subject_class, schema = load_stream(spec, name)
    try:
        subject = subject_class()
    except Exception as exc:
        raise ConnectorLoadError(
            f"{subject_class.__name__}() raised {type(exc).__name__}: {exc}",
            Where(component=name, function="__init__"),
            hint="a stream component's subject is built with no arguments",
        ) from exc
    graph = Graph()
    try:
        table = graph.read(
            subject,
            schema=schema,
            autocommit_duration_ms=spec.autocommit_duration_ms,
            name=name,
            max_backlog_size=spec.max_backlog_size,
            on_bad_row=spec.on_bad_row,
        )
    except StreamError as exc:  # a declaration the stream cannot use (a reserved column)
        raise ConnectorLoadError(str(exc), Where(component=name)) from exc
    table.component = component  # as write_component(table, component) does
    commits = _CommitLog(say)
    table.sinks.append(commits)
    if spec.on_bad_row == "dead_letter":  # the server keeps them nowhere else
        table.dead_letters.sinks.append(_RejectedLog(say))
    columns = ", ".join(c.name for c in table.schema.columns())
    say(
        f"stream '{name}': subject {subject_class.__name__}, columns ({columns}), landing in "
        f"component '{component}'{_resuming(workspace, component)}"
    )
    try:
        cancelled = graph.run(workspace=workspace, cancel=cancel)
    except Exception as exc:
        error = f"stream '{name}' failed: {type(exc).__name__}: {exc}"
        say(f"{error}; {commits.count} commit(s), {commits.rows} change row(s) landed before")
        return StreamRun("failed", commits.count, commits.rows, error)
    ending = "stopped: cancelled" if cancelled else "the subject finished"
    say(f"{ending}; {commits.count} commit(s) landed, {commits.rows} change row(s)")
    return StreamRun("interrupted" if cancelled else "succeeded", commits.count, commits.rows)


def load_stream(spec: StreamSpec, name: str) -> tuple[type[ConnectorSubject], type[Schema] | None]:
    """The subject class and schema class (None: the default) the code defines."""
    try:
        module = spec.source.load()
    except ConnectorLoadError as exc:
        raise exc.located(Where(component=name)) from exc.__cause__
    subject = _pick(module, ConnectorSubject, spec.subject, "subject", name)
    if subject is None:
        raise ConnectorLoadError(
            "its code defines no ConnectorSubject subclass",
            Where(component=name),
            hint="define one: class MySubject(stream.ConnectorSubject) with a run() method",
        )
    return subject, _pick(module, Schema, spec.schema, "schema", name)


def _pick(
    module: types.ModuleType, base: type[Any], named: str | None, field: str, name: str
) -> type[Any] | None:
    """The class `named`, or the only subclass of `base` the module defines (None: none)."""
    where = Where(component=name)
    kind = base.__name__
    if named is not None:
        found = vars(module).get(named)
        if found is None:
            raise ConnectorLoadError(
                f"its code defines no class '{named}' (`{field}`)", where, hint="define it"
            )
        if not (isinstance(found, type) and issubclass(found, base)) or found is base:
            raise ConnectorLoadError(
                f"'{named}' (`{field}`) is not a {kind} subclass", where, hint=f"subclass {kind}"
            )
        return found
    defined = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, base)
        and value is not base
        and value.__module__ == module.__name__
        and not inspect.isabstract(value)
    ]
    if len(defined) > 1:
        names = ", ".join(c.__name__ for c in defined)
        raise ConnectorLoadError(
            f"its code defines {len(defined)} {kind} subclasses ({names})",
            where,
            hint=f"name the one to use with `{field}`",
        )
    return defined[0] if defined else None


def _resuming(workspace: Workspace, component: str) -> str:
    try:
        record = workspace.catalog.component(component)
    except NotFoundError:
        return ""
    checkpoint = workspace.catalog.checkpoint(record.id)
    if checkpoint is None:
        return ""
    offset = repr(checkpoint.offset.get("offset"))
    offset = offset if len(offset) <= 200 else offset[:197] + "..."
    return f", resuming after commit {checkpoint.seq} (offset {offset})"


class _CommitLog:
    """A sink that logs each landed commit (sinks are written after the commit lands)."""

    name = "log"
    durable = False
    takes_rows = True

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.count = 0
        self.rows = 0

    def open(self, schema: Any, *, stream: str, durable: bool) -> None:
        pass

    def write(self, seq: int, changes: Changes) -> None:
        self.count += 1
        self.rows += changes.num_rows
        self.say(f"landed commit {seq}: {changes.num_rows} change row(s)")

    def close(self) -> None:
        pass


class _RejectedLog:
    """A sink for a stream's dead letters: each rejected row's reason, logged."""

    name = "log"
    durable = False

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def open(self, schema: Any, *, stream: str, durable: bool) -> None:
        pass

    def write(self, seq: int, changes: Any) -> None:
        for reason in changes.column("reason").to_pylist():
            self.say(f"rejected a row: {reason}")

    def close(self) -> None:
        pass


def _silent(message: str) -> None:
    pass
