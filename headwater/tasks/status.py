"""Headwater errors to gRPC statuses, in one place.

Every failed call carries a message and a correlation id, in its details and in the trailing
metadata key `correlation-id`; never a server traceback. The traceback of an unexpected error is
logged here, under the same id, so an operator can find it from what the client saw.

| error                                         | status              |
|-----------------------------------------------|---------------------|
| NotFoundError (unknown task type or name)      | NOT_FOUND           |
| UnsupportedOperationError (no metrics, logs)   | UNIMPLEMENTED       |
| InvalidResourceMetaError, InvalidRequestError | INVALID_ARGUMENT    |
| WrongConnectorKindError (sync vs async)        | FAILED_PRECONDITION |
| anything else, connector code's own errors     | INTERNAL            |
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Never

import grpc
import grpc.aio

from headwater.errors import NotFoundError
from headwater.tasks.errors import (
    InvalidRequestError,
    InvalidResourceMetaError,
    UnsupportedOperationError,
    WrongConnectorKindError,
)

log = logging.getLogger("headwater.tasks")

CORRELATION_KEY = "correlation-id"
# Details travel in an HTTP/2 trailer; a connector's huge exception message must not break it.
_MAX_DETAILS = 2000
_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (UnsupportedOperationError, grpc.StatusCode.UNIMPLEMENTED),
    (InvalidResourceMetaError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (WrongConnectorKindError, grpc.StatusCode.FAILED_PRECONDITION),
]


@dataclass(frozen=True)
class Failure:
    """How one failed call is reported: status code, details, and the id in both and the log."""

    code: grpc.StatusCode
    details: str
    correlation_id: str


def failure_for(exc: Exception, operation: str, subject: str) -> Failure:
    """The status for `exc`, raised while serving `operation` for `subject`; logs it."""
    correlation_id = uuid.uuid4().hex[:16]
    code = next((code for kind, code in _CODES if isinstance(exc, kind)), None)
    if code is None:
        code = grpc.StatusCode.INTERNAL
        summary = f"{operation} for {subject} failed: {type(exc).__name__}: {exc}"
        log.error("%s [correlation id %s]", summary, correlation_id, exc_info=exc)
    else:
        summary = f"{operation} for {subject}: {exc}"
        log.warning("%s [correlation id %s]", summary, correlation_id)
    if len(summary) > _MAX_DETAILS:
        summary = summary[:_MAX_DETAILS] + "..."
    return Failure(code, f"{summary} [correlation id {correlation_id}]", correlation_id)


async def abort(
    context: grpc.aio.ServicerContext[Any, Any], exc: Exception, operation: str, subject: str
) -> Never:
    """End the call with the status for `exc`."""
    failure = failure_for(exc, operation, subject)
    await context.abort(
        failure.code,
        failure.details,
        trailing_metadata=((CORRELATION_KEY, failure.correlation_id),),
    )
