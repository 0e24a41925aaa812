"""The real app in-process (starlette's TestClient, which runs its lifespan), on SQLite and
PostgreSQL catalogs, called with really signed requests (the TestClient is built on httpx2,
hence an httpx2 signer)."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import types
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from headwater.server import ServerSettings, create_app
from headwater.server.state import Server
from headwater.settings import Settings
from headwater.signing import sign
from headwater.vault import ServerKey

PREFIX = "/api/v1"
FLOW = f"{PREFIX}/data-services/sales/dataflows/daily"
COMPONENTS = f"{FLOW}/components"
EMPTY = (  # a partitioned connector that lists nothing
    "def list_objects(context, metadata):\n    return []\n\n"
    "def read_records(context, metadata):\n    return []\n"
)
ARROW = "application/vnd.apache.arrow.stream"

# A partitioned connector: objects come from objects.json beside the store (the test rewrites
# it); each object's rows are id 0..n-1 tagged with the object's name.
LISTING = """
import json, pathlib
OBJECTS = pathlib.Path({path!r})

def list_objects(context, metadata):
    for name, (fingerprint, rows) in json.loads(OBJECTS.read_text()).items():
        yield {{"name": name, "fingerprint": fingerprint, "is_prefix": False, "rows": rows}}

def read_records(context, metadata):
    for i in range(metadata["rows"]):
        yield {{"id": i, "tag": metadata["name"]}}
"""


class Signer(httpx2.Auth):
    """Signs every request with an access key, as the client will."""

    requires_request_body = True

    def __init__(self, access_key: str, secret_key: str) -> None:
        self.access_key = access_key
        self.secret_key = secret_key

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            sign(request.method, target, request.content, self.access_key, self.secret_key)
        )
        yield request


@pytest.fixture
def server_settings(catalog_url: str, tmp_path: Path) -> ServerSettings:
    workspace = Settings(home=tmp_path, catalog_url=catalog_url, store_url=str(tmp_path / "store"))
    return ServerSettings(
        workspace=workspace, server_key=ServerKey.from_text(ServerKey.generate()), workers=2
    )


@pytest.fixture
def client(server_settings: ServerSettings) -> Iterator[TestClient]:
    """The app, started; unsigned. `signed(...)` gives signed ones."""
    with TestClient(create_app(server_settings)) as started:
        yield started


@pytest.fixture
def server(client: TestClient) -> Server:
    found: Server = client.app.state.headwater  # type: ignore[attr-defined]
    return found


@pytest.fixture
def signed(client: TestClient, server: Server) -> Callable[..., TestClient]:
    """A client signing with a new access key of the given scopes (same app)."""
    made: list[TestClient] = []

    def make(*, read_only: bool = False, data_services: list[str] | None = None) -> TestClient:
        new = server.keys.create(read_only=read_only, data_services=data_services)
        other = TestClient(client.app)
        other.auth = Signer(new.access_key, new.secret_key.reveal())
        made.append(other)
        return other

    return make


@pytest.fixture
def api(signed: Callable[..., TestClient]) -> TestClient:
    """A client signing with a key that may do everything."""
    return signed()


@pytest.fixture
def objects(tmp_path: Path) -> Callable[[dict[str, tuple[str, int]]], str]:
    """Set the listed objects; returns the connector's code (as text)."""
    path = tmp_path / "objects.json"

    def set_objects(spec: dict[str, tuple[str, int]]) -> str:
        path.write_text(json.dumps(spec))
        return LISTING.format(path=str(path))

    return set_objects


@pytest.fixture
def flow(api: TestClient) -> str:
    """Data service 'sales' with dataflow 'daily'; the dataflow's path."""
    ok(api.post(f"{PREFIX}/data-services", json={"id": "sales"}), 201)
    ok(api.post(f"{PREFIX}/data-services/sales/dataflows", json={"id": "daily"}), 201)
    return FLOW


@contextlib.contextmanager
def shared_events(module: str, *names: str) -> Iterator[types.SimpleNamespace]:
    """A module that code running in the server's pool imports (`import <module> as gate`),
    holding one threading.Event per name, for it and the test to signal each other. Every
    event is set at the end, so nothing is left blocked."""
    events = types.SimpleNamespace(**{name: threading.Event() for name in names})
    sys.modules[module] = events  # type: ignore[assignment]
    try:
        yield events
    finally:
        for event in vars(events).values():
            event.set()
        del sys.modules[module]


def ok(response: httpx2.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def events(response: httpx2.Response) -> list[tuple[str, dict[str, Any]]]:
    """The server-sent events of a finished stream, as (event, data)."""
    found = []
    for block in response.text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def follow(api: TestClient, run_id: int) -> tuple[list[str], dict[str, Any]]:
    """Follow a run's log to its end: the log messages, and the finished run."""
    response = api.get(f"{PREFIX}/runs/{run_id}/logs")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    found = events(response)
    assert found[-1][0] == "end", found
    return [data["message"] for kind, data in found if kind == "log"], found[-1][1]
