"""Schemathesis over the published OpenAPI: no generated request, valid or not, gets a 5xx.

Every request is signed. Path parameters name existing resources half of the time, so the
fuzzer reaches past the 404s into real handlers (creating, replacing, refreshing, deleting).
Bounded: a few examples per operation and mode, on each catalog database (SQLite and
PostgreSQL); well under a minute each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from headwater.client.models import Component, PartitionedDefinition
from headwater.errors import NotFoundError
from headwater.server import convert
from headwater.server.state import Server
from tests.server.conftest import PREFIX, follow, ok

EXAMPLES = 12


def send(api: TestClient, case: Any) -> Any:
    """The case as a signed request through the in-process app."""
    kwargs: dict[str, Any] = {"params": case.query or None, "headers": dict(case.headers or {})}
    body = getattr(case, "body", None)
    if isinstance(body, bytes | str):
        kwargs["content"] = body
        kwargs["headers"].setdefault("content-type", case.media_type or "application/json")
    elif body is not None and type(body).__name__ != "NotSet":
        kwargs["json"] = body
    try:
        request = api.build_request(case.method, case.formatted_path, **kwargs)
    except (ValueError, TypeError, UnicodeError, httpx2.InvalidURL):
        assume(False)  # the client refuses to send it (a header that is not ASCII): no request
    return api.send(request)


def test_no_generated_request_gets_a_server_error(
    api: TestClient, client: TestClient, server: Server, objects: Callable[..., str]
) -> None:
    ok(api.post(f"{PREFIX}/data-services", json={"id": "sales"}), 201)
    ok(api.post(f"{PREFIX}/data-services/sales/dataflows", json={"id": "daily"}), 201)
    ok(api.put(f"{PREFIX}/data-services/sales/credentials/token", json={"secret": "s"}))
    ok(
        api.post(
            f"{PREFIX}/data-services/sales/connections", json={"id": "api", "credential": "token"}
        ),
        201,
    )
    code = objects({"a": ("1", 2)})
    components = f"{PREFIX}/data-services/sales/dataflows/daily/components"
    ok(api.post(components, json={"id": "orders", "partitioned": {"code": code}}), 201)
    run = ok(api.post(f"{components}/orders/refresh"), 202)
    follow(api, run["id"])
    known = {
        "data_service": "sales", "dataflow": "daily", "component": "orders", "connection": "api",
        "name": "token", "run_id": run["id"],
    }  # fmt: skip

    definition = Component(id="orders", partitioned=PartitionedDefinition(code=code))

    def restore() -> None:
        """Bring back what a fuzzed DELETE removed, so later cases reach real handlers."""
        now = server.clock()
        try:
            server.resources.data_service("sales")
        except NotFoundError:
            server.resources.create_data_service("sales", name="sales", description=None, now=now)
        try:
            server.resources.dataflow("sales", "daily")
        except NotFoundError:
            server.resources.create_dataflow("sales", "daily", name="d", description=None, now=now)
        if "sales/token" not in {c.name for c in server.vault.list()}:
            server.vault.put("sales/token", "s")
        try:
            server.resources.connection("sales", "api")
        except NotFoundError:
            server.resources.create_connection(
                "sales", "api", name="api", description=None, settings={}, credential="token",
                now=now,
            )  # fmt: skip
        try:
            server.definitions.component("sales", "daily", "orders")
        except NotFoundError:
            fields = convert.component_fields(definition)
            server.definitions.create_component("sales", "daily", "orders", fields, now)

    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    errors: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode), use_known=st.booleans())
            def check(case: Any, use_known: bool) -> None:
                restore()
                if use_known and case.path_parameters:
                    case.path_parameters = {
                        k: known.get(k, v) for k, v in case.path_parameters.items()
                    }
                response = send(api, case)
                if response.status_code >= 500:
                    errors.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: "
                        f"{response.text[:300]}"
                    )
                assert response.status_code < 500

            try:
                check()
            except AssertionError:
                pass  # collected above; go on with the other operations
            except Unsatisfiable:
                continue  # nothing to make invalid (an operation without parameters)
    assert errors == []
