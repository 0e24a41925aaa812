"""Fixtures for authentication and secrets: a catalog on SQLite and PostgreSQL, a server key,
and a clock the test moves by hand."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from headwater.catalog import Catalog
from headwater.keys import AccessKeys
from headwater.vault import ServerKey, Vault

T0 = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(catalog_url)
    yield cat
    cat.close()


@pytest.fixture
def server_key() -> ServerKey:
    return ServerKey.from_text(ServerKey.generate())


@pytest.fixture
def keys(catalog: Catalog, server_key: ServerKey, clock: Clock) -> AccessKeys:
    return AccessKeys(catalog, server_key, clock=clock)


@pytest.fixture
def vault(catalog: Catalog, server_key: ServerKey, clock: Clock) -> Vault:
    return Vault(catalog, server_key, clock=clock)
