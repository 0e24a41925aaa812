"""The credentials vault in a real catalog (SQLite and PostgreSQL): encryption at rest, the
server key's errors, and rotation."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import sqlalchemy as sa

from headwater.catalog import Catalog
from headwater.catalog.tables import credentials
from headwater.errors import NotFoundError
from headwater.keys import AccessKeys
from headwater.signing import sign
from headwater.vault import (
    GENERATE_COMMAND,
    Secret,
    ServerKey,
    Vault,
    VaultError,
    VaultKeyError,
    rotate,
)

PLAIN = "pg-password-Zq7!xK2@example"


def raw_rows(catalog: Catalog) -> list[tuple[Any, ...]]:
    with catalog.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.select(credentials))]


def test_round_trip(vault: Vault, clock: Any) -> None:
    info = vault.put("warehouse", PLAIN)
    assert vault.get("warehouse") == PLAIN
    clock.advance(60)
    vault.put("warehouse", Secret(PLAIN + "2"))
    assert vault.get("warehouse") == PLAIN + "2"
    [listed] = vault.list()
    assert (listed.name, listed.created_at, listed.updated_at) == (
        "warehouse",
        info.created_at,
        clock(),
    )
    vault.put("team-a/db.password_2", "пароль ✓")
    assert vault.get("team-a/db.password_2") == "пароль ✓"
    vault.delete("warehouse")
    with pytest.raises(NotFoundError, match="no credential named 'warehouse'"):
        vault.get("warehouse")
    with pytest.raises(NotFoundError):
        vault.delete("warehouse")


def test_the_database_holds_no_plaintext(vault: Vault, catalog: Catalog) -> None:
    vault.put("a", PLAIN)
    vault.put("b", PLAIN)  # same secret, different ciphertext (fresh nonces)
    rows = raw_rows(catalog)
    blobs = [bytes(r[1]) for r in rows]
    assert blobs[0] != blobs[1]
    for row in rows:
        dumped = repr(row).encode() + bytes(row[1])
        for form in (PLAIN.encode(), PLAIN.encode("utf-16-le"), base64.b64encode(PLAIN.encode())):
            assert form not in dumped


def test_a_wrong_key_names_the_setting_not_the_secret(
    vault: Vault, catalog: Catalog, clock: Any
) -> None:
    vault.put("warehouse", PLAIN)
    wrong = Vault(catalog, ServerKey.from_text(ServerKey.generate()), clock=clock)
    with pytest.raises(VaultKeyError) as caught:
        wrong.get("warehouse")
    message = str(caught.value)
    assert "credential 'warehouse' was encrypted with another server key" in message
    assert "HEADWATER_SECRET_KEY" in message and PLAIN not in message


def test_a_missing_key_says_how_to_make_one(catalog: Catalog) -> None:
    with pytest.raises(VaultKeyError, match="HEADWATER_SECRET_KEY is not set") as caught:
        ServerKey.from_env({})
    assert GENERATE_COMMAND in str(caught.value)
    with pytest.raises(VaultKeyError, match="HEADWATER_SECRET_KEY is not set"):
        Vault(catalog).put("x", "y")
    assert Vault(catalog).list() == []  # listing needs no key


def test_the_generate_command_makes_a_usable_key() -> None:
    import subprocess
    import sys

    command = GENERATE_COMMAND.replace("python", sys.executable, 1)
    text = subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout
    assert ServerKey.from_env({"HEADWATER_SECRET_KEY": text.strip()}).key_id


@pytest.mark.parametrize(
    ("text", "match"),
    [("not base64!!", "not urlsafe base64"), (base64.urlsafe_b64encode(b"short").decode(), "32")],
)
def test_a_malformed_key_is_refused_without_echoing_it(text: str, match: str) -> None:
    with pytest.raises(VaultKeyError, match=match) as caught:
        ServerKey.from_env({"HEADWATER_SECRET_KEY": text})
    assert text not in str(caught.value)


def test_unpadded_keys_are_accepted() -> None:
    text = ServerKey.generate()
    assert ServerKey.from_text(text.rstrip("=")).key_id == ServerKey.from_text(text).key_id


def test_a_ciphertext_moved_to_another_name_does_not_decrypt(
    vault: Vault, catalog: Catalog
) -> None:
    vault.put("prod", "prod-secret-value")
    vault.put("dev", "dev-secret-value")
    with catalog.engine.begin() as c:
        prod = c.execute(sa.select(credentials.c.ciphertext).where(credentials.c.name == "prod"))
        c.execute(
            credentials.update().where(credentials.c.name == "dev").values(ciphertext=prod.scalar())
        )
    with pytest.raises(VaultError, match="altered or copied from another row"):
        vault.get("dev")


def test_bad_names_and_empty_secrets_are_refused(vault: Vault) -> None:
    for name in ("", "/abs", "has space", "x" * 201):
        with pytest.raises(VaultError, match="cannot name a credential"):
            vault.put(name, "s")
    with pytest.raises(VaultError, match="empty"):
        vault.put("ok", "")


def test_rotation_re_encrypts_credentials_and_access_keys(
    vault: Vault, keys: AccessKeys, catalog: Catalog, server_key: ServerKey, clock: Any
) -> None:
    vault.put("warehouse", PLAIN)
    new_key = keys.create()
    before = raw_rows(catalog)
    fresh = ServerKey.from_text(ServerKey.generate())
    assert rotate(catalog, server_key, fresh) == 2
    assert rotate(catalog, server_key, fresh) == 0  # already done: nothing to do
    assert raw_rows(catalog)[0][1] != before[0][1]
    assert Vault(catalog, fresh).get("warehouse") == PLAIN
    with pytest.raises(VaultKeyError):
        vault.get("warehouse")
    rotated = AccessKeys(catalog, fresh, clock=clock)
    headers = sign("GET", "/x", b"", new_key.access_key, new_key.secret_key.reveal(), now=clock())
    assert rotated.authenticate("GET", "/x", b"", headers).access_key == new_key.access_key
    # From a key that encrypted nothing here: refused, and nothing changes.
    stranger = ServerKey.from_text(ServerKey.generate())
    with pytest.raises(VaultKeyError):
        rotate(catalog, stranger, server_key)
    assert Vault(catalog, fresh).get("warehouse") == PLAIN


def test_secret_and_server_key_never_show_themselves() -> None:
    secret = Secret(PLAIN)
    text = ServerKey.generate()
    key = ServerKey.from_text(text)
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", repr([secret]), repr(key)):
        assert PLAIN not in shown and text not in shown
    assert str(secret) == "***" and repr(secret) == "Secret('***')"
    assert secret == Secret(PLAIN) and secret != Secret("other")
    assert secret.reveal() == PLAIN
