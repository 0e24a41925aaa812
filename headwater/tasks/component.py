"""A task component: a connector's job run in Headwater's own runs, its outputs landed as one
partition per successful run.

A run takes the component's lease, then for each attempt (up to `TaskSpec.retry.attempts`):
writes the attempt's write-ahead record, calls `create`, records the ResourceMeta, polls `get`
(backoff from `PollSpec`) until the phase is terminal, and lands the outputs with the record
closed in the same catalog transaction. RETRYABLE_FAILED, a `create` that raises and a `get`
that keeps raising start a new attempt; FAILED and ABORTED fail the run with the connector's
message. Cancelling (the `cancel` event, Ctrl-C, the poll timeout) calls `delete`.

Idempotent create. An external system cannot in general be asked "did you start this?", so:
- the record (component, run, attempt) and its idempotency key are committed BEFORE `create`,
  and the key reaches `create` as Flyte's `task_execution_metadata` (see `execution.py`), so a
  connector can deduplicate on it;
- a run that finds an open record WITH a ResourceMeta resumes polling that job (no create);
- one WITHOUT a ResourceMeta (the runner died inside create) is resolved by the connector's
  `recover(idempotency_key)`: a ResourceMeta resumes it, None means nothing started. A
  connector without `recover` fails the run with a message saying how to check and
  `reset_task`, rather than risk a second job.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from headwater.catalog.catalog import Failure, TaskAttempt
from headwater.component import RetrySpec, check_component_name
from headwater.errors import SettingsError
from headwater.tasks.connector import AsyncConnector, SyncConnector, TaskConnector
from headwater.tasks.errors import TaskRunError
from headwater.tasks.jobs import Jobs, Outcome
from headwater.tasks.loading import load_connectors
from headwater.tasks.poll import PollSpec
from headwater.tasks.registry import ConnectorRegistry
from headwater.tasks.resource import TaskExecution
from headwater.workspace import Workspace

KIND = "task"


@dataclass(frozen=True)
class TaskSpec:
    """A task component's declaration: which connector runs what, and how it is polled.

    Args:
        connector: a connector instance, or a `.py` file or module defining it.
        task_type: the task type to run (needed when the file defines several connectors).
        task_type_version: its version.
        inputs: the task's inputs, handed to `create` as Python values.
        custom: the task template's `custom` fields (`task_template.custom["sql"]`).
        output: the output to land; None lands the outputs dict itself.
        poll: how `get` is polled; None: the connector's `poll_spec`, else `PollSpec()`.
        retry: attempts (jobs started) for retryable failures, and the wait between them.

    Example:
        >>> TaskSpec("examples/tasks/postgres_query.py", inputs={"sql": "SELECT 1 AS one"},
        ...          output="rows").task_type_version
        0
    """

    connector: TaskConnector | str | Path
    task_type: str | None = None
    task_type_version: int = 0
    inputs: Mapping[str, Any] = field(default_factory=dict)
    custom: Mapping[str, Any] = field(default_factory=dict)
    output: str | None = None
    poll: PollSpec | None = None
    retry: RetrySpec = field(default_factory=RetrySpec)

    def __post_init__(self) -> None:
        try:
            json.dumps(dict(self.custom))
        except (TypeError, ValueError) as exc:
            raise SettingsError(
                f"TaskSpec.custom becomes the task template's JSON Struct, so it must be JSON: "
                f"{exc}"
            ) from None

    def resolve(self) -> TaskConnector:
        """The connector this spec names, checked and loaded.

        Raises:
            ConnectorLoadError, ConnectorNotFoundError, InvalidConnectorError: see the message.
        """
        registry = ConnectorRegistry()
        if isinstance(self.connector, AsyncConnector | SyncConnector):
            registry.register(self.connector)
        else:
            load_connectors([self.connector], registry)
        if self.task_type is not None:
            return registry.get_connector(self.task_type, self.task_type_version)
        found = registry.list_connectors()
        if len(found) != 1:
            types = ", ".join(f"{c.task_type_name!r} v{c.task_type_version}" for c in found)
            raise SettingsError(
                f"{self.source_ref} defines {len(found)} connectors ({types}); say which to "
                "run with task_type= (CLI: --task-type)"
            )
        return found[0]

    @property
    def source_ref(self) -> str:
        if isinstance(self.connector, AsyncConnector | SyncConnector):
            kind = type(self.connector)
            return f"{kind.__module__}.{kind.__qualname__}"
        return str(self.connector)

    def stored(self, connector: TaskConnector) -> dict[str, Any]:
        name, version = connector.task_category
        return {
            "task_type": name,
            "task_type_version": version,
            "inputs": json.loads(json.dumps(dict(self.inputs), default=str)),
            "custom": dict(self.custom),
            "output": self.output,
        }

    def code_version(self, connector: TaskConnector) -> str:
        text = json.dumps([self.source_ref, self.stored(connector)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TaskRun:
    """One run of a task component: how it ended, and the job attempts it went through."""

    component: str
    run_id: int
    status: str  # "succeeded", "failed" or "interrupted"
    phase: TaskExecution | None  # the last job's last phase
    message: str | None  # the connector's message with it
    error: str | None
    partition: str | None
    rows: int
    attempts: tuple[TaskAttempt, ...]  # the records this run created or resumed, as they ended

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def raise_for_status(self) -> TaskRun:
        """This run, or TaskRunError when it did not succeed."""
        if not self.ok:
            raise TaskRunError(f"task component '{self.component}' run {self.run_id}: {self.error}")
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "run_id": self.run_id,
            "status": self.status,
            "phase": self.phase.name if self.phase is not None else None,
            "message": self.message,
            "error": self.error,
            "partition": self.partition,
            "rows": self.rows,
            "attempts": [
                {
                    "run_id": a.run_id,
                    "attempt": a.attempt,
                    "idempotency_key": a.idempotency_key,
                    "state": a.state,
                    "message": a.message,
                }
                for a in self.attempts
            ],
        }


def run_task(
    workspace: Workspace, name: str, spec: TaskSpec, *, cancel: threading.Event | None = None
) -> TaskRun:
    """Run a task component once: start (or resume) its job, poll it, land its outputs.

    Args:
        workspace: where the component, its runs and its partitions live.
        name: the component's name.
        spec: the connector, inputs and polling.
        cancel: set it (from another thread) to cancel the job (`delete`) and end the run
            as "interrupted".

    Returns:
        The run; `run.raise_for_status()` raises when it did not succeed.

    Raises:
        ConnectorLoadError, SettingsError: the spec is unusable (nothing was recorded).
        ComponentBusyError: another run of this component holds its lease.
        KeyboardInterrupt: after cancelling a running job (`delete`) and recording the run
            as interrupted.

    Example:
        >>> run = run_task(ws, "answers", TaskSpec("postgres_query.py",      # doctest: +SKIP
        ...                inputs={"sql": "SELECT 42 AS answer"}, output="rows"))
        >>> ws.read_pandas("answers")                                         # doctest: +SKIP
    """
    name = check_component_name(name)
    connector = spec.resolve()
    catalog, clock = workspace.catalog, workspace.clock
    settings, version = spec.stored(connector), spec.code_version(connector)
    record = catalog.ensure_component(
        name,
        kind=KIND,
        source_ref=spec.source_ref,
        settings=settings,
        code_version=version,
        now=clock(),
    )
    with catalog.lease(record, clock) as lease:
        catalog.abandon_runs(record.id, clock())
        catalog.update_component(
            record.id, source_ref=spec.source_ref, settings=settings, code_version=version,
            now=clock(),
        )  # fmt: skip
        component = replace(record, code_version=version, settings=settings)
        run_id = catalog.start_run(record.id, executor="task", holder=lease.holder, now=clock())
        jobs = Jobs(workspace, component, connector, spec, run_id, lease, cancel)
        try:
            outcome = _run(jobs, spec.retry)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            catalog.finish_run(
                run_id,
                status="interrupted" if interrupted else "failed",
                counts=_counts(None),
                failures=[],
                error="interrupted (Ctrl-C)" if interrupted else str(exc),
                now=clock(),
            )
            raise
        finally:
            jobs.close()
        failures = [] if outcome.error is None else [Failure(None, outcome.where, outcome.error)]
        catalog.finish_run(
            run_id,
            status=outcome.status,
            counts=_counts(outcome),
            failures=failures,
            error=outcome.error,
            now=clock(),
        )
    return TaskRun(
        component=name,
        run_id=run_id,
        status=outcome.status,
        phase=outcome.phase,
        message=outcome.message,
        error=outcome.error,
        partition=outcome.partition,
        rows=outcome.rows,
        attempts=tuple(_touched(workspace, record.id, jobs.touched)),
    )


def _run(jobs: Jobs, retry: RetrySpec) -> Outcome:
    """Resume what an earlier run left open, then start jobs until one ends for good."""
    outcome: Outcome | None = None
    tries = 0
    for stale in jobs.open_records():
        resumed = jobs.resume(stale)
        if resumed is None:  # recover() found that no job had started
            continue
        outcome, tries = resumed, tries + 1
        if not outcome.retryable:
            return outcome
    number = 0
    while tries < retry.attempts:
        if outcome is not None:
            stopped = jobs.wait(retry.wait(tries))
            if stopped is not None:
                return stopped
        number, tries = number + 1, tries + 1
        outcome = jobs.start(number)
        if not outcome.retryable:
            return outcome
    assert outcome is not None
    gave_up = f"{outcome.error} (gave up after {tries} attempts)"
    return replace(outcome, retryable=False, error=gave_up)


def reset_task(workspace: Workspace, name: str) -> list[TaskAttempt]:
    """Forget a task component's open attempts, after checking their jobs by hand.

    Use it when a run stopped inside `create` (so Headwater cannot know whether a job started)
    and the connector has no `recover`: look for the job by the attempt's idempotency key,
    cancel it or let it finish, then reset. The next run starts a new job.

    Returns:
        The attempts that were open, as they were.
    """
    record = workspace.catalog.component(name)
    if record.kind != KIND:
        raise SettingsError(
            f"component '{name}' is a {record.kind} component; only a task component has "
            "attempts to reset"
        )
    catalog = workspace.catalog
    with catalog.lease(record, workspace.clock) as lease:
        stale = catalog.task_attempts(record.id, open_only=True)
        for attempt in stale:
            catalog.close_task_attempt(
                attempt.id,
                "reset",
                f"reset by an operator (was {attempt.state})",
                holder=lease.holder,
                now=workspace.clock(),
            )
    return stale


def _counts(outcome: Outcome | None) -> dict[str, int]:
    counts = dict.fromkeys(
        ("added", "changed", "removed", "unchanged", "landed", "failed", "rows", "bytes"), 0
    )
    if outcome is not None and outcome.partition is not None:
        counts.update(added=1, landed=1, rows=outcome.rows, bytes=outcome.bytes)
    if outcome is not None and outcome.status == "failed":
        counts["failed"] = 1
    return counts


def _touched(workspace: Workspace, component_id: str, ids: list[int]) -> list[TaskAttempt]:
    by_id = {a.id: a for a in workspace.catalog.task_attempts(component_id)}
    return [by_id[i] for i in ids if i in by_id]
