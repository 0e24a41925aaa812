"""Every API route needs a valid signature; read-only keys cannot write; keys limited to data
services see and touch only those."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient

from headwater.server.state import Server
from headwater.signing import sign
from tests.server.conftest import EMPTY, PREFIX, ok

DS = f"{PREFIX}/data-services"
CODE = EMPTY


def test_unsigned_tampered_replayed_and_revoked_requests_are_refused(
    client: TestClient, server: Server
) -> None:
    unsigned = client.get(DS)
    assert unsigned.status_code == 401
    assert unsigned.json()["error"] == "unauthenticated"
    assert unsigned.headers["www-authenticate"] == "HWR1-HMAC-SHA256"
    assert client.get(f"{DS}/x/dataflows").status_code == 401
    assert client.post(f"{PREFIX}/runs/1/cancel").status_code == 401

    key = server.keys.create()
    secret = key.secret_key.reveal()
    body = json.dumps({"id": "sales"}).encode()
    headers = {"content-type": "application/json"}
    signed = sign("POST", DS, body, key.access_key, secret)
    tampered = client.post(
        DS, content=body.replace(b"sales", b"admin"), headers={**headers, **signed}
    )
    assert tampered.status_code == 401 and "does not match" in tampered.json()["message"]
    other_path = client.post(f"{DS}?x=1", content=body, headers={**headers, **signed})
    assert other_path.status_code == 401

    fresh = sign("POST", DS, body, key.access_key, secret)
    assert client.post(DS, content=body, headers={**headers, **fresh}).status_code == 201
    replayed = client.post(DS, content=body, headers={**headers, **fresh})
    assert replayed.status_code == 401 and "replayed" in replayed.json()["message"]

    wrong = sign("GET", DS, None, key.access_key, "not-the-secret")
    assert client.get(DS, headers=wrong).status_code == 401
    server.keys.revoke(key.access_key)
    revoked = client.get(DS, headers=sign("GET", DS, None, key.access_key, secret))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]


def test_a_signed_query_string_is_checked(api: TestClient) -> None:
    ok(api.post(DS, json={"id": "sales"}), 201)
    ok(api.post(f"{DS}/sales/dataflows", json={"id": "f"}), 201)
    ok(
        api.post(
            f"{DS}/sales/dataflows/f/components", json={"id": "c", "partitioned": {"code": CODE}}
        ),
        201,
    )
    page = api.get(
        f"{DS}/sales/dataflows/f/components/c/records", params={"limit": 5, "partition": "a b/c"}
    )
    assert page.status_code == 404  # signed and verified with its query; the partition is absent


def test_read_only_keys_cannot_write(api: TestClient, signed: Callable[..., TestClient]) -> None:
    ok(api.post(DS, json={"id": "sales"}), 201)
    ok(api.post(f"{DS}/sales/dataflows", json={"id": "f"}), 201)
    ok(
        api.post(
            f"{DS}/sales/dataflows/f/components", json={"id": "c", "partitioned": {"code": CODE}}
        ),
        201,
    )
    reader = signed(read_only=True)
    assert [d["id"] for d in ok(reader.get(DS))] == ["sales"]
    ok(reader.get(f"{DS}/sales/dataflows/f/components/c"))
    writes = [
        reader.post(DS, json={"id": "other"}),
        reader.put(f"{DS}/sales", json={"id": "sales"}),
        reader.delete(f"{DS}/sales"),
        reader.post(f"{DS}/sales/dataflows", json={"id": "g"}),
        reader.put(f"{DS}/sales/credentials/x", json={"secret": "s"}),
        reader.post(f"{DS}/sales/connections", json={"id": "c"}),
        reader.delete(f"{DS}/sales/dataflows/f/components/c"),
        reader.post(f"{DS}/sales/dataflows/f/components/c/refresh"),
    ]
    for answer in writes:
        assert answer.status_code == 403, answer.request.url
        assert answer.json()["error"] == "forbidden" and "read-only" in answer.json()["message"]


def test_keys_limited_to_data_services_see_and_touch_only_those(
    api: TestClient, signed: Callable[..., TestClient]
) -> None:
    for name in ("sales", "hr"):
        ok(api.post(DS, json={"id": name}), 201)
        ok(api.post(f"{DS}/{name}/dataflows", json={"id": "f"}), 201)
        ok(
            api.post(
                f"{DS}/{name}/dataflows/f/components",
                json={"id": "c", "partitioned": {"code": CODE}},
            ),
            201,
        )
    ok(api.put(f"{DS}/hr/credentials/payroll", json={"secret": "s"}))
    run = ok(api.post(f"{DS}/hr/dataflows/f/components/c/refresh"), 202)

    sales = signed(data_services=["sales"])
    assert [d["id"] for d in ok(sales.get(DS))] == ["sales"]
    ok(sales.get(f"{DS}/sales/dataflows/f/components/c"))
    ok(sales.post(f"{DS}/sales/dataflows", json={"id": "g"}), 201)
    refused = [
        sales.get(f"{DS}/hr"),
        sales.get(f"{DS}/hr/dataflows"),
        sales.get(f"{DS}/hr/credentials"),
        sales.get(f"{DS}/nonexistent"),  # 403 before 404: what other services hold stays hidden
        sales.post(DS, json={"id": "hr2"}),
        sales.delete(f"{DS}/hr"),
        sales.get(f"{DS}/hr/dataflows/f/components/c/records"),
        sales.post(f"{DS}/hr/dataflows/f/components/c/refresh"),
        sales.get(f"{PREFIX}/runs/{run['id']}"),
        sales.get(f"{PREFIX}/runs/{run['id']}/logs"),
        sales.post(f"{PREFIX}/runs/{run['id']}/cancel"),
    ]
    for answer in refused:
        assert answer.status_code == 403, (answer.request.url, answer.text)
        assert "payroll" not in answer.text
