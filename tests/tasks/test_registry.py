"""ConnectorRegistry: versions side by side, duplicates, overrides, clear misses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from headwater.errors import NotFoundError
from headwater.tasks import (
    AsyncConnector,
    ConnectorRegistry,
    Resource,
    ResourceMeta,
    SyncConnector,
    TaskExecution,
)
from headwater.tasks.errors import (
    ConnectorNotFoundError,
    DuplicateConnectorError,
    InvalidConnectorError,
)


@dataclass
class Meta(ResourceMeta):
    job_id: str


class Query(AsyncConnector):
    """flytekit's style: the task type goes to __init__."""

    name = "Query"

    def __init__(self, version: int = 0) -> None:
        super().__init__(task_type_name="query", task_type_version=version, metadata_type=Meta)

    def create(self, task_template, output_prefix, inputs=None, **kwargs):
        return Meta("q")

    def get(self, resource_meta, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED)

    def delete(self, resource_meta, **kwargs):
        pass


class Echo(SyncConnector):
    """Flyte 2's style: the task type is a class attribute."""

    task_type_name = "echo"

    def do(self, task_template, output_prefix, inputs=None, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED)


def test_versions_of_a_task_type_coexist() -> None:
    registry = ConnectorRegistry()
    v0, v1, echo = Query(0), Query(1), Echo()
    for connector in (v0, v1, echo):
        registry.register(connector)
    assert registry.get_connector("query") is v0
    assert registry.get_connector("query", 1) is v1
    assert registry.get_connector("echo", 0) is echo
    assert registry.list_connectors() == [v0, v1, echo]
    assert len(registry) == 3
    assert repr(registry) == "ConnectorRegistry([query_v0, query_v1, echo_v0])"


def test_a_duplicate_is_an_error_naming_both() -> None:
    registry = ConnectorRegistry()
    registry.register(Query())
    with pytest.raises(
        DuplicateConnectorError, match="duplicate connector for task type 'query' version 0"
    ) as caught:
        registry.register(Query())
    assert isinstance(caught.value, ValueError)  # as flytekit raises
    assert str(caught.value).count("<Query 'Query' for 'query' v0>") == 2


def test_override_replaces() -> None:
    registry = ConnectorRegistry()
    registry.register(Query())
    replacement = Query()
    registry.register(replacement, override=True)
    assert registry.get_connector("query") is replacement
    assert len(registry) == 1


def test_a_miss_names_the_type_and_the_registered_ones() -> None:
    registry = ConnectorRegistry()
    registry.register(Query())
    registry.register(Echo())
    with pytest.raises(ConnectorNotFoundError) as caught:
        registry.get_connector("query", 2)
    assert isinstance(caught.value, NotFoundError)
    assert "no connector for task type 'query' version 2; registered: 'query' v0, 'echo' v0" in str(
        caught.value
    )


class NoType(SyncConnector):
    def do(self, task_template, output_prefix, inputs=None, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED)


class NoMeta(AsyncConnector):
    task_type_name = "no_meta"
    create = get = delete = Query.create


@pytest.mark.parametrize(
    ("connector", "message"),
    [
        (object(), "is not a task connector"),
        (NoType(), "NoType declares no task type"),
        (NoType(task_type_name="t", task_type_version=-1), "task_type_version -1 is not an int"),
        (NoMeta(), "NoMeta's metadata_type is None, not a ResourceMeta dataclass"),
        (NoMeta(metadata_type=dict), "metadata_type is <class 'dict'>"),  # type: ignore[arg-type]
    ],
)
def test_unusable_connectors_are_refused(connector: object, message: str) -> None:
    with pytest.raises(InvalidConnectorError, match=message):
        ConnectorRegistry().register(connector)


def test_registering_on_the_class_outside_a_load_explains_the_fix() -> None:
    with pytest.raises(InvalidConnectorError, match="registry = ConnectorRegistry"):
        ConnectorRegistry.register(Query())
