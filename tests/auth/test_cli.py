"""`headwater keys ...` and `headwater credentials ...`, run in-process on a real workspace
catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner, Result

from headwater import Settings, Workspace
from headwater.console import state
from headwater.credentials_cli import credentials_app
from headwater.keys import AccessKeys
from headwater.keys_cli import app as keys_app
from headwater.signing import sign
from headwater.vault import ServerKey, Vault

runner = CliRunner()
APPS: dict[str, typer.Typer] = {"keys": keys_app, "credentials": credentials_app}


@pytest.fixture
def home(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace home whose catalog is `catalog_url`, and a server key in the environment."""
    home = tmp_path / "home"
    monkeypatch.setattr(state, "home", home)
    monkeypatch.setattr(state, "debug", False)
    monkeypatch.setenv("HEADWATER_CATALOG_URL", catalog_url)
    monkeypatch.setenv("HEADWATER_SECRET_KEY", ServerKey.generate())
    yield home


def hw(group: str, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(APPS[group], list(args), input=stdin)


def open_workspace(home: Path) -> Workspace:
    return Workspace(Settings.from_env(home=home))


@pytest.mark.parametrize("group", ["keys", "credentials"])
def test_every_command_has_help_with_an_example(group: str) -> None:
    app = APPS[group]
    top = runner.invoke(app, ["--help"])
    assert f"Example: headwater {group} " in top.stdout
    commands = sorted(get_command(app).commands)  # type: ignore[attr-defined]
    assert commands
    for name in commands:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert f"Example: headwater {group} {name}" in result.stdout, f"{group} {name}"


def test_keys_create_json_gives_a_working_key_pair(home: Path) -> None:
    result = hw("keys", "create", "--json", "--read-only", "--data-service", "sales")
    assert result.exit_code == 0, result.output
    pair = json.loads(result.stdout)
    assert set(pair) == {"access_key", "secret_key"}
    headers = sign("GET", "/api/v1/data-services", b"", pair["access_key"], pair["secret_key"])
    with open_workspace(home) as ws:
        keys = AccessKeys(ws.catalog, ServerKey.from_env())
        principal = keys.authenticate("GET", "/api/v1/data-services", b"", headers)
    assert principal.access_key == pair["access_key"]
    assert principal.read_only and principal.data_services == frozenset({"sales"})


def test_keys_create_table_warns_that_the_secret_is_shown_once(home: Path) -> None:
    result = hw("keys", "create", "--description", "nightly [loader]")
    assert result.exit_code == 0, result.output
    assert "access key" in result.stdout and "read-write" in result.stdout
    assert "shown only this once" in result.stderr


def test_keys_list_and_revoke(home: Path) -> None:
    pair = json.loads(hw("keys", "create", "--json", "--data-service", "ops").stdout)
    listed = hw("keys", "list")
    assert pair["access_key"] in listed.stdout and "ops" in listed.stdout
    assert pair["secret_key"] not in listed.stdout
    revoked = hw("keys", "revoke", pair["access_key"])
    assert revoked.exit_code == 0 and f"revoked {pair['access_key']}" in revoked.stdout
    rows = json.loads(hw("keys", "list", "--json").stdout)
    assert rows[0]["access_key"] == pair["access_key"] and rows[0]["revoked_at"]
    assert json.loads(hw("keys", "list", "--json", "--no-revoked").stdout) == []
    missing = hw("keys", "revoke", "HWNOPENOPENOPENOPE")
    assert missing.exit_code == 1
    assert "no access key HWNOPENOPENOPENOPE" in missing.stderr


def test_keys_create_without_a_server_key_says_how_to_make_one(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEADWATER_SECRET_KEY")
    result = hw("keys", "create")
    assert result.exit_code == 1
    assert "HEADWATER_SECRET_KEY is not set" in result.stderr
    assert "base64.urlsafe_b64encode(os.urandom(32))" in result.stderr
    assert "Traceback" not in result.output


def test_credentials_put_reads_stdin(home: Path) -> None:
    result = hw("credentials", "put", "warehouse", stdin="pa55-word\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "stored credential warehouse"
    with open_workspace(home) as ws:
        assert Vault(ws.catalog, ServerKey.from_env()).get("warehouse") == "pa55-word"
    # Only one final newline is dropped; inner and other whitespace is the secret's own.
    hw("credentials", "put", "multi", stdin="line1\nline2 \r\n")
    with open_workspace(home) as ws:
        assert Vault(ws.catalog, ServerKey.from_env()).get("multi") == "line1\nline2 "


def test_credentials_put_refuses_an_empty_secret_and_takes_no_secret_argument(
    home: Path,
) -> None:
    empty = hw("credentials", "put", "warehouse", stdin="")
    assert empty.exit_code == 1 and "no secret given" in empty.stderr
    extra = hw("credentials", "put", "warehouse", "the-secret", stdin="x")
    assert extra.exit_code == 2  # there is no place for a secret on the command line


def test_credentials_list_and_delete(home: Path) -> None:
    hw("credentials", "put", "b", stdin="1")
    hw("credentials", "put", "a", stdin="2")
    rows = json.loads(hw("credentials", "list", "--json").stdout)
    assert [r["name"] for r in rows] == ["a", "b"]
    assert datetime.datetime.fromisoformat(rows[0]["created_at"]).tzinfo is not None
    assert "a" in hw("credentials", "list").stdout
    assert hw("credentials", "delete", "a").stdout.strip() == "deleted credential a"
    gone = hw("credentials", "delete", "a")
    assert gone.exit_code == 1 and "no credential named 'a'" in gone.stderr


def test_credentials_rotate_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = ServerKey.from_env()
    old_text = os.environ["HEADWATER_SECRET_KEY"]
    hw("credentials", "put", "warehouse", stdin="s3cret-value")
    pair = json.loads(hw("keys", "create", "--json").stdout)
    new_text = ServerKey.generate()
    monkeypatch.setenv("HEADWATER_SECRET_KEY", new_text)
    result = hw("credentials", "rotate-key", stdin=old_text + "\n")
    assert result.exit_code == 0, result.output
    assert "re-encrypted 2 secret(s)" in result.stdout
    assert old_text not in result.output and new_text not in result.output
    with open_workspace(home) as ws:
        assert Vault(ws.catalog, ServerKey.from_text(new_text)).get("warehouse") == "s3cret-value"
        headers = sign("GET", "/x", b"", pair["access_key"], pair["secret_key"])
        rotated = AccessKeys(ws.catalog, ServerKey.from_text(new_text))
        assert rotated.authenticate("GET", "/x", b"", headers).access_key == pair["access_key"]
    assert old.key_id != ServerKey.from_text(new_text).key_id
