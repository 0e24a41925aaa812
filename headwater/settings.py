"""Workspace settings: where the catalog and the store live. Read once, at startup."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from headwater.errors import SettingsError

HOME_ENV = "HEADWATER_HOME"
CATALOG_ENV = "HEADWATER_CATALOG_URL"
STORE_ENV = "HEADWATER_STORE_URL"
SPARK_MASTER_ENV = "HEADWATER_SPARK_MASTER"
SPARK_CONF_ENV = "HEADWATER_SPARK_CONF"


@dataclass(frozen=True)
class SparkSettings:
    """Where the Spark executor runs, used only when Headwater starts the SparkSession itself
    (a session already running in the process, as in a notebook, is used as it is).

    `HEADWATER_SPARK_MASTER` is the master URL (`local[4]`, `spark://host:7077`,
    `k8s://https://host:443`, `yarn`; default `local[*]`). `HEADWATER_SPARK_CONF` is a JSON
    object of Spark properties, e.g. `{"spark.executor.memory": "4g"}`.

    Example:
        >>> SparkSettings.from_env({"HEADWATER_SPARK_CONF": '{"spark.executor.cores": 2}'}).conf
        {'spark.executor.cores': '2'}
    """

    master: str | None = None
    conf: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SparkSettings:
        env = os.environ if environ is None else environ
        conf = parse_spark_conf(env.get(SPARK_CONF_ENV) or "{}", SPARK_CONF_ENV)
        return cls(master=env.get(SPARK_MASTER_ENV) or None, conf=conf)

    def updated(self, master: str | None = None, conf: Iterable[str] = ()) -> SparkSettings:
        """These settings with `master` replaced and `KEY=VALUE` properties added (the
        command line's `--spark-master` and `--spark-conf`)."""
        added = {}
        for item in conf:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SettingsError(
                    f"Spark property {item!r} is not KEY=VALUE; "
                    "write it as --spark-conf spark.executor.memory=4g"
                )
            added[key.strip()] = value
        return SparkSettings(master=master or self.master, conf={**self.conf, **added})


def parse_spark_conf(text: str, what: str) -> dict[str, str]:
    """Spark properties from a JSON object; numbers and booleans become Spark's strings."""
    # The text is never quoted back: a Spark property may hold a secret (an S3 secret key).
    fix = 'write it as {"spark.executor.memory": "4g", "spark.executor.cores": 2}'
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"{what} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); {fix}"
        ) from None
    if not isinstance(value, dict):
        raise SettingsError(f"{what} is a JSON {type(value).__name__}, not an object; {fix}")
    wrong = sorted(k for k, v in value.items() if not isinstance(v, str | int | float | bool))
    if wrong:
        raise SettingsError(
            f"{what}: the value of {', '.join(wrong)} is not a string, number or boolean; {fix}"
        )
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


@dataclass(frozen=True)
class Settings:
    """Where a Headwater workspace keeps its catalog (SQL) and its store (Parquet files).

    The embedded default keeps both under one home directory: `HEADWATER_HOME`, else `./.headwater`.
    `HEADWATER_CATALOG_URL` (a SQLAlchemy URL, e.g. `postgresql://user@host/db`) and
    `HEADWATER_STORE_URL` (a local path or an fsspec URL such as `s3://bucket/prefix`) move either.
    `spark` says where the Spark executor runs (see `SparkSettings`).
    """

    home: Path
    catalog_url: str
    store_url: str
    spark: SparkSettings = field(default_factory=SparkSettings)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, home: str | Path | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        root = Path(home or env.get(HOME_ENV) or ".headwater").expanduser().absolute()
        catalog = env.get(CATALOG_ENV) or f"sqlite:///{root / 'catalog.db'}"
        store = env.get(STORE_ENV) or str(root / "store")
        return cls(
            home=root,
            catalog_url=normalize_catalog_url(catalog),
            store_url=store,
            spark=SparkSettings.from_env(env),
        )


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
