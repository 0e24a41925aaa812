"""Definitions: a data service, its dataflows, components, connections and credentials declared
in Python, to be applied to a server as a whole (`headwater.client.applier`).

As in the Ascend SDK, components name each other by id, and every class takes keyword arguments:

    >>> DataService(
    ...     id="sales",
    ...     credentials=[Credential(name="wh", env="WAREHOUSE_PASSWORD")],
    ...     connections=[Connection(id="warehouse", settings={"host": "db"}, credential="wh")],
    ...     dataflows=[
    ...         Dataflow(
    ...             id="daily",
    ...             components=[
    ...                 ReadConnector(id="orders", partitioned=PartitionedDefinition(code=SOURCE)),
    ...                 Transform(id="big", inputs=["orders"], sql="SELECT * FROM orders"),
    ...             ],
    ...         )
    ...     ],
    ... ).dataflows[0].components[1].inputs                                  # doctest: +SKIP
    ['orders']

A credential is declared by reference: its secret is read from an environment variable or a
file when the definition is applied, and never sits in the definition. Unknown keywords are
refused (a misspelt `input=` on a transform fails at once rather than being ignored).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from headwater.client import models
from headwater.client.models import (
    CsvOptions,
    FilesTarget,
    Id,
    PartitionedDefinition,
    PartitionedSettings,
    PostgresTarget,
    ProcessorDefinition,
    PythonWrite,
    RetrySettings,
    Schedule,
    StreamDefinition,
    TaskDefinition,
)

__all__ = [
    "ComponentDefinition",
    "Connection",
    "Credential",
    "CsvOptions",
    "DataService",
    "Dataflow",
    "FilesTarget",
    "PartitionedDefinition",
    "PartitionedSettings",
    "PostgresTarget",
    "ProcessorDefinition",
    "PythonWrite",
    "ReadConnector",
    "RetrySettings",
    "Schedule",
    "StreamDefinition",
    "TaskDefinition",
    "Transform",
    "WriteConnector",
    "from_component",
]


class Definition(BaseModel):
    """The base of every definition: keyword arguments only, unknown ones refused."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # (a value may be secret)


def _exactly_one(owner: str, values: dict[str, Any]) -> None:
    given = [name for name, value in values.items() if value is not None]
    if len(given) != 1:
        raise ValueError(
            f"{owner} has exactly one of {', '.join(values)}; got {', '.join(given) or 'none'}"
        )


# -- credentials and connections ----------------------------------------------------------------


class Credential(Definition):
    """A credential of the data service, by reference: its secret is the value of the
    environment variable `env`, or the text of `file` (one final newline dropped), read when
    the definition is applied. When neither is there, the server's value is kept (an error if
    the server has none).

    Example:
        >>> Credential(name="wh", env="WAREHOUSE_PASSWORD").name
        'wh'
    """

    name: models.CredentialName
    env: str | None = Field(default=None, min_length=1)
    file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _env_or_file(self) -> Credential:
        _exactly_one(f"credential '{self.name}'", {"env": self.env, "file": self.file})
        return self

    @property
    def source(self) -> str:
        """Where the secret comes from, in words."""
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    @property
    def absent(self) -> str:
        """Why `read` found no secret, in words."""
        if self.env is not None:
            return f"environment variable {self.env} is unset or empty"
        return f"file {self.file} is missing or empty"

    def read(self) -> str | None:
        """The secret, or None when the variable is unset or empty, or the file is missing or
        empty."""
        if self.env is not None:
            return os.environ.get(self.env) or None
        assert self.file is not None  # (exactly one of env and file)
        try:
            text = Path(self.file).expanduser().read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return text.removesuffix("\n").removesuffix("\r") or None


class Connection(Definition):
    """Settings and a credential shared by components of the data service.

    Example:
        >>> Connection(id="warehouse", settings={"url": "postgresql://db/x"}, credential="wh").id
        'warehouse'
    """

    id: Id
    name: models.Name | None = None  # defaults to the id
    description: models.Description | None = None
    settings: models.ConnectionSettings = Field(default_factory=dict)
    credential: models.CredentialName | None = None

    def to_model(self) -> models.Connection:
        return models.Connection(
            id=self.id,
            name=self.name,
            description=self.description,
            settings=self.settings,
            credential=self.credential,
        )

    @classmethod
    def from_model(cls, connection: models.Connection) -> Connection:
        return cls(
            id=connection.id,
            name=_name(connection.id, connection.name),
            description=connection.description,
            settings=connection.settings,
            credential=connection.credential,
        )


def _name(id: str, name: str | None) -> str | None:
    """None when `name` is the id's default."""
    return None if name == id else name


# -- components ---------------------------------------------------------------------------------


class ReadConnector(Definition):
    """A read connector: exactly one of `partitioned`, `processor`, `task` or `stream`.

    Example:
        >>> ReadConnector(id="orders", partitioned=PartitionedDefinition(code="...")).kind
        'partitioned'
    """

    id: Id
    name: models.Name | None = None
    description: models.Description | None = None
    connection: Id | None = None
    partitioned: PartitionedDefinition | None = None
    processor: ProcessorDefinition | None = None
    task: TaskDefinition | None = None
    stream: StreamDefinition | None = None
    schedule: Schedule | None = None

    @model_validator(mode="after")
    def _one_connector(self) -> ReadConnector:
        _exactly_one(
            f"read connector '{self.id}'",
            {
                "partitioned": self.partitioned,
                "processor": self.processor,
                "task": self.task,
                "stream": self.stream,
            },
        )
        return self

    @property
    def kind(self) -> models.ComponentKind:
        return self.to_model().kind

    @property
    def inputs(self) -> list[str]:
        """The components of the dataflow it reads (a processor's input)."""
        return self.to_model().inputs

    def to_model(self) -> models.Component:
        return models.Component(
            id=self.id,
            name=self.name,
            description=self.description,
            connection=self.connection,
            partitioned=self.partitioned,
            processor=self.processor,
            task=self.task,
            stream=self.stream,
            schedule=self.schedule,
        )


class Transform(Definition):
    """A transform over components of the same dataflow: one DuckDB SELECT naming its
    `inputs` by id (`sql`), or `python` defining `transform(...)` (see
    `models.TransformDefinition`).

    Example:
        >>> Transform(id="big", inputs=["orders"], sql="SELECT * FROM orders WHERE total > 9").kind
        'transform'
    """

    id: Id
    name: models.Name | None = None
    description: models.Description | None = None
    inputs: list[Id] = Field(min_length=1, max_length=100)
    sql: models.Code | None = None
    python: models.Code | None = None
    partition_wise: bool = False
    schedule: Schedule | None = None

    @model_validator(mode="after")
    def _sql_or_python(self) -> Transform:
        _exactly_one(f"transform '{self.id}'", {"sql": self.sql, "python": self.python})
        return self

    @property
    def kind(self) -> models.ComponentKind:
        return "transform"

    def to_model(self) -> models.Component:
        return models.Component(
            id=self.id,
            name=self.name,
            description=self.description,
            transform=models.TransformDefinition(
                inputs=self.inputs,
                sql=self.sql,
                python=self.python,
                partition_wise=self.partition_wise,
            ),
            schedule=self.schedule,
        )


class WriteConnector(Definition):
    """A write connector: the rows of component `input`, written to exactly one of `files`,
    `postgres` or `python`.

    Example:
        >>> WriteConnector(id="out", input="big", files=FilesTarget(path="/tmp/out")).inputs
        ['big']
    """

    id: Id
    name: models.Name | None = None
    description: models.Description | None = None
    input: Id
    files: FilesTarget | None = None
    postgres: PostgresTarget | None = None
    python: PythonWrite | None = None
    connection: Id | None = None
    schedule: Schedule | None = None

    @model_validator(mode="after")
    def _one_target(self) -> WriteConnector:
        _exactly_one(
            f"write connector '{self.id}'",
            {"files": self.files, "postgres": self.postgres, "python": self.python},
        )
        return self

    @property
    def kind(self) -> models.ComponentKind:
        return "write"

    @property
    def inputs(self) -> list[str]:
        return [self.input]

    def to_model(self) -> models.Component:
        return models.Component(
            id=self.id,
            name=self.name,
            description=self.description,
            connection=self.connection,
            write=models.WriteDefinition(
                input=self.input, files=self.files, postgres=self.postgres, python=self.python
            ),
            schedule=self.schedule,
        )


ComponentDefinition: TypeAlias = ReadConnector | Transform | WriteConnector


def from_component(component: models.Component) -> ComponentDefinition:
    """The definition of a component as the server returns it (server-filled fields dropped,
    a name equal to the id left out).

    Example:
        >>> from_component(client.get_component("sales", "daily", "big"))    # doctest: +SKIP
        Transform(id='big', inputs=['orders'], sql='SELECT ...', ...)
    """
    common: dict[str, Any] = {
        "id": component.id,
        "name": _name(component.id, component.name),
        "description": component.description,
        "schedule": component.schedule,
    }
    if component.transform is not None:
        t = component.transform
        return Transform(
            inputs=t.inputs, sql=t.sql, python=t.python, partition_wise=t.partition_wise, **common
        )
    if component.write is not None:
        w = component.write
        return WriteConnector(
            input=w.input,
            files=w.files,
            postgres=w.postgres,
            python=w.python,
            connection=component.connection,
            **common,
        )
    return ReadConnector(
        partitioned=component.partitioned,
        processor=component.processor,
        task=component.task,
        stream=component.stream,
        connection=component.connection,
        **common,
    )


# -- dataflows and data services ----------------------------------------------------------------


class Dataflow(Definition):
    """A dataflow and its components (read connectors, transforms, write connectors).

    Example:
        >>> Dataflow(id="daily", components=[Transform(id="t", inputs=["a"], sql="...")]).id
        'daily'
    """

    id: Id
    name: models.Name | None = None
    description: models.Description | None = None
    components: list[ComponentDefinition] = Field(default_factory=list)

    def to_model(self) -> models.Dataflow:
        return models.Dataflow(id=self.id, name=self.name, description=self.description)


class DataService(Definition):
    """A data service with everything in it: dataflows, connections and credentials.

    Example:
        >>> DataService(id="sales", dataflows=[Dataflow(id="daily")]).dataflows[0].id
        'daily'
    """

    id: Id
    name: models.Name | None = None
    description: models.Description | None = None
    credentials: list[Credential] = Field(default_factory=list)
    connections: list[Connection] = Field(default_factory=list)
    dataflows: list[Dataflow] = Field(default_factory=list)

    def to_model(self) -> models.DataService:
        return models.DataService(id=self.id, name=self.name, description=self.description)
