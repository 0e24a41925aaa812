"""Definitions applied to the real app: in-process (on SQLite and PostgreSQL) through the
client's fixtures, with a transport that records every request the client sends, and over a
real uvicorn for the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from headwater.client import Client
from headwater.client.definitions import (
    Connection,
    Credential,
    Dataflow,
    DataService,
    FilesTarget,
    PartitionedDefinition,
    PartitionedSettings,
    ProcessorDefinition,
    ReadConnector,
    Schedule,
    Transform,
    WriteConnector,
)
from headwater.server import create_app
from tests.client import conftest as client_tests

# The client tests' fixtures: the started app on each catalog, clients of it, a live server,
# and no client setting leaking in from the machine.
client = client_tests.client
server = client_tests.server
server_settings = client_tests.server_settings
connect = client_tests.connect
hw = client_tests.hw
live = client_tests.live
clean_env = client_tests.clean_env

SOURCE = """\
def list_objects(context, metadata):
    for name in ("a", "b"):
        yield {"name": name, "fingerprint": "1", "is_prefix": False}


def read_records(context, metadata):
    yield {"id": 1, "total": 250, "tag": metadata["name"]}
"""
PYTHON_TRANSFORM = """\
def transform(orders, customers):
    return orders
"""
WRITE = """\
def write(data_provider, output_directory):
    for partition in data_provider:
        print(partition)
"""


class Recording(httpx.BaseTransport):
    """Passes every request on to the app, noting its method and path."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        return self.inner.handle_request(request)

    def writes(self) -> list[tuple[str, str]]:
        """The requests that change something (a credential check changes nothing)."""
        return [
            (m, p)
            for m, p in self.calls
            if m != "GET" and not (m == "POST" and p.endswith("/verify"))
        ]


@pytest.fixture
def recorded(connect: Callable[..., Client], client: TestClient) -> tuple[Client, Recording]:
    """A client of the app (every scope) whose requests are recorded."""
    recording = Recording(client_tests.AppTransport(client))
    return connect(transport=recording), recording


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Client]:
    """A client of another app, on an empty SQLite catalog (to apply exported files to)."""
    app = create_app(client_tests.sqlite_settings(tmp_path / "fresh"))
    with TestClient(app) as started:
        key = app.state.headwater.keys.create()
        transport = client_tests.AppTransport(started)
        secret = key.secret_key.reveal()
        with Client("fresh", key.access_key, secret, scheme="http", transport=transport) as made:
            yield made


def snapshot(hw: Client, ds: str) -> dict[str, Any]:
    """All the server holds of a data service, timestamps included (so a rewrite shows)."""
    state: dict[str, Any] = {"data_service": hw.get_data_service(ds).model_dump()}
    state["credentials"] = [c.model_dump() for c in hw.list_credentials(ds)]
    state["connections"] = [c.model_dump() for c in hw.list_connections(ds)]
    state["dataflows"] = {}
    for dataflow in hw.list_dataflows(ds):
        state["dataflows"][dataflow.id] = {
            "dataflow": dataflow.model_dump(),
            "components": [c.model_dump() for c in hw.list_components(ds, dataflow.id)],
        }
    return state


def sales(**changes: Any) -> DataService:
    """Data service `sales`: a credential, a connection, and dataflow `daily` of every kind of
    component (partitioned, processor, SQL and Python transforms, write connector)."""
    components = [
        ReadConnector(
            id="orders",
            description="orders from the shop",
            connection="warehouse",
            partitioned=PartitionedDefinition(
                code=SOURCE, settings=PartitionedSettings(parser=None, concurrency=2)
            ),
            schedule=Schedule(cron="0 6 * * mon-fri", timezone="Europe/Paris"),
        ),
        ReadConnector(id="customers", partitioned=PartitionedDefinition(code=SOURCE)),
        Transform(id="big", inputs=["orders"], sql="SELECT * FROM orders WHERE total > 100"),
        Transform(
            id="joined", name="Joined", inputs=["orders", "customers"], python=PYTHON_TRANSFORM
        ),
        ReadConnector(
            id="counted",
            processor=ProcessorDefinition(
                statement="return [{'n': len(INPUT_DATA)}]",
                output_schema={"n": "int"},
                processing="bulk",
                input="big",
            ),
        ),
        WriteConnector(id="out", input="big", files=FilesTarget(path="memory://out")),
    ]
    values: dict[str, Any] = {
        "id": "sales",
        "description": "orders and invoices",
        "credentials": [Credential(name="wh", env="HW_TEST_WH")],
        "connections": [
            Connection(id="warehouse", settings={"host": "db.internal"}, credential="wh")
        ],
        "dataflows": [Dataflow(id="daily", components=components)],
    }
    values.update(changes)
    return DataService(**values)


def daily(ds: DataService) -> Dataflow:
    return next(d for d in ds.dataflows if d.id == "daily")
