"""The client's HTTP layer: signed httpx requests, errors turned into typed exceptions, and
the two streamed bodies (server-sent events and Arrow IPC).

Every request is signed by `Signer`, an httpx auth flow, with a fresh timestamp and nonce
(see `headwater.signing`). Proxies come from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and
`NO_PROXY` (httpx's `trust_env`); TLS trust from `headwater.client.settings.tls`.
"""

from __future__ import annotations

import contextlib
import io
import ssl
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

import headwater
from headwater.client.errors import ConnectionFailedError, error_class
from headwater.client.models import ErrorResponse
from headwater.signing import sign

USER_AGENT = f"headwater-client/{headwater.__version__}"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
STREAM_READ_TIMEOUT = 60.0  # an idle log stream gets a keep-alive comment every 15 s


class Signer(httpx.Auth):
    """Signs each request (method, path, query, body) with the access key's secret key."""

    requires_request_body = True

    def __init__(self, access_key: str, secret_key: str) -> None:
        self.access_key = access_key
        self._secret_key = secret_key

    def __repr__(self) -> str:
        return f"Signer(access_key={self.access_key!r}, secret_key='***')"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            sign(request.method, target, request.content, self.access_key, self._secret_key)
        )
        yield request


class Http:
    """A signed httpx client for one server, raising the client's typed errors."""

    def __init__(
        self,
        base_url: str,
        signer: Signer,
        *,
        verify: ssl.SSLContext | bool,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._client = httpx.Client(
            base_url=base_url,
            auth=signer,
            verify=verify,
            timeout=timeout,
            transport=transport,
            trust_env=True,  # HTTP(S)_PROXY, ALL_PROXY, NO_PROXY
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Send a request; a typed error for an error answer or a failed connection."""
        with self._failures(method, path):
            response = self._client.request(method, path, json=json, params=_params(params))
        raise_for_status(response, method, path)
        return response

    @contextlib.contextmanager
    def stream(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        accept: str,
        read_timeout: float = STREAM_READ_TIMEOUT,
    ) -> Iterator[httpx.Response]:
        """A GET whose body is read as it arrives (closed when the block ends)."""
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        with (
            self._failures("GET", path),
            self._client.stream(
                "GET", path, params=_params(params), headers={"Accept": accept}, timeout=timeout
            ) as response,
        ):
            if response.is_error:
                response.read()
                raise_for_status(response, "GET", path)
            yield response

    @contextlib.contextmanager
    def _failures(self, method: str, path: str) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            raise ConnectionFailedError(_transport_message(exc, self.base_url, method, path)) from (
                exc
            )


def raise_for_status(response: httpx.Response, method: str, path: str) -> None:
    """Raise the typed error for an error answer, with the server's message."""
    if not response.is_error:
        return
    try:
        body = ErrorResponse.model_validate_json(response.content)
    except ValueError:  # not the server's error body: a proxy's or load balancer's page
        text = response.text.strip()[:500] or response.reason_phrase
        raise error_class(response.status_code)(
            response.status_code, "error", text, method=method, path=path
        ) from None
    raise error_class(response.status_code)(
        response.status_code,
        body.error,
        body.message,
        details=body.details,
        method=method,
        path=path,
    )


def _params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    return {k: v for k, v in params.items() if v is not None} if params else None


def _transport_message(exc: httpx.TransportError, base_url: str, method: str, path: str) -> str:
    reason = str(exc) or type(exc).__name__
    message = f"{method} {base_url}{path} failed: {reason}"
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        message += (
            " (the server's certificate is not trusted: point REQUESTS_CA_BUNDLE or SSL_CERT_FILE "
            "at a PEM file holding the CA that signed it, or pass verify='/path/to/ca.pem')"
        )
    elif isinstance(exc, httpx.ProxyError):
        message += " (through the proxy in HTTPS_PROXY/HTTP_PROXY; NO_PROXY lists hosts to bypass)"
    elif isinstance(exc, httpx.ConnectError):
        message += " (is the server running, and are the hostname and port right?)"
    return message


# -- server-sent events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One server-sent event."""

    event: str
    data: str
    id: str | None = None


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines split on LF (a CR before it dropped), as SSE defines them; unlike str.splitlines
    it leaves U+2028 and friends inside a line, where JSON may carry them unescaped."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.removesuffix(b"\r").decode("utf-8")
    if buffer:
        yield buffer.removesuffix(b"\r").decode("utf-8")


def events(text_lines: Iterable[str]) -> Iterator[Event]:
    """The events of a text/event-stream; comments (keep-alives) are skipped."""
    kind, data, last_id = "message", list[str](), None
    for line in text_lines:
        if not line:
            if data:
                yield Event(kind, "\n".join(data), last_id)
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value
    if data:
        yield Event(kind, "\n".join(data), last_id)


# -- Arrow IPC ----------------------------------------------------------------------------------


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks, so pyarrow reads a body as it comes."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size
