"""Flyte 2's connector protocol (flyteidl2), served beside Flyte 1's by the same server and
connectors, driven by flyteidl2's own client stubs."""

from __future__ import annotations

import grpc
import pytest
from flyteidl2.connector import connector_pb2 as c2
from flyteidl2.connector import service_pb2_grpc
from flyteidl2.core import execution_pb2, security_pb2, tasks_pb2
from flyteidl2.core import literals_pb2 as lit2
from flyteidl2.task import common_pb2

Phase = execution_pb2.TaskExecution


@pytest.fixture
def tasks(served):
    return service_pb2_grpc.AsyncConnectorServiceStub(served.channel)


def create_request(task_type: str = "job", x: int = 21, **secrets: str) -> c2.CreateTaskRequest:
    value = lit2.Literal(scalar=lit2.Scalar(primitive=lit2.Primitive(integer=x)))
    return c2.CreateTaskRequest(
        inputs=common_pb2.Inputs(literals=[common_pb2.NamedLiteral(name="x", value=value)]),
        template=tasks_pb2.TaskTemplate(type=task_type),
        output_prefix="s3://bucket/v2",
        connection=security_pb2.Connection(secrets=secrets, configs={"region": "eu"}),
    )


def test_list_connectors_shows_async_connectors_only(served) -> None:
    stub = service_pb2_grpc.ConnectorMetadataServiceStub(served.channel)
    connectors = stub.ListConnectors(c2.ListConnectorsRequest(), timeout=5).connectors
    names = {c.name: [(t.name, t.version) for t in c.supported_task_categories] for c in connectors}
    assert names["Job Connector"] == [("job", 0), ("job", 1)]
    assert "Echo Connector" not in names  # Flyte 2 has no sync protocol
    got = stub.GetConnector(c2.GetConnectorRequest(name="Slow Connector"), timeout=5).connector
    assert [(t.name, t.version) for t in got.supported_task_categories] == [("slow", 0)]


def test_create_get_delete(served, tasks) -> None:
    created = tasks.CreateTask(create_request(token="s3cr3t"), timeout=5)
    assert created.resource_meta == b'{"job_id": "job-0", "x": 21}'
    # Inputs arrived as Python values; the connection as keyword arguments.
    assert served.jobs.calls[0] == (
        "create",
        {"inputs": {"x": 21}, "token": "s3cr3t", "region": "eu"},
    )

    category = c2.TaskCategory(name="job", version=0)
    get = c2.GetTaskRequest(task_category=category, resource_meta=created.resource_meta)
    assert tasks.GetTask(get, timeout=5).resource.phase == Phase.RUNNING
    resource = tasks.GetTask(get, timeout=5).resource
    assert resource.phase == Phase.SUCCEEDED
    outputs = {named.name: named.value for named in resource.outputs.literals}
    assert outputs["o0"].scalar.primitive.integer == 42
    assert resource.custom_info["polls"] == 2

    delete = c2.DeleteTaskRequest(task_category=category, resource_meta=created.resource_meta)
    tasks.DeleteTask(delete, timeout=5)
    tasks.DeleteTask(delete, timeout=5)
    assert tasks.GetTask(get, timeout=5).resource.phase == Phase.ABORTED


def test_logs_and_metrics(served, tasks) -> None:
    meta = tasks.CreateTask(create_request(), timeout=5).resource_meta
    category = c2.TaskCategory(name="job", version=0)
    served.connector("job").logs_gate.set()
    logs = list(
        tasks.GetTaskLogs(
            c2.GetTaskLogsRequest(task_category=category, resource_meta=meta, token="a"), timeout=5
        )
    )
    assert logs[0].header.token == "a1"
    assert [m.body.results[0] for m in logs[1:]] == ["released=True", "job=job-0"]
    metrics = tasks.GetTaskMetrics(
        c2.GetTaskMetricsRequest(task_category=category, resource_meta=meta, queries=["cpu"]),
        timeout=5,
    )
    assert metrics.results[0].metric == "cpu"


def test_errors_map_as_in_flyte_1(tasks) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        tasks.CreateTask(create_request("nope"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        tasks.CreateTask(create_request("failing"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "correlation id" in caught.value.details()
