"""The client against the real app: in-process through a transport over the started app (on
SQLite and PostgreSQL, reusing the server tests' fixtures), and over real sockets (uvicorn in a
thread, with or without TLS) for the network paths: proxies and CA bundles."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from headwater.client import Client
from headwater.server import ServerSettings, create_app
from headwater.server.state import Server
from headwater.settings import Settings
from headwater.vault import ServerKey
from tests.server import conftest as server_tests

# The server tests' fixtures, registered here too: the started app on each catalog (`client`),
# its Server, its settings, and `objects` (a listing connector's code).
client = server_tests.client
server = server_tests.server
server_settings = server_tests.server_settings
objects = server_tests.objects

CLIENT_ENV = (
    "HEADWATER_HOSTNAME", "HEADWATER_ACCESS_KEY_ID", "HEADWATER_SECRET_ACCESS_KEY",
    "HEADWATER_PROFILE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No client setting leaks in from the machine: each test sets what it needs."""
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEADWATER_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


class _Body(httpx.SyncByteStream):
    def __init__(self, answer: httpx2.Response) -> None:
        self._answer = answer

    def __iter__(self) -> Iterator[bytes]:
        yield from self._answer.iter_raw()

    def close(self) -> None:
        self._answer.close()


class AppTransport(httpx.BaseTransport):
    """Sends the client's (httpx) requests to the started app through starlette's TestClient
    (httpx2), streaming the answer back as the app writes it."""

    def __init__(self, app_client: TestClient) -> None:
        self._app_client = app_client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        inner = httpx2.Request(
            request.method, str(request.url), headers=request.headers.raw, content=request.read()
        )
        answer = self._app_client.send(inner, stream=True)
        return httpx.Response(
            answer.status_code, headers=answer.headers.raw, stream=_Body(answer), request=request
        )


@pytest.fixture
def connect(client: TestClient, server: Server) -> Iterator[Callable[..., Client]]:
    """A Client of the in-process app, signing with a new key of the given scopes (or with a
    wrong `secret_key`), through `transport` (default an AppTransport)."""
    made: list[Client] = []

    def make(
        *,
        read_only: bool = False,
        data_services: list[str] | None = None,
        secret_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> Client:
        key = server.keys.create(read_only=read_only, data_services=data_services)
        new = Client(
            "testserver",
            key.access_key,
            secret_key or key.secret_key.reveal(),
            scheme="http",
            transport=transport or AppTransport(client),
        )
        made.append(new)
        return new

    yield make
    for each in made:
        each.close()


@pytest.fixture
def hw(connect: Callable[..., Client]) -> Client:
    """A client whose key may do everything."""
    return connect()


@pytest.fixture
def flow(hw: Client) -> tuple[str, str]:
    """Data service 'sales' with dataflow 'daily'."""
    hw.create_data_service({"id": "sales"})
    hw.create_dataflow("sales", {"id": "daily"})
    return "sales", "daily"


GATED = """
import hw_client_gate as gate

def list_objects(context, metadata):
    for name in ("a", "b", "c"):
        yield {"name": name, "fingerprint": "1", "is_prefix": False}

def read_records(context, metadata):
    if metadata["name"] == "a":
        gate.started.set()
        assert gate.release.wait(60), "the test never released partition a"
    yield {"id": 1, "tag": metadata["name"]}
"""


@pytest.fixture
def gate() -> Iterator[types.SimpleNamespace]:
    """Events shared by the test and connector code running in the server's pool: reading
    partition "a" says it started, then waits to be released."""
    module = types.SimpleNamespace(started=threading.Event(), release=threading.Event())
    sys.modules["hw_client_gate"] = module  # type: ignore[assignment]
    yield module
    module.release.set()
    del sys.modules["hw_client_gate"]


# -- over real sockets --------------------------------------------------------------------------


def wait_for_port(port: int, seconds: float = 20.0) -> None:
    """Until something listens on 127.0.0.1:port (a bounded retry loop)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def serve(
    app: FastAPI, *, certfile: str | None = None, keyfile: str | None = None
) -> Iterator[int]:
    """Serve `app` with uvicorn in a thread on a free port of 127.0.0.1 (over TLS when given a
    certificate and its key); yields the port once the app has started."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=5,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not uv.started:  # a bounded wait for the app's startup to finish
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield port
    finally:
        uv.should_exit = True
        thread.join(30)
        sock.close()


def sqlite_settings(home: Path) -> ServerSettings:
    """Server settings on a SQLite catalog under `home` (the network tests need one only)."""
    workspace = Settings.from_env({}, home=home)
    return ServerSettings(
        workspace=workspace, server_key=ServerKey.from_text(ServerKey.generate()), workers=2
    )


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[int, Server, Callable[..., Client]]]:
    """The app served by uvicorn on 127.0.0.1 over plain HTTP, on SQLite: (port, its Server, a
    factory of clients with a fresh key that take Client's keyword arguments)."""
    app = create_app(sqlite_settings(tmp_path / "live"))
    with serve(app) as port:
        state: Server = app.state.headwater
        made: list[Client] = []

        def make(hostname: str | None = None, **options: object) -> Client:
            key = state.keys.create()
            new = Client(
                hostname or f"127.0.0.1:{port}",
                key.access_key,
                key.secret_key.reveal(),
                **options,  # type: ignore[arg-type]
            )
            made.append(new)
            return new

        yield port, state, make
        for each in made:
            each.close()


def write_credentials(path: Path, sections: dict[str, dict[str, str]]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path
