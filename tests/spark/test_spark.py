"""What only the Spark executor has: `read_spark_dataframe`, pyspark schemas, components read
back as DataFrames, Spark tasks that die, and where Spark's settings come from."""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from headwater import Workspace
from headwater.cli import app
from headwater.errors import ConnectorLoadError, SettingsError
from headwater.settings import Settings, SparkSettings
from headwater.spark import read_component
from headwater.spark.errors import summary

# mapInArrow (how a DataFrame's batches reach the store) checks the pandas version and warns
# that pyspark 4.x does not fully support pandas 3; Headwater does not use pandas there.
PANDAS_3 = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas >= 3.0.0:FutureWarning"
)

FRAMES = """
from pyspark.sql.types import LongType, StringType, StructField, StructType

def list_objects(context, metadata):
    for name in ("java", "python", "none"):
        yield {"name": name, "fingerprint": "1", "is_prefix": False}

def read_spark_dataframe(spark, context, metadata):
    # The seed's example, one partition per language (and one with no rows).
    columns = ["language", "users_count"]
    data = [("Java", "20000"), ("Python", "100000"), ("Scala", "3000")]
    frame = spark.createDataFrame(data, schema=columns)
    return frame.where(frame.language == metadata["name"].capitalize())
"""


@PANDAS_3
def test_read_spark_dataframe_lands_each_partition(
    workspace: Workspace, write_connector: Callable[..., Path], spark: Any
) -> None:
    result = workspace.refresh(write_connector(FRAMES), executor="spark").raise_for_status()
    assert (result.landed, result.rows) == (3, 2)
    rows = sorted(workspace.read_arrow("conn").to_pylist(), key=lambda r: r["language"])
    assert rows == [
        {"language": "Java", "users_count": "20000"},
        {"language": "Python", "users_count": "100000"},
    ]
    empty = next(p for p in workspace.partitions("conn") if p.name == "none")
    assert (empty.row_count, len(empty.files)) == (0, 1)  # the columns are recorded
    assert workspace.schema("conn").names == ["language", "users_count"]


@PANDAS_3
def test_read_spark_dataframe_failing_fails_its_partition_alone(
    workspace: Workspace, write_connector: Callable[..., Path], spark: Any
) -> None:
    code = FRAMES.replace(
        "    columns =",
        "    if metadata['name'] == 'python':\n"
        "        return spark.sql('SELECT no_such_column FROM range(1)')\n"
        "    if metadata['name'] == 'none':\n"
        "        return [('not', 'a frame')]\n"
        "    columns =",
    )
    result = workspace.refresh(write_connector(code), executor="spark", retry={"attempts": 1})
    assert (result.status, result.landed) == ("partial", 1)
    failures = {f.partition: f for f in result.failures}
    assert failures.keys() == {"python", "none"}
    assert failures["python"].function == "read_spark_dataframe"
    assert "no_such_column" in failures["python"].message
    assert "returned a list; read_spark_dataframe must return a pyspark DataFrame" in (
        failures["none"].message
    )
    assert [r["language"] for r in workspace.read_arrow("conn").to_pylist()] == ["Java"]


@PANDAS_3
def test_a_dataframe_whose_computation_fails_fails_its_partition(
    workspace: Workspace, write_connector: Callable[..., Path], spark: Any
) -> None:
    code = FRAMES.replace(
        "    return frame.where",
        "    if metadata['name'] == 'java':\n"
        "        return spark.sql(\"SELECT raise_error('the API said 503') AS x\")\n"
        "    return frame.where",
    )
    result = workspace.refresh(write_connector(code), executor="spark", retry={"attempts": 1})
    [failure] = result.failures
    assert failure.partition == "java"
    assert "the Spark job computing its DataFrame failed" in failure.message
    assert "the API said 503" in failure.message
    assert result.landed == 2


PYSPARK_SCHEMA = """
import datetime
from pyspark.sql.types import DoubleType, LongType, StructField, StructType, TimestampType

def list_objects(context, metadata):
    yield {"name": "only", "fingerprint": "1", "is_prefix": False}

def infer_schema(context, metadata):
    return StructType([
        StructField("id", LongType()),
        StructField("price", DoubleType()),
        StructField("at", TimestampType()),
    ])

def read_records(context, metadata):
    yield {"id": 1, "price": 2, "at": datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)}
"""


def test_infer_schema_may_return_a_pyspark_struct_type(
    workspace: Workspace, write_connector: Callable[..., Path], executor: str
) -> None:
    workspace.refresh(write_connector(PYSPARK_SCHEMA), executor=executor).raise_for_status()
    schema = workspace.schema("conn")
    assert schema.types == [pa.int64(), pa.float64(), pa.timestamp("us", tz="UTC")]
    [row] = workspace.read_arrow("conn").to_pylist()
    assert row["price"] == 2.0
    assert row["at"] == datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)


def test_read_spark_dataframe_needs_the_spark_executor(
    workspace: Workspace, write_connector: Callable[..., Path]
) -> None:
    with pytest.raises(ConnectorLoadError) as caught:
        workspace.refresh(write_connector(FRAMES))
    text = str(caught.value)
    assert text.startswith("component 'conn', read_spark_dataframe(): ")
    assert "runs on the Spark executor only" in text
    assert "fix: run it with --executor spark" in text
    assert workspace.components() == []  # nothing was touched


def test_a_python_worker_that_dies_fails_its_partition_alone(
    workspace: Workspace, write_connector: Callable[..., Path], spark: Any
) -> None:
    # os._exit in a Spark task's Python worker: no exception for Headwater to catch. Spark
    # fails that task (local mode tries once), so that partition's job; the others land.
    path = write_connector(f"""
        import os, pathlib
        HERE = pathlib.Path(__file__).parent

        def list_objects(context, metadata):
            for name in ("a", "dies", "c"):
                yield {{"name": name, "fingerprint": "1", "is_prefix": False}}

        def read_records(context, metadata):
            dies = metadata["name"] == "dies" and not (HERE / "healed").exists()
            if dies and os.getpid() != {os.getpid()}:  # never this test's own process
                yield {{"name": "half"}}
                os._exit(3)
            yield {{"name": metadata["name"]}}
    """)
    result = workspace.refresh(path, executor="spark", batch_rows=1)
    assert (result.status, result.landed, result.failed) == ("partial", 2, 1)
    [failure] = result.failures
    assert (failure.partition, failure.function) == ("dies", "read_records")
    assert failure.message.startswith("the Spark task reading this partition failed: ")
    assert "Python worker exited unexpectedly" in failure.message

    (path.parent / "healed").touch()
    again = workspace.refresh(path).raise_for_status()
    assert again.counts["added"] == 1
    assert sorted(r["name"] for r in workspace.read_arrow("conn").to_pylist()) == ["a", "c", "dies"]
    root = Path(workspace.store.root)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk == {f for p in workspace.partitions("conn") for f in p.files}


def test_context_failing_in_the_tasks_fails_every_partition(
    workspace: Workspace, write_connector: Callable[..., Path], spark: Any
) -> None:
    path = write_connector(f"""
        import os
        def context(credentials):
            if os.getpid() != {os.getpid()}:  # not in this test's process: in a Spark task
                raise RuntimeError("no network on the executors")
        def list_objects(context, metadata):
            yield {{"name": "a", "fingerprint": "1", "is_prefix": False}}
            yield {{"name": "b", "fingerprint": "1", "is_prefix": False}}
        def read_records(context, metadata):
            yield {{"x": 1}}
    """)
    result = workspace.refresh(path, executor="spark")
    assert (result.status, result.landed) == ("failed", 0)
    assert {f.function for f in result.failures} == {"context"}
    assert all("no network on the executors" in f.message for f in result.failures)


def test_a_component_reads_back_as_a_spark_dataframe(
    workspace: Workspace, write_connector: Callable[..., Path], spark: Any
) -> None:
    path = write_connector("""
        import datetime
        import pyarrow as pa
        def list_objects(context, metadata):
            yield {"name": "ints", "fingerprint": "1", "is_prefix": False}
            yield {"name": "floats", "fingerprint": "1", "is_prefix": False}
        def read_arrow(context, metadata):
            ints = metadata["name"] == "ints"
            return pa.table({
                "v": pa.array([1, 2] if ints else [2.5], pa.int64() if ints else pa.float64()),
                "small": pa.array([7] * (2 if ints else 1), pa.uint8()),
                "at": pa.array([datetime.datetime(2026, 1, 1)] * (2 if ints else 1)),
                "tag": [metadata["name"]] * (2 if ints else 1),
            })
    """)
    workspace.refresh(path, widen_types=True, concurrency=1).raise_for_status()
    frame = read_component(spark, workspace, "conn")
    assert frame.schema.simpleString() == (
        "struct<v:double,small:smallint,at:timestamp_ntz,tag:string>"
    )
    assert frame.rdd.getNumPartitions() == 2  # one per file
    got = sorted((r.v, r.small, r.at, r.tag) for r in frame.collect())
    noon = datetime.datetime(2026, 1, 1)
    assert got == [(1.0, 7, noon, "ints"), (2.0, 7, noon, "ints"), (2.5, 7, noon, "floats")]
    assert frame.groupBy("tag").count().where("tag = 'ints'").first()["count"] == 2


def test_an_empty_component_reads_back_as_an_empty_dataframe(
    workspace: Workspace, write_connector: Callable[..., Path], spark: Any
) -> None:
    path = write_connector("""
        def list_objects(context, metadata):
            yield {"name": "none", "fingerprint": "1", "is_prefix": False}
        def infer_schema(context, metadata):
            return {"id": "int", "name": "string"}
        def read_records(context, metadata):
            return iter(())
    """)
    workspace.refresh(path).raise_for_status()
    frame = read_component(spark, workspace, "conn")
    assert (frame.columns, frame.count()) == (["id", "name"], 0)


# -- settings ----------------------------------------------------------------------------------


def test_spark_settings_come_from_the_environment() -> None:
    env = {
        "HEADWATER_SPARK_MASTER": "spark://head:7077",
        "HEADWATER_SPARK_CONF": json.dumps({"spark.executor.memory": "4g", "x.flag": True}),
    }
    settings = Settings.from_env(env, home="/tmp/unused").spark
    assert settings == SparkSettings(
        "spark://head:7077", {"spark.executor.memory": "4g", "x.flag": "true"}
    )
    run = settings.updated(master="local[2]", conf=["spark.executor.memory=8g", "a.b=c=d"])
    assert run.master == "local[2]"
    assert run.conf == {"spark.executor.memory": "8g", "x.flag": "true", "a.b": "c=d"}
    assert Settings.from_env({}, home="/tmp/unused").spark == SparkSettings()


@pytest.mark.parametrize(
    "conf, problem",
    [
        ("spark.executor.memory=4g", " is not JSON (Expecting value at line 1, column 1)"),
        ("[1, 2]", " is a JSON list, not an object"),
        ('{"a": {"b": 1}}', ": the value of a is not a string, number or boolean"),
    ],
)
def test_bad_spark_conf_is_refused_at_startup(conf: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(f"HEADWATER_SPARK_CONF{problem}")):
        Settings.from_env({"HEADWATER_SPARK_CONF": conf}, home="/tmp/unused")
    with pytest.raises(SettingsError, match="is not KEY=VALUE"):
        SparkSettings().updated(conf=["no-equals-sign"])


def test_run_command_takes_the_spark_executor_and_its_settings(
    tmp_path: Path, write_connector: Callable[..., Path], spark: Any
) -> None:
    path = write_connector(PYSPARK_SCHEMA)
    home = tmp_path / "home"
    args = ["--home", str(home), "run", str(path), "--executor", "spark", "--json"]
    spark_args = ["--spark-master", "local[2]", "--spark-conf", "spark.sql.shuffle.partitions=2"]
    done = CliRunner().invoke(app, [*args, *spark_args])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["landed"] == 1
    with Workspace(home=home) as ws:
        assert ws.stored_settings("conn").executor == "spark"
        assert ws.runs("conn")[0].executor == "spark"
    bad = CliRunner().invoke(app, [*args, "--spark-conf", "oops"])
    assert bad.exit_code == 1
    assert "is not KEY=VALUE" in bad.stderr


def test_spark_errors_read_as_one_line() -> None:
    java = (
        "An error occurred while calling z:org.apache.spark.api.python.PythonRDD.runJob.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage "
        "3.0 failed 1 times, most recent failure: Lost task 0.0 (TID 3): "
        "org.apache.spark.SparkException: Python worker exited unexpectedly (crashed)\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.read(PythonRunner.scala:1)\n"
    )
    assert summary(RuntimeError(java)) == (
        "Lost task 0.0 (TID 3): org.apache.spark.SparkException: Python worker exited "
        "unexpectedly (crashed)"
    )
    python = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n'
    assert (
        summary(RuntimeError(python)) == "Traceback (most recent call last): ... ValueError: boom"
    )
    assert summary(RuntimeError("")) == "RuntimeError"


def test_metadata_spark_cannot_carry_fails_each_partition_with_a_fix(
    workspace: Workspace, write_connector: Callable[..., Path], spark: Any
) -> None:
    # An object of a class defined in the connector: Spark's Python processes cannot rebuild it.
    path = write_connector("""
        class Cursor:
            page = 2
        def list_objects(context, metadata):
            yield {"name": "a", "fingerprint": "1", "is_prefix": False, "cursor": Cursor()}
        def read_records(context, metadata):
            yield {"page": metadata["cursor"].page}
    """)
    result = workspace.refresh(path, executor="spark")
    assert (result.status, result.error) == ("failed", None)
    [failure] = result.failures
    assert failure.message.startswith("Spark could not plan the job reading this partition: ")
    assert "keep it plain" in failure.message
    workspace.refresh(path, executor="thread").raise_for_status()  # in-process, it reads


def test_files_the_driver_cannot_see_are_not_committed(
    tmp_path: Path, write_connector: Callable[..., Path], spark: Any
) -> None:
    # A store each process has its own of (fsspec's memory://), as a local path is on a real
    # cluster: the executors write files the driver's store does not hold.
    settings = Settings(tmp_path, f"sqlite:///{tmp_path / 'catalog.db'}", "memory://headwater-test")
    path = write_connector(PYSPARK_SCHEMA)
    with Workspace(settings) as ws:
        result = ws.refresh(path, executor="spark")
        assert (result.status, result.landed) == ("failed", 0)
        [failure] = result.failures
        assert "the driver does not see it there" in failure.message
        assert "s3://bucket/prefix or a shared mount" in failure.message
        assert ws.partitions("conn") == []
