"""Credentials of a data service: named secrets, encrypted at rest, never returned.

They live in the credentials vault as `<data service>/<name>`, so the CLI's
`headwater credentials put sales/warehouse` and this API see the same secrets.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Response

from headwater.catalog.resources import ConflictError
from headwater.client.models import Credential, CredentialSecret, Model
from headwater.errors import NotFoundError
from headwater.server.auth import Caller, ServerDep
from headwater.server.routes.common import ERRORS, PREFIX, CredentialName, DataServiceId
from headwater.vault import CredentialInfo

log = logging.getLogger("headwater.server")

router = APIRouter(
    prefix=f"{PREFIX}/data-services/{{data_service}}/credentials",
    tags=["credentials"],
    responses=ERRORS,
)


def _credential(info: CredentialInfo, data_service: str) -> Credential:
    return Credential(
        name=info.name.removeprefix(f"{data_service}/"),
        created_at=info.created_at,
        updated_at=info.updated_at,
    )


@router.get("")
def list_credentials(
    data_service: DataServiceId, caller: Caller, server: ServerDep
) -> list[Credential]:
    """The data service's credentials: names and timestamps, never a secret."""
    caller.require(data_service)
    server.resources.data_service(data_service)
    prefix = f"{data_service}/"
    return [_credential(c, data_service) for c in server.vault.list() if c.name.startswith(prefix)]


@router.get("/{name}")
def get_credential(
    data_service: DataServiceId, name: CredentialName, caller: Caller, server: ServerDep
) -> Credential:
    caller.require(data_service)
    server.resources.data_service(data_service)
    for info in server.vault.list():
        if info.name == f"{data_service}/{name}":
            return _credential(info, data_service)
    raise NotFoundError(f"data service '{data_service}' has no credential '{name}'")


@router.put("/{name}")
def put_credential(
    data_service: DataServiceId,
    name: CredentialName,
    body: CredentialSecret,
    caller: Caller,
    server: ServerDep,
) -> Credential:
    """Store a secret under `name`, replacing any earlier one. The secret is encrypted at rest
    and never returned; connections name the credential to hand it to connectors."""
    caller.require(data_service, write=True)
    server.resources.data_service(data_service)
    info = server.vault.put(f"{data_service}/{name}", body.secret)
    return _credential(info, data_service)


class CredentialMatch(Model):
    """Whether a secret is the one stored (the stored one is never returned)."""

    matches: bool


@router.post("/{name}/verify")
def verify_credential(
    data_service: DataServiceId,
    name: CredentialName,
    body: CredentialSecret,
    caller: Caller,
    server: ServerDep,
) -> CredentialMatch:
    """Whether `secret` is the secret stored under `name`, compared in constant time; the
    stored secret is never returned. Needs write access to the data service (the same as
    replacing the secret), so a key that may only read cannot probe secrets."""
    caller.require(data_service, write=True)
    server.resources.data_service(data_service)
    try:
        stored = server.vault.get(f"{data_service}/{name}")
    except NotFoundError:
        raise NotFoundError(f"data service '{data_service}' has no credential '{name}'") from None
    matches = hmac.compare_digest(stored.encode("utf-8"), body.secret.encode("utf-8"))
    log.info("credential %s/%s verified by %s", data_service, name, caller.access_key)
    return CredentialMatch(matches=matches)


@router.delete("/{name}", status_code=204)
def delete_credential(
    data_service: DataServiceId, name: CredentialName, caller: Caller, server: ServerDep
) -> Response:
    """Forget a credential (409 while a connection uses it)."""
    caller.require(data_service, write=True)
    server.resources.data_service(data_service)
    users = server.resources.credential_users(data_service, name)
    if users:
        raise ConflictError(
            f"credential '{name}' is used by connection(s) {', '.join(users)}; change or delete "
            "them first"
        )
    try:
        server.vault.delete(f"{data_service}/{name}")
    except NotFoundError:
        raise NotFoundError(f"data service '{data_service}' has no credential '{name}'") from None
    return Response(status_code=204)
