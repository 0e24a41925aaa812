"""The example connector in examples/tasks loads and runs through the service."""

from __future__ import annotations

from pathlib import Path

import grpc
from flyteidl.admin import agent_pb2 as adm
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc

from headwater.tasks.loading import load_connectors
from headwater.tasks.server import ConnectorServer

EXAMPLE = Path(__file__).parents[2] / "examples" / "tasks" / "countdown_connector.py"


def test_the_countdown_example() -> None:
    registry = load_connectors([EXAMPLE])
    [connector] = registry
    assert connector.task_category == ("countdown", 0)
    seconds = literals_pb2.Literal(
        scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=0))
    )
    request = adm.CreateTaskRequest(
        template=tasks_pb2.TaskTemplate(type="countdown"),
        inputs=literals_pb2.LiteralMap(literals={"seconds": seconds}),
    )
    with ConnectorServer(registry) as server, grpc.insecure_channel(server.target) as channel:
        tasks = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        meta = tasks.CreateTask(request, timeout=5).resource_meta
        get = adm.GetTaskRequest(
            task_category=adm.TaskCategory(name="countdown"), resource_meta=meta
        )
        resource = tasks.GetTask(get, timeout=5).resource
    assert resource.phase == execution_pb2.TaskExecution.SUCCEEDED
    assert resource.outputs.literals["waited_seconds"].scalar.primitive.float_value == 0.0
