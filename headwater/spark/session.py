"""The SparkSession Headwater runs on: the one already running in this process (a notebook's,
a `spark-submit` job's, a test's), else one started from `SparkSettings`."""

from __future__ import annotations

import os
import re
import sys

from pyspark.errors import PySparkRuntimeError
from pyspark.sql import SparkSession

from headwater.errors import HeadwaterError
from headwater.settings import SPARK_CONF_ENV, SPARK_MASTER_ENV, SparkSettings

DEFAULT_MASTER = "local[*]"
# Spark's console progress bar would draw over Headwater's own.
DEFAULTS = {"spark.app.name": "headwater", "spark.ui.showConsoleProgress": "false"}
_LOCAL = re.compile(r"^local(\[.*\])?$")


class SparkError(HeadwaterError):
    """Spark failed as a whole: it did not start, or could not plan a refresh's job."""


def session(settings: SparkSettings | None = None) -> SparkSession:
    """The running SparkSession, or a new one from `settings` (default: the environment).

    A session that already runs wins: its master and conf stay as they are, as Spark's own
    `getOrCreate` does.

    Raises:
        SparkError: Spark did not start (no Java, a master that cannot be reached).

    Example:
        >>> spark = session(SparkSettings(master="local[2]"))        # doctest: +SKIP
    """
    try:
        return SparkSession.active()
    except PySparkRuntimeError:
        pass
    settings = settings or SparkSettings.from_env()
    master = settings.master or DEFAULT_MASTER
    conf = {**DEFAULTS, **settings.conf}
    _python_for_workers(master, conf)
    builder = SparkSession.builder.master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SparkError(
            f"Spark did not start with master {master!r}: {first}; check that Java 17+ is "
            f"installed (JAVA_HOME), and the master URL ({SPARK_MASTER_ENV}) and properties "
            f"({SPARK_CONF_ENV})"
        ) from exc


def _python_for_workers(master: str, conf: dict[str, str]) -> None:
    """pyspark starts Python workers with $PYSPARK_PYTHON (else `python3` on the PATH), read
    when the session starts; `spark-submit` sets it from `spark.pyspark.python`. Started from
    Python we do the same, and locally default to this interpreter, whose packages (pyarrow,
    Headwater, the connector's) the workers need."""
    if "PYSPARK_PYTHON" in os.environ:
        return
    python = conf.get("spark.pyspark.python") or (sys.executable if _LOCAL.match(master) else None)
    if python:
        os.environ["PYSPARK_PYTHON"] = python
