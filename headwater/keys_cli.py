"""`headwater keys ...`: create, list and revoke the access keys that sign API requests."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from headwater.console import err, out, workspace

# Each command imports headwater.keys and headwater.vault (SQLAlchemy, cryptography) when it
# runs: importing this module is part of every `headwater` command's startup.
if TYPE_CHECKING:
    from headwater.keys import AccessKeyInfo

app = typer.Typer(
    help="Access keys: access key + secret key pairs that sign requests to the Headwater server. "
    "Creating one needs HEADWATER_SECRET_KEY.\n\n"
    "Example: headwater keys create --read-only --data-service sales --json",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command()
def create(
    read_only: bool = typer.Option(False, "--read-only", help="The key may only read."),
    data_service: list[str] | None = typer.Option(
        None,
        "--data-service",
        help="Limit the key to this data service; repeat for several (default: every one).",
    ),
    description: str | None = typer.Option(
        None, "--description", help="What the key is for (shown by `keys list`)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"access_key": ..., "secret_key": ...} for scripts.'
    ),
) -> None:
    """Create an access key. Its secret key is printed this once and is not stored anywhere.

    Example: headwater keys create --data-service sales --description "nightly loader"
    """
    from headwater.keys import AccessKeys
    from headwater.vault import ServerKey

    with workspace() as ws:
        keys = AccessKeys(ws.catalog, ServerKey.from_env(), clock=ws.clock)
        new = keys.create(
            read_only=read_only, data_services=data_service or None, description=description
        )
    secret = new.secret_key.reveal()
    if as_json:
        typer.echo(json.dumps({"access_key": new.access_key, "secret_key": secret}))
        return
    table = Table("access key", "secret key", "access", "data services")
    table.add_row(new.access_key, secret, _access(new.info), escape(_scopes(new.info)))
    out.print(table)
    err.print(
        "[yellow]warning:[/yellow] the secret key is shown only this once; store it now "
        "(e.g. in ~/.headwater/credentials). A lost secret cannot be recovered: revoke the key "
        "and create another.",
        markup=True,
    )


@app.command(name="list")
def list_(
    revoked: bool = typer.Option(
        True, "--revoked/--no-revoked", help="Include revoked keys (default: yes)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List access keys and what each may do (secret keys are never shown).

    Example: headwater keys list --no-revoked
    """
    from headwater.keys import AccessKeys

    with workspace() as ws:
        infos = AccessKeys(ws.catalog, clock=ws.clock).list(include_revoked=revoked)
    if as_json:
        typer.echo(json.dumps([_json(i) for i in infos]))
        return
    if not infos:
        out.print("no access keys yet: headwater keys create")
        return
    table = Table("access key", "access", "data services", "description", "created", "revoked")
    for info in infos:
        table.add_row(
            info.access_key,
            _access(info),
            escape(_scopes(info)),
            escape(info.description or ""),
            f"{info.created_at:%Y-%m-%d %H:%M:%S}",
            f"{info.revoked_at:%Y-%m-%d %H:%M:%S}" if info.revoked_at else "",
        )
    out.print(table)


@app.command()
def revoke(
    access_key: str = typer.Argument(..., help="The access key id (HW...) to revoke."),
) -> None:
    """Revoke an access key: every request signed with it is refused from now on.

    Example: headwater keys revoke HWABCDEFGHIJKLMNOP
    """
    from headwater.keys import AccessKeys

    with workspace() as ws:
        info = AccessKeys(ws.catalog, clock=ws.clock).revoke(access_key.strip())
    assert info.revoked_at is not None
    out.print(f"revoked {info.access_key} (at {info.revoked_at:%Y-%m-%d %H:%M:%S} UTC)")


def _access(info: AccessKeyInfo) -> str:
    return "read-only" if info.read_only else "read-write"


def _scopes(info: AccessKeyInfo) -> str:
    return "all" if info.data_services is None else ", ".join(info.data_services)


def _json(info: AccessKeyInfo) -> dict[str, object]:
    return {
        "access_key": info.access_key,
        "read_only": info.read_only,
        "data_services": None if info.data_services is None else list(info.data_services),
        "description": info.description,
        "created_at": info.created_at.isoformat(),
        "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
    }
