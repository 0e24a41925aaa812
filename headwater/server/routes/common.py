"""What the route modules share: path parameters, documented error answers, run answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from headwater.catalog.server_runs import ServerRunRecord
from headwater.client.models import CREDENTIAL_PATTERN, ID_PATTERN, ErrorResponse, Run
from headwater.errors import NotFoundError
from headwater.server import convert
from headwater.server.state import Server

PREFIX = "/api/v1"

DataServiceId = Annotated[str, Path(pattern=ID_PATTERN, max_length=63)]
DataflowId = Annotated[str, Path(pattern=ID_PATTERN, max_length=63)]
ComponentId = Annotated[str, Path(pattern=ID_PATTERN, max_length=63)]
ConnectionId = Annotated[str, Path(pattern=ID_PATTERN, max_length=63)]
CredentialName = Annotated[str, Path(pattern=CREDENTIAL_PATTERN, max_length=100)]
RunId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("The request is not signed, or its signature is not valid."),
    403: _error("The access key may not do this (read-only, or limited to other data services)."),
    404: _error("A resource named in the path does not exist."),
    409: _error("The request conflicts with what exists (a duplicate, a run in progress)."),
    422: _error("The request is not valid; `details` says where."),
    503: _error("The server cannot use its catalog, store or key (the operator's to fix)."),
}


def same_id(path_id: str, body_id: str, what: str) -> None:
    """A body naming another resource than its path is refused (422)."""
    if path_id != body_id:
        from headwater.catalog.resources import InvalidReferenceError

        raise InvalidReferenceError(
            f"the {what} id in the body ('{body_id}') differs from the one in the path "
            f"('{path_id}'); ids cannot be changed: create a new {what} instead"
        )


def run_model(server: Server, record: ServerRunRecord) -> Run:
    """A server run with its engine run's counts and failures, once there is one."""
    engine, failures = None, []
    if record.run_id is not None:
        catalog = server.workspace.catalog
        try:
            engine = catalog.run(record.run_id)
        except NotFoundError:  # the component was deleted and created again meanwhile
            engine = None
        else:
            failures = catalog.run_failures(record.run_id)
    return convert.run(record, engine, failures)
