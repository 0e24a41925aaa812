"""A planted secret never shows: not in an exception message, a repr, a log record (at DEBUG,
SQLAlchemy's statement log included) or CLI output, whichever way the secret came in."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from headwater.catalog import Catalog
from headwater.console import state
from headwater.credentials_cli import credentials_app
from headwater.errors import NotFoundError
from headwater.keys import AccessKeys
from headwater.keys_cli import app as keys_app
from headwater.signing import AuthenticationError, derive_signing_key, sign
from headwater.vault import Secret, ServerKey, Vault, VaultError, VaultKeyError, rotate

PLANTED = "PLANTED-s3cr3t-7c1e4f0b9a"
runner = CliRunner()


def forms_of(secret: str) -> list[str]:
    return [secret, secret.encode().hex(), json.dumps(secret)[1:-1]]


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        for form in forms_of(secret):
            assert form not in text, f"a secret leaked: ...{text[:400]}"


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records
    )


def test_vault_paths_never_show_the_secret(
    catalog: Catalog, vault: Vault, server_key: ServerKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    shown: list[str] = []
    info = vault.put("warehouse", Secret(PLANTED))
    assert vault.get("warehouse") == PLANTED
    shown += [repr(info), repr(vault), repr(vault.list()), repr(Secret(PLANTED)), repr(server_key)]
    failures: list[Exception] = []
    wrong = Vault(catalog, ServerKey.from_text(ServerKey.generate()))
    attempts: list[tuple[Callable[[], object], type[Exception]]] = [
        (lambda: vault.put("bad name", PLANTED), VaultError),
        (lambda: wrong.get("warehouse"), VaultKeyError),
        (lambda: wrong.put("warehouse", PLANTED), VaultKeyError),
        (lambda: ServerKey.from_text(PLANTED), VaultKeyError),
        (lambda: vault.get("missing"), NotFoundError),
    ]
    for attempt, expected in attempts:
        with pytest.raises(expected) as caught:
            attempt()
        failures.append(caught.value)
    rotate(catalog, server_key, ServerKey.from_text(ServerKey.generate()))
    vault.delete("warehouse")
    shown += [f"{type(e).__name__}: {e} {e!r} {e.args!r}" for e in failures]
    assert "sqlalchemy.engine" in logged(caplog)  # the statement log was on, and is clean too
    assert_clean("\n".join(shown) + logged(caplog), PLANTED)


def test_key_paths_never_show_the_secret_or_signing_key(
    catalog: Catalog, keys: AccessKeys, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    new = keys.create(description="planted-test")
    secret = new.secret_key.reveal()
    signing = derive_signing_key(new.access_key, secret).decode("latin-1")
    shown = [repr(new), str(new), repr(keys.list()), repr(keys)]
    body = json.dumps({"secret": PLANTED})  # a credential travelling in a request body
    headers = sign("PUT", "/api/v1/credentials/x", body, new.access_key, secret, now=clock())
    shown.append(repr(keys.authenticate("PUT", "/api/v1/credentials/x", body, headers)))
    for forged in (
        sign("PUT", "/api/v1/credentials/x", body, new.access_key, PLANTED, now=clock()),
        headers,  # replayed
        {"Authorization": "HWR1-HMAC-SHA256 Credential=" + PLANTED},
    ):
        with pytest.raises(AuthenticationError) as caught:
            keys.authenticate("PUT", "/api/v1/credentials/x?token=" + PLANTED, body, forged)
        shown.append(f"{caught.value} {caught.value!r} {vars(caught.value)!r}")
    keys.revoke(new.access_key)
    text = "\n".join(shown) + logged(caplog)
    assert_clean(text, PLANTED, secret)
    assert signing not in text and derive_signing_key(new.access_key, secret).hex() not in text


def test_cli_output_never_shows_a_credential(
    tmp_path: Path,
    catalog_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    monkeypatch.setattr(state, "home", tmp_path / "home")
    monkeypatch.setattr(state, "debug", False)
    monkeypatch.setenv("HEADWATER_CATALOG_URL", catalog_url)
    monkeypatch.setenv("HEADWATER_SECRET_KEY", ServerKey.generate())
    outputs = []
    for app, args, stdin in [
        (credentials_app, ["put", "warehouse"], PLANTED + "\n"),
        (credentials_app, ["put", "json_one"], json.dumps({"password": PLANTED})),
        (credentials_app, ["put", "bad name!"], PLANTED),
        (credentials_app, ["list"], None),
        (credentials_app, ["list", "--json"], None),
        (credentials_app, ["delete", "warehouse"], None),
        (credentials_app, ["delete", "warehouse"], None),
        (keys_app, ["list"], None),
    ]:
        result = runner.invoke(app, args, input=stdin)
        outputs.append(f"{result.exit_code} {result.stdout} {result.stderr} {result.exception!r}")
    monkeypatch.setenv("HEADWATER_SECRET_KEY", ServerKey.generate())  # the wrong key now
    result = runner.invoke(credentials_app, ["put", "json_one"], input=PLANTED)
    assert result.exit_code == 1 and "encrypted with another server key" in result.stderr
    outputs.append(result.output)
    assert_clean("\n".join(outputs) + logged(caplog), PLANTED)
