"""A component's stored data through the API: partitions, schema, records as JSON pages with a
cursor, and as an Arrow IPC stream for bulk reads."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import ARROW, EMPTY, PREFIX, follow, ok

COMPONENT = f"{PREFIX}/data-services/sales/dataflows/daily/components/orders"


@pytest.fixture
def stored(api: TestClient, objects: Callable[..., str]) -> str:
    """Component orders with partitions a (3 rows), b (2) and c (4), landed by a run."""
    ok(api.post(f"{PREFIX}/data-services", json={"id": "sales"}), 201)
    ok(api.post(f"{PREFIX}/data-services/sales/dataflows", json={"id": "daily"}), 201)
    code = objects({"a": ("1", 3), "b": ("1", 2), "c": ("1", 4)})
    ok(
        api.post(COMPONENT.rsplit("/", 1)[0], json={"id": "orders", "partitioned": {"code": code}}),
        201,
    )
    run = ok(api.post(f"{COMPONENT}/refresh"), 202)
    assert follow(api, run["id"])[1]["status"] == "succeeded"
    return COMPONENT


def test_partitions_and_schema(api: TestClient, stored: str) -> None:
    partitions = ok(api.get(f"{stored}/partitions"))
    assert [(p["name"], p["row_count"], p["files"]) for p in partitions] == [
        ("a", 3, 1), ("b", 2, 1), ("c", 4, 1)
    ]  # fmt: skip
    run = ok(api.get(f"{stored}/runs"))[0]
    assert {p["engine_run_id"] for p in partitions} == {run["engine_run_id"]}
    assert all(p["fingerprint"] == "1" and p["byte_size"] > 0 for p in partitions)
    schema = ok(api.get(f"{stored}/schema"))
    assert [(f["name"], f["type"]) for f in schema["fields"]] == [
        ("id", "int64"),
        ("tag", "string"),
    ]


def test_records_are_paged_with_a_cursor(api: TestClient, stored: str) -> None:
    seen: list[dict[str, object]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = ok(api.get(f"{stored}/records", params=params))
        seen += page["rows"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [(r["tag"], r["id"]) for r in seen] == [
        ("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("c", 0), ("c", 1), ("c", 2), ("c", 3)
    ]  # fmt: skip
    exact = ok(api.get(f"{stored}/records", params={"limit": 9}))
    assert exact["next_cursor"] is None and exact["rows"] == seen
    at_boundary = ok(api.get(f"{stored}/records", params={"limit": 3}))
    assert ok(api.get(f"{stored}/records", params={"cursor": at_boundary["next_cursor"]}))["rows"][
        0
    ] == {"id": 0, "tag": "b"}
    only_b = ok(api.get(f"{stored}/records", params={"partition": "b"}))
    assert only_b == {"rows": [{"id": 0, "tag": "b"}, {"id": 1, "tag": "b"}], "next_cursor": None}
    assert api.get(f"{stored}/records", params={"partition": "zz"}).status_code == 404
    for bad in ("not-a-cursor", "WyJhIiwgLTFd", "e30"):
        answer = api.get(f"{stored}/records", params={"cursor": bad})
        assert answer.status_code == 422, bad
    assert api.get(f"{stored}/records", params={"limit": 0}).status_code == 422


def test_records_stream_as_arrow_ipc(api: TestClient, stored: str) -> None:
    response = api.get(f"{stored}/records", headers={"Accept": ARROW})
    assert response.status_code == 200 and response.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.schema == pa.schema([("id", pa.int64()), ("tag", pa.string())])
    as_json = ok(api.get(f"{stored}/records", params={"limit": 100}))["rows"]
    assert table.to_pylist() == as_json
    one = pa.ipc.open_stream(
        api.get(f"{stored}/records", params={"partition": "c"}, headers={"Accept": ARROW}).content
    ).read_all()
    assert one.column("id").to_pylist() == [0, 1, 2, 3]


def test_a_component_without_data_reads_empty(api: TestClient, stored: str) -> None:
    empty = stored.replace("orders", "later")
    code = EMPTY
    ok(api.post(empty.rsplit("/", 1)[0], json={"id": "later", "partitioned": {"code": code}}), 201)
    assert ok(api.get(f"{empty}/partitions")) == []
    assert ok(api.get(f"{empty}/schema")) == {"fields": []}
    assert ok(api.get(f"{empty}/records")) == {"rows": [], "next_cursor": None}
    stream = api.get(f"{empty}/records", headers={"Accept": ARROW}).content
    assert pa.ipc.open_stream(stream).read_all().num_rows == 0


def test_values_json_cannot_hold_are_converted(api: TestClient, stored: str) -> None:
    code = (
        "import datetime, decimal\n"
        "def list_objects(context, metadata):\n"
        "    yield {'name': 'x', 'fingerprint': '1', 'is_prefix': False}\n"
        "def read_records(context, metadata):\n"
        "    yield {'when': datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),\n"
        "           'day': datetime.date(2026, 1, 2), 'raw': b'\\x00\\xff',\n"
        "           'ratio': float('nan'),\n"
        "           'price': decimal.Decimal('1.50')}\n"
    )
    odd = stored.replace("orders", "odd")
    ok(api.post(odd.rsplit("/", 1)[0], json={"id": "odd", "partitioned": {"code": code}}), 201)
    assert follow(api, ok(api.post(f"{odd}/refresh"), 202)["id"])[1]["status"] == "succeeded"
    row = ok(api.get(f"{odd}/records"))["rows"][0]
    assert row == {
        "when": "2026-01-02T03:04:05+00:00", "day": "2026-01-02", "raw": "AP8=", "ratio": None,
        "price": "1.50",
    }  # fmt: skip
    table = pa.ipc.open_stream(
        api.get(f"{odd}/records", headers={"Accept": ARROW}).content
    ).read_all()
    assert table.column("raw").to_pylist() == [b"\x00\xff"]
