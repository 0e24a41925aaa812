"""The definition classes: keyword constructors that refuse what cannot be applied, conversion
to and from the API's models, and credentials read by reference."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from headwater.client import models
from headwater.client.definitions import (
    Connection,
    Credential,
    Dataflow,
    DataService,
    FilesTarget,
    PartitionedDefinition,
    ProcessorDefinition,
    PythonWrite,
    ReadConnector,
    Schedule,
    Transform,
    WriteConnector,
    from_component,
)
from tests.declarative.conftest import PYTHON_TRANSFORM, SOURCE, WRITE, sales


def test_each_component_definition_converts_to_the_api_model_and_back() -> None:
    definitions = [
        ReadConnector(
            id="orders",
            name="Orders",
            description="from the shop",
            connection="warehouse",
            partitioned=PartitionedDefinition(code=SOURCE),
            schedule=Schedule(interval_seconds=60),
        ),
        ReadConnector(
            id="counted",
            processor=ProcessorDefinition(
                statement="return []", output_schema={"n": "int"}, input="orders"
            ),
        ),
        Transform(id="big", inputs=["orders"], sql="SELECT * FROM orders", partition_wise=True),
        Transform(id="joined", inputs=["orders", "big"], python=PYTHON_TRANSFORM),
        WriteConnector(id="files", input="big", files=FilesTarget(path="memory://x")),
        WriteConnector(
            id="custom", input="big", python=PythonWrite(code=WRITE), connection="warehouse"
        ),
    ]
    for definition in definitions:
        model = definition.to_model()
        assert isinstance(model, models.Component)
        assert model.kind == definition.kind
        assert from_component(model) == definition, definition.id
    big = definitions[2].to_model()
    assert big.transform == models.TransformDefinition(
        inputs=["orders"], sql="SELECT * FROM orders", partition_wise=True
    )
    assert definitions[1].to_model().inputs == ["orders"]
    assert definitions[4].to_model().write == models.WriteDefinition(
        input="big", files=FilesTarget(path="memory://x")
    )

    # what the server fills in is dropped, and a name that is the id is the default
    served = big.model_copy(update={"name": "big", "data_service": "sales", "dataflow": "daily"})
    assert from_component(served) == definitions[2]
    assert from_component(served).name is None


def test_exactly_one_connector_target_and_code_kind_are_required() -> None:
    with pytest.raises(pydantic.ValidationError, match="got none"):
        ReadConnector(id="orders")
    with pytest.raises(pydantic.ValidationError, match="got partitioned, task"):
        ReadConnector(
            id="orders",
            partitioned=PartitionedDefinition(code=SOURCE),
            task=models.TaskDefinition(code=SOURCE),
        )
    with pytest.raises(pydantic.ValidationError, match="exactly one of sql, python"):
        Transform(id="t", inputs=["a"], sql="SELECT 1 FROM a", python=PYTHON_TRANSFORM)
    with pytest.raises(pydantic.ValidationError, match="inputs"):
        Transform(id="t", inputs=[], sql="SELECT 1")
    with pytest.raises(pydantic.ValidationError, match="exactly one of files, postgres, python"):
        WriteConnector(id="w", input="a")
    with pytest.raises(pydantic.ValidationError, match="exactly one of env, file"):
        Credential(name="wh")
    with pytest.raises(pydantic.ValidationError, match=r"string_pattern_mismatch|pattern"):
        Dataflow(id="not an id")


def test_unknown_keywords_are_refused_not_ignored() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"input\n.*Extra inputs are not permitted"):
        Transform(id="t", input=["a"], sql="SELECT 1 FROM a")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        DataService(id="sales", dataflow=[])  # type: ignore[call-arg]


def test_data_services_hold_everything_and_connections_convert() -> None:
    ds = sales()
    assert ds.to_model() == models.DataService(id="sales", description="orders and invoices")
    assert [d.id for d in ds.dataflows] == ["daily"]
    assert ds.dataflows[0].to_model() == models.Dataflow(id="daily")
    connection = ds.connections[0]
    assert connection.to_model() == models.Connection(
        id="warehouse", settings={"host": "db.internal"}, credential="wh"
    )
    served = connection.to_model().model_copy(update={"name": "warehouse", "data_service": "x"})
    assert Connection.from_model(served) == connection


def test_a_credential_reads_its_secret_when_asked_never_before(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    by_env = Credential(name="wh", env="HW_TEST_SECRET")
    monkeypatch.delenv("HW_TEST_SECRET", raising=False)
    assert by_env.read() is None
    assert by_env.absent == "environment variable HW_TEST_SECRET is unset or empty"
    monkeypatch.setenv("HW_TEST_SECRET", "")
    assert by_env.read() is None
    monkeypatch.setenv("HW_TEST_SECRET", "hunter2")
    assert by_env.read() == "hunter2"
    assert "hunter2" not in repr(by_env)

    path = tmp_path / "secret.txt"
    by_file = Credential(name="wh", file=str(path))
    assert by_file.read() is None
    assert by_file.absent == f"file {path} is missing or empty"
    path.write_text("line one\nline two\n")
    assert by_file.read() == "line one\nline two"  # one final newline dropped
    path.write_text("")
    assert by_file.read() is None
