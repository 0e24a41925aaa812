"""Loading connectors from files and modules: what is registered, and the errors' messages."""

from __future__ import annotations

import uuid

import pytest

from headwater.errors import ConnectorLoadError
from headwater.tasks.errors import DuplicateConnectorError
from headwater.tasks.loading import load_connectors

HEADER = """
from dataclasses import dataclass
from headwater.tasks import AsyncConnector, ConnectorRegistry, Resource, ResourceMeta
from headwater.tasks import SyncConnector, TaskExecution

@dataclass
class Meta(ResourceMeta):
    job_id: str

class Base(AsyncConnector):
    metadata_type = Meta
    def create(self, task_template, output_prefix, inputs=None, **kwargs):
        return Meta("j")
    def get(self, resource_meta, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED)
    def delete(self, resource_meta, **kwargs):
        pass
"""


def test_every_connector_class_defined_in_a_file_is_registered(write_connector) -> None:
    path = write_connector(
        HEADER
        + """
from headwater.tasks.registry import ConnectorRegistry as Imported  # not a connector

class First(Base):
    task_type_name = "first"

class Second(Base):
    task_type_name = "first"
    task_type_version = 1

class Echo(SyncConnector):
    task_type_name = "echo"
    async def do(self, task_template, output_prefix, inputs=None, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED)
"""
    )
    registry = load_connectors([path])
    # Base is a base of the others, so it is not served (and has no task type anyway).
    assert [type(c).__name__ for c in registry] == ["First", "Second", "Echo"]
    assert registry.get_connector("first", 1).task_category == ("first", 1)


def test_classes_imported_from_elsewhere_are_not_registered_twice(write_connector) -> None:
    first = write_connector(HEADER + "\nclass Only(Base):\n    task_type_name = 'only'\n", "first")
    second = write_connector(
        HEADER.replace("class Base", "class Base2")
        + f"\nimport importlib.util, sys\nsys.path.insert(0, {str(first.parent)!r})\n"
        + "from first import Only\n\nclass Other(Base2):\n    task_type_name = 'other'\n",
        "second",
    )
    assert [type(c).__name__ for c in load_connectors([second])] == ["Other"]


def test_a_module_by_name(tmp_path, monkeypatch) -> None:
    name = f"hw_tasks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        HEADER + "\nclass Mod(Base):\n    task_type_name = 'mod'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [c.task_type_name for c in load_connectors([name])] == ["mod"]


def test_a_flytekit_style_registration_supplies_the_instance(write_connector) -> None:
    path = write_connector(
        HEADER
        + """
class Configured(Base):
    def __init__(self, dsn):
        super().__init__(task_type_name="configured")
        self.dsn = dsn

ConnectorRegistry.register(Configured("postgresql://db"))
"""
    )
    [connector] = load_connectors([path])
    assert connector.dsn == "postgresql://db"


def test_a_missing_file(tmp_path) -> None:
    with pytest.raises(ConnectorLoadError, match=r"connector file .*nope\.py' does not exist"):
        load_connectors([tmp_path / "nope.py"])


def test_an_unknown_module() -> None:
    with pytest.raises(
        ConnectorLoadError, match="neither a connector file nor an importable module"
    ):
        load_connectors(["no_such_module_for_headwater_tasks"])


def test_an_import_error_quotes_the_users_line(write_connector) -> None:
    path = write_connector("import os\n\nimport not_a_package_headwater_knows\n")
    with pytest.raises(ConnectorLoadError) as caught:
        load_connectors([path])
    message = str(caught.value)
    assert "ModuleNotFoundError" in message
    assert f"{path}, line 3: import not_a_package_headwater_knows" in message
    assert "install the missing package (not_a_package_headwater_knows)" in message


def test_an_error_in_a_helper_points_at_the_users_call(write_connector) -> None:
    path = write_connector("import json\n\nsettings = json.loads('{broken')\n")
    with pytest.raises(ConnectorLoadError) as caught:
        load_connectors([path])
    assert "JSONDecodeError" in str(caught.value)
    assert f"{path}, line 3: settings = json.loads('{{broken')" in str(caught.value)


def test_a_constructor_that_needs_arguments(write_connector) -> None:
    path = write_connector(
        HEADER
        + """
class NeedsDsn(Base):
    task_type_name = "needs"
    def __init__(self, dsn, *args, timeout=5, **kwargs):
        super().__init__()
"""
    )
    with pytest.raises(ConnectorLoadError) as caught:
        load_connectors([path])
    message = str(caught.value)
    assert (
        "connector class NeedsDsn in" in message and "needs constructor arguments (dsn)" in message
    )
    assert "ConnectorRegistry.register(NeedsDsn(...))" in message


def test_a_constructor_that_raises(write_connector) -> None:
    path = write_connector(
        HEADER
        + """
class Broken(Base):
    task_type_name = "broken"
    def __init__(self):
        raise KeyError("API_TOKEN")
"""
    )
    with pytest.raises(ConnectorLoadError) as caught:
        load_connectors([path])
    assert "Broken() in" in str(caught.value) and "raised KeyError: 'API_TOKEN'" in str(
        caught.value
    )
    line = path.read_text().splitlines().index('        raise KeyError("API_TOKEN")') + 1
    assert f'{path}, line {line}: raise KeyError("API_TOKEN")' in str(caught.value)


def test_a_connector_missing_a_method(write_connector) -> None:
    path = write_connector(
        HEADER
        + """
class Partial(AsyncConnector):
    task_type_name = "partial"
    metadata_type = Meta
    def create(self, task_template, output_prefix, inputs=None, **kwargs):
        return Meta("j")
"""
    )
    with pytest.raises(ConnectorLoadError, match=r"Partial in .* does not implement delete, get"):
        load_connectors([path])


def test_a_file_without_connectors(write_connector) -> None:
    with pytest.raises(ConnectorLoadError, match="defines no task connector"):
        load_connectors([write_connector("x = 1\n")])


def test_the_same_task_type_in_two_files(write_connector) -> None:
    one = write_connector(HEADER + "\nclass A(Base):\n    task_type_name = 'same'\n", "one")
    two = write_connector(HEADER + "\nclass B(Base):\n    task_type_name = 'same'\n", "two")
    with pytest.raises(DuplicateConnectorError, match=r"<B .*> and <A .*>"):
        load_connectors([one, two])
