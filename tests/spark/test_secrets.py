"""The Spark executor keeps secrets out of messages: a credential, Spark properties."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater import Workspace
from headwater.errors import SettingsError
from headwater.settings import SPARK_CONF_ENV, SparkSettings

SECRET = "hunter2-s3cr3t-token"

# Its DataFrame fails when Spark computes it, with the credential in the error (as a client
# library's "request with token ... refused" would).
LEAKING = """
def context(credentials):
    return credentials

def list_objects(context, metadata):
    yield {"name": "only", "fingerprint": "1", "is_prefix": False}

def read_spark_dataframe(spark, context, metadata):
    frame = spark.createDataFrame([(context,)], ["token"])
    return frame.selectExpr("raise_error(concat('token ', token, ' refused')) AS x")
"""


@pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas >= 3.0.0:FutureWarning"
)
def test_a_dataframe_failing_in_spark_never_shows_the_credential(
    workspace: Workspace, write_connector: Callable[..., Path], spark: Any
) -> None:
    path = write_connector(LEAKING)
    result = workspace.refresh(path, executor="spark", credential=SECRET, retry={"attempts": 1})
    [failure] = result.failures
    assert "refused" in failure.message  # it failed for the reason planted
    assert SECRET not in failure.message
    assert SECRET not in repr(result.to_json())
    assert SECRET not in repr(workspace.failures(result.run_id))


def test_a_malformed_spark_conf_is_refused_without_quoting_its_values() -> None:
    # A trailing comma: not JSON. The object holds an object store's secret key, as
    # Spark properties often do (spark.hadoop.fs.s3a.secret.key).
    text = '{"spark.hadoop.fs.s3a.secret.key": "' + SECRET + '",}'
    with pytest.raises(SettingsError) as raised:
        SparkSettings.from_env({SPARK_CONF_ENV: text})
    assert SPARK_CONF_ENV in str(raised.value)  # it names the variable
    assert SECRET not in str(raised.value)
