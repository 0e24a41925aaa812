"""A planted credential never shows: not in any API answer (errors and run logs included), not
in any log record (Headwater's, the server's, SQLAlchemy's statement log), yet the connector
gets it in `context(credentials)`."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import PREFIX, follow, ok

PLANTED = "PLANTED-s3cr3t-server-5e1f0c"
DS = f"{PREFIX}/data-services/sales"
COMPONENT = f"{DS}/dataflows/daily/components/orders"

DIGEST = hashlib.sha256(PLANTED.encode()).hexdigest()
CODE = f"""
import hashlib

def context(credentials):
    assert hashlib.sha256(credentials.encode()).hexdigest() == {DIGEST!r}
    return credentials

def list_objects(context, metadata):
    for name in ("a", "b"):
        yield {{"name": name, "fingerprint": "1", "is_prefix": False}}

def read_records(context, metadata):
    if metadata["name"] == "b":
        raise ValueError(f"the API refused token {{context}}")
    yield {{"id": 1}}
"""


def forms(secret: str) -> list[str]:
    return [secret, secret.encode().hex(), json.dumps(secret)[1:-1], secret[::-1]]


def test_a_planted_credential_never_shows(
    api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    shown: list[str] = []

    def keep(response: object) -> None:
        shown.append(response.text)  # type: ignore[attr-defined]

    keep(api.post(f"{PREFIX}/data-services", json={"id": "sales"}))
    keep(api.post(f"{DS}/dataflows", json={"id": "daily"}))
    keep(api.put(f"{DS}/credentials/token", json={"secret": PLANTED}))
    keep(api.put(f"{DS}/credentials/odd", json={"secret": [PLANTED]}))  # 422: no echo
    keep(api.put(f"{DS}/credentials/odd", json={"secret": PLANTED + "\x00"}))  # 422: no echo
    keep(api.put(f"{DS}/credentials/bad name", json={"secret": PLANTED}))
    keep(
        api.put(
            f"{DS}/credentials/token",
            content=b'{"secret": "' + PLANTED.encode() + b'"',
            headers={"content-type": "application/json"},
        )
    )
    assert [r for r in shown[3:] if '"error":"invalid"' not in r] == []
    keep(api.get(f"{DS}/credentials"))
    keep(api.get(f"{DS}/credentials/token"))
    keep(
        api.post(
            f"{DS}/connections",
            json={"id": "api", "credential": "token", "settings": {"host": "x"}},
        )
    )
    keep(
        api.post(
            COMPONENT.rsplit("/", 1)[0],
            json={"id": "orders", "connection": "api", "partitioned": {"code": CODE}},
        )
    )
    run = ok(api.post(f"{COMPONENT}/refresh"), 202)
    lines, ended = follow(api, run["id"])
    assert ended["status"] == "partial", (ended, lines)
    assert any("the API refused token ***" in line for line in lines), lines
    assert any("***" in f["message"] for f in ended["failures"])
    for path in ("", "/runs", "/partitions", "/records", "/schema"):
        keep(api.get(f"{COMPONENT}{path}"))
    keep(api.get(f"{PREFIX}/runs/{run['id']}"))
    keep(api.get(f"{PREFIX}/runs/{run['id']}/logs"))
    keep(api.get(f"{DS}/connections/api"))
    keep(api.get("/openapi.json"))

    everything = (
        "\n".join(shown)
        + "\n"
        + "\n".join(
            f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records
        )
    )
    for form in forms(PLANTED):
        assert form not in everything, f"the secret leaked: ...{everything[:300]}"
    assert "sqlalchemy.engine" in everything  # the statement log was captured, and is clean
