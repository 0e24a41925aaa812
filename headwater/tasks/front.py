"""The connector service's compiled gRPC front end: libgrpc++ speaks HTTP/2, Python answers.

On grpcio a CreateTask + GetTask pair costs about 260 µs of server CPU in gRPC alone, several
times the connector code's own work; on this front end the whole pair costs about 160 µs
(bench/RESULTS.md, issue 5). So where `headwater.tasks._front` was built (it needs Debian's
`libgrpc++-dev` at install time) the service's calls go through it instead of `grpc.aio`:

- a C++ thread accepts calls, reads their request messages and queues them; it never runs
  Python;
- this module drains that queue on the service's event loop (an eventfd wakes it), finds each
  method's handler among the same servicers `grpc.aio` would serve (Flyte 1, Flyte 2, health),
  runs it as an asyncio task, and hands the answers and the final status back to C++.

The servicers are unchanged: they are registered here through the generated
`add_*_to_server` functions, and see a `ServicerContext` with what they use (abort, write,
metadata, time remaining). A call the client cancels, or whose deadline passes, cancels its
task.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple, NoReturn

import grpc

log = logging.getLogger("headwater.tasks")


def _built() -> ModuleType | None:
    try:
        from headwater.tasks import _front
    except ImportError:  # not built (no libgrpc++ at install time): the service runs on grpc.aio
        return None
    return _front


_front = _built()

AVAILABLE = _front is not None


@dataclass(frozen=True)
class _Details:
    """What a GenericRpcHandler looks a method up by (grpc.HandlerCallDetails)."""

    method: str
    invocation_metadata: tuple[Any, ...] = ()


class Handlers:
    """A stand-in for a grpc server that records what the generated `add_*_to_server`
    functions register, and finds the handler of a method."""

    def __init__(self) -> None:
        self._generic: list[Any] = []
        self._found: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[Any]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        pass  # the same handlers also come through add_generic_rpc_handlers

    def find(self, method: str) -> Any:
        if method not in self._found:
            self._found[method] = next(
                (
                    found
                    for generic in self._generic
                    if (found := generic.service(_Details(method))) is not None
                ),
                None,
            )
        return self._found[method]

    def streaming(self) -> list[str]:
        """The methods whose requests stream (their client may wait for an answer before it
        half-closes, so the front end hands each message over as it comes)."""
        return [
            method
            for generic in self._generic
            # grpc's generated handlers keep their methods, by full path, in this dict
            for method, handler in getattr(generic, "_method_handlers", {}).items()
            if handler.request_streaming
        ]


class _Aborted(Exception):
    """`context.abort()`: the status is sent; this ends the handler."""


class Metadatum(NamedTuple):
    """One item of the client's metadata (as grpc.aio gives it)."""

    key: str
    value: str | bytes


class ServicerContext:
    """The part of `grpc.aio.ServicerContext` the servicers use, with its semantics: `abort`
    sends the status at once; a code, details or trailing metadata set by the handler are
    what the client gets when it returns or raises."""

    def __init__(
        self,
        call: Any,
        metadata: list[tuple[str, str | bytes]],
        timeout: float | None,
        serialize: Callable[[Any], bytes],
    ) -> None:
        self._call = call
        self._drained: asyncio.Future[None] | None = None  # while send() waits for "drained"
        self._metadata = tuple(Metadatum(*item) for item in metadata)
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._serialize = serialize
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing: list[tuple[str, str | bytes]] = []
        self.cancelled_by_client = False
        self.finished = False

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> NoReturn:
        if trailing_metadata:
            self._trailing = list(trailing_metadata)
        self.finish(code, details)
        raise _Aborted(details)

    async def write(self, message: Any) -> None:
        await self.send(self._serialize(message))

    async def send(self, data: bytes) -> None:
        """Queue one message of a streamed answer; wait while the client is slow to read it
        (HTTP/2 flow control, as grpc.aio's write waits), so a long log is not held here."""
        if self._call.write(data):  # more than 1 MiB waits to be sent
            self._drained = asyncio.get_running_loop().create_future()
            self._call.notify_drained()
            await self._drained

    def drained(self) -> None:
        """The ("drained", call) event: a waiting send() goes on."""
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailing = list(metadata)

    def invocation_metadata(self) -> tuple[Metadatum, ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def peer(self) -> str:
        return str(self._call.peer)

    def cancelled(self) -> bool:
        return self.cancelled_by_client

    def done(self) -> bool:
        return self.finished or self.cancelled_by_client

    def finish(
        self,
        default: grpc.StatusCode,
        details: str = "",
        last: bytes | None = None,
    ) -> None:
        """Send the status (once): the code the handler set, else `default`."""
        if self.finished:
            return
        self.finished = True
        code = self._code or default
        try:
            self._call.finish(code.value[0], self._details or details, self._trailing, last)
        except (TypeError, ValueError) as exc:  # metadata gRPC cannot send
            log.error("a task call's status could not be sent: %s", exc)
            self._call.finish(grpc.StatusCode.INTERNAL.value[0], f"invalid status: {exc}", [])


class FrontServer:
    """The service on the compiled front end, driven by the running event loop."""

    def __init__(self, address: str, max_message_bytes: int, handlers: Handlers) -> None:
        assert _front is not None, "FrontServer needs headwater.tasks._front (AVAILABLE)"
        self._server = _front.Server(address, max_message_bytes, handlers.streaming())
        self._handlers = handlers
        self._tasks: dict[Any, tuple[asyncio.Task[None], ServicerContext]] = {}
        self._requests: dict[Any, asyncio.Queue[bytes | None]] = {}  # streaming calls'
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    def start(self) -> int:
        """Bind and serve; returns the port. Raises OSError when the address is taken."""
        self.port = self._server.start()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._server.fileno(), self._drain)
        return self.port

    async def stop(self, grace: float | None) -> None:
        if self._loop is None:
            return
        self._loop.remove_reader(self._server.fileno())
        self._loop = None
        # Shutting down waits up to `grace` for calls in flight: their tasks need the loop,
        # so the wait runs in a thread while this loop keeps serving them their answers.
        stopping = asyncio.get_running_loop().run_in_executor(
            None, self._server.shutdown, 0.0 if grace is None else grace
        )
        while not stopping.done():
            self._drain()
            await asyncio.wait([stopping], timeout=0.01)
        await stopping
        self._drain()
        for task, _ in list(self._tasks.values()):
            task.cancel()

    def _drain(self) -> None:
        for event in self._server.events():
            try:
                if event[0] == "call":
                    _, call, method, requests, metadata, timeout = event
                    self._start(call, method, requests, metadata, timeout)
                elif event[0] == "message":  # a streaming call's next request (None: the end)
                    queue = self._requests.get(event[1])
                    if queue is not None:
                        queue.put_nowait(event[2])
                elif event[0] == "drained":  # a streamed answer may go on
                    running = self._tasks.get(event[1])
                    if running is not None:
                        running[1].drained()
                else:  # ("done", call, True): cancelled, past its deadline, or failed
                    self._requests.pop(event[1], None)
                    running = self._tasks.pop(event[1], None)
                    if running is not None:
                        running[1].cancelled_by_client = True
                        running[0].cancel()
            except Exception:  # one bad event must not lose the rest of the batch
                log.exception("the task service could not start a call")

    def _start(
        self,
        call: Any,
        method: str,
        requests: list[bytes],
        metadata: list[tuple[str, str | bytes]],
        timeout: float | None,
    ) -> None:
        handler = self._handlers.find(method)
        if handler is None:
            call.finish(grpc.StatusCode.UNIMPLEMENTED.value[0], f"Method not found: {method}", [])
            return
        context = ServicerContext(call, metadata, timeout, handler.response_serializer)
        if handler.request_streaming:
            queue: asyncio.Queue[bytes | None] = asyncio.Queue()
            self._requests[call] = queue
            argument: Any = _stream(queue, handler.request_deserializer)
        else:
            argument = requests
        task = asyncio.get_running_loop().create_task(self._answer(handler, argument, context))
        self._tasks[call] = (task, context)

    async def _answer(self, handler: Any, argument: Any, context: ServicerContext) -> None:
        """Run one call's handler, send its answers and status, then forget the call."""
        call = context._call
        try:
            await _run(handler, argument, context)
        except _Aborted:
            pass  # (the status went with abort())
        except asyncio.CancelledError:
            # The client went away or its deadline passed (gRPC has already told it so), or
            # the server is stopping: either way this call ends here.
            context.finish(grpc.StatusCode.CANCELLED, "the call was cancelled")
            raise
        except Exception as exc:  # a servicer's bug: never the traceback on the wire
            if context._code is None:
                log.error("unexpected error serving a task call", exc_info=exc)
            context.finish(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc).__name__}: {exc}")
        finally:
            self._tasks.pop(call, None)
            self._requests.pop(call, None)


async def _run(handler: Any, argument: Any, context: ServicerContext) -> None:
    """Call the handler as grpc.aio would, and send what it answers."""
    serialize = handler.response_serializer
    if not handler.request_streaming:
        if len(argument) != 1:
            await context.abort(
                grpc.StatusCode.INTERNAL, f"expected one request message, got {len(argument)}"
            )
        argument = handler.request_deserializer(argument[0])
        behaviour = handler.unary_stream or handler.unary_unary
    else:
        behaviour = handler.stream_stream or handler.stream_unary
    if not (inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)):
        # A plain def blocks: it runs in a thread, as grpc.aio runs it.
        result = await asyncio.get_running_loop().run_in_executor(
            None, _sync_call, behaviour, argument, context, handler.response_streaming
        )
    else:
        result = behaviour(argument, context)
    if handler.response_streaming:
        if inspect.isasyncgen(result):
            async for message in result:
                await context.send(serialize(message))
        elif inspect.isawaitable(result):  # a coroutine that writes through context.write
            await result
        else:
            for message in result or ():  # a plain def's messages, gathered in its thread
                await context.send(serialize(message))
        context.finish(grpc.StatusCode.OK)
    else:
        answer = await result if inspect.isawaitable(result) else result
        if answer is None and context._code not in (None, grpc.StatusCode.OK):
            context.finish(grpc.StatusCode.OK)  # a failure it set, with no answer
        else:
            context.finish(grpc.StatusCode.OK, last=serialize(answer))  # one operation in C++


def _sync_call(behaviour: Any, argument: Any, context: Any, streaming: bool) -> Any:
    result = behaviour(argument, context)
    return list(result) if streaming and result is not None else result


async def _stream(
    queue: asyncio.Queue[bytes | None], deserialize: Callable[[bytes], Any]
) -> AsyncIterator[Any]:
    """A streaming call's requests, as the client sends them."""
    while (data := await queue.get()) is not None:
        yield deserialize(data)
