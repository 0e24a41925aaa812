"""The credentials vault: named secrets for connectors, encrypted at rest with the server key.

Each credential is encrypted with AES-256-GCM under `HEADWATER_SECRET_KEY` (32 random bytes,
urlsafe base64), with a fresh 96-bit nonce and the credential's name as associated data, so a
ciphertext copied onto another name does not decrypt. Each row also records the id of the key
that encrypted it (a truncated SHA-256 of the key, which reveals nothing of it), so a wrong key
is reported as such rather than as corruption. `rotate` re-encrypts everything under a new key.

The same key encrypts the access keys' signing keys (`headwater.keys`).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from headwater.catalog import Catalog, connect
from headwater.catalog.tables import access_keys, credentials
from headwater.errors import HeadwaterError, NotFoundError, SettingsError

SECRET_KEY_ENV = "HEADWATER_SECRET_KEY"
GENERATE_COMMAND = (
    'python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
)
CREDENTIAL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,199}")
_VERSION = b"\x01"  # blob = version, 12-byte nonce, ciphertext + 16-byte tag
_NONCE_BYTES = 12

log = logging.getLogger("headwater.vault")


class VaultError(HeadwaterError):
    """A credential cannot be stored or read (a bad name, an empty or altered secret)."""


class VaultKeyError(SettingsError):
    """The server key is missing, malformed, or not the key a secret was encrypted with."""


class Secret:
    """A secret string that never shows itself: its str() is '***' and its repr Secret('***').

    Example:
        >>> s = Secret("hunter2"); f"{s}", repr(s), s.reveal()
        ('***', "Secret('***')", 'hunter2')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only where it is handed on (to a connector, a signer)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", hashlib.sha256(self._value.encode()).digest()))


class ServerKey:
    """The server's 32-byte key, which encrypts credentials and signing keys at rest.

    Example:
        >>> key = ServerKey.from_text(ServerKey.generate()); len(key.key_id)
        12
    """

    __slots__ = ("_aead", "key_id", "setting")

    def __init__(self, raw: bytes, *, setting: str = SECRET_KEY_ENV) -> None:
        if len(raw) != 32:
            raise VaultKeyError(f"{setting} must be 32 bytes; it is {len(raw)} bytes")
        self._aead = AESGCM(raw)
        self.key_id = hashlib.sha256(b"headwater-server-key\x00" + raw).hexdigest()[:12]
        self.setting = setting

    @classmethod
    def from_text(cls, text: str, *, setting: str = SECRET_KEY_ENV) -> ServerKey:
        """A key from its urlsafe-base64 text (padding optional)."""
        stripped = text.strip()
        try:
            raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
        except (binascii.Error, ValueError):
            raise VaultKeyError(
                f"{setting} is not urlsafe base64; generate a key with: {GENERATE_COMMAND}"
            ) from None
        if len(raw) != 32:
            raise VaultKeyError(
                f"{setting} must decode to 32 bytes, not {len(raw)}; generate a key with: "
                f"{GENERATE_COMMAND}"
            )
        return cls(raw, setting=setting)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerKey:
        """The key in `HEADWATER_SECRET_KEY`; a SettingsError saying how to make one if unset."""
        env = os.environ if environ is None else environ
        text = env.get(SECRET_KEY_ENV, "")
        if not text.strip():
            raise missing_key_error()
        return cls.from_text(text)

    @staticmethod
    def generate() -> str:
        """A new random key, as the text `HEADWATER_SECRET_KEY` takes."""
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        """AES-GCM ciphertext of `plaintext`, bound to `context` (associated data)."""
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt(self, blob: bytes, context: bytes, *, what: str, key_id: str) -> bytes:
        """The plaintext of `blob` (encrypted under the key with id `key_id` for `context`).

        Raises:
            VaultKeyError: `blob` was encrypted under another key.
            VaultError: `blob` was altered, or belongs to another name.
        """
        if key_id != self.key_id:
            raise VaultKeyError(
                f"{what} was encrypted with another server key (key id {key_id}; {self.setting} "
                f"has key id {self.key_id}): set {self.setting} to the key it was stored with, "
                "or re-encrypt with `headwater credentials rotate-key` after changing keys"
            )
        if blob[:1] != _VERSION or len(blob) < 1 + _NONCE_BYTES + 16:
            raise VaultError(f"{what} is not a Headwater ciphertext (an unknown format)")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :], context)
        except InvalidTag:
            raise VaultError(
                f"{what} cannot be decrypted with {self.setting} (key id {self.key_id}): its "
                "ciphertext was altered or copied from another row; store it again"
            ) from None

    def __repr__(self) -> str:
        return f"ServerKey(key_id={self.key_id!r})"


def missing_key_error() -> VaultKeyError:
    """The error for a missing server key, with the command that makes one."""
    return VaultKeyError(
        f"{SECRET_KEY_ENV} is not set: it encrypts credentials and access keys at rest. "
        f"Generate one with: {GENERATE_COMMAND}  then export {SECRET_KEY_ENV}=<that value> for "
        "every Headwater server and command on this catalog, and keep it safe (without it, "
        "stored secrets cannot be read)"
    )


def context(kind: str, name: str) -> bytes:
    """The associated data binding a ciphertext to what it is and whose it is."""
    return f"headwater/{kind}/{name}".encode()


@dataclass(frozen=True)
class CredentialInfo:
    """A stored credential, without its secret."""

    name: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Vault:
    """Named credentials, encrypted at rest in the catalog.

    Args:
        catalog: the catalog holding the `credentials` table.
        key: the server key; needed to put and get (not to list or delete).
        clock: the time source (tests pin it).

    Example:
        >>> vault = Vault(ws.catalog, ServerKey.from_env())          # doctest: +SKIP
        >>> vault.put("github_token", "ghp_...")
        >>> connector_context = context(vault.get("github_token"))
    """

    def __init__(
        self,
        catalog: Catalog,
        key: ServerKey | None = None,
        *,
        clock: Callable[[], datetime.datetime] = utcnow,
    ) -> None:
        self.engine = catalog.engine
        self._key_or_none = key
        self.clock = clock

    @property
    def _key(self) -> ServerKey:
        if self._key_or_none is None:
            raise missing_key_error()
        return self._key_or_none

    def put(self, name: str, secret: str | Secret) -> CredentialInfo:
        """Store `secret` under `name`, replacing what was there."""
        check_credential_name(name)
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if not value:
            raise VaultError(f"credential '{name}' is empty; a credential needs a secret")
        key = self._key
        now = self.clock()
        blob = key.encrypt(value.encode("utf-8"), context("credential", name))
        with self.engine.begin() as c:
            check_one_key(c, key)
            row = c.execute(
                sa.select(credentials.c.created_at).where(credentials.c.name == name)
            ).first()
            values = {"ciphertext": blob, "key_id": key.key_id, "updated_at": now}
            if row is None:
                c.execute(credentials.insert().values(name=name, created_at=now, **values))
                created = now
            else:
                c.execute(credentials.update().where(credentials.c.name == name).values(**values))
                created = row.created_at
        log.info("stored credential %s", name)
        return CredentialInfo(name=name, created_at=created, updated_at=now)

    def get(self, name: str) -> str:
        """The secret stored under `name`, as the string a connector's `context` receives."""
        with _reading(self.engine) as c:
            row = c.execute(
                sa.select(credentials.c.ciphertext, credentials.c.key_id).where(
                    credentials.c.name == name
                )
            ).first()
        if row is None:
            raise self._not_found(name)
        plain = self._key.decrypt(
            row.ciphertext,
            context("credential", name),
            what=f"credential '{name}'",
            key_id=row.key_id,
        )
        log.debug("read credential %s", name)
        return plain.decode("utf-8")

    def list(self) -> builtins.list[CredentialInfo]:
        """Every stored credential's name and timestamps, by name."""
        query = sa.select(
            credentials.c.name, credentials.c.created_at, credentials.c.updated_at
        ).order_by(credentials.c.name)
        with _reading(self.engine) as c:
            return [CredentialInfo(**r._asdict()) for r in c.execute(query)]

    def delete(self, name: str) -> None:
        """Forget the credential `name`."""
        with self.engine.begin() as c:
            result = c.execute(credentials.delete().where(credentials.c.name == name))
        if result.rowcount != 1:
            raise self._not_found(name)
        log.info("deleted credential %s", name)

    def _not_found(self, name: str) -> NotFoundError:
        names = [c.name for c in self.list()]
        known = ", ".join(names[:20]) if names else "none yet: `headwater credentials put NAME`"
        return NotFoundError(f"no credential named '{name}' (credentials: {known})")


def check_one_key(c: sa.Connection, key: ServerKey) -> None:
    """Refuse to store a secret under `key` while the catalog holds secrets under another one:
    a server started with the wrong key would otherwise write secrets no other server reads."""
    for table in (credentials, access_keys):
        other = c.execute(
            sa.select(table.c.key_id).where(table.c.key_id != key.key_id).limit(1)
        ).scalar()
        if other is not None:
            raise VaultKeyError(
                f"this catalog holds secrets encrypted with another server key (key id {other}; "
                f"{key.setting} has key id {key.key_id}): set {key.setting} to that key, or "
                "re-encrypt everything with `headwater credentials rotate-key` first"
            )


def check_credential_name(name: str) -> str:
    """`name` if it can name a credential: letters, digits, `_ . - /`, up to 200 characters."""
    if not CREDENTIAL_NAME_RE.fullmatch(name):
        raise VaultError(
            f"{name!r} cannot name a credential: use letters, digits and _ . - / (starting with "
            "a letter or digit), at most 200 characters"
        )
    return name


# (table, name column, context kind, blob column) of everything the server key encrypts.
_ENCRYPTED = (
    (credentials, credentials.c.name, "credential", "ciphertext"),
    (access_keys, access_keys.c.access_key, "access-key", "signing_key"),
)


def rotate(catalog: Catalog, old: ServerKey, new: ServerKey) -> int:
    """Re-encrypt every credential and access key from `old` to `new`, in one transaction.

    Rows already under `new` are left as they are, so an interrupted rotation can run again.
    Returns how many rows were re-encrypted.

    Raises:
        VaultKeyError: a row is under neither key (nothing is changed).
    """
    changed = 0
    with catalog.engine.begin() as c:
        for table, name_column, kind, blob_column in _ENCRYPTED:
            blob = table.c[blob_column]
            rows = c.execute(sa.select(name_column, blob, table.c.key_id)).all()
            for name, ciphertext, key_id in rows:
                if key_id == new.key_id:
                    continue
                what = f"{kind} '{name}'"
                plain = old.decrypt(ciphertext, context(kind, name), what=what, key_id=key_id)
                c.execute(
                    table.update()
                    .where(name_column == name)
                    .values(
                        {blob_column: new.encrypt(plain, context(kind, name)), "key_id": new.key_id}
                    )
                )
                changed += 1
    log.info("re-encrypted %d secret(s) from key id %s to %s", changed, old.key_id, new.key_id)
    return changed


def _reading(engine: sa.Engine) -> sa.Connection:
    """A connection for queries only (on SQLite it does not take the write lock)."""
    return engine.connect().execution_options(**{connect.READ_ONLY: True})
