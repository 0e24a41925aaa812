"""Task connectors for the tests, a connector service on a free port, and request builders.

The clients are flyteidl's own generated stubs on plain gRPC channels, as flytepropeller uses.
Connectors that must block or wait use threading.Event gates the tests release, never sleeps.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2 as adm
from flyteidl.core import identifier_pb2, literals_pb2, metrics_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2_grpc

from headwater.tasks import (
    AsyncConnector,
    ConnectorRegistry,
    Resource,
    ResourceMeta,
    SyncConnector,
    TaskExecution,
    front,
)
from headwater.tasks.server import ConnectorServer

PROPELLER_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
GATE_SECONDS = 10  # how long a gated connector waits before giving up (a failing test's bound)


@dataclass
class JobMeta(ResourceMeta):
    job_id: str
    x: int


@dataclass
class Jobs:
    """The 'external system' behind the job connectors: jobs finish after two polls."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class JobConnector(AsyncConnector):
    """Async methods; deduplicates create on the task execution id; sync generator logs."""

    name = "Job Connector"
    task_type_name = "job"
    metadata_type = JobMeta

    def __init__(self, jobs: Jobs) -> None:
        super().__init__()
        self.jobs = jobs
        self.logs_gate = threading.Event()

    async def create(
        self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs
    ):
        self.jobs.calls.append(("create", {"inputs": inputs, **kwargs}))
        key = None
        if task_execution_metadata is not None:
            attempt = task_execution_metadata.task_execution_id
            key = f"{attempt.node_execution_id.execution_id.name}/{attempt.retry_attempt}"
        job_id = f"job-{len(self.jobs.jobs)}"
        for known, job in self.jobs.jobs.items():
            if key is not None and job["key"] == key:
                job_id = known
                break
        else:
            self.jobs.jobs[job_id] = {"key": key, "polls": 0, "deleted": False}
        return JobMeta(job_id=job_id, x=inputs["x"])

    async def get(self, resource_meta, **kwargs):
        self.jobs.calls.append(("get", kwargs))
        job = self.jobs.jobs[resource_meta.job_id]
        if job["deleted"]:
            return Resource(phase=TaskExecution.ABORTED, message="deleted")
        job["polls"] += 1
        if job["polls"] < 2:
            return Resource(phase=TaskExecution.RUNNING, message=f"poll {job['polls']}")
        return Resource(
            phase=TaskExecution.SUCCEEDED,
            message="done",
            outputs={"o0": resource_meta.x * 2, "ok": True, "rows": [{"a": 1}]},
            custom_info={"polls": job["polls"]},
        )

    async def delete(self, resource_meta, **kwargs):
        self.jobs.calls.append(("delete", kwargs))
        job = self.jobs.jobs.get(resource_meta.job_id)
        if job is not None:
            job["deleted"] = True

    def get_metrics(self, resource_meta, queries=(), **kwargs):
        result = metrics_pb2.ExecutionMetricResult(
            metric=",".join(queries), data=struct_pb2.Struct(fields={})
        )
        result.data.update({"job": resource_meta.job_id})
        return adm.GetTaskMetricsResponse(results=[result])

    def get_logs(self, resource_meta, token="", **kwargs):
        yield adm.GetTaskLogsResponse(header=adm.GetTaskLogsResponseHeader(token=token + "1"))
        released = self.logs_gate.wait(GATE_SECONDS)
        for line in (f"released={released}", f"job={resource_meta.job_id}"):
            yield adm.GetTaskLogsResponse(body=adm.GetTaskLogsResponseBody(results=[line]))


class JobConnectorV1(JobConnector):
    """Version 1 of the same task type: plain methods, async generator logs."""

    name = "Job Connector"
    task_type_version = 1

    def get(self, resource_meta, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED, message="v1", outputs={"v": 1})

    async def get_logs(self, resource_meta, **kwargs):
        for index in range(3):
            if index == 1:
                await asyncio.to_thread(self.logs_gate.wait, GATE_SECONDS)
            line = f"line {index} released={self.logs_gate.is_set()}"
            yield adm.GetTaskLogsResponse(body=adm.GetTaskLogsResponseBody(results=[line]))


class SlowConnector(AsyncConnector):
    """`get` blocks a thread until released; `delete` awaits forever (until cancelled)."""

    name = "Slow Connector"
    task_type_name = "slow"
    metadata_type = JobMeta

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.cancelled = threading.Event()

    def create(self, task_template, output_prefix, inputs=None, **kwargs):
        return JobMeta(job_id="slow", x=0)

    def get(self, resource_meta, **kwargs):
        self.entered.set()
        released = self.release.wait(GATE_SECONDS)
        return Resource(phase=TaskExecution.SUCCEEDED, message=f"released={released}")

    async def delete(self, resource_meta, **kwargs):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class FailingConnector(AsyncConnector):
    """Raises from every method; implements neither metrics nor logs."""

    name = "Failing Connector"
    task_type_name = "failing"
    metadata_type = JobMeta

    def create(self, task_template, output_prefix, inputs=None, **kwargs):
        raise ValueError("the warehouse refused the query")

    def get(self, resource_meta, **kwargs):
        return {"phase": "not a Resource"}

    def delete(self, resource_meta, **kwargs):
        raise RuntimeError("cannot cancel")


class BigConnector(AsyncConnector):
    """Returns `size` bytes of output."""

    name = "Big Connector"
    task_type_name = "big"
    metadata_type = JobMeta
    size = 5 * 1024 * 1024

    def create(self, task_template, output_prefix, inputs=None, **kwargs):
        return JobMeta(job_id="big", x=-1 if inputs is None else len(inputs.get("blob", "")))

    def get(self, resource_meta, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED, outputs={"blob": "x" * self.size})

    def delete(self, resource_meta, **kwargs):
        pass


class EchoConnector(SyncConnector):
    name = "Echo Connector"
    task_type_name = "echo"

    def do(self, task_template, output_prefix, inputs=None, **kwargs):
        if "pending" in inputs:
            return Resource(phase=TaskExecution.RUNNING)
        return Resource(
            phase=TaskExecution.SUCCEEDED,
            message=output_prefix,
            outputs={"o0": inputs["x"] + 1, "custom": task_template.custom["query"]},
        )


@dataclass
class Served:
    """The connectors behind a running service, and a channel to it."""

    registry: ConnectorRegistry
    server: ConnectorServer
    channel: grpc.Channel
    jobs: Jobs

    def connector(self, task_type: str, version: int = 0) -> Any:
        return self.registry.get_connector(task_type, version)

    @property
    def tasks(self) -> Any:
        return agent_pb2_grpc.AsyncAgentServiceStub(self.channel)

    @property
    def sync(self) -> Any:
        return agent_pb2_grpc.SyncAgentServiceStub(self.channel)

    @property
    def metadata(self) -> Any:
        return agent_pb2_grpc.AgentMetadataServiceStub(self.channel)

    @property
    def health(self) -> Any:
        return health_pb2_grpc.HealthStub(self.channel)

    @staticmethod
    def literal(value: int | str) -> Any:
        primitive = (
            literals_pb2.Primitive(integer=value)
            if isinstance(value, int)
            else literals_pb2.Primitive(string_value=value)
        )
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=primitive))

    @staticmethod
    def create_request(
        task_type: str = "job", version: int = 0, attempt: int = 0, **inputs: int | str
    ) -> Any:
        """A CreateTaskRequest shaped like propeller's."""
        template = tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(
                resource_type=identifier_pb2.TASK, project="p", domain="d", name="t", version="v1"
            ),
            type=task_type,
            task_type_version=version,
            custom=struct_pb2.Struct(fields={"query": struct_pb2.Value(string_value="select 1")}),
        )
        execution = identifier_pb2.TaskExecutionIdentifier(
            task_id=template.id,
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(
                node_id="n0",
                execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                    project="p", domain="d", name="exec1"
                ),
            ),
            retry_attempt=attempt,
        )
        return adm.CreateTaskRequest(
            inputs=literals_pb2.LiteralMap(
                literals={k: Served.literal(v) for k, v in inputs.items()}
            ),
            template=template,
            output_prefix="s3://bucket/prefix/n0/0",
            task_execution_metadata=adm.TaskExecutionMetadata(
                task_execution_id=execution, namespace="p-d"
            ),
        )

    @staticmethod
    def category(task_type: str = "job", version: int = 0) -> Any:
        return adm.TaskCategory(name=task_type, version=version)


def make_registry(jobs: Jobs) -> ConnectorRegistry:
    registry = ConnectorRegistry()
    for connector in (
        JobConnector(jobs),
        JobConnectorV1(jobs),
        SlowConnector(),
        FailingConnector(),
        BigConnector(),
        EchoConnector(),
    ):
        registry.register(connector)
    return registry


@pytest.fixture(params=["native", "aio"])
def engine(request: pytest.FixtureRequest) -> str:
    """Every service test runs on both engines: the compiled front end and grpc.aio."""
    if request.param == "native" and not front.AVAILABLE:
        pytest.skip("headwater.tasks._front is not built (test_front_is_built fails for it)")
    return str(request.param)


@pytest.fixture
def start(engine: str) -> Iterator[Callable[..., Served]]:
    """Start a service (keyword arguments go to ConnectorServer); all are stopped afterwards."""
    running: list[Served] = []

    def start(channel_options: list[tuple[str, Any]] | None = None, **settings: Any) -> Served:
        jobs = Jobs()
        registry = make_registry(jobs)
        settings.setdefault("engine", engine)
        server = ConnectorServer(registry, **settings).start()
        # Propeller's channel: round-robin load balancing over the service's addresses.
        options = [("grpc.service_config", PROPELLER_SERVICE_CONFIG), *(channel_options or [])]
        channel = grpc.insecure_channel(server.target, options=options)
        running.append(Served(registry, server, channel, jobs))
        return running[-1]

    yield start
    for served in running:
        # Release anything a failed test left blocked, so the server stops at once.
        for connector in served.registry:
            for gate in ("release", "logs_gate"):
                if hasattr(connector, gate):
                    getattr(connector, gate).set()
        served.channel.close()
        served.server.stop(grace=None)


@pytest.fixture
def served(start: Callable[..., Served]) -> Served:
    return start()
