"""One load process: THREADS clients, each on its own gRPC channel, each calling CreateTask then
GetTask with the real flyteidl stubs, in a loop, as fast as the server answers.

    .venv/bin/python bench/tasks/client.py TARGET THREADS

Protocol with the driver (run_all.py): once every client has made one checked pair, it prints
`READY`; it then reads one line `T0 T1` (time.monotonic(), which is machine-wide) from stdin,
keeps calling until T1, and prints one `RESULT {json}` line: the pairs that started in
[T0, T1) with their latencies in microseconds, and the errors. The requests have propeller's
shapes: a TaskTemplate with an interface, one integer input, TaskExecutionMetadata with a task
execution id; GetTask carries task_category and the deprecated task_type; every call has a
10 s deadline (propeller's default).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from dataclasses import dataclass, field

import grpc
from flyteidl.admin import agent_pb2 as admin
from flyteidl.core import (
    execution_pb2,
    identifier_pb2,
    interface_pb2,
    literals_pb2,
    tasks_pb2,
    types_pb2,
)
from flyteidl.service import agent_pb2_grpc

# As in trivial_connector.py (not imported: it registers itself on import); check() fails loudly
# if the two disagree.
TASK_TYPE = "bench_trivial"
OUTPUT = 42
DEADLINE_S = 10.0
SUCCEEDED = execution_pb2.TaskExecution.SUCCEEDED
# Every client its own HTTP/2 connection (gRPC would otherwise share one per process).
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


def create_request(client: int, n: int) -> admin.CreateTaskRequest:
    task = identifier_pb2.Identifier(
        resource_type=identifier_pb2.TASK, project="bench", domain="dev", name="trivial",
        version="v1",
    )  # fmt: skip
    template = tasks_pb2.TaskTemplate(
        id=task,
        type=TASK_TYPE,
        task_type_version=0,
        metadata=tasks_pb2.TaskMetadata(runtime=tasks_pb2.RuntimeMetadata(version="1")),
        interface=interface_pb2.TypedInterface(
            inputs=interface_pb2.VariableMap(
                variables={
                    "x": interface_pb2.Variable(
                        type=types_pb2.LiteralType(simple=types_pb2.INTEGER)
                    )
                }
            ),
            outputs=interface_pb2.VariableMap(
                variables={
                    "o0": interface_pb2.Variable(
                        type=types_pb2.LiteralType(simple=types_pb2.INTEGER)
                    )
                }
            ),
        ),
    )
    inputs = literals_pb2.LiteralMap(
        literals={
            "x": literals_pb2.Literal(
                scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=n))
            )
        }
    )
    execution = identifier_pb2.TaskExecutionIdentifier(
        task_id=task,
        node_execution_id=identifier_pb2.NodeExecutionIdentifier(
            node_id="n0",
            execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                project="bench", domain="dev", name=f"c{client}-{n}"
            ),
        ),
        retry_attempt=0,
    )
    return admin.CreateTaskRequest(
        template=template,
        inputs=inputs,
        output_prefix=f"s3://bench/outputs/c{client}/{n}",
        task_execution_metadata=admin.TaskExecutionMetadata(
            task_execution_id=execution, namespace="bench-dev"
        ),
    )


def get_request(resource_meta: bytes, output_prefix: str) -> admin.GetTaskRequest:
    return admin.GetTaskRequest(
        task_type=TASK_TYPE,
        task_category=admin.TaskCategory(name=TASK_TYPE, version=0),
        resource_meta=resource_meta,
        output_prefix=output_prefix,
    )


@dataclass
class Client:
    number: int
    target: str
    pair_us: list[int] = field(default_factory=list)
    create_us: list[int] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    outside: int = 0  # pairs done outside the window (warm-up, or started after T1)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self.stub = agent_pb2_grpc.AsyncAgentServiceStub(self.channel)
        self.requests = [create_request(self.number, n) for n in range(64)]

    def check(self) -> None:
        """One pair, its answer checked in full (phase, output value)."""
        created = self.stub.CreateTask(self.requests[0], timeout=DEADLINE_S)
        got = self.stub.GetTask(
            get_request(created.resource_meta, self.requests[0].output_prefix),
            timeout=DEADLINE_S,
        )
        resource = got.resource
        value = resource.outputs.literals["o0"].scalar.primitive.integer
        if resource.phase != SUCCEEDED or value != OUTPUT:
            raise SystemExit(f"client {self.number}: unexpected answer {resource}")

    def run(self, t0: float, t1: float) -> None:
        create, get = self.stub.CreateTask, self.stub.GetTask
        requests = self.requests
        clock = time.perf_counter_ns
        n = 0
        while True:
            started_at = time.monotonic()
            if started_at >= t1:
                return
            request = requests[n % len(requests)]
            n += 1
            started = clock()
            try:
                meta = create(request, timeout=DEADLINE_S).resource_meta
                created = clock()
                got = get(get_request(meta, request.output_prefix), timeout=DEADLINE_S)
                done = clock()
                if got.resource.phase != SUCCEEDED:
                    raise ValueError(f"phase {got.resource.phase}, not SUCCEEDED")
            except Exception as exc:
                if started_at >= t0:
                    self.errors += 1
                    if len(self.error_samples) < 3:
                        self.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                time.sleep(0.01)
                continue
            if started_at >= t0:
                self.pair_us.append((done - started) // 1000)
                self.create_us.append((created - started) // 1000)
            else:
                self.outside += 1


class AioClient(Client):
    """The same loop on grpc.aio: every client a coroutine with its own channel."""

    def __post_init__(self) -> None:
        import grpc.aio

        self.channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self.stub = agent_pb2_grpc.AsyncAgentServiceStub(self.channel)
        self.requests = [create_request(self.number, n) for n in range(64)]

    async def check(self) -> None:  # type: ignore[override]
        created = await self.stub.CreateTask(self.requests[0], timeout=DEADLINE_S)
        got = await self.stub.GetTask(
            get_request(created.resource_meta, self.requests[0].output_prefix),
            timeout=DEADLINE_S,
        )
        value = got.resource.outputs.literals["o0"].scalar.primitive.integer
        if got.resource.phase != SUCCEEDED or value != OUTPUT:
            raise SystemExit(f"client {self.number}: unexpected answer {got.resource}")

    async def run(self, t0: float, t1: float) -> None:  # type: ignore[override]
        create, get = self.stub.CreateTask, self.stub.GetTask
        requests = self.requests
        clock = time.perf_counter_ns
        n = 0
        while (started_at := time.monotonic()) < t1:
            request = requests[n % len(requests)]
            n += 1
            started = clock()
            try:
                meta = (await create(request, timeout=DEADLINE_S)).resource_meta
                created = clock()
                got = await get(get_request(meta, request.output_prefix), timeout=DEADLINE_S)
                done = clock()
                if got.resource.phase != SUCCEEDED:
                    raise ValueError(f"phase {got.resource.phase}, not SUCCEEDED")
            except Exception as exc:
                if started_at >= t0:
                    self.errors += 1
                    if len(self.error_samples) < 3:
                        self.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(0.01)
                continue
            if started_at >= t0:
                self.pair_us.append((done - started) // 1000)
                self.create_us.append((created - started) // 1000)
            else:
                self.outside += 1


def report(clients: list[Client]) -> None:
    result = {
        "pair_us": [x for c in clients for x in c.pair_us],
        "create_us": [x for c in clients for x in c.create_us],
        "errors": sum(c.errors for c in clients),
        "error_samples": [s for c in clients for s in c.error_samples][:5],
        "warmup_pairs": sum(c.outside for c in clients),
    }
    print("RESULT " + json.dumps(result), flush=True)


def window() -> tuple[float, float]:
    t0, t1 = (float(x) for x in sys.stdin.readline().split())
    return t0, t1


def run_threads(target: str, count: int) -> None:
    clients = [Client(i, target) for i in range(count)]
    for client in clients:
        client.check()
    print("READY", flush=True)
    t0, t1 = window()
    workers = [threading.Thread(target=c.run, args=(t0, t1)) for c in clients]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report(clients)
    for client in clients:
        client.channel.close()


async def run_aio(target: str, count: int) -> None:
    clients = [AioClient(i, target) for i in range(count)]
    for client in clients:
        await client.check()
    print("READY", flush=True)
    t0, t1 = await asyncio.get_running_loop().run_in_executor(None, window)
    await asyncio.gather(*(c.run(t0, t1) for c in clients))
    report(clients)
    for client in clients:
        await client.channel.close()


def main() -> None:
    target, count = sys.argv[1], int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "sync"
    if mode == "aio":
        asyncio.run(run_aio(target, count))
    elif mode == "sync":
        run_threads(target, count)
    else:
        raise SystemExit(f"client.py: sync or aio, not {mode!r}")


if __name__ == "__main__":
    main()
