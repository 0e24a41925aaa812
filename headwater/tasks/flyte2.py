"""Flyte 2's connector protocol: flyteidl2's `AsyncConnectorService` and
`ConnectorMetadataService`, served beside Flyte 1's by the same `TaskService`.

Flyte 2 kept Flyte 1's field numbers, so each request is re-parsed as its Flyte 1 twin and each
answer re-parsed back (fields only one side knows pass through as unknown fields). A connector
therefore sees the same flyteidl types whichever Flyte called it; Flyte 2's per-task
`connection` (secrets and configs) arrives as keyword arguments, as in Flyte 2's own SDK.
Flyte 2 has no sync service, so sync connectors are listed and served only over Flyte 1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from headwater.tasks.connector import AsyncConnector
from headwater.tasks.flyte1 import Context, label, named
from headwater.tasks.idl import agent_pb2
from headwater.tasks.idl2 import connector_pb2, service_pb2, service_pb2_grpc
from headwater.tasks.service import TaskService, category
from headwater.tasks.status import abort

SERVICE_NAMES = [service.full_name for service in service_pb2.DESCRIPTOR.services_by_name.values()]


def add_to_server(tasks: TaskService, server: grpc.aio.Server) -> list[str]:
    """Register the two Flyte 2 services; their full names, for the health service."""
    service_pb2_grpc.add_AsyncConnectorServiceServicer_to_server(
        AsyncConnectorService(tasks), server
    )
    service_pb2_grpc.add_ConnectorMetadataServiceServicer_to_server(
        ConnectorMetadataService(tasks), server
    )
    return list(SERVICE_NAMES)


def recast(message: Any, twin: Any) -> Any:
    """`message` re-parsed as `twin`, its wire-compatible counterpart in the other protocol."""
    return twin.FromString(message.SerializeToString())


def connection_kwargs(request: Any) -> dict[str, str]:
    """The request's connection secrets and configs, as keyword arguments for the connector."""
    if not request.HasField("connection"):
        return {}
    return {**request.connection.configs, **request.connection.secrets}


class AsyncConnectorService:
    """Create, poll, cancel, metrics and logs, for Flyte 2's executor."""

    def __init__(self, tasks: TaskService) -> None:
        self._tasks = tasks

    async def CreateTask(self, request: Any, context: Context) -> Any:
        template = request.template
        try:
            v1 = recast(request, agent_pb2.CreateTaskRequest)
            meta = await self._tasks.create(v1, connection_kwargs(request))
        except Exception as exc:
            await abort(
                context, exc, "CreateTask", label(template.type, template.task_type_version)
            )
        return connector_pb2.CreateTaskResponse(resource_meta=meta)

    async def GetTask(self, request: Any, context: Context) -> Any:
        try:
            v1 = recast(request, agent_pb2.GetTaskRequest)
            resource = await self._tasks.get(v1, connection_kwargs(request))
        except Exception as exc:
            await abort(context, exc, "GetTask", label(*category(request)))
        # Flyte 1-only fields (the deprecated state, agent_error) are dropped, not passed on.
        resource.ClearField("state")
        resource.ClearField("agent_error")
        return connector_pb2.GetTaskResponse(resource=recast(resource, connector_pb2.Resource))

    async def DeleteTask(self, request: Any, context: Context) -> Any:
        try:
            v1 = recast(request, agent_pb2.DeleteTaskRequest)
            await self._tasks.delete(v1, connection_kwargs(request))
        except Exception as exc:
            await abort(context, exc, "DeleteTask", label(*category(request)))
        return connector_pb2.DeleteTaskResponse()

    async def GetTaskMetrics(self, request: Any, context: Context) -> Any:
        try:
            result = await self._tasks.metrics(recast(request, agent_pb2.GetTaskMetricsRequest))
        except Exception as exc:
            await abort(context, exc, "GetTaskMetrics", label(*category(request)))
        return recast(result, connector_pb2.GetTaskMetricsResponse)

    async def GetTaskLogs(self, request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for message in self._tasks.logs(recast(request, agent_pb2.GetTaskLogsRequest)):
                yield recast(message, connector_pb2.GetTaskLogsResponse)
        except Exception as exc:
            await abort(context, exc, "GetTaskLogs", label(*category(request)))


class ConnectorMetadataService:
    """Which task types this service serves, for Flyte 2 (async connectors only)."""

    def __init__(self, tasks: TaskService) -> None:
        self._tasks = tasks

    def _connectors(self) -> list[Any]:
        connectors: dict[str, Any] = {}
        for connector in self._tasks.registry:
            if not isinstance(connector, AsyncConnector):
                continue
            entry = connectors.setdefault(
                connector.name, connector_pb2.Connector(name=connector.name)
            )
            name, version = connector.task_category
            entry.supported_task_categories.append(
                connector_pb2.TaskCategory(name=name, version=version)
            )
        return list(connectors.values())

    async def ListConnectors(self, request: Any, context: Context) -> Any:
        return connector_pb2.ListConnectorsResponse(connectors=self._connectors())

    async def GetConnector(self, request: Any, context: Context) -> Any:
        try:
            return connector_pb2.GetConnectorResponse(
                connector=named(self._connectors(), request.name)
            )
        except Exception as exc:
            await abort(context, exc, "GetConnector", f"name {request.name!r}")
