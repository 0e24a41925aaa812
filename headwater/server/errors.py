"""Headwater's errors as HTTP answers, in one place.

Every error is an `ErrorResponse`: a code, the message, and for invalid requests what was wrong
where. Request values are never echoed back (one may be a secret), and an unexpected exception
answers 500 with a reference to the server log, never a traceback.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from headwater.catalog.resources import ConflictError, InvalidReferenceError
from headwater.client.models import ErrorDetail, ErrorResponse
from headwater.errors import (
    CatalogError,
    ComponentBusyError,
    ConnectorError,
    HeadwaterError,
    NotFoundError,
    SettingsError,
    StoreError,
)
from headwater.keys import AccessKeyError, PermissionDeniedError
from headwater.signing import SCHEME, AuthenticationError
from headwater.vault import VaultError, VaultKeyError

log = logging.getLogger("headwater.server")

# First match wins: subclasses before their bases.
STATUS: list[tuple[type[BaseException], int, str]] = [
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (ComponentBusyError, 409, "conflict"),
    (ConflictError, 409, "conflict"),
    (VaultKeyError, 503, "unavailable"),  # the server's key is wrong: the operator's to fix
    (InvalidReferenceError, 422, "invalid"),
    (SettingsError, 422, "invalid"),
    (VaultError, 422, "invalid"),
    (AccessKeyError, 422, "invalid"),
    (ConnectorError, 422, "invalid"),
    (ValueError, 422, "invalid"),  # Headwater's ValueErrors: a declaration that cannot be used
    (CatalogError, 503, "unavailable"),
    (StoreError, 503, "unavailable"),
    (HeadwaterError, 400, "bad_request"),
]
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


def classify(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and error code for a Headwater error."""
    for kind, status, code in STATUS:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal"


def error_response(
    status: int, code: str, message: str, details: list[ErrorDetail] | None = None
) -> JSONResponse:
    body = ErrorResponse(error=code, message=message, details=details or [])
    headers = {"WWW-Authenticate": SCHEME} if status == 401 else None
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


async def _headwater_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = classify(exc)
    if status == 401:
        log.info("refused %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(status, code, str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        ErrorDetail(loc=list(e.get("loc", ())), message=str(e.get("msg", "")), type=e.get("type"))
        for e in exc.errors()
    ]
    where = "; ".join(f"{'.'.join(map(str, d.loc))}: {d.message}" for d in details[:5])
    return error_response(422, "invalid", f"the request is not valid: {where}", details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # Two requests raced to create the same thing; the loser learns it here.
    return error_response(409, "conflict", "the request conflicts with a concurrent change; retry")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    reference = uuid.uuid4().hex[:12]
    # The exception's text may quote connector code or data; the traceback goes to the server
    # log only (its handlers are the operator's), never to the client.
    log.error(
        "internal error %s in %s %s",
        reference,
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return error_response(
        500, "internal", f"internal server error (reference {reference} in the server log)"
    )


def install(app: FastAPI) -> None:
    """Route every error the app can raise to its HTTP answer."""
    handlers: list[tuple[Any, Any]] = [
        (HeadwaterError, _headwater_error),
        (RequestValidationError, _validation_error),
        (HTTPException, _http_error),
        (sa.exc.IntegrityError, _integrity_error),
        (Exception, _unexpected),
    ]
    for kind, handler in handlers:
        app.add_exception_handler(kind, handler)
