"""The connector service: one gRPC server speaking Flyte 1's and Flyte 2's connector protocols,
plus the standard gRPC health service.

Two engines serve the same servicers: the compiled front end (`headwater.tasks.front`, built
where libgrpc++ was there at install time; about five times cheaper per call) and grpcio's
`grpc.aio`. `engine="auto"` picks the first that is there.

`serve` runs it in the foreground until SIGINT or SIGTERM (the CLI's `serve-connectors`);
`ConnectorServer` runs it on a background thread, for tests and for embedding.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from headwater.errors import SettingsError
from headwater.tasks import flyte1, front
from headwater.tasks.connector import AsyncConnector
from headwater.tasks.registry import ConnectorRegistry
from headwater.tasks.service import TaskService

log = logging.getLogger("headwater.tasks")

DEFAULT_MAX_MESSAGE_MB = 64
MAX_MESSAGE_MB = 2047
DEFAULT_WORKERS = 16
ENGINES = ("auto", "native", "aio")


@dataclass(frozen=True)
class _Settings:
    host: str
    port: int
    max_message_mb: int
    max_workers: int
    engine: str = "auto"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port {self.port} is not between 0 and 65535")
        if not 1 <= self.max_message_mb <= MAX_MESSAGE_MB:
            raise SettingsError(
                f"max_message_mb must be between 1 and {MAX_MESSAGE_MB} (gRPC counts message "
                f"sizes in a 32-bit int), not {self.max_message_mb}"
            )
        if self.max_workers < 1:
            raise SettingsError(f"max_workers must be at least 1, not {self.max_workers}")
        if self.engine not in ENGINES:
            raise SettingsError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.engine == "native" and not front.AVAILABLE:
            raise SettingsError(
                "engine 'native' needs headwater.tasks._front, which was not built: install "
                "Debian's libgrpc++-dev and pkg-config, then `pip install -e .` again "
                "(or use engine 'aio')"
            )

    @property
    def native(self) -> bool:
        return self.engine == "native" or (self.engine == "auto" and front.AVAILABLE)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


@dataclass
class _Running:
    server: grpc.aio.Server | front.FrontServer
    health: health.aio.HealthServicer
    pool: ThreadPoolExecutor
    port: int

    async def stop(self, grace: float | None) -> None:
        # Health turns NOT_SERVING first, so a load balancer stops routing here.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        # A sync connector still blocked in a thread keeps it; nothing waits for it here.
        self.pool.shutdown(wait=False, cancel_futures=True)


async def _start(registry: ConnectorRegistry, settings: _Settings) -> _Running:
    limit = settings.max_message_mb * 1024 * 1024
    server: Any
    if settings.native:  # the servicers register with a recorder the front end asks
        server = front.Handlers()
    else:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # gRPC sets SO_REUSEPORT by default: a second server on a busy port would
                # share it.
                ("grpc.so_reuseport", 0),
            ]
        )
    pool = ThreadPoolExecutor(settings.max_workers, thread_name_prefix="headwater-task")
    tasks = TaskService(registry, pool)
    names = flyte1.add_to_server(tasks, server)
    try:
        from headwater.tasks import flyte2
    except ImportError as exc:  # flyteidl2 is optional: Flyte 1 alone still works
        log.warning("Flyte 2's connector protocol is off: %s (pip install flyteidl2)", exc)
    else:
        names += flyte2.add_to_server(tasks, server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in ["", *names]:
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    try:
        if isinstance(server, front.Handlers):
            server = front.FrontServer(settings.address, limit, server)
            port = server.start()
        else:
            port = server.add_insecure_port(settings.address)
            await server.start()
    except (RuntimeError, OSError) as exc:
        pool.shutdown(wait=False)
        raise SettingsError(f"cannot listen on {settings.address}: {exc}") from None
    engine = "native" if isinstance(server, front.FrontServer) else "grpc.aio"
    _log_started(registry, settings.host, port, names, engine)
    return _Running(server, checker, pool, port)


def _log_started(
    registry: ConnectorRegistry, host: str, port: int, services: list[str], engine: str
) -> None:
    log.info("serving %d task connector(s) on %s:%d (%s)", len(registry), host, port, engine)
    for connector in registry:
        name, version = connector.task_category
        kind = "async" if isinstance(connector, AsyncConnector) else "sync"
        log.info("  %s: task type %r v%d (%s)", connector.name, name, version, kind)
    log.info("  services: %s", ", ".join(services))
    if not len(registry):
        log.warning("no task connectors are registered: every task call will be NOT_FOUND")


def serve(
    registry: ConnectorRegistry,
    port: int = 8000,
    host: str = "127.0.0.1",
    *,
    max_message_mb: int = DEFAULT_MAX_MESSAGE_MB,
    max_workers: int = DEFAULT_WORKERS,
    grace_seconds: float = 10.0,
    engine: str = "auto",
) -> None:
    """Serve the registry's connectors until SIGINT or SIGTERM, then stop gracefully.

    Args:
        registry: the connectors to serve.
        port: the TCP port (8000, like `pyflyte serve connector`; 0 picks a free one).
        host: the address to bind; "0.0.0.0" or "::" to accept remote clients (as in Kubernetes).
        max_message_mb: the largest message received or sent, in MiB (gRPC's default is 4).
        max_workers: threads for connector methods written as plain `def`.
        grace_seconds: how long calls in flight may finish after the signal.
        engine: "native" (the compiled front end), "aio" (grpcio) or "auto" (native where
            it was built).

    Raises:
        SettingsError: a bad setting, or the address cannot be bound.

    Example:
        serve(load_connectors(["connectors/query.py"]), port=8000, host="0.0.0.0")
    """
    settings = _Settings(host, port, max_message_mb, max_workers, engine)
    asyncio.run(_serve_until_signalled(registry, settings, grace_seconds))


async def _serve_until_signalled(
    registry: ConnectorRegistry, settings: _Settings, grace: float
) -> None:
    running = await _start(registry, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("stopping: calls in flight have %.1f s to finish", grace)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await running.stop(grace)
    log.info("stopped")


class ConnectorServer:
    """The connector service on a background thread, for tests and embedding.

    Example:
        with ConnectorServer(registry) as server:
            channel = grpc.insecure_channel(server.target)
    """

    def __init__(
        self,
        registry: ConnectorRegistry,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        max_message_mb: int = DEFAULT_MAX_MESSAGE_MB,
        max_workers: int = DEFAULT_WORKERS,
        engine: str = "auto",
    ) -> None:
        self._registry = registry
        self._settings = _Settings(host, port, max_message_mb, max_workers, engine)
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._grace: float | None = None
        self.port = 0

    @property
    def target(self) -> str:
        """The address a client dials."""
        return f"{self._settings.host}:{self.port}"

    @property
    def engine(self) -> str:
        """Which engine serves: "native" (the compiled front end) or "aio" (grpcio)."""
        return "native" if self._settings.native else "aio"

    def start(self) -> Self:
        """Start serving; return once the port is bound.

        Raises:
            SettingsError: the address cannot be bound.
            RuntimeError: it is serving already (stop() it first).
        """
        if self._thread is not None:
            raise RuntimeError(f"the connector service is serving on {self.target} already")
        self._started.clear()  # (a server stopped before may start again)
        self._error = None
        self._thread = threading.Thread(target=self._run, name="headwater-tasks", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop serving: calls in flight get `grace` seconds, then are cancelled."""
        if self._thread is None or self._loop is None or self._stop is None:
            return
        self._grace = grace
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        try:
            running = await _start(self._registry, self._settings)
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.port = running.port
        self._started.set()
        await self._stop.wait()
        await running.stop(self._grace)
