"""Access keys: who may call the server's API, and what they may touch.

An access key is a pair: the access key id (`HW` + 16 base32 characters, public, sent with every
request) and a secret key (40 urlsafe characters, 240 random bits) shown once, at creation.

How the secret is stored, given that HMAC verification needs a key and not a hash:

- The secret key itself is never stored. Both sides derive the *signing key*
  `HMAC-SHA256(b"HWR1" + secret, access key)` (`headwater.signing.derive_signing_key`): the
  client signs with it, the server verifies with it. It is a one-way hash of the secret, so the
  secret cannot be recovered from it (the "stored hashed" of the issue).
- A signing key is as powerful as the secret for signing requests, so a stolen copy would let
  anyone call the API. It is therefore encrypted at rest with the server key
  (`HEADWATER_SECRET_KEY`, AES-256-GCM, the access key id bound in as associated data), like the
  credentials in the vault. A copy of the catalog alone signs nothing.

Verification (`AccessKeys.authenticate`) returns a `Principal`: the access key and its scopes
(read-only; limited to some data services, or not), for the server to enforce per request.
Nonces of accepted requests live in the catalog (`CatalogNonces`) until their timestamp leaves
the clock-skew window, so several server workers on one catalog refuse each other's replays.
"""

from __future__ import annotations

import base64
import builtins
import datetime
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from headwater.catalog import Catalog, connect
from headwater.catalog.tables import access_keys, auth_nonces
from headwater.errors import HeadwaterError, NotFoundError
from headwater.signing import (
    DEFAULT_MAX_SKEW,
    AuthenticationError,
    UnknownAccessKeyError,
    derive_signing_key,
    verify,
)
from headwater.vault import (
    Secret,
    ServerKey,
    check_one_key,
    context,
    missing_key_error,
    utcnow,
)

log = logging.getLogger("headwater.auth")
_DATA_SERVICE_MAX = 200


class RevokedAccessKeyError(UnknownAccessKeyError):
    """The access key was revoked."""


class AccessKeyError(HeadwaterError):
    """An access key cannot be created as asked (a bad data service name)."""


class PermissionDeniedError(HeadwaterError):
    """An authenticated key is not allowed this: the server answers 403."""


@dataclass(frozen=True)
class Principal:
    """Who made a request, and what they may do: returned by `AccessKeys.authenticate`.

    `data_services` is None for a key allowed every data service (and site-level resources such
    as the list of data services or the credentials vault); otherwise the names it is limited to.
    """

    access_key: str
    read_only: bool = False
    data_services: frozenset[str] | None = None

    def can_see(self, data_service: str) -> bool:
        """Whether this key may read `data_service` (for filtering lists)."""
        return self.data_services is None or data_service in self.data_services

    def allows(self, data_service: str | None = None, *, write: bool = False) -> bool:
        """Whether this key may read (or, with `write`, change) a resource of `data_service`;
        `None` means a site-level resource, which only keys for every data service may touch."""
        if write and self.read_only:
            return False
        if data_service is None:
            return self.data_services is None
        return self.can_see(data_service)

    def require(self, data_service: str | None = None, *, write: bool = False) -> None:
        """Raise PermissionDeniedError unless `allows(data_service, write=write)`."""
        if self.allows(data_service, write=write):
            return
        if write and self.read_only:
            reason = "it is read-only"
        elif data_service is None:
            reason = "it is limited to data services " + ", ".join(sorted(self.data_services or ()))
        else:
            allowed = ", ".join(sorted(self.data_services or ()))
            reason = f"it is limited to data services {allowed}, not '{data_service}'"
        action = "change" if write else "read"
        where = f"data service '{data_service}'" if data_service else "site-level resources"
        raise PermissionDeniedError(
            f"access key {self.access_key} may not {action} {where}: {reason} "
            "(create a key with the access needed: `headwater keys create`)"
        )


@dataclass(frozen=True)
class AccessKeyInfo:
    """A stored access key, without its secret."""

    access_key: str
    read_only: bool
    data_services: tuple[str, ...] | None
    description: str | None
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None

    @property
    def principal(self) -> Principal:
        scopes = None if self.data_services is None else frozenset(self.data_services)
        return Principal(self.access_key, self.read_only, scopes)


@dataclass(frozen=True)
class NewAccessKey:
    """A key just created: the only time its secret key is known."""

    info: AccessKeyInfo
    secret_key: Secret

    @property
    def access_key(self) -> str:
        return self.info.access_key


def new_access_key_id() -> str:
    """`HW` + 16 base32 characters (80 random bits): public, but unguessable."""
    return "HW" + base64.b32encode(secrets.token_bytes(10)).decode("ascii")


def new_secret_key() -> str:
    """40 urlsafe characters: 240 random bits."""
    return secrets.token_urlsafe(30)


class CatalogNonces:
    """Nonces of accepted requests, in the catalog: shared by every worker on one catalog.

    A nonce is kept until its expiry (its timestamp plus the allowed skew); older rows are
    purged at most every `purge_every` seconds, in the transaction that records a nonce.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: Callable[[], datetime.datetime] = utcnow,
        purge_every: float = 60.0,
    ) -> None:
        self.engine = catalog.engine
        self.clock = clock
        self.purge_every = purge_every
        self._last_purge = -math.inf

    def __call__(self, access_key: str, nonce: str, expires: int) -> bool:
        now = self.clock()
        expires_at = datetime.datetime.fromtimestamp(expires, datetime.UTC)
        with self.engine.begin() as c:
            if time.monotonic() - self._last_purge >= self.purge_every:
                c.execute(auth_nonces.delete().where(auth_nonces.c.expires_at < now))
                self._last_purge = time.monotonic()
            # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
            inserted = c.execute(
                _insert_new(c, auth_nonces)
                .values(access_key=access_key, nonce=nonce, expires_at=expires_at)
                .returning(auth_nonces.c.nonce)
            ).first()
        return inserted is not None

    def purge(self) -> int:
        """Forget every expired nonce now; returns how many."""
        with self.engine.begin() as c:
            result = c.execute(auth_nonces.delete().where(auth_nonces.c.expires_at < self.clock()))
        self._last_purge = time.monotonic()
        return int(result.rowcount)


class AccessKeys:
    """Create, list, revoke and authenticate access keys, in the catalog.

    Args:
        catalog: the catalog holding the `access_keys` and `auth_nonces` tables.
        server_key: the server key (`HEADWATER_SECRET_KEY`); needed to create keys and to
            authenticate requests, not to list or revoke.
        clock: the time source (tests pin it).
        max_skew: seconds a request's timestamp may differ from `clock`, either way.

    Example:
        >>> keys = AccessKeys(ws.catalog, ServerKey.from_env())      # doctest: +SKIP
        >>> new = keys.create(read_only=True, data_services=["sales"])
        >>> principal = keys.authenticate("GET", "/api/v1/data-services", b"", headers)
    """

    def __init__(
        self,
        catalog: Catalog,
        server_key: ServerKey | None = None,
        *,
        clock: Callable[[], datetime.datetime] = utcnow,
        max_skew: float = DEFAULT_MAX_SKEW,
    ) -> None:
        self.engine = catalog.engine
        self._server_key = server_key
        self.clock = clock
        self.max_skew = max_skew
        self.nonces = CatalogNonces(catalog, clock=clock)

    @property
    def server_key(self) -> ServerKey:
        if self._server_key is None:
            raise missing_key_error()
        return self._server_key

    def create(
        self,
        *,
        read_only: bool = False,
        data_services: Iterable[str] | None = None,
        description: str | None = None,
    ) -> NewAccessKey:
        """A new access key; its secret key is in the result and nowhere else."""
        scopes = None if data_services is None else _data_services(data_services)
        access_key, secret_key = new_access_key_id(), new_secret_key()
        signing_key = derive_signing_key(access_key, secret_key)
        blob = self.server_key.encrypt(signing_key, context("access-key", access_key))
        now = self.clock()
        with self.engine.begin() as c:
            check_one_key(c, self.server_key)
            c.execute(
                access_keys.insert().values(
                    access_key=access_key,
                    signing_key=blob,
                    key_id=self.server_key.key_id,
                    read_only=read_only,
                    data_services=None if scopes is None else list(scopes),
                    description=description,
                    created_at=now,
                )
            )
        info = AccessKeyInfo(access_key, read_only, scopes, description, now, None)
        log.info(
            "created access key %s (%s, data services: %s)",
            access_key,
            "read-only" if read_only else "read-write",
            "all" if scopes is None else ", ".join(scopes),
        )
        return NewAccessKey(info, Secret(secret_key))

    def get(self, access_key: str) -> AccessKeyInfo:
        """The stored access key `access_key`, revoked or not."""
        with _reading(self.engine) as c:
            row = c.execute(_info_query().where(access_keys.c.access_key == access_key)).first()
        if row is None:
            raise NotFoundError(f"no access key {access_key} (see `headwater keys list`)")
        return _info(row._asdict())

    def list(self, *, include_revoked: bool = True) -> builtins.list[AccessKeyInfo]:
        """Every access key, oldest first (never a secret)."""
        query = _info_query().order_by(access_keys.c.created_at, access_keys.c.access_key)
        if not include_revoked:
            query = query.where(access_keys.c.revoked_at.is_(None))
        with _reading(self.engine) as c:
            return [_info(r._asdict()) for r in c.execute(query)]

    def revoke(self, access_key: str) -> AccessKeyInfo:
        """Revoke a key: from now on every request signed with it is refused. Revoking a
        revoked key changes nothing."""
        with self.engine.begin() as c:
            c.execute(
                access_keys.update()
                .where(access_keys.c.access_key == access_key)
                .where(access_keys.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
        info = self.get(access_key)
        log.info("revoked access key %s", access_key)
        return info

    def signing_key(self, access_key: str) -> tuple[bytes, AccessKeyInfo]:
        """The decrypted signing key of a usable (known, unrevoked) access key, and the key."""
        with _reading(self.engine) as c:
            row = c.execute(
                sa.select(access_keys).where(access_keys.c.access_key == access_key)
            ).first()
        if row is None:
            raise UnknownAccessKeyError(f"access key {access_key} does not exist")
        values = row._asdict()
        info = _info(values)
        if info.revoked_at is not None:
            raise RevokedAccessKeyError(
                f"access key {access_key} was revoked at {info.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        key = self.server_key.decrypt(
            values["signing_key"],
            context("access-key", access_key),
            what=f"access key {access_key}",
            key_id=values["key_id"],
        )
        return key, info

    def authenticate(
        self,
        method: str,
        url_or_path: str,
        body: bytes | str | None,
        headers: Mapping[str, str],
    ) -> Principal:
        """Verify a signed request (see `headwater.signing`); who made it, with its scopes.

        Raises:
            AuthenticationError: unsigned, malformed, skewed, unknown or revoked key, bad
                signature, or replayed (answer 401).
        """
        found: list[AccessKeyInfo] = []

        def lookup(access_key: str) -> bytes:
            key, info = self.signing_key(access_key)
            found.append(info)
            return key

        try:
            verify(
                method,
                url_or_path,
                body,
                headers,
                lookup,
                self.nonces,
                now=self.clock(),
                max_skew=self.max_skew,
            )
        except AuthenticationError as exc:
            log.info("refused %s %s: %s", method.upper(), url_or_path.split("?", 1)[0], exc)
            raise
        principal = found[0].principal
        log.debug(
            "authenticated %s %s as %s",
            method.upper(),
            url_or_path.split("?", 1)[0],
            principal.access_key,
        )
        return principal


def _data_services(names: Iterable[str]) -> tuple[str, ...]:
    scopes = tuple(sorted({n.strip() for n in names}))
    if not scopes:
        raise AccessKeyError(
            "a key limited to no data service could do nothing: name at least one, or none "
            "for a key to every data service"
        )
    for name in scopes:
        if not name or len(name) > _DATA_SERVICE_MAX:
            raise AccessKeyError(f"{name!r} is not a data service name")
    return scopes


def _reading(engine: sa.Engine) -> sa.Connection:
    """A connection for queries only (on SQLite it does not take the write lock)."""
    return engine.connect().execution_options(**{connect.READ_ONLY: True})


def _info_query() -> sa.Select[Any]:
    return sa.select(*(c for c in access_keys.c if c.name not in ("signing_key", "key_id")))


def _info(values: dict[str, Any]) -> AccessKeyInfo:
    services = values["data_services"]
    return AccessKeyInfo(
        access_key=values["access_key"],
        read_only=bool(values["read_only"]),
        data_services=None if services is None else tuple(services),
        description=values["description"],
        created_at=values["created_at"],
        revoked_at=values["revoked_at"],
    )


def _insert_new(c: sa.Connection, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the catalog's dialect."""
    from sqlalchemy.dialects import postgresql, sqlite

    if c.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()
