"""The floor: flyteidl's AsyncAgentService on a bare gRPC server that answers from canned
messages. No connector, no registry, no conversion; what gRPC in Python costs per call.

    .venv/bin/python bench/tasks/floor_server.py aio|aio-options|sync PORT

`aio` is `grpc.aio.server()` (what Headwater and flytekit both use); `aio-options` the same
with Headwater's server options (64 MiB message limits, SO_REUSEPORT off) and gRPC health;
`sync` is the classic `grpc.server(ThreadPoolExecutor(16))`. Not a contender: it shows how much
of each engine's time per pair is gRPC itself. It serves ListAgents too, so the driver can tell
it is ready.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import grpc.aio
from client import OUTPUT, TASK_TYPE
from flyteidl.admin import agent_pb2 as admin
from flyteidl.core import execution_pb2, literals_pb2
from flyteidl.service import agent_pb2_grpc

CREATED = admin.CreateTaskResponse(resource_meta=b'{"job_id": "job-0"}')
GOT = admin.GetTaskResponse(
    resource=admin.Resource(
        phase=execution_pb2.TaskExecution.SUCCEEDED,
        message="done",
        outputs=literals_pb2.LiteralMap(
            literals={
                "o0": literals_pb2.Literal(
                    scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=OUTPUT))
                )
            }
        ),
    )
)
AGENTS = admin.ListAgentsResponse(
    agents=[
        admin.Agent(
            name="Floor",
            supported_task_types=[TASK_TYPE],
            supported_task_categories=[admin.TaskCategory(name=TASK_TYPE, version=0)],
        )
    ]
)


class AioTasks(agent_pb2_grpc.AsyncAgentServiceServicer):
    async def CreateTask(self, request, context):
        return CREATED

    async def GetTask(self, request, context):
        return GOT


class AioMetadata(agent_pb2_grpc.AgentMetadataServiceServicer):
    async def ListAgents(self, request, context):
        return AGENTS


class SyncTasks(agent_pb2_grpc.AsyncAgentServiceServicer):
    def CreateTask(self, request, context):
        return CREATED

    def GetTask(self, request, context):
        return GOT


class SyncMetadata(agent_pb2_grpc.AgentMetadataServiceServicer):
    def ListAgents(self, request, context):
        return AGENTS


async def serve_aio(port: int, headwater_options: bool = False) -> None:
    limit = 64 * 1024 * 1024
    options = [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options if headwater_options else None)
    agent_pb2_grpc.add_AsyncAgentServiceServicer_to_server(AioTasks(), server)
    agent_pb2_grpc.add_AgentMetadataServiceServicer_to_server(AioMetadata(), server)
    if headwater_options:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        checker = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def serve_sync(port: int) -> None:
    server = grpc.server(ThreadPoolExecutor(16))
    agent_pb2_grpc.add_AsyncAgentServiceServicer_to_server(SyncTasks(), server)
    agent_pb2_grpc.add_AgentMetadataServiceServicer_to_server(SyncMetadata(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind in ("aio", "aio-options"):
        asyncio.run(serve_aio(port, headwater_options=kind == "aio-options"))
    elif kind == "sync":
        serve_sync(port)
    else:
        raise SystemExit(f"floor_server.py: aio, aio-options or sync, not {kind!r}")
