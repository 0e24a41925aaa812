"""`headwater credentials ...`: the vault of named secrets handed to connectors.

A secret is read from stdin or a hidden prompt, never from an argument (arguments end up in
shell history and in every user's `ps`)."""

from __future__ import annotations

import json
import sys

import typer
from rich.markup import escape
from rich.table import Table

from headwater.console import out, workspace

# Each command imports headwater.vault (SQLAlchemy, cryptography) when it runs: importing this
# module is part of every `headwater` command's startup.

credentials_app = typer.Typer(
    help="Credentials: named secrets for connectors, encrypted at rest with "
    "HEADWATER_SECRET_KEY, never printed.\n\n"
    "Example: headwater credentials put github_token < token.txt",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _read_secret(prompt: str) -> str:
    """A secret from stdin when it is piped (one final newline dropped), else a hidden prompt."""
    if sys.stdin is not None and not sys.stdin.isatty():
        text = sys.stdin.read()
        if text.endswith("\r\n"):
            return text[:-2]
        return text.removesuffix("\n")
    value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
    return value


@credentials_app.command()
def put(
    name: str = typer.Argument(..., help="The credential's name (letters, digits, _ . - /)."),
) -> None:
    """Store a credential, replacing one of the same name. The secret comes from stdin (one
    final newline is dropped) or, at a terminal, from a hidden prompt.

    Example: headwater credentials put github_token < token.txt
    """
    from headwater.vault import ServerKey, Vault, VaultError

    with workspace() as ws:
        vault = Vault(ws.catalog, ServerKey.from_env(), clock=ws.clock)
        secret = _read_secret(f"Secret for {name}")
        if not secret:
            raise VaultError(f"no secret given for credential '{name}' (stdin was empty)")
        info = vault.put(name, secret)
    out.print(f"stored credential {escape(info.name)}")


@credentials_app.command(name="list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List credentials: names and when they were stored (never a secret).

    Example: headwater credentials list --json
    """
    from headwater.vault import Vault

    with workspace() as ws:
        infos = Vault(ws.catalog, clock=ws.clock).list()
    if as_json:
        rows = [
            {
                "name": i.name,
                "created_at": i.created_at.isoformat(),
                "updated_at": i.updated_at.isoformat(),
            }
            for i in infos
        ]
        typer.echo(json.dumps(rows))
        return
    if not infos:
        out.print("no credentials yet: headwater credentials put NAME < secret.txt")
        return
    table = Table("name", "created", "updated")
    for i in infos:
        table.add_row(
            escape(i.name), f"{i.created_at:%Y-%m-%d %H:%M:%S}", f"{i.updated_at:%Y-%m-%d %H:%M:%S}"
        )
    out.print(table)


@credentials_app.command()
def delete(
    name: str = typer.Argument(..., help="The credential to delete."),
) -> None:
    """Delete a credential. Connections that use it fail until it is stored again.

    Example: headwater credentials delete github_token
    """
    from headwater.vault import Vault

    with workspace() as ws:
        Vault(ws.catalog, clock=ws.clock).delete(name)
    out.print(f"deleted credential {escape(name)}")


@credentials_app.command(name="rotate-key")
def rotate_key() -> None:
    """Re-encrypt every credential and access key under a new server key: the new key in
    HEADWATER_SECRET_KEY, the old one from stdin (or a hidden prompt). Safe to run again.

    Example: headwater credentials rotate-key < old_secret_key.txt
    """
    from headwater.vault import ServerKey, rotate

    with workspace() as ws:
        new = ServerKey.from_env()
        old = ServerKey.from_text(_read_secret("Old HEADWATER_SECRET_KEY"), setting="the old key")
        changed = rotate(ws.catalog, old, new)
    out.print(f"re-encrypted {changed} secret(s) under key id {new.key_id}")
