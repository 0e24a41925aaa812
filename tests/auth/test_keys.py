"""Access keys in a real catalog (SQLite and PostgreSQL): create, list, revoke, authenticate,
scopes, and replay protection shared by several server workers."""

from __future__ import annotations

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from headwater.catalog import Catalog
from headwater.catalog.tables import access_keys, auth_nonces
from headwater.errors import NotFoundError
from headwater.keys import (
    AccessKeyError,
    AccessKeys,
    PermissionDeniedError,
    Principal,
    RevokedAccessKeyError,
)
from headwater.signing import (
    ClockSkewError,
    ReplayError,
    SignatureMismatchError,
    UnknownAccessKeyError,
    derive_signing_key,
    sign,
)
from headwater.vault import ServerKey, VaultKeyError


def signed(
    new: Any, clock: Any, method: str = "GET", target: str = "/x", body: bytes = b""
) -> dict[str, str]:
    return sign(method, target, body, new.access_key, new.secret_key.reveal(), now=clock())


def test_create_then_authenticate(keys: AccessKeys, clock: Any) -> None:
    new = keys.create(description="loader")
    assert new.access_key.startswith("HW") and len(new.access_key) == 18
    assert len(new.secret_key.reveal()) == 40
    body = b'{"name": "sales"}'
    headers = signed(new, clock, "POST", "/api/v1/data-services?dry_run=true", body)
    principal = keys.authenticate("POST", "/api/v1/data-services?dry_run=true", body, headers)
    assert principal == Principal(new.access_key, read_only=False, data_services=None)


def test_keys_are_unique_and_listed_without_secrets(keys: AccessKeys, clock: Any) -> None:
    created = []
    for _ in range(3):
        created.append(keys.create())
        clock.advance(1)
    assert len({n.access_key for n in created}) == 3
    assert len({n.secret_key.reveal() for n in created}) == 3
    listed = keys.list()
    assert [i.access_key for i in listed] == [n.access_key for n in created]  # oldest first
    for info in listed:
        assert not any(n.secret_key.reveal() in repr(info) for n in created)


def test_the_catalog_holds_neither_the_secret_nor_the_signing_key(
    keys: AccessKeys, catalog: Catalog
) -> None:
    new = keys.create()
    secret = new.secret_key.reveal()
    with catalog.engine.connect() as c:
        row = c.execute(sa.select(access_keys)).one()
    raw = repr(tuple(row)).encode() + bytes(row.signing_key)
    assert secret.encode() not in raw
    assert derive_signing_key(new.access_key, secret) not in raw
    assert derive_signing_key(new.access_key, secret).hex().encode() not in raw


def test_revoked_key_is_refused(keys: AccessKeys, clock: Any) -> None:
    new = keys.create()
    keys.authenticate("GET", "/x", b"", signed(new, clock))
    clock.advance(1)
    info = keys.revoke(new.access_key)
    assert info.revoked_at == clock()
    with pytest.raises(RevokedAccessKeyError, match="was revoked"):
        keys.authenticate("GET", "/x", b"", signed(new, clock))
    clock.advance(1)
    assert keys.revoke(new.access_key).revoked_at == info.revoked_at  # revoking again: no change
    assert [i.access_key for i in keys.list(include_revoked=False)] == []


def test_unknown_keys(keys: AccessKeys, clock: Any) -> None:
    headers = sign("GET", "/x", b"", "HWZZZZZZZZZZZZZZZZ", "whatever", now=clock())
    with pytest.raises(UnknownAccessKeyError, match="does not exist"):
        keys.authenticate("GET", "/x", b"", headers)
    with pytest.raises(NotFoundError, match="keys list"):
        keys.revoke("HWZZZZZZZZZZZZZZZZ")


def test_a_wrong_secret_is_refused(keys: AccessKeys, clock: Any) -> None:
    new = keys.create()
    headers = sign("GET", "/x", b"", new.access_key, "guess", now=clock())
    with pytest.raises(SignatureMismatchError):
        keys.authenticate("GET", "/x", b"", headers)


def test_scopes_reach_the_principal(keys: AccessKeys, clock: Any) -> None:
    reader = keys.create(read_only=True)
    sales = keys.create(data_services=["sales", "ops", "sales"])
    p = keys.authenticate("GET", "/x", b"", signed(reader, clock))
    assert p == Principal(reader.access_key, read_only=True, data_services=None)
    assert p.allows("sales") and p.allows(None) and not p.allows("sales", write=True)
    with pytest.raises(PermissionDeniedError, match=r"may not change data service 'sales'.*read-o"):
        p.require("sales", write=True)
    q = keys.authenticate("GET", "/x", b"", signed(sales, clock))
    assert q.data_services == frozenset({"ops", "sales"}) and not q.read_only
    assert q.allows("sales", write=True) and q.can_see("ops") and not q.can_see("hr")
    assert not q.allows(None)  # site-level resources need a key for every data service
    with pytest.raises(PermissionDeniedError, match="limited to data services ops, sales, not"):
        q.require("hr")
    assert keys.get(sales.access_key).data_services == ("ops", "sales")


def test_a_key_for_no_data_service_is_refused(keys: AccessKeys) -> None:
    with pytest.raises(AccessKeyError, match="no data service"):
        keys.create(data_services=[])


def test_skew_both_ways(keys: AccessKeys, clock: Any) -> None:
    new = keys.create()
    for offset in (-301, 301):
        headers = sign(
            "GET", "/x", b"", new.access_key, new.secret_key.reveal(),
            now=clock() + datetime.timedelta(seconds=offset),
        )  # fmt: skip
        with pytest.raises(ClockSkewError):
            keys.authenticate("GET", "/x", b"", headers)


def test_replay_is_refused_and_never_accepted_again(
    keys: AccessKeys, catalog: Catalog, server_key: ServerKey, clock: Any
) -> None:
    new = keys.create()
    headers = signed(new, clock, "POST", "/api/v1/runs", b"{}")
    keys.authenticate("POST", "/api/v1/runs", b"{}", headers)
    # Another server worker on the same catalog refuses it too.
    other_worker = AccessKeys(catalog, server_key, clock=clock)
    for worker in (keys, other_worker):
        with pytest.raises(ReplayError):
            worker.authenticate("POST", "/api/v1/runs", b"{}", headers)
    # Up to the end of the window the nonce is remembered; after it, the timestamp is too old.
    clock.advance(300)
    with pytest.raises(ReplayError):
        other_worker.authenticate("POST", "/api/v1/runs", b"{}", headers)
    clock.advance(1)
    assert keys.nonces.purge() == 1
    with pytest.raises(ClockSkewError):
        keys.authenticate("POST", "/api/v1/runs", b"{}", headers)


def test_concurrent_replays_let_exactly_one_through(
    keys: AccessKeys, catalog: Catalog, server_key: ServerKey, clock: Any
) -> None:
    new = keys.create()
    headers = signed(new, clock, "POST", "/api/v1/runs", b"{}")
    workers = [AccessKeys(catalog, server_key, clock=clock) for _ in range(8)]
    barrier = threading.Barrier(len(workers))

    def attempt(worker: AccessKeys) -> str:
        barrier.wait()
        try:
            worker.authenticate("POST", "/api/v1/runs", b"{}", headers)
        except ReplayError:
            return "replay"
        return "accepted"

    with ThreadPoolExecutor(len(workers)) as pool:
        outcomes = sorted(pool.map(attempt, workers))
    assert outcomes == ["accepted"] + ["replay"] * 7


def test_expired_nonces_are_purged_while_recording(
    keys: AccessKeys, catalog: Catalog, clock: Any
) -> None:
    new = keys.create()
    keys.nonces.purge_every = 0
    for _ in range(3):
        keys.authenticate("GET", "/x", b"", signed(new, clock))
    clock.advance(400)
    keys.authenticate("GET", "/x", b"", signed(new, clock))
    with catalog.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(auth_nonces)).scalar() == 1


def test_keys_need_the_server_key_they_were_made_with(
    keys: AccessKeys, catalog: Catalog, clock: Any
) -> None:
    new = keys.create()
    other = AccessKeys(catalog, ServerKey.from_text(ServerKey.generate()), clock=clock)
    with pytest.raises(VaultKeyError, match=r"another server key.*HEADWATER_SECRET_KEY"):
        other.authenticate("GET", "/x", b"", signed(new, clock))
    listing_only = AccessKeys(catalog, clock=clock)
    assert [i.access_key for i in listing_only.list()] == [new.access_key]
    with pytest.raises(VaultKeyError, match="HEADWATER_SECRET_KEY is not set"):
        listing_only.create()
