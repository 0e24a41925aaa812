"""The jobs of one task run: created (write-ahead first), resumed, polled, cancelled, landed.

`headwater.tasks.component.run_task` decides how many attempts to make; this module makes
each one. Every state change of a job is committed to its record in the catalog before the
next step talks to the external system, so a runner killed at any point leaves a record the
next run can act on without starting the job twice.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format, struct_pb2

from headwater import failpoints
from headwater.catalog.catalog import Checkpoint, ComponentRecord, TaskAttempt
from headwater.catalog.lease import Lease
from headwater.errors import SchemaError, Where
from headwater.tasks.connector import AsyncConnector, SyncConnector, TaskConnector
from headwater.tasks.errors import ConnectorContractError, TaskOutputError
from headwater.tasks.execution import PROJECT, execution_metadata, idempotency_key
from headwater.tasks.idl import identifier_pb2, tasks_pb2
from headwater.tasks.outputs import outputs_table
from headwater.tasks.poll import PollSpec
from headwater.tasks.resource import Resource, ResourceMeta, TaskExecution
from headwater.workspace import Workspace

if TYPE_CHECKING:
    from headwater.tasks.component import TaskSpec

log = logging.getLogger("headwater.tasks")
_NO_RECOVER = object()  # the connector does not implement recover()


@dataclass(frozen=True)
class Outcome:
    """How one job (or the wait before the next) ended."""

    status: str  # the run's status if this is the last: "succeeded", "failed", "interrupted"
    retryable: bool = False
    phase: TaskExecution | None = None
    message: str | None = None  # the connector's own message
    error: str | None = None
    where: str | None = None  # the connector function the error came from
    partition: str | None = None
    rows: int = 0
    bytes: int = 0


class Jobs:
    """Creates, resumes, polls and lands the jobs of one run of a task component."""

    def __init__(
        self,
        workspace: Workspace,
        component: ComponentRecord,
        connector: TaskConnector,
        spec: TaskSpec,
        run_id: int,
        lease: Lease,
        cancel: threading.Event | None,
    ) -> None:
        self.workspace = workspace
        self.catalog = workspace.catalog
        self.component = component
        self.connector = connector
        self.spec = spec
        self.run_id = run_id
        self.lease = lease
        self.cancel = cancel or threading.Event()
        self.poll = spec.poll or getattr(connector, "poll_spec", None) or PollSpec()
        timeout = self.poll.timeout_seconds
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.touched: list[int] = []  # the records this run created or resumed
        self._loop: asyncio.Runner | None = None

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()

    # -- what run_task calls ------------------------------------------------------------------

    def open_records(self) -> list[TaskAttempt]:
        return self.catalog.task_attempts(self.component.id, open_only=True)

    def start(self, number: int) -> Outcome:
        """Attempt `number` of this run: record it, create its job, follow it to the end."""
        if self.cancel.is_set():
            return Outcome("interrupted", error="cancelled before the job was created")
        name, version = self.connector.task_category
        metadata = execution_metadata(
            component=self.component.name,
            component_id=self.component.id,
            run_id=self.run_id,
            attempt=number,
            task_type=name,
            task_type_version=version,
        )
        key = idempotency_key(metadata)
        assert key is not None
        record = self.catalog.start_task_attempt(
            self.component.id,
            run_id=self.run_id,
            attempt=number,
            idempotency_key=key,
            task_type=name,
            task_type_version=version,
            holder=self.lease.holder,
            now=self.workspace.clock(),
        )
        self.touched.append(record.id)
        arguments = {
            "task_template": self._template(),
            "output_prefix": str(
                self.workspace.settings.home
                / "tasks"
                / self.component.name
                / f"{self.run_id}-{number}"
            ),
            "inputs": dict(self.spec.inputs),
            "task_execution_metadata": metadata,
        }
        if isinstance(self.connector, SyncConnector):
            return self._do(record, arguments)
        try:
            meta = self._call("create", **arguments)
        except Exception as exc:
            message = self._raised("create", exc)
            # A create that raised may still have started the job (a timeout on its answer).
            found = self._recover(record)
            if isinstance(found, ResourceMeta):
                log.info("%s; recover() found its job, following it", message)
                meta = found
            else:
                self._close(record, "failed", message)
                return Outcome("failed", retryable=True, error=message, where="create")
        failpoints.hit("task.after_create")
        if not isinstance(meta, self._meta_type()):
            message = self._where("create") + (
                f": returned {type(meta).__name__}, not its metadata_type "
                f"{self._meta_type().__name__}; if it started a job, that job is not followed "
                f"(idempotency key {key})"
            )
            self._close(record, "failed", message)
            return Outcome("failed", error=message, where="create")
        self.catalog.record_task_meta(
            record.id, meta.encode(), holder=self.lease.holder, now=self.workspace.clock()
        )
        return self._follow(record, meta)

    def resume(self, record: TaskAttempt) -> Outcome | None:
        """Finish a job an earlier run left open; None when it turns out none had started."""
        self.touched.append(record.id)
        if (record.task_type, record.task_type_version) != self.connector.task_category:
            return self._failed(
                f"component '{self.component.name}' has an open job of task type "
                f"{record.task_type!r} v{record.task_type_version} (run {record.run_id}, "
                f"idempotency key {record.idempotency_key}), but the spec now runs "
                f"{self.connector.task_type_name!r} v{self.connector.task_type_version}; run "
                f"the old task type to finish it, or check the job and `headwater task reset "
                f"{self.component.name}`"
            )
        if record.resource_meta is not None:
            log.info("resuming job %s of run %s", record.idempotency_key, record.run_id)
            return self._follow(record, self._meta_type().decode(record.resource_meta))
        found = self._recover(record)
        if found is _NO_RECOVER:
            return self._failed(_unknown_create(self.component.name, record, self.connector))
        if found is None:
            self._close(record, "not_started", "recover() found no job with this key")
            return None
        assert isinstance(found, ResourceMeta)
        self.catalog.record_task_meta(
            record.id, found.encode(), holder=self.lease.holder, now=self.workspace.clock()
        )
        return self._follow(record, found)

    def wait(self, seconds: float) -> Outcome | None:
        """Wait before the next attempt; an Outcome if the run was cancelled or timed out."""
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            return self._timed_out()
        if self.cancel.wait(seconds if remaining is None else min(seconds, remaining)):
            return Outcome("interrupted", error="cancelled between attempts")
        if remaining is not None and seconds >= remaining:
            return self._timed_out()
        return None

    # -- one job ------------------------------------------------------------------------------

    def _follow(self, record: TaskAttempt, meta: ResourceMeta) -> Outcome:
        try:
            return self._poll(record, meta)
        except KeyboardInterrupt:
            self._cancel_job(record, meta, "interrupted (Ctrl-C)")
            raise

    def _poll(self, record: TaskAttempt, meta: ResourceMeta) -> Outcome:
        polls = errors = 0
        while True:
            self.lease.check()
            try:
                resource = self._call("get", resource_meta=meta)
            except Exception as exc:
                errors += 1
                message = self._raised("get", exc)
                log.warning("%s (%d in a row)", message, errors)
                if errors > self.poll.max_errors:
                    error = self._cancel_job(
                        record, meta, f"{message}; get failed {errors} times in a row"
                    )
                    return Outcome("failed", retryable=True, error=error, where="get")
            else:
                errors = 0
                if not isinstance(resource, Resource):
                    why = self._where("get") + (
                        f": returned {type(resource).__name__}, not a headwater.tasks.Resource"
                    )
                    return Outcome("failed", error=self._cancel_job(record, meta, why), where="get")
                if resource.phase.is_terminal:
                    return self._finish(record, resource)
            polls += 1
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                error = self._cancel_job(record, meta, self._timed_out().error or "")
                return Outcome("failed", error=error)
            pause = self.poll.wait(polls)
            if self.cancel.wait(pause if remaining is None else min(pause, remaining)):
                error = self._cancel_job(record, meta, "cancelled")
                return Outcome("interrupted", error=error)

    def _do(self, record: TaskAttempt, arguments: dict[str, Any]) -> Outcome:
        try:
            resource = self._call("do", **arguments)
        except Exception as exc:
            message = self._raised("do", exc)
            self._close(record, "failed", message)
            return Outcome("failed", retryable=True, error=message, where="do")
        if not isinstance(resource, Resource) or not resource.phase.is_terminal:
            what = resource.phase.name if isinstance(resource, Resource) else type(resource)
            message = self._where("do") + f": returned {what}, not a finished Resource"
            self._close(record, "failed", message)
            return Outcome("failed", error=message, where="do")
        return self._finish(record, resource)

    def _finish(self, record: TaskAttempt, resource: Resource) -> Outcome:
        phase, said = resource.phase, resource.message
        if phase == TaskExecution.SUCCEEDED:
            failpoints.hit("task.before_land")
            try:
                table = outputs_table(resource.outputs, self.spec.output)
            except TaskOutputError as exc:
                return self._failed(f"the job succeeded, but {exc}", record, phase, said)
            if table is None:
                self._close(record, "succeeded", said)
                return Outcome("succeeded", phase=phase, message=said)
            try:
                partition, rows, size = self._land(record, table)
            except SchemaError as exc:
                return self._failed(f"the job succeeded, but {exc}", record, phase, said)
            return Outcome("succeeded", phase=phase, message=said, partition=partition,
                           rows=rows, bytes=size)  # fmt: skip
        error = f"the job ended {phase.name}: {said or 'the connector gave no message'}"
        self._close(record, "failed", error)
        retryable = phase == TaskExecution.RETRYABLE_FAILED
        return Outcome("failed", retryable, phase, said, error, "get")

    def _land(self, record: TaskAttempt, table: Any) -> tuple[str, int, int]:
        """The outputs as the next partition; the record is closed in the same transaction."""
        stored = self.catalog.checkpoint(self.component.id)
        seq = (stored.seq if stored else 0) + 1
        at = self.workspace.clock()
        written = self.workspace.land_table(
            self.component,
            f"{seq:012d}",
            table,
            fingerprint=record.idempotency_key,
            run_id=self.run_id,
            checkpoint=Checkpoint(
                seq,
                int(at.timestamp() * 1000),
                {"idempotency_key": record.idempotency_key},
                task_attempt=record.id,
            ),
            holder=self.lease.holder,
        )
        return f"{seq:012d}", written.rows, written.bytes

    def _cancel_job(self, record: TaskAttempt, meta: ResourceMeta, why: str) -> str:
        try:
            self._call("delete", resource_meta=meta)
            message = f"{why}; the job was cancelled (delete)"
        except Exception as exc:
            message = (
                f"{why}; cancelling the job failed ({type(exc).__name__}: {exc}), so it may "
                f"still be running: cancel it by hand (idempotency key {record.idempotency_key})"
            )
        self._close(record, "cancelled", message)
        return message

    def _recover(self, record: TaskAttempt) -> ResourceMeta | object | None:
        if getattr(self.connector, "recover", None) is None:
            return _NO_RECOVER
        try:
            found = self._call("recover", idempotency_key=record.idempotency_key)
        except NotImplementedError:
            return _NO_RECOVER
        if found is not None and not isinstance(found, self._meta_type()):
            raise ConnectorContractError(
                self._where("recover") + f": returned {type(found).__name__}, not None or its "
                f"metadata_type {self._meta_type().__name__}"
            )
        return found

    # -- small pieces -------------------------------------------------------------------------

    def _call(self, method: str, **kwargs: Any) -> Any:
        """A connector method's result: plain ones called here, async ones run on this run's
        event loop (one loop for the run, so a connector's async clients stay usable)."""
        function: Callable[..., Any] = getattr(self.connector, method)
        result = function(**kwargs)
        if inspect.isawaitable(result):
            if self._loop is None:
                self._loop = asyncio.Runner()
            return self._loop.run(_awaited(result))
        return result

    def _close(self, record: TaskAttempt, state: str, message: str | None) -> None:
        self.catalog.close_task_attempt(
            record.id, state, message, holder=self.lease.holder, now=self.workspace.clock()
        )

    def _failed(
        self,
        error: str,
        record: TaskAttempt | None = None,
        phase: TaskExecution | None = None,
        said: str | None = None,
    ) -> Outcome:
        if record is not None:
            self._close(record, "failed", error)
        return Outcome("failed", phase=phase, message=said, error=error)

    def _meta_type(self) -> type[ResourceMeta]:
        assert isinstance(self.connector, AsyncConnector)
        return self.connector.metadata_type

    def _template(self) -> Any:
        name, version = self.connector.task_category
        return tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(
                resource_type=identifier_pb2.TASK,
                project=PROJECT,
                domain=self.component.name,
                name=name,
                version=self.component.code_version,
            ),
            type=name,
            task_type_version=version,
            custom=json_format.ParseDict(dict(self.spec.custom), struct_pb2.Struct()),
        )

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _timed_out(self) -> Outcome:
        timeout = self.poll.timeout_seconds
        return Outcome("failed", error=f"timed out after {timeout:g} s (PollSpec.timeout_seconds)")

    def _where(self, function: str) -> str:
        place = Where(component=self.component.name, run_id=self.run_id).describe()
        return f"{place}: {type(self.connector).__name__}.{function}()"

    def _raised(self, function: str, exc: Exception) -> str:
        return f"{self._where(function)} raised {type(exc).__name__}: {exc}"


async def _awaited(value: Any) -> Any:
    return await value


def _unknown_create(component: str, record: TaskAttempt, connector: TaskConnector) -> str:
    return (
        f"run {record.run_id} of component '{component}' called "
        f"{type(connector).__name__}.create (idempotency key {record.idempotency_key}) and "
        "stopped before recording what it started, so a job may be running that Headwater "
        "cannot see; this run creates none, so as not to start it twice. Fix: look for the "
        "job in the external system (the connector was handed the key above), cancel it or "
        f"let it finish, then `headwater task reset {component}` (Python: reset_task) and run "
        "again. A connector that implements recover(idempotency_key) resolves this itself"
    )
