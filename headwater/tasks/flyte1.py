"""Flyte 1's connector protocol: flyteidl's `AsyncAgentService`, `SyncAgentService` and
`AgentMetadataService`, the services flytepropeller's connector plugin calls.

The wire names never got the "connector" rename (flyteidl 1.16 still says Agent). Each handler
unpacks its request, asks `TaskService`, and packs the answer; every error becomes a status in
`headwater.tasks.status`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from headwater.errors import NotFoundError
from headwater.tasks.errors import InvalidRequestError
from headwater.tasks.idl import agent_pb2, agent_pb2_grpc, agent_service_pb2
from headwater.tasks.service import TaskService, category
from headwater.tasks.status import abort

Context = grpc.aio.ServicerContext[Any, Any]

SERVICE_NAMES = [
    service.full_name for service in agent_service_pb2.DESCRIPTOR.services_by_name.values()
]


def add_to_server(tasks: TaskService, server: grpc.aio.Server) -> list[str]:
    """Register the three Flyte 1 services; their full names, for the health service."""
    agent_pb2_grpc.add_AsyncAgentServiceServicer_to_server(AsyncAgentService(tasks), server)
    agent_pb2_grpc.add_SyncAgentServiceServicer_to_server(SyncAgentService(tasks), server)
    agent_pb2_grpc.add_AgentMetadataServiceServicer_to_server(AgentMetadataService(tasks), server)
    return list(SERVICE_NAMES)


def label(name: str, version: int) -> str:
    """A task type as error messages name it."""
    return f"task type {name!r} v{version}"


class AsyncAgentService:
    """Create, poll, cancel: the calls for long-running jobs."""

    def __init__(self, tasks: TaskService) -> None:
        self._tasks = tasks

    async def CreateTask(self, request: Any, context: Context) -> Any:
        template = request.template
        try:
            meta = await self._tasks.create(request, {})
        except Exception as exc:
            await abort(
                context, exc, "CreateTask", label(template.type, template.task_type_version)
            )
        return agent_pb2.CreateTaskResponse(resource_meta=meta)

    async def GetTask(self, request: Any, context: Context) -> Any:
        try:
            resource = await self._tasks.get(request, {})
        except Exception as exc:
            await abort(context, exc, "GetTask", label(*category(request)))
        return agent_pb2.GetTaskResponse(resource=resource)

    async def DeleteTask(self, request: Any, context: Context) -> Any:
        try:
            await self._tasks.delete(request, {})
        except Exception as exc:
            await abort(context, exc, "DeleteTask", label(*category(request)))
        return agent_pb2.DeleteTaskResponse()

    async def GetTaskMetrics(self, request: Any, context: Context) -> Any:
        try:
            return await self._tasks.metrics(request)
        except Exception as exc:
            await abort(context, exc, "GetTaskMetrics", label(*category(request)))

    async def GetTaskLogs(self, request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for message in self._tasks.logs(request):
                yield message
        except Exception as exc:
            await abort(context, exc, "GetTaskLogs", label(*category(request)))


class SyncAgentService:
    """One bidirectional call: the client sends a header then the inputs, and reads one answer."""

    def __init__(self, tasks: TaskService) -> None:
        self._tasks = tasks

    async def ExecuteTaskSync(
        self, requests: AsyncIterator[Any], context: Context
    ) -> AsyncIterator[Any]:
        subject = "a task without a header"
        try:
            header, inputs = await read_sync_request(requests)
            subject = label(header.template.type, header.template.task_type_version)
            resource = await self._tasks.execute(header, inputs)
        except Exception as exc:
            await abort(context, exc, "ExecuteTaskSync", subject)
        yield agent_pb2.ExecuteTaskSyncResponse(
            header=agent_pb2.ExecuteTaskSyncResponseHeader(resource=resource)
        )


async def read_sync_request(requests: AsyncIterator[Any]) -> tuple[Any, Any | None]:
    """The `CreateRequestHeader` and the `LiteralMap` of inputs (None if the client sent none)."""
    first = await anext(requests, None)
    if first is None or first.WhichOneof("part") != "header":
        raise InvalidRequestError("ExecuteTaskSync must start with a header message")
    second = await anext(requests, None)
    if second is not None and second.WhichOneof("part") != "inputs":
        raise InvalidRequestError("ExecuteTaskSync's second message must carry the inputs")
    return first.header, second.inputs if second is not None else None


class AgentMetadataService:
    """Which task types this service serves; propeller lists them every 10 s."""

    def __init__(self, tasks: TaskService) -> None:
        self._tasks = tasks

    async def ListAgents(self, request: Any, context: Context) -> Any:
        return agent_pb2.ListAgentsResponse(agents=self._tasks.agents())

    async def GetAgent(self, request: Any, context: Context) -> Any:
        try:
            return agent_pb2.GetAgentResponse(agent=named(self._tasks.agents(), request.name))
        except Exception as exc:
            await abort(context, exc, "GetAgent", f"name {request.name!r}")


def named(agents: list[Any], name: str) -> Any:
    """The agent (or Flyte 2 connector) called `name`."""
    for agent in agents:
        if agent.name == name:
            return agent
    served = ", ".join(repr(agent.name) for agent in agents) or "none"
    raise NotFoundError(f"no connector named {name!r}; served: {served}")
