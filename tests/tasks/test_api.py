"""The author API: its public names, the phases, ResourceMeta's bytes, Resource's message."""

from __future__ import annotations

import subprocess
import sys
import typing
from dataclasses import dataclass
from typing import Any

import pytest
from flyteidl.admin import agent_pb2 as adm
from flyteidl.core import execution_pb2

import headwater.tasks
from headwater.tasks import Resource, ResourceMeta, TaskExecution
from headwater.tasks.errors import ConnectorContractError, InvalidResourceMetaError


def test_public_names() -> None:
    assert set(headwater.tasks.__all__) == {
        "AsyncConnector",
        "ConnectorRegistry",
        "PollSpec",
        "Resource",
        "ResourceMeta",
        "SyncConnector",
        "TaskExecution",
        "idempotency_key",
    }
    for name in headwater.tasks.__all__:
        assert getattr(headwater.tasks, name) is not None


def test_importing_the_package_does_not_import_grpc() -> None:
    code = "import sys, headwater.tasks; print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_phases_have_flyteidls_names_and_numbers() -> None:
    assert [(p.name, p.value) for p in TaskExecution] == execution_pb2.TaskExecution.Phase.items()


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        ("DONE", TaskExecution.SUCCEEDED),
        ("cancelled", TaskExecution.FAILED),
        ("internal_error", TaskExecution.RETRYABLE_FAILED),
        ("pending", TaskExecution.INITIALIZING),
        ("terminating", TaskExecution.RUNNING),
    ],
)
def test_from_state_maps_like_flytekit(state: str, phase: TaskExecution) -> None:
    assert TaskExecution.from_state(state) is phase


def test_from_state_rejects_unknown_words() -> None:
    with pytest.raises(ValueError, match="unrecognized state 'exploded'"):
        TaskExecution.from_state("exploded")


def test_terminal_phases() -> None:
    terminal = {p.name for p in TaskExecution if p.is_terminal}
    assert terminal == {"SUCCEEDED", "ABORTED", "FAILED", "RETRYABLE_FAILED"}


@dataclass
class Where(ResourceMeta):
    region: str


@dataclass
class JobMeta(ResourceMeta):
    job_id: str
    x: int
    where: Where | None = None


def test_resource_meta_encodes_as_flytekit_does() -> None:
    assert JobMeta("job-1", 21).encode() == b'{"job_id": "job-1", "x": 21, "where": null}'


def test_resource_meta_round_trips_with_nested_dataclasses() -> None:
    meta = JobMeta("job-1", 21, Where("eu"))
    assert JobMeta.decode(meta.encode()) == meta
    assert JobMeta.decode(b'{"job_id": "j", "x": 1}') == JobMeta("j", 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "not JSON for JobMeta"),
        (b"garbage", "not JSON for JobMeta"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"job_id": "j"}', "does not fit JobMeta"),
        (
            b'{"job_id": "j", "x": 1, "extra": 2}',
            r"fields \['extra'\] that JobMeta does not declare",
        ),
    ],
)
def test_resource_meta_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidResourceMetaError, match=message):
        JobMeta.decode(data)


@dataclass
class Cell(ResourceMeta):
    row: int


@dataclass
class SheetMeta(ResourceMeta):
    sheet: str
    cell: Cell | None = None


def test_resource_meta_decoding_resolves_string_annotations_once_per_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This file has `from __future__ import annotations`: the hints are strings to evaluate.
    assert SheetMeta.__annotations__["cell"] == "Cell | None"
    resolved: list[type] = []
    get_type_hints = typing.get_type_hints

    def counting(obj: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        resolved.append(obj)
        return get_type_hints(obj, *args, **kwargs)

    monkeypatch.setattr(typing, "get_type_hints", counting)
    data = SheetMeta("s1", Cell(3)).encode()
    assert SheetMeta.decode(data) == SheetMeta("s1", Cell(3))
    assert resolved == [SheetMeta, Cell]
    assert SheetMeta.decode(data) == SheetMeta("s1", Cell(3))
    assert resolved == [SheetMeta, Cell]


def test_resource_coerces_a_phase_number() -> None:
    assert Resource(phase=3).phase is TaskExecution.SUCCEEDED  # type: ignore[arg-type]
    with pytest.raises(ConnectorContractError, match="99 is not a TaskExecution phase"):
        Resource(phase=99)  # type: ignore[arg-type]


def test_resource_to_and_from_flyte_idl() -> None:
    link = execution_pb2.TaskLog(name="console", uri="https://example.invalid/1")
    resource = Resource(
        phase=TaskExecution.SUCCEEDED,
        message="done",
        log_links=[link],
        outputs={"n": 2, "names": ["a", "b"]},
        custom_info={"rows": 2, "nested": {"ok": True}},
    )
    message = resource.to_flyte_idl()
    assert isinstance(message, adm.Resource)
    assert message.phase == execution_pb2.TaskExecution.SUCCEEDED
    assert message.log_links[0].uri == "https://example.invalid/1"
    assert message.custom_info["nested"]["ok"] is True
    back = Resource.from_flyte_idl(message)
    assert back == Resource(
        phase=TaskExecution.SUCCEEDED,
        message="done",
        log_links=[link],
        outputs={"n": 2, "names": ["a", "b"]},
        custom_info={"rows": 2.0, "nested": {"ok": True}},
    )


def test_a_bare_resource_has_no_outputs_or_custom_info() -> None:
    message = Resource(phase=TaskExecution.RUNNING).to_flyte_idl()
    assert not message.HasField("outputs") and not message.HasField("custom_info")


def test_custom_info_must_be_json() -> None:
    with pytest.raises(ConnectorContractError, match="custom_info must be JSON-able"):
        Resource(phase=TaskExecution.RUNNING, custom_info={"when": object()}).to_flyte_idl()
