"""CRUD over every resource through the real app: data services, dataflows, connections,
credentials and components, with their 404, 409 and 422 answers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from headwater.client.models import (
    Component,
    Connection,
    CredentialSecret,
    Dataflow,
    DataService,
    PartitionedDefinition,
    PartitionedSettings,
    ProcessorDefinition,
    TaskDefinition,
)
from tests.server.conftest import EMPTY, PREFIX, ok

DS = f"{PREFIX}/data-services"
CODE = EMPTY


def body(model: object) -> dict[str, object]:
    return model.model_dump(mode="json", exclude_none=True)  # type: ignore[attr-defined]


def setup_dataflow(api: TestClient) -> str:
    ok(api.post(DS, json=body(DataService(id="sales", description="orders"))), 201)
    ok(api.post(f"{DS}/sales/dataflows", json=body(Dataflow(id="daily"))), 201)
    return f"{DS}/sales/dataflows/daily"


def test_data_services(api: TestClient) -> None:
    created = ok(api.post(DS, json=body(DataService(id="sales", description="orders"))), 201)
    assert (created["id"], created["name"], created["description"]) == ("sales", "sales", "orders")
    assert created["created_at"] == created["updated_at"]
    assert ok(api.get(DS)) == [created]
    assert ok(api.get(f"{DS}/sales")) == created
    conflict = api.post(DS, json={"id": "sales"})
    assert (conflict.status_code, conflict.json()["error"]) == (409, "conflict")
    assert "already exists" in conflict.json()["message"]

    changed = ok(api.put(f"{DS}/sales", json={"id": "sales", "name": "Sales"}))
    assert changed["name"] == "Sales" and changed["description"] is None
    assert ok(api.put(f"{DS}/sales", json={"id": "other"}), 422) is not None

    ok(api.delete(f"{DS}/sales"), 204)
    missing = api.get(f"{DS}/sales")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert api.delete(f"{DS}/sales").status_code == 404
    assert api.put(f"{DS}/sales", json={"id": "sales"}).status_code == 404


def test_invalid_requests_answer_422_with_details(api: TestClient) -> None:
    for bad in ({"id": "a__b"}, {"id": "1abc"}, {"id": "x" * 64}, {}, {"id": "ok", "name": ""}):
        answer = api.post(DS, json=bad)
        assert answer.status_code == 422, bad
        assert answer.json()["error"] == "invalid" and answer.json()["details"], bad
    assert (
        api.post(DS, content=b"{not json", headers={"content-type": "application/json"}).status_code
        == 422
    )
    assert api.get(f"{DS}/has%20space").status_code == 422
    nul = api.post(DS, json={"id": "nul", "description": "a\x00b"})
    assert nul.status_code == 422


def test_dataflows(api: TestClient) -> None:
    assert api.post(f"{DS}/nowhere/dataflows", json={"id": "daily"}).status_code == 404
    ok(api.post(DS, json={"id": "sales"}), 201)
    created = ok(api.post(f"{DS}/sales/dataflows", json={"id": "daily", "name": "Daily"}), 201)
    assert (created["data_service"], created["name"]) == ("sales", "Daily")
    assert api.post(f"{DS}/sales/dataflows", json={"id": "daily"}).status_code == 409
    assert ok(api.get(f"{DS}/sales/dataflows")) == [created]
    assert ok(api.get(f"{DS}/sales/dataflows/daily")) == created
    assert ok(api.put(f"{DS}/sales/dataflows/daily", json={"id": "daily"}))["name"] == "daily"
    assert api.get(f"{DS}/sales/dataflows/nightly").status_code == 404
    ok(api.delete(f"{DS}/sales/dataflows/daily"), 204)
    assert ok(api.get(f"{DS}/sales/dataflows")) == []


def test_credentials_and_connections(api: TestClient) -> None:
    ok(api.post(DS, json={"id": "sales"}), 201)
    creds = f"{DS}/sales/credentials"
    stored = ok(api.put(f"{creds}/wh", json=body(CredentialSecret(secret="s3cret"))))
    assert set(stored) == {"name", "created_at", "updated_at"} and stored["name"] == "wh"
    assert ok(api.put(f"{creds}/wh", json={"secret": "another"}))["name"] == "wh"
    assert [c["name"] for c in ok(api.get(creds))] == ["wh"]
    assert ok(api.get(f"{creds}/wh"))["name"] == "wh"
    assert api.get(f"{creds}/nope").status_code == 404
    assert api.put(f"{creds}/wh", json={"secret": ""}).status_code == 422
    assert api.put(f"{creds}/bad name", json={"secret": "x"}).status_code == 422

    conns = f"{DS}/sales/connections"
    connection = Connection(id="warehouse", settings={"host": "db"}, credential="wh")
    created = ok(api.post(conns, json=body(connection)), 201)
    assert (created["settings"], created["credential"]) == ({"host": "db"}, "wh")
    assert api.post(conns, json=body(connection)).status_code == 409
    missing_credential = api.post(conns, json={"id": "other", "credential": "nope"})
    assert missing_credential.status_code == 422 and "no credential" in missing_credential.text
    assert ok(api.get(conns)) == [created]
    replaced = ok(api.put(f"{conns}/warehouse", json={"id": "warehouse", "settings": {"a": 1}}))
    assert (replaced["settings"], replaced["credential"]) == ({"a": 1}, None)
    ok(api.put(f"{conns}/warehouse", json=body(connection)))
    in_use = api.delete(f"{creds}/wh")
    assert in_use.status_code == 409 and "warehouse" in in_use.json()["message"]
    ok(api.delete(f"{conns}/warehouse"), 204)
    assert api.get(f"{conns}/warehouse").status_code == 404
    ok(api.delete(f"{creds}/wh"), 204)
    assert api.delete(f"{creds}/wh").status_code == 404


def test_components(api: TestClient) -> None:
    flow = setup_dataflow(api)
    comps = f"{flow}/components"
    orders = Component(
        id="orders",
        partitioned=PartitionedDefinition(code=CODE, settings=PartitionedSettings(parser=None)),
    )
    created = ok(api.post(comps, json=body(orders)), 201)
    assert created["kind"] == "partitioned"
    assert created["catalog_name"] == "sales__daily__orders"
    assert created["partitioned"]["code"] == CODE
    assert Component.model_validate(created).partitioned == orders.partitioned
    assert api.post(comps, json=body(orders)).status_code == 409

    totals = Component(
        id="totals",
        processor=ProcessorDefinition(
            statement="return [{'n': len(INPUT_DATA)}]",
            output_schema={"n": "int"},
            processing="bulk",
            input="orders",
        ),
    )
    ok(api.post(comps, json=body(totals)), 201)
    graph = ok(api.get(f"{flow}/graph"))
    assert {n["id"]: n["kind"] for n in graph["nodes"]} == {
        "orders": "partitioned",
        "totals": "processor",
    }
    assert graph["edges"] == [{"source": "orders", "target": "totals", "kind": "input"}]
    assert [c["id"] for c in ok(api.get(comps))] == ["orders", "totals"]

    job = Component(id="job", task=TaskDefinition(code="x = 1\n", inputs={"a": 1}))
    assert ok(api.post(comps, json=body(job)), 201)["task"]["inputs"] == {"a": 1}

    # what cannot be created: a bad kind mix, bad code, a missing input, a cycle, bad settings
    bad = [
        {"id": "none"},
        {"id": "two", "partitioned": {"code": CODE}, "task": {"code": CODE}},
        {"id": "syntax", "partitioned": {"code": "def (:"}},
        {"id": "nowhere", "processor": {**body(totals)["processor"], "input": "nope"}},  # type: ignore[dict-item]
        {
            "id": "csv",
            "partitioned": {
                "code": CODE,
                "settings": {"parser": "jsonl", "parser_options": {"delimiter": ";"}},
            },
        },
        {"id": "types", "processor": {**body(totals)["processor"], "output_schema": {"n": "nope"}}},  # type: ignore[dict-item]
        {"id": "conn", "connection": "missing", "partitioned": {"code": CODE}},
        {"id": "a" * 60, "partitioned": {"code": CODE}},
    ]
    for item in bad:
        answer = api.post(comps, json=item)
        assert answer.status_code == 422, (item["id"], answer.text)
    cycle = body(totals)
    cycle["processor"]["input"] = "totals"  # type: ignore[index]
    assert api.put(f"{comps}/totals", json=cycle).status_code == 422

    # replace: same kind only
    changed = body(orders)
    changed["description"] = "all orders"
    assert ok(api.put(f"{comps}/orders", json=changed))["description"] == "all orders"
    kind_change = api.put(f"{comps}/orders", json={"id": "orders", "task": {"code": CODE}})
    assert kind_change.status_code == 409
    assert api.put(f"{comps}/orders", json={**changed, "id": "other"}).status_code == 422
    assert api.put(f"{comps}/ghost", json={**changed, "id": "ghost"}).status_code == 404

    # delete: not while another component reads it
    assert api.delete(f"{comps}/orders").status_code == 409
    ok(api.delete(f"{comps}/totals"), 204)
    ok(api.delete(f"{comps}/orders"), 204)
    assert api.get(f"{comps}/orders").status_code == 404
    assert [c["id"] for c in ok(api.get(comps))] == ["job"]


def test_deleting_a_data_service_deletes_what_it_holds(api: TestClient) -> None:
    flow = setup_dataflow(api)
    ok(api.put(f"{DS}/sales/credentials/wh", json={"secret": "x"}))
    ok(api.post(f"{DS}/sales/connections", json={"id": "c", "credential": "wh"}), 201)
    ok(
        api.post(
            f"{flow}/components",
            json={"id": "orders", "connection": "c", "partitioned": {"code": CODE}},
        ),
        201,
    )
    ok(api.delete(f"{DS}/sales"), 204)
    ok(api.post(DS, json={"id": "sales"}), 201)
    assert ok(api.get(f"{DS}/sales/dataflows")) == []
    assert ok(api.get(f"{DS}/sales/connections")) == []
    assert ok(api.get(f"{DS}/sales/credentials")) == []


def test_health_and_docs_need_no_signature(client: TestClient) -> None:
    assert ok(client.get("/health"))["status"] == "ok"
    assert client.get("/docs").status_code == 200
    spec = ok(client.get("/openapi.json"))
    assert "/api/v1/data-services/{data_service}/dataflows/{dataflow}/components" in spec["paths"]
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {
        "create_data_service",
        "refresh_component",
        "get_records",
        "follow_run_logs",
    } <= operations
