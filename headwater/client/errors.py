"""The client's errors: one root, `ClientError`, and one class per kind of server answer.

An answer the server refuses becomes an `APIError` subclass carrying its HTTP status, the
server's error code and message, and for invalid requests where each problem is:

    >>> try:
    ...     client.get_data_service("nope")                              # doctest: +SKIP
    ... except NotFoundError as error:
    ...     print(error.status, error.message)
    404 data service 'nope' does not exist
"""

from __future__ import annotations

from headwater.client.models import ErrorDetail
from headwater.errors import HeadwaterError


class ClientError(HeadwaterError):
    """Root of every error the Headwater client raises."""


class ConfigError(ClientError):
    """The client cannot be set up: a missing hostname, a half key pair, an unreadable CA bundle
    or credentials file."""


class CredentialsNotFoundError(ConfigError):
    """No access key and secret key were found; the message lists every place looked at."""


class ConnectionFailedError(ClientError):
    """The server could not be reached or the connection broke (DNS, refused, TLS, proxy,
    timeout). The message names the URL and, for TLS failures, how to trust a private CA."""


class RunTimeoutError(ClientError):
    """`wait_for_run` gave up before the run ended (the run itself goes on)."""

    def __init__(self, message: str, run_id: int) -> None:
        super().__init__(message)
        self.run_id = run_id


class APIError(ClientError):
    """The server answered with an error.

    Attributes:
        status: the HTTP status (404, 409, ...).
        code: the server's error code (not_found, conflict, invalid, ...).
        message: the server's message, as it sent it.
        details: for invalid requests, where each problem is (request values are never echoed).
        method, path: the request that was refused (the path without its query).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[ErrorDetail] | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.method = method
        self.path = path
        super().__init__(f"{method} {path}: {status} {code}: {message}".strip())


class UnauthorizedError(APIError):
    """401: the request's signature was refused (an unknown, revoked or wrong key, or a clock
    more than five minutes off)."""


class ForbiddenError(APIError):
    """403: the access key may not do this (read-only, or limited to other data services)."""


class NotFoundError(APIError):
    """404: a resource named in the request does not exist."""


class ConflictError(APIError):
    """409: a duplicate id, a resource still in use, or a run already in progress."""


class ValidationError(APIError):
    """400 or 422: the request is not valid; `details` says where."""


class ServerError(APIError):
    """5xx: the server failed (500, with a reference to its log) or cannot use its catalog,
    store or key (503)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
}


def error_class(status: int) -> type[APIError]:
    """The error raised for an HTTP status (a plain APIError for the uncommon ones)."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)
