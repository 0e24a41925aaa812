"""One SparkSession (`local[2]`) for the whole test session: starting Spark costs seconds of JVM
start-up and Python workers, paid once. Headwater's Spark executor finds it running and uses it,
as it would a notebook's session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from headwater.settings import SparkSettings

TEST_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.session.timeZone": "UTC",
    # Tests read their failures from Headwater's outcomes; Spark's own log would only be noise.
    "spark.log.level": "ERROR",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The test session's SparkSession, started by Headwater's own `session()`."""
    from headwater.spark import session

    started = session(SparkSettings(master="local[2]", conf=TEST_CONF))
    yield started
    started.stop()


@pytest.fixture(params=["thread", "spark"])
def executor(request: pytest.FixtureRequest) -> str:
    """Each executor in turn: the embedded default, then Spark (its session started first)."""
    if request.param == "spark":
        request.getfixturevalue("spark")
    return str(request.param)
