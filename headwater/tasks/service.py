"""What the connector service does for each request, whichever Flyte protocol carried it.

Requests and answers are Flyte 1 (flyteidl) messages; `headwater.tasks.flyte2` re-parses
Flyte 2's wire-compatible messages into these. Errors are raised as Headwater errors and turned
into gRPC statuses by `headwater.tasks.status`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Executor
from datetime import UTC
from typing import Any

from google.protobuf.message import Message

from headwater.tasks.calls import call, stream
from headwater.tasks.connector import AsyncConnector, SyncConnector, TaskConnector
from headwater.tasks.errors import (
    ConnectorContractError,
    UnsupportedOperationError,
    WrongConnectorKindError,
)
from headwater.tasks.idl import agent_pb2
from headwater.tasks.literals import to_python_map
from headwater.tasks.registry import ConnectorRegistry
from headwater.tasks.resource import Resource, ResourceMeta


class TaskService:
    """The registry's connectors, called the way the connector protocol asks."""

    def __init__(self, registry: ConnectorRegistry, pool: Executor) -> None:
        self.registry = registry
        self._pool = pool

    async def create(self, request: Any, extra: Mapping[str, str]) -> bytes:
        """Start a job for a `CreateTaskRequest`; its encoded `ResourceMeta`."""
        template = request.template
        connector = self._async(template.type, template.task_type_version)
        meta = await call(
            self._pool,
            connector.create,
            task_template=template,
            output_prefix=request.output_prefix,
            inputs=to_python_map(request.inputs) if request.HasField("inputs") else None,
            task_execution_metadata=_field(request, "task_execution_metadata"),
            **extra,
        )
        if not isinstance(meta, connector.metadata_type):
            raise ConnectorContractError(
                f"{type(connector).__name__}.create returned {type(meta).__name__}, not its "
                f"metadata_type {connector.metadata_type.__name__}"
            )
        return meta.encode()

    async def get(self, request: Any, extra: Mapping[str, str]) -> Any:
        """The job's state for a `GetTaskRequest`, as a flyteidl `Resource`."""
        connector = self._async(*category(request))
        meta = _decode(connector, request.resource_meta)
        resource = await call(self._pool, connector.get, resource_meta=meta, **extra)
        return _resource_message(resource, connector, "get")

    async def delete(self, request: Any, extra: Mapping[str, str]) -> None:
        """Cancel the job of a `DeleteTaskRequest`."""
        connector = self._async(*category(request))
        meta = _decode(connector, request.resource_meta)
        await call(self._pool, connector.delete, resource_meta=meta, **extra)

    async def metrics(self, request: Any) -> Any:
        """The job's metrics for a `GetTaskMetricsRequest`."""
        connector = self._async(*category(request))
        meta = _decode(connector, request.resource_meta)
        try:
            result = await call(
                self._pool,
                connector.get_metrics,
                resource_meta=meta,
                queries=list(request.queries),
                start_time=_moment(request, "start_time"),
                end_time=_moment(request, "end_time"),
                step=request.step.ToTimedelta() if request.HasField("step") else None,
            )
        except NotImplementedError:
            raise _unsupported(connector, "get_metrics") from None
        return _as_v1(result, agent_pb2.GetTaskMetricsResponse, connector, "get_metrics")

    async def logs(self, request: Any) -> AsyncIterator[Any]:
        """The job's log messages for a `GetTaskLogsRequest`, each as soon as it is produced."""
        connector = self._async(*category(request))
        meta = _decode(connector, request.resource_meta)
        messages = stream(
            self._pool, connector.get_logs, resource_meta=meta, token=request.token,
            lines=request.lines,
        )  # fmt: skip
        try:
            async for message in messages:
                yield _as_v1(message, agent_pb2.GetTaskLogsResponse, connector, "get_logs")
        except NotImplementedError:
            raise _unsupported(connector, "get_logs") from None

    async def execute(self, header: Any, inputs: Any | None) -> Any:
        """Run a sync connector for an `ExecuteTaskSync` header and inputs; its final Resource."""
        template = header.template
        connector = self._sync(template.type, template.task_type_version)
        resource = await call(
            self._pool,
            connector.do,
            task_template=template,
            output_prefix=header.output_prefix,
            inputs=to_python_map(inputs) if inputs is not None else None,
            task_execution_metadata=_field(header, "task_execution_metadata"),
        )
        message = _resource_message(resource, connector, "do")
        # Flyte reads one answer and never polls a sync task: a job still running is lost.
        if not resource.phase.is_terminal:
            raise ConnectorContractError(
                f"{type(connector).__name__}.do returned phase {resource.phase.name}; a sync "
                "connector must finish (SUCCEEDED, FAILED or RETRYABLE_FAILED), or be an "
                "AsyncConnector"
            )
        return message

    def agents(self) -> list[Any]:
        """The registry as flyteidl `Agent`s: one per connector name and kind."""
        agents: dict[tuple[str, bool], Any] = {}
        for connector in self.registry:
            is_sync = isinstance(connector, SyncConnector)
            agent = agents.setdefault(
                (connector.name, is_sync), agent_pb2.Agent(name=connector.name, is_sync=is_sync)
            )
            name, version = connector.task_category
            agent.supported_task_types.append(name)
            agent.supported_task_categories.append(
                agent_pb2.TaskCategory(name=name, version=version)
            )
        return list(agents.values())

    def _async(self, name: str, version: int) -> AsyncConnector:
        connector = self.registry.get_connector(name, version)
        if not isinstance(connector, AsyncConnector):
            raise WrongConnectorKindError(
                f"task type {name!r} version {version} is served by a sync connector "
                f"({type(connector).__name__}); call SyncAgentService.ExecuteTaskSync"
            )
        return connector

    def _sync(self, name: str, version: int) -> SyncConnector:
        connector = self.registry.get_connector(name, version)
        if not isinstance(connector, SyncConnector):
            raise WrongConnectorKindError(
                f"task type {name!r} version {version} is served by an async connector "
                f"({type(connector).__name__}); call AsyncAgentService.CreateTask"
            )
        return connector


def category(request: Any) -> tuple[str, int]:
    """The (task type, version) a request names: its task_category, else the deprecated
    task_type (Flyte 1 sends both)."""
    if request.HasField("task_category") and request.task_category.name:
        return (request.task_category.name, int(request.task_category.version))
    return (getattr(request, "task_type", ""), 0)


def _decode(connector: AsyncConnector, data: bytes) -> ResourceMeta:
    return connector.metadata_type.decode(data)


def _field(message: Any, name: str) -> Any | None:
    return getattr(message, name) if message.HasField(name) else None


def _moment(request: Any, name: str) -> Any | None:
    return getattr(request, name).ToDatetime(tzinfo=UTC) if request.HasField(name) else None


def _resource_message(resource: Any, connector: TaskConnector, method: str) -> Any:
    if not isinstance(resource, Resource):
        raise ConnectorContractError(
            f"{type(connector).__name__}.{method} returned {type(resource).__name__}, "
            "not a headwater.tasks.Resource"
        )
    return resource.to_flyte_idl()


def _as_v1(message: Any, expected: Any, connector: TaskConnector, method: str) -> Any:
    if isinstance(message, expected):
        return message
    # A connector written for Flyte 2 returns flyteidl2's twin: re-parse its wire form.
    if isinstance(message, Message) and message.DESCRIPTOR.name == expected.DESCRIPTOR.name:
        return expected.FromString(message.SerializeToString())
    raise ConnectorContractError(
        f"{type(connector).__name__}.{method} returned {type(message).__name__}, "
        f"not a flyteidl {expected.DESCRIPTOR.name}"
    )


def _unsupported(connector: TaskConnector, method: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(f"connector {type(connector).__name__} has no {method}")
