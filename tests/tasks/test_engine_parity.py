"""What a client or a servicer sees on each engine: the compiled front end (front.py, _front.cc)
against grpc.aio. Each test runs on both (conftest's `engine`); a known difference is a strict
xfail on the engine that has it, with the reason naming the code at fault.

Most tests serve the real connector service; the handler-contract tests serve small custom
servicers, registered the way headwater.tasks.server registers its own on each engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest
from flyteidl.admin import agent_pb2 as adm
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from headwater.errors import SettingsError
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

GATE_SECONDS = 10  # how long a gate waits before giving up (a failing test's bound)


def defect(request: pytest.FixtureRequest, engine: str, on: str, reason: str) -> None:
    """Mark this run a strict xfail when it is on the engine `on` that has the defect."""
    if engine == on:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def rpc_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        result = call(*args, **kwargs)
        list(result) if hasattr(result, "__next__") else result  # drain a stream
    return caught.value


# --- the connector service, with connectors of these tests --------------------------------------


@dataclass
class Meta(ResourceMeta):
    job_id: str


class Job(AsyncConnector):
    """A job connector whose create, get and delete just answer; subclasses add the behaviour."""

    name = "Parity"
    metadata_type = Meta

    def create(self, task_template, output_prefix, inputs=None, **kwargs):
        return Meta(job_id="j")

    def get(self, resource_meta, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED)

    def delete(self, resource_meta, **kwargs):
        pass


class BrokenLogs(Job):
    """Two log lines, then the log store fails."""

    task_type_name = "broken-logs"

    async def get_logs(self, resource_meta, **kwargs):
        for index in range(2):
            yield adm.GetTaskLogsResponse(body=adm.GetTaskLogsResponseBody(results=[f"{index}"]))
        raise ValueError("the log store went away")


class FloodLogs(Job):
    """A big log: 80 messages of 256 KiB, as fast as the server takes them."""

    task_type_name = "flood-logs"
    chunk = "x" * (256 * 1024)
    ahead_at = 16  # 4 MiB: past what either engine holds for an unread client (see the test)

    def __init__(self) -> None:
        super().__init__()
        self.ran_ahead = threading.Event()

    async def get_logs(self, resource_meta, **kwargs):
        for index in range(80):
            if index == self.ahead_at:
                self.ran_ahead.set()
            yield adm.GetTaskLogsResponse(body=adm.GetTaskLogsResponseBody(results=[self.chunk]))


class Gathering(Job):
    """`get` answers only once `size` calls are in it at the same time."""

    task_type_name = "gathering"
    size = 200

    def __init__(self) -> None:
        super().__init__()
        self.arrived = 0
        self.everyone: asyncio.Event | None = None

    async def get(self, resource_meta, **kwargs):
        if self.everyone is None:
            self.everyone = asyncio.Event()
        self.arrived += 1
        if self.arrived == self.size:
            self.everyone.set()
        await asyncio.wait_for(self.everyone.wait(), GATE_SECONDS)
        return Resource(phase=TaskExecution.SUCCEEDED, message=f"together={self.arrived}")


class Waiting(Job):
    """`delete` says it started, then awaits forever; it records being cancelled."""

    task_type_name = "waiting"

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.cancelled = threading.Event()

    async def delete(self, resource_meta, **kwargs):
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class Recording(SyncConnector):
    """A sync connector that records each run's input names."""

    name = "Recording"
    task_type_name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[list[str] | None] = []

    def do(self, task_template, output_prefix, inputs=None, **kwargs):
        self.runs.append(None if inputs is None else sorted(inputs))
        return Resource(phase=TaskExecution.SUCCEEDED, message="ran")


@pytest.fixture
def serve(engine: str) -> Iterator[Callable[..., Any]]:
    """Serve these connectors on the engine; returns (server, channel); all stopped afterwards."""
    running: list[tuple[ConnectorServer, grpc.Channel]] = []

    def serve(*connectors: Any, channel_options: Any = (), **settings: Any) -> Any:
        registry = ConnectorRegistry()
        for connector in connectors:
            registry.register(connector)
        server = ConnectorServer(registry, engine=engine, **settings).start()
        running.append((server, grpc.insecure_channel(server.target, options=channel_options)))
        return running[-1]

    yield serve
    for server, channel in running:
        channel.close()
        server.stop(grace=None)


def logs_request(task_type: str) -> adm.GetTaskLogsRequest:
    return adm.GetTaskLogsRequest(
        task_category=adm.TaskCategory(name=task_type), resource_meta=Meta("j").encode()
    )


def sync_messages(task_type: str, **inputs: int | str) -> list[Any]:
    """ExecuteTaskSync's two messages, as propeller sends them: the header, then the inputs."""
    query = struct_pb2.Struct(fields={"query": struct_pb2.Value(string_value="select 1")})
    template = tasks_pb2.TaskTemplate(type=task_type, custom=query)
    header = adm.CreateRequestHeader(template=template, output_prefix="s3://b/p")
    literals = {
        name: literals_pb2.Literal(
            scalar=literals_pb2.Scalar(
                primitive=literals_pb2.Primitive(integer=value)
                if isinstance(value, int)
                else literals_pb2.Primitive(string_value=value)
            )
        )
        for name, value in inputs.items()
    }
    return [
        adm.ExecuteTaskSyncRequest(header=header),
        adm.ExecuteTaskSyncRequest(inputs=literals_pb2.LiteralMap(literals=literals)),
    ]


def test_an_abort_after_some_log_lines_keeps_them_and_ends_internal(serve) -> None:
    _, channel = serve(BrokenLogs())
    stream = agent_pb2_grpc.AsyncAgentServiceStub(channel).GetTaskLogs(
        logs_request("broken-logs"), timeout=10
    )
    lines = []
    with pytest.raises(grpc.RpcError) as caught:
        for message in stream:
            lines.extend(message.body.results)
    assert lines == ["0", "1"]
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "GetTaskLogs" in caught.value.details()
    assert "the log store went away" in caught.value.details()
    assert "correlation-id" in dict(caught.value.trailing_metadata())


def test_logs_wait_for_a_slow_reader(serve, request, engine) -> None:
    # With BDP probing off, the client's HTTP/2 window stays at its small default: what the
    # server produces unread is what the server itself holds, not what a fast machine's
    # grown window lets through (on one CI machine, more than 11 MiB).
    flood = FloodLogs()
    _, channel = serve(flood, channel_options=[("grpc.http2.bdp_probe", 0)])
    stream = agent_pb2_grpc.AsyncAgentServiceStub(channel).GetTaskLogs(
        logs_request("flood-logs"), timeout=10
    )
    next(stream)  # then the client reads nothing more for a while
    try:
        assert not flood.ran_ahead.wait(2), "the server produced 4 MiB the client did not read"
    finally:
        stream.cancel()


def test_a_sync_call_is_answered_before_the_client_half_closes(served, request, engine) -> None:
    # flytepropeller's agent plugin (Flyte 1 before the connector rename) sends the header and
    # the inputs, then Recv()s the answer, and only then CloseSend()s.
    answered = threading.Event()

    def propeller_messages() -> Iterator[Any]:
        yield from sync_messages("echo", x=1)
        answered.wait(GATE_SECONDS)  # the stream stays open until the answer is read

    answers = served.sync.ExecuteTaskSync(propeller_messages(), timeout=2)
    try:
        first = next(answers)
    finally:
        answered.set()
        answers.cancel()
    assert first.header.resource.phase == execution_pb2.TaskExecution.SUCCEEDED
    assert first.header.resource.outputs.literals["o0"].scalar.primitive.integer == 2


def test_a_sync_call_with_the_header_only_reaches_the_connector_without_inputs(served) -> None:
    header = sync_messages("echo", x=1)[:1]
    error = rpc_error(served.sync.ExecuteTaskSync, iter(header), timeout=10)
    # The echo connector reads inputs["x"]: its TypeError is the connector's, reported as such.
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "ExecuteTaskSync for task type 'echo' v0 failed: TypeError" in error.details()


def test_a_sync_call_without_messages_is_invalid(served) -> None:
    error = rpc_error(served.sync.ExecuteTaskSync, iter([]), timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must start with a header" in error.details()


def test_sync_inputs_over_the_limit_do_not_run_the_connector(serve, request, engine) -> None:
    defect(
        request, engine, "aio",
        "on grpc.aio the request iterator just ends when the inputs message is over "
        "max_message_mb, so flyte1.read_sync_request takes it for 'no inputs' and the sync "
        "connector runs with inputs=None while the client gets RESOURCE_EXHAUSTED",
    )  # fmt: skip
    recording = Recording()
    mib = 1024 * 1024
    _, channel = serve(
        recording, max_message_mb=1, channel_options=[("grpc.max_send_message_length", 4 * mib)]
    )
    sync = agent_pb2_grpc.SyncAgentServiceStub(channel)
    messages = sync_messages("recording", blob="x" * (2 * mib))
    error = rpc_error(sync.ExecuteTaskSync, iter(messages), timeout=10)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # One more call through the same server, so a connector started by the first has run.
    agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(adm.ListAgentsRequest(), timeout=10)
    assert recording.runs == []


def test_garbage_request_bytes_are_unknown_naming_the_decode_error(served) -> None:
    raw = served.channel.unary_unary("/flyteidl.service.AsyncAgentService/CreateTask")
    error = rpc_error(raw, b"\xff\xff\xff", timeout=10)
    assert error.code() == grpc.StatusCode.UNKNOWN
    assert "DecodeError" in error.details()
    assert "flyteidl.admin.CreateTaskRequest" in error.details()
    health_check = served.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health_check.status == health_pb2.HealthCheckResponse.SERVING


def test_a_client_cancel_cancels_the_connector(serve) -> None:
    waiting = Waiting()
    _, channel = serve(waiting)
    request = adm.DeleteTaskRequest(
        task_category=adm.TaskCategory(name="waiting"), resource_meta=Meta("j").encode()
    )
    pending = agent_pb2_grpc.AsyncAgentServiceStub(channel).DeleteTask.future(request, timeout=20)
    assert waiting.entered.wait(GATE_SECONDS)
    pending.cancel()
    assert waiting.cancelled.wait(GATE_SECONDS), "the connector's coroutine was not cancelled"


def test_two_hundred_calls_are_in_flight_at_once(serve) -> None:
    gathering = Gathering()
    _, channel = serve(gathering)
    request = adm.GetTaskRequest(
        task_category=adm.TaskCategory(name="gathering"), resource_meta=Meta("j").encode()
    )
    stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
    pending = [stub.GetTask.future(request, timeout=20) for _ in range(Gathering.size)]
    messages = {call.result().resource.message for call in pending}
    assert messages == {f"together={Gathering.size}"}


def test_health_of_an_unknown_service_is_not_found(served) -> None:
    unknown = health_pb2.HealthCheckRequest(service="nope")
    error = rpc_error(served.health.Check, unknown, timeout=10)
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_a_watch_ends_on_the_server_when_its_client_cancels(start, monkeypatch) -> None:
    ended = threading.Event()
    original = health.aio.HealthServicer

    class Watched(original):  # type: ignore[misc, valid-type]
        async def Watch(self, request, context):
            try:
                await super().Watch(request, context)
            finally:
                ended.set()

    monkeypatch.setattr(health.aio, "HealthServicer", Watched)
    served = start()
    watch = served.health.Watch(health_pb2.HealthCheckRequest(), timeout=20)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()
    assert ended.wait(GATE_SECONDS), "the servicer's Watch was still running"


def test_a_stop_turns_watches_not_serving_then_cancels_what_is_left(serve) -> None:
    waiting = Waiting()
    server, channel = serve(waiting)
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=20)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    request = adm.DeleteTaskRequest(
        task_category=adm.TaskCategory(name="waiting"), resource_meta=Meta("j").encode()
    )
    pending = agent_pb2_grpc.AsyncAgentServiceStub(channel).DeleteTask.future(request, timeout=20)
    assert waiting.entered.wait(GATE_SECONDS)
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 0.3})
    stopper.start()
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    # Neither call ends by itself: once the grace is over both are cancelled, and so is the
    # connector's coroutine.
    assert rpc_error(next, watch).code() == grpc.StatusCode.UNAVAILABLE
    assert pending.exception(GATE_SECONDS).code() == grpc.StatusCode.UNAVAILABLE
    assert waiting.cancelled.wait(GATE_SECONDS)
    stopper.join(GATE_SECONDS)
    assert not stopper.is_alive()


def test_a_new_server_takes_the_port_of_a_stopped_one(engine) -> None:
    first = ConnectorServer(ConnectorRegistry(), engine=engine).start()
    with grpc.insecure_channel(first.target) as channel:
        stub = agent_pb2_grpc.AgentMetadataServiceStub(channel)
        stub.ListAgents(adm.ListAgentsRequest(), timeout=10)
    first.stop(grace=1)
    second = ConnectorServer(ConnectorRegistry(), port=first.port, engine=engine).start()
    try:
        with grpc.insecure_channel(second.target) as channel:
            answer = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(
                adm.ListAgentsRequest(), timeout=10
            )
        assert list(answer.agents) == []
    finally:
        second.stop(grace=None)


def test_a_stopped_connector_server_starts_again(engine) -> None:
    server = ConnectorServer(ConnectorRegistry(), engine=engine)
    for _ in range(2):
        server.start()
        with grpc.insecure_channel(server.target) as channel:
            answer = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(
                adm.ListAgentsRequest(), timeout=5
            )
        assert list(answer.agents) == []
        server.stop(grace=None)


def test_a_serving_connector_server_refuses_a_second_start(engine) -> None:
    with (
        ConnectorServer(ConnectorRegistry(), engine=engine) as server,
        pytest.raises(RuntimeError, match=r"serving on .* already"),
    ):
        server.start()


def test_a_message_limit_past_2_gib_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="max_message_mb"):
        ConnectorServer(ConnectorRegistry(), max_message_mb=2048).start().stop()


# --- the handler contract, with custom servicers ------------------------------------------------


class Behaviours(agent_pb2_grpc.AgentMetadataServiceServicer):
    """GetAgent does what its request's name says. ListAgents is the generated base class's own:
    a plain `def` that sets UNIMPLEMENTED and raises NotImplementedError."""

    def __init__(self) -> None:
        self.metadata: list[Any] = []  # what invocation_metadata() gave, call by call

    async def GetAgent(self, request: Any, context: Any) -> Any:
        match request.name:
            case "set-code-then-raise":
                context.set_code(grpc.StatusCode.NOT_FOUND)
                context.set_details("no such agent")
                raise LookupError("no such agent")
            case "set-code-and-answer-nothing":
                context.set_code(grpc.StatusCode.NOT_FOUND)
                context.set_details("no such agent")
                return None
            case "abort-then-swallow-it":
                with contextlib.suppress(Exception):  # a broad handler around an abort
                    await context.abort(grpc.StatusCode.NOT_FOUND, "no such agent")
                return adm.GetAgentResponse()
            case "trailing-then-abort":
                context.set_trailing_metadata((("retry-after", "5"),))
                await context.abort(grpc.StatusCode.UNAVAILABLE, "busy")
            case "trailing-then-raise":
                context.set_trailing_metadata((("retry-after", "5"),))
                raise RuntimeError("busy")
            case "metadata":
                self.metadata.append(context.invocation_metadata())
        return adm.GetAgentResponse(agent=adm.Agent(name=request.name))


class PlainDef(agent_pb2_grpc.AgentMetadataServiceServicer):
    """A servicer written with plain `def` methods, which grpc.aio runs in a thread."""

    def GetAgent(self, request: Any, context: Any) -> Any:
        return adm.GetAgentResponse(agent=adm.Agent(name="plain"))


class Servicing:
    """One servicer on one engine, set up as headwater.tasks.server sets up the service's own."""

    def __init__(self, engine: str, servicer: Any) -> None:
        self._engine, self.servicer = engine, servicer
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._started.wait(GATE_SECONDS)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = agent_pb2_grpc.AgentMetadataServiceStub(self.channel)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server: Any
        if self._engine == "native":
            handlers = front.Handlers()
            agent_pb2_grpc.add_AgentMetadataServiceServicer_to_server(self.servicer, handlers)
            server = front.FrontServer("127.0.0.1:0", 4 * 1024 * 1024, handlers)
            self.port = server.start()
        else:
            server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            agent_pb2_grpc.add_AgentMetadataServiceServicer_to_server(self.servicer, server)
            self.port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
        self._started.set()
        await self._stop.wait()
        await server.stop(None)

    def close(self) -> None:
        self.channel.close()
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(GATE_SECONDS)


@pytest.fixture
def behaviours(engine: str) -> Iterator[Servicing]:
    """`Behaviours` served on the engine."""
    servicing = Servicing(engine, Behaviours())
    yield servicing
    servicing.close()


def get_agent(servicing: Servicing, name: str, **kwargs: Any) -> Any:
    return servicing.stub.GetAgent(adm.GetAgentRequest(name=name), timeout=10, **kwargs)


NOT_FOUND_BEHAVIOURS = {
    # a code set with context.set_code() is what the client gets...
    "set-code-then-raise": "...when the handler then raises",
    "set-code-and-answer-nothing": "...when it returns None (no answer)",
    # abort sends the status at once, so a handler that catches it cannot turn it into OK
    "abort-then-swallow-it": "...when it catches the abort",
}


@pytest.mark.parametrize("behaviour", NOT_FOUND_BEHAVIOURS)
def test_a_status_the_handler_set_is_what_the_client_gets(
    behaviours, behaviour, request, engine
) -> None:
    error = rpc_error(get_agent, behaviours, behaviour)
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_an_unimplemented_method_of_a_generated_base_servicer_is_unimplemented(
    behaviours, request, engine
) -> None:
    error = rpc_error(behaviours.stub.ListAgents, adm.ListAgentsRequest(), timeout=10)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("behaviour", ["trailing-then-abort", "trailing-then-raise"])
def test_trailing_metadata_set_before_a_failure_is_sent(
    behaviours, behaviour, request, engine
) -> None:
    error = rpc_error(get_agent, behaviours, behaviour)
    assert ("retry-after", "5") in [tuple(item) for item in error.trailing_metadata()]


def test_servicers_see_the_clients_metadata(behaviours) -> None:
    metadata = [("x-flyte-project", "p"), ("x-trace-bin", b"\x00\x01")]
    get_agent(behaviours, "metadata", metadata=metadata)
    [seen] = [dict(pairs) for pairs in behaviours.servicer.metadata]
    assert seen["x-flyte-project"] == "p"
    assert seen["x-trace-bin"] == b"\x00\x01"
    assert seen["user-agent"].startswith("grpc-python/")


def test_metadata_items_have_key_and_value(behaviours, request, engine) -> None:
    get_agent(behaviours, "metadata", metadata=[("x-flyte-project", "p")])
    [seen] = behaviours.servicer.metadata
    assert ("x-flyte-project", "p") in [(item.key, item.value) for item in seen]


def test_a_servicer_with_plain_def_methods_answers(engine, request) -> None:
    servicing = Servicing(engine, PlainDef())
    try:
        answer = get_agent(servicing, "x")
    finally:
        servicing.close()
    assert answer.agent.name == "plain"
