"""Request signing: HMAC-SHA256 over a canonical request, so the secret key never travels.

Shared by the server (verify) and the client (sign); it imports nothing of either. Every
authenticated request carries one header:

    Authorization: HWR1-HMAC-SHA256 Credential=<access key>, Timestamp=<unix seconds>,
                   Nonce=<16-64 urlsafe chars>, Signature=<64 hex>

The signature is HMAC-SHA256, keyed with the *signing key*, over the string to sign, these
eight lines joined by "\\n":

    HWR1-HMAC-SHA256
    <timestamp>
    <nonce>
    <access key>
    <METHOD>
    <path>
    <query>
    <hex SHA-256 of the body>

- path: percent-decoded, then re-encoded (`/` kept), so a client that sends `/a%20b` and a
  server that sees `/a b` agree; empty is `/`.
- query: every `key=value` pair decoded, re-encoded and sorted; `&`-joined.
- body: hex SHA-256 of the exact bytes sent (of b"" when there is none).

The signing key is derived from the secret key: `HMAC-SHA256(key=b"HWR1" + secret, msg=access
key)`. The server stores only that derived key (encrypted, see `headwater.keys`), never the secret.

A request is accepted when its timestamp is within `max_skew` seconds of the server's clock
(either way), the signature matches (compared in constant time), and its nonce has not been
seen for that access key while the timestamp is in the window (replay protection).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import math
import re
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from headwater.errors import HeadwaterError

SCHEME = "HWR1-HMAC-SHA256"
AUTHORIZATION = "Authorization"
DEFAULT_MAX_SKEW = 300.0  # seconds, either way

ACCESS_KEY_RE = re.compile(r"HW[A-Z2-7]{16,30}")
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_METHOD_RE = re.compile(r"[A-Z]{1,16}")
_FIELDS = ("Credential", "Timestamp", "Nonce", "Signature")


class AuthenticationError(HeadwaterError):
    """A request could not be authenticated. The server answers every subclass with 401."""


class MalformedAuthError(AuthenticationError):
    """The Authorization header is missing or is not a HWR1-HMAC-SHA256 signature."""


class ClockSkewError(AuthenticationError):
    """The request's timestamp is too far from the server's clock (too old, or in the future)."""


class SignatureMismatchError(AuthenticationError):
    """The signature does not match the request: a wrong secret key, or a changed request.
    (It does not carry the server's string to sign: that holds the query string, which a
    careless client may have put a secret in.)"""


class ReplayError(AuthenticationError):
    """The request's nonce was already used with this access key: a replayed request."""


class UnknownAccessKeyError(AuthenticationError):
    """No access key with this id exists."""


@dataclass(frozen=True)
class SignedFields:
    """The parts of an Authorization header."""

    access_key: str
    timestamp: int
    nonce: str
    signature: str


# Looks up the signing key of an access key; raises UnknownAccessKeyError when there is none.
SigningKeyLookup = Callable[[str], bytes]
# Remembers (access key, nonce) until `expires` (unix seconds); False when it was already seen.
NonceCheck = Callable[[str, str, int], bool]


def derive_signing_key(access_key: str, secret_key: str) -> bytes:
    """The key requests are signed with, derived one-way from the secret key."""
    return hmac.new(
        b"HWR1" + secret_key.encode("utf-8"), access_key.encode("ascii"), hashlib.sha256
    ).digest()


def canonical_target(url_or_path: str) -> tuple[str, str]:
    """The canonical (path, query) of a URL or a path with an optional query string."""
    parts = urllib.parse.urlsplit(url_or_path)
    path = urllib.parse.quote(urllib.parse.unquote(parts.path), safe="/") or "/"
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    encoded = sorted(
        (urllib.parse.quote(k, safe=""), urllib.parse.quote(v, safe="")) for k, v in pairs
    )
    return path, "&".join(f"{k}={v}" for k, v in encoded)


def string_to_sign(
    method: str, url_or_path: str, body: bytes | str | None, fields: SignedFields
) -> str:
    """The exact text a request's signature covers (see the module docstring)."""
    path, query = canonical_target(url_or_path)
    return "\n".join(
        (
            SCHEME,
            str(fields.timestamp),
            fields.nonce,
            fields.access_key,
            method.upper(),
            path,
            query,
            hashlib.sha256(_bytes(body)).hexdigest(),
        )
    )


def sign(
    method: str,
    url_or_path: str,
    body: bytes | str | None,
    access_key: str,
    secret_key: str,
    *,
    now: datetime.datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Sign a request: the headers to send with it (only `Authorization`).

    Args:
        method: the HTTP method.
        url_or_path: the URL, or the path with its query string, exactly as sent.
        body: the request body as sent (None or b"" for none).
        access_key, secret_key: the key pair from `headwater keys create`.
        now: the time to sign at (default: the clock); nonce: default a fresh random one.

    Example:
        >>> headers = sign("GET", "/api/v1/data-services?limit=5", None, ak, sk)  # doctest: +SKIP
    """
    if not ACCESS_KEY_RE.fullmatch(access_key):
        raise MalformedAuthError(f"{access_key!r} is not a Headwater access key (HW...)")
    moment = now or datetime.datetime.now(datetime.UTC)
    fields = SignedFields(
        access_key=access_key,
        timestamp=int(moment.timestamp()),
        nonce=nonce or secrets.token_urlsafe(18),
        signature="",
    )
    if not NONCE_RE.fullmatch(fields.nonce):
        raise MalformedAuthError("a nonce is 16 to 64 characters of A-Z, a-z, 0-9, _ and -")
    text = string_to_sign(method, url_or_path, body, fields)
    signature = _hmac(derive_signing_key(access_key, secret_key), text)
    return {
        AUTHORIZATION: f"{SCHEME} Credential={access_key}, Timestamp={fields.timestamp}, "
        f"Nonce={fields.nonce}, Signature={signature}"
    }


def parse_authorization(headers: Mapping[str, str]) -> SignedFields:
    """The fields of a request's Authorization header; MalformedAuthError when it has none."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if value is None:
        raise MalformedAuthError(
            f"the request is not signed: it has no Authorization header (expected {SCHEME}, "
            "made by the Headwater client from an access key and secret key)"
        )
    scheme, _, rest = value.strip().partition(" ")
    if scheme != SCHEME:
        raise MalformedAuthError(f"the Authorization scheme must be {SCHEME}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if not sep or name not in _FIELDS or name in fields:
            raise MalformedAuthError(
                f"the {SCHEME} header must hold {', '.join(_FIELDS)} once each, as Name=value"
            )
        fields[name] = val.strip()
    checks = {
        "Credential": ACCESS_KEY_RE,
        "Timestamp": _TIMESTAMP_RE,
        "Nonce": NONCE_RE,
        "Signature": _SIGNATURE_RE,
    }
    for name, pattern in checks.items():
        if not pattern.fullmatch(fields.get(name, "")):
            raise MalformedAuthError(f"the {SCHEME} header has a missing or malformed {name}")
    return SignedFields(
        access_key=fields["Credential"],
        timestamp=int(fields["Timestamp"]),
        nonce=fields["Nonce"],
        signature=fields["Signature"],
    )


def verify(
    method: str,
    url_or_path: str,
    body: bytes | str | None,
    headers: Mapping[str, str],
    signing_key: SigningKeyLookup,
    check_nonce: NonceCheck,
    *,
    now: datetime.datetime | None = None,
    max_skew: float = DEFAULT_MAX_SKEW,
) -> str:
    """Check a signed request; returns its access key.

    Checks run cheapest first, and the nonce is recorded only for a valid signature, so
    unsigned noise cannot use up nonces.

    Args:
        method, url_or_path, body: the request as received (path and query as sent or decoded).
        headers: the request headers (any case).
        signing_key: the stored signing key of an access key (raises UnknownAccessKeyError).
        check_nonce: remembers a nonce; False when it was seen (e.g. `MemoryNonces`).
        now: the server's time (default: the clock); max_skew: seconds allowed either way.

    Raises:
        MalformedAuthError, ClockSkewError, UnknownAccessKeyError, SignatureMismatchError,
        ReplayError: all AuthenticationError.
    """
    if not _METHOD_RE.fullmatch(method.upper()):
        raise MalformedAuthError(f"{method!r} is not an HTTP method")
    fields = parse_authorization(headers)
    clock = (now or datetime.datetime.now(datetime.UTC)).timestamp()
    skew = fields.timestamp - clock
    if abs(skew) > max_skew:
        when = "in the future" if skew > 0 else "old"
        raise ClockSkewError(
            f"the request's timestamp is {abs(skew):.0f} s {when}; at most {max_skew:.0f} s "
            "is allowed either way: check the client's clock (NTP), and sign each request "
            "when it is sent"
        )
    key = signing_key(fields.access_key)
    text = string_to_sign(method, url_or_path, body, fields)
    if not hmac.compare_digest(_hmac(key, text), fields.signature):
        raise SignatureMismatchError(
            f"the signature of {method.upper()} {canonical_target(url_or_path)[0]} does not "
            f"match: check the secret key of access key {fields.access_key}, and that nothing "
            "changed the request after it was signed (a proxy rewriting the path?)"
        )
    if not check_nonce(fields.access_key, fields.nonce, fields.timestamp + math.ceil(max_skew)):
        raise ReplayError(
            f"nonce {fields.nonce} was already used with access key {fields.access_key}: "
            "the request was replayed (sign every request afresh)"
        )
    return fields.access_key


class MemoryNonces:
    """Nonces remembered in this process: enough for one server process (and for tests).
    Several workers must share a store, as `headwater.keys.CatalogNonces` does."""

    def __init__(self, clock: Callable[[], datetime.datetime] | None = None) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))

    def __call__(self, access_key: str, nonce: str, expires: int) -> bool:
        now = self._clock().timestamp()
        with self._lock:
            if len(self._seen) > 1024:
                self._seen = {k: e for k, e in self._seen.items() if e >= now}
            if self._seen.get((access_key, nonce), -1) >= now:
                return False
            self._seen[(access_key, nonce)] = expires
            return True


def _hmac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _bytes(body: bytes | str | None) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)
