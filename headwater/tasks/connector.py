"""The task connector base classes, with flytekit's names and signatures.

A task connector starts a job in an external system and reports on it. Flyte (or Headwater) calls
`create` once, polls `get` until the phase is terminal, and calls `delete` to cancel. A sync
connector answers in one call, `do`. Any method may be a plain `def` (run in a thread pool) or an
`async def` (run on the service's event loop).

The task type is declared with class attributes (Flyte 2's style) or passed to `__init__`
(flytekit's `super().__init__(task_type_name=..., metadata_type=...)`); both work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Any

from headwater.tasks.poll import PollSpec
from headwater.tasks.resource import Resource, ResourceMeta


class _TaskConnector(ABC):
    """What both kinds share: the name and the (task type, version) served."""

    name: str
    task_type_name: str
    task_type_version: int = 0

    def __init__(self, task_type_name: str | None = None, task_type_version: int | None = None):
        if task_type_name is not None:
            self.task_type_name = task_type_name
        if task_type_version is not None:
            self.task_type_version = task_type_version

    @property
    def task_category(self) -> tuple[str, int]:
        """The (task type, version) key the registry and Flyte route on."""
        return (self.task_type_name, self.task_type_version)

    def __repr__(self) -> str:
        kind = type(self).__name__
        name = getattr(self, "task_type_name", "?")
        return f"<{kind} {self.name!r} for {name!r} v{self.task_type_version}>"


class AsyncConnector(_TaskConnector):
    """A connector for long jobs: `create` starts one, `get` polls it, `delete` cancels it.

    `get` and `delete` receive only the `ResourceMeta` that `create` returned, so any replica of
    the service can answer them; keep no state between calls.

    Example:
        @dataclass
        class QueryMeta(ResourceMeta):
            query_id: str

        class QueryConnector(AsyncConnector):
            name = "Query Connector"
            task_type_name = "query"
            metadata_type = QueryMeta

            async def create(self, task_template, output_prefix, inputs=None,
                             task_execution_metadata=None, **kwargs):
                return QueryMeta(query_id=await start(task_template.custom["sql"]))

            async def get(self, resource_meta, **kwargs):
                done = await is_done(resource_meta.query_id)
                return Resource(phase=TaskExecution.SUCCEEDED if done else TaskExecution.RUNNING)

            async def delete(self, resource_meta, **kwargs):
                await cancel(resource_meta.query_id)
    """

    name = "Async Connector"
    metadata_type: type[ResourceMeta]
    poll_spec: PollSpec | None = None
    """How Headwater's own task runs poll this connector's jobs; None: `PollSpec()`."""

    def __init__(
        self,
        task_type_name: str | None = None,
        task_type_version: int | None = None,
        metadata_type: type[ResourceMeta] | None = None,
    ) -> None:
        super().__init__(task_type_name, task_type_version)
        if metadata_type is not None:
            self.metadata_type = metadata_type

    @abstractmethod
    def create(
        self,
        task_template: Any,
        output_prefix: str,
        inputs: dict[str, Any] | None = None,
        task_execution_metadata: Any | None = None,
        **kwargs: Any,
    ) -> ResourceMeta | Awaitable[ResourceMeta]:
        """Start the job; return what identifies it.

        Args:
            task_template: the flyteidl `core.TaskTemplate` (its `custom` Struct holds the
                task's configuration; `type` and `task_type_version` chose this connector).
            output_prefix: where the task's outputs may be written (`<prefix>/outputs.pb`).
            inputs: the task's inputs as Python values (a literal with no plain Python form,
                such as a blob, stays a flyteidl `Literal`); None when the task has none.
            task_execution_metadata: the flyteidl `admin.TaskExecutionMetadata`: execution id,
                retry attempt, namespace, labels. Key deduplication on it.
            kwargs: Flyte 2's per-task connection secrets and configs, by name.
        """

    @abstractmethod
    def get(self, resource_meta: Any, **kwargs: Any) -> Resource | Awaitable[Resource]:
        """The job's phase, and its outputs once it has succeeded."""

    @abstractmethod
    def delete(self, resource_meta: Any, **kwargs: Any) -> Awaitable[None] | None:
        """Cancel the job. Must be idempotent: deleting a finished or deleted job succeeds."""

    def recover(
        self, idempotency_key: str, **kwargs: Any
    ) -> ResourceMeta | Awaitable[ResourceMeta | None] | None:
        """The job a `create` with this key started, or None if it started none. Optional.

        Headwater records each attempt (with its key) before calling `create`, and the returned
        ResourceMeta after. A runner that died in between cannot know whether a job started;
        with `recover`, the next run asks instead of failing. The key is the one
        `idempotency_key(task_execution_metadata)` gives inside `create`, so a connector that
        stores it with its jobs (a tag, a label, a column) can find them by it.
        """
        raise NotImplementedError

    def get_metrics(self, resource_meta: Any, **kwargs: Any) -> Any:
        """The job's metrics, a flyteidl `admin.GetTaskMetricsResponse`. Optional.

        kwargs: `queries`, `start_time`, `end_time` and `step` from the request.
        """
        raise NotImplementedError

    def get_logs(self, resource_meta: Any, **kwargs: Any) -> Any:
        """The job's logs as flyteidl `admin.GetTaskLogsResponse` messages. Optional.

        Return one message, or yield several (a generator or an async generator): each is
        streamed to the client as it is produced. kwargs: `token` and `lines` from the request.
        """
        raise NotImplementedError


class SyncConnector(_TaskConnector):
    """A connector for quick calls: `do` runs the task and returns its final `Resource`.

    Flyte waits on the call, so return a terminal phase (SUCCEEDED, FAILED or RETRYABLE_FAILED).

    Example:
        class EchoConnector(SyncConnector):
            name = "Echo"
            task_type_name = "echo"

            def do(self, task_template, output_prefix, inputs=None, **kwargs):
                return Resource(phase=TaskExecution.SUCCEEDED, outputs=inputs)
    """

    name = "Sync Connector"

    @abstractmethod
    def do(
        self,
        task_template: Any,
        output_prefix: str,
        inputs: dict[str, Any] | None = None,
        task_execution_metadata: Any | None = None,
        **kwargs: Any,
    ) -> Resource | Awaitable[Resource]:
        """Run the task and return its final state; arguments as for `AsyncConnector.create`."""


TaskConnector = AsyncConnector | SyncConnector
