"""Migration 0004 (access keys, nonces, credentials) goes down and up again on both databases."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from headwater.catalog import Catalog, connect

NEW_TABLES = {"access_keys", "auth_nonces", "credentials"}


def migrate(catalog: Catalog, target: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(connect.MIGRATIONS))
    with catalog.engine.begin() as c:
        config.attributes["connection"] = c
        (command.downgrade if down else command.upgrade)(config, target)


def test_0004_downgrades_and_upgrades(catalog: Catalog) -> None:
    assert set(sa.inspect(catalog.engine).get_table_names()) >= NEW_TABLES
    migrate(catalog, "0003", down=True)
    assert not NEW_TABLES & set(sa.inspect(catalog.engine).get_table_names())
    migrate(catalog, "head")
    assert set(sa.inspect(catalog.engine).get_table_names()) >= NEW_TABLES
