"""Workspace settings: where the catalog and the store live. Read once, at startup."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from headwater.errors import SettingsError

HOME_ENV = "HEADWATER_HOME"
CATALOG_ENV = "HEADWATER_CATALOG_URL"
STORE_ENV = "HEADWATER_STORE_URL"


@dataclass(frozen=True)
class Settings:
    """Where a Headwater workspace keeps its catalog (SQL) and its store (Parquet files).

    The embedded default keeps both under one home directory: `HEADWATER_HOME`, else `./.headwater`.
    `HEADWATER_CATALOG_URL` (a SQLAlchemy URL, e.g. `postgresql://user@host/db`) and
    `HEADWATER_STORE_URL` (a local path or an fsspec URL such as `s3://bucket/prefix`) move either.
    """

    home: Path
    catalog_url: str
    store_url: str

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, home: str | Path | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        root = Path(home or env.get(HOME_ENV) or ".headwater").expanduser().absolute()
        catalog = env.get(CATALOG_ENV) or f"sqlite:///{root / 'catalog.db'}"
        store = env.get(STORE_ENV) or str(root / "store")
        return cls(home=root, catalog_url=normalize_catalog_url(catalog), store_url=store)


def normalize_catalog_url(url: str) -> str:
    """Accept the URL forms users paste, and pick the driver Headwater ships with."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    raise SettingsError(
        f"{CATALOG_ENV}={url!r} is not a catalog URL Headwater supports; "
        "use sqlite:///path/to/catalog.db or postgresql://user@host:5432/database"
    )
