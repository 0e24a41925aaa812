"""Every CRUD method of the client against the real app (SQLite and PostgreSQL), taking and
returning typed models built as in the seed's examples, with typed errors carrying the
server's status and message."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pydantic
import pytest
from fastapi.testclient import TestClient

from headwater.client import (
    APIError,
    Client,
    ClientError,
    Component,
    ConflictError,
    Connection,
    CsvOptions,
    Dataflow,
    DataService,
    ForbiddenError,
    NotFoundError,
    PartitionedDefinition,
    PartitionedSettings,
    ProcessorDefinition,
    RetrySettings,
    ServerError,
    UnauthorizedError,
    ValidationError,
)
from headwater.errors import HeadwaterError
from headwater.server import ServerSettings, create_app
from headwater.server.state import Server
from headwater.vault import ServerKey
from tests.client.conftest import AppTransport
from tests.server.conftest import EMPTY


def test_data_services_crud_as_in_the_seed(hw: Client) -> None:
    made = hw.create_data_service(
        DataService(id="demos", name="demos", description="test data service")
    )
    assert (made.id, made.name, made.description) == ("demos", "demos", "test data service")
    assert made.created_at is not None
    assert hw.create_data_service({"id": "other"}).name == "other"  # a mapping is coerced
    assert [d.id for d in hw.list_data_services()] == ["demos", "other"]
    assert hw.get_data_service("demos") == made
    changed = hw.update_data_service(DataService(id="demos", name="Demos", description="v2"))
    assert (changed.name, changed.description) == ("Demos", "v2")
    assert hw.get_data_service("demos").description == "v2"
    hw.delete_data_service("other")
    assert [d.id for d in hw.list_data_services()] == ["demos"]

    with pytest.raises(ConflictError) as duplicate:
        hw.create_data_service(DataService(id="demos"))
    assert duplicate.value.status == 409 and duplicate.value.code == "conflict"
    assert duplicate.value.message == "data service 'demos' already exists"
    with pytest.raises(NotFoundError) as missing:
        hw.get_data_service("other")
    assert (missing.value.status, missing.value.message) == (404, "no data service 'other'")
    assert missing.value.method == "GET" and missing.value.path.endswith("/data-services/other")
    assert "no data service 'other'" in str(missing.value)
    assert isinstance(missing.value, APIError | ClientError | HeadwaterError)
    with pytest.raises(NotFoundError, match="no data service 'other'"):
        hw.update_data_service(DataService(id="other"))
    with pytest.raises(NotFoundError):
        hw.delete_data_service("other")


def test_dataflows_crud(hw: Client) -> None:
    hw.create_data_service(DataService(id="sales"))
    daily = hw.create_dataflow("sales", Dataflow(id="daily", description="the nightly load"))
    assert (daily.id, daily.data_service, daily.description) == (
        "daily",
        "sales",
        "the nightly load",
    )
    hw.create_dataflow("sales", {"id": "hourly"})
    assert [f.id for f in hw.list_dataflows("sales")] == ["daily", "hourly"]
    assert hw.get_dataflow("sales", "daily") == daily
    assert hw.update_dataflow("sales", Dataflow(id="daily", name="Daily")).name == "Daily"
    hw.delete_dataflow("sales", "hourly")
    assert [f.id for f in hw.list_dataflows("sales")] == ["daily"]
    with pytest.raises(NotFoundError, match="no dataflow 'hourly' in data service 'sales'"):
        hw.get_dataflow("sales", "hourly")
    with pytest.raises(ConflictError, match="dataflow 'daily' already exists"):
        hw.create_dataflow("sales", Dataflow(id="daily"))
    with pytest.raises(NotFoundError, match="no data service 'nowhere'"):
        hw.list_dataflows("nowhere")


def test_connections_and_credentials_crud(hw: Client, flow: tuple[str, str]) -> None:
    stored = hw.put_credential("sales", "warehouse", "hunter2-planted")
    assert stored.name == "warehouse" and not hasattr(stored, "secret")
    assert "hunter2" not in stored.model_dump_json()
    assert [c.name for c in hw.list_credentials("sales")] == ["warehouse"]
    assert hw.get_credential("sales", "warehouse").created_at == stored.created_at
    replaced = hw.put_credential("sales", "warehouse", "another-secret")
    assert replaced.updated_at >= stored.updated_at

    made = hw.create_connection(
        "sales",
        Connection(id="wh", settings={"host": "db.internal", "port": 5432}, credential="warehouse"),
    )
    assert (made.credential, made.settings, made.data_service) == (
        "warehouse", {"host": "db.internal", "port": 5432}, "sales"
    )  # fmt: skip
    assert [c.id for c in hw.list_connections("sales")] == ["wh"]
    assert hw.get_connection("sales", "wh") == made
    changed = hw.update_connection("sales", Connection(id="wh", settings={"host": "db2"}))
    assert (changed.settings, changed.credential) == ({"host": "db2"}, None)
    hw.update_connection("sales", {"id": "wh", "credential": "warehouse"})

    with pytest.raises(ConflictError, match="used by connection"):
        hw.delete_credential("sales", "warehouse")
    with pytest.raises(ValidationError) as invalid:
        hw.create_connection("sales", Connection(id="bad", credential="nope"))
    assert invalid.value.status == 422 and "has no credential 'nope'" in invalid.value.message
    hw.delete_connection("sales", "wh")
    with pytest.raises(NotFoundError, match="no connection 'wh'"):
        hw.get_connection("sales", "wh")
    hw.delete_credential("sales", "warehouse")
    assert hw.list_credentials("sales") == []
    with pytest.raises(NotFoundError, match="has no credential 'warehouse'"):
        hw.get_credential("sales", "warehouse")


def test_components_crud_with_nested_models(hw: Client, flow: tuple[str, str]) -> None:
    orders = Component(
        id="orders",
        description="orders from the shop",
        partitioned=PartitionedDefinition(
            code=EMPTY,
            settings=PartitionedSettings(
                parser="csv",
                parser_options=CsvOptions(delimiter=";"),
                retry=RetrySettings(attempts=2),
                concurrency=2,
            ),
        ),
    )
    made = hw.create_component(*flow, orders)
    assert made.kind == "partitioned" and made.partitioned is not None
    assert made.partitioned.settings.retry.attempts == 2
    assert made.partitioned.settings.parser_options.delimiter == ";"
    assert made.catalog_name == "sales__daily__orders" and made.dataflow == "daily"
    totals = Component(
        id="totals",
        processor=ProcessorDefinition(
            statement="return [{'n': len(INPUT_DATA)}]",
            output_schema={"n": "int"},
            processing="bulk",
            input="orders",
        ),
    )
    hw.create_component(*flow, totals)
    assert [c.id for c in hw.list_components(*flow)] == ["orders", "totals"]
    assert hw.get_component(*flow, "orders") == made
    graph = hw.get_dataflow_graph(*flow)
    assert sorted((n.id, n.kind) for n in graph.nodes) == [
        ("orders", "partitioned"), ("totals", "processor")
    ]  # fmt: skip
    assert [(e.source, e.target) for e in graph.edges] == [("orders", "totals")]

    code = EMPTY.replace("return []", "return list()", 1)
    updated = hw.update_component(
        *flow, Component(id="orders", partitioned=PartitionedDefinition(code=code))
    )
    assert updated.partitioned is not None and updated.partitioned.code == code
    assert updated.partitioned.settings.parser is None  # a PUT replaces the whole definition
    with pytest.raises(ConflictError, match="is the input of totals"):
        hw.delete_component(*flow, "orders")  # totals reads it
    with pytest.raises(ConflictError):
        hw.update_component(*flow, totals.model_copy(update={"id": "orders"}))  # kind change
    with pytest.raises(ValidationError) as syntax:
        hw.create_component(*flow, {"id": "bad", "partitioned": {"code": "def broken(:"}})
    assert syntax.value.status == 422 and syntax.value.code == "invalid"
    hw.delete_component(*flow, "totals")
    hw.delete_component(*flow, "orders")
    assert hw.list_components(*flow) == []
    with pytest.raises(NotFoundError):
        hw.get_component(*flow, "orders")


def test_invalid_requests_carry_the_servers_details(hw: Client, flow: tuple[str, str]) -> None:
    with pytest.raises(ValidationError) as invalid:
        hw.get_records(*flow, "orders", limit=0)
    error = invalid.value
    assert error.status == 422 and error.message.startswith("the request is not valid")
    assert [d.loc for d in error.details] == [["query", "limit"]]
    with pytest.raises(pydantic.ValidationError):  # checked before anything is sent
        DataService(id="not an id")


def test_keys_are_refused_with_typed_errors(
    hw: Client, connect: Callable[..., Client], flow: tuple[str, str]
) -> None:
    reader = connect(read_only=True)
    assert [d.id for d in reader.list_data_services()] == ["sales"]
    with pytest.raises(ForbiddenError) as forbidden:
        reader.create_data_service(DataService(id="mine"))
    assert forbidden.value.status == 403 and forbidden.value.code == "forbidden"
    limited = connect(data_services=["other"])
    assert limited.list_data_services() == []
    with pytest.raises(ForbiddenError):
        limited.get_data_service("sales")

    wrong = connect(secret_key="not-the-secret-key-" + "x" * 20)
    with pytest.raises(UnauthorizedError) as refused:
        wrong.list_data_services()
    assert refused.value.status == 401 and "signature" in refused.value.message
    assert "not-the-secret-key" not in str(refused.value)


def test_a_server_fault_is_a_server_error_with_its_message(
    server_settings: ServerSettings, server: Server
) -> None:
    key = server.keys.create()
    other = dataclasses.replace(
        server_settings, server_key=ServerKey.from_text(ServerKey.generate())
    )
    with TestClient(create_app(other)) as wrong_key:
        hw = Client(
            "testserver",
            key.access_key,
            key.secret_key.reveal(),
            scheme="http",
            transport=AppTransport(wrong_key),
        )
        with hw, pytest.raises(ServerError) as fault:
            hw.list_data_services()
    assert fault.value.status == 503 and fault.value.code == "unavailable"
    assert "HEADWATER_SECRET_KEY" in fault.value.message
