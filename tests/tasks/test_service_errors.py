"""The service's contract when things go wrong: status codes, correlation ids without tracebacks,
deadlines, slow connectors, message size limits."""

from __future__ import annotations

import logging
import re

import grpc
import pytest
from flyteidl.admin import agent_pb2 as adm
from grpc_health.v1 import health_pb2

from headwater.errors import SettingsError
from headwater.tasks.server import ConnectorServer

MIB = 1024 * 1024


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        result = call(*args, **kwargs)
        list(result) if hasattr(result, "__next__") else result  # drain a stream
    return caught.value


def correlation_id(error: grpc.RpcError) -> str:
    found = re.search(r"\[correlation id ([0-9a-f]{16})\]$", error.details())
    assert found, error.details()
    assert dict(error.trailing_metadata())["correlation-id"] == found.group(1)
    return found.group(1)


def test_unknown_task_type_is_not_found_and_names_the_registered_ones(served) -> None:
    error = rpc_error(served.tasks.CreateTask, served.create_request("nope"), timeout=5)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no connector for task type 'nope' version 0" in error.details()
    assert "'job' v0, 'job' v1" in error.details()
    correlation_id(error)


def test_unknown_version_is_not_found(served) -> None:
    request = adm.GetTaskRequest(task_category=served.category("job", 7), resource_meta=b"{}")
    assert rpc_error(served.tasks.GetTask, request, timeout=5).code() == grpc.StatusCode.NOT_FOUND


def test_unknown_agent_name_is_not_found(served) -> None:
    error = rpc_error(served.metadata.GetAgent, adm.GetAgentRequest(name="Nope"), timeout=5)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "'Job Connector'" in error.details()


@pytest.mark.parametrize("method", ["GetTaskMetrics", "GetTaskLogs"])
def test_missing_metrics_or_logs_is_unimplemented(served, method) -> None:
    request_type = getattr(adm, f"{method}Request")
    request = request_type(
        task_category=served.category("failing"), resource_meta=b'{"job_id": "j", "x": 1}'
    )
    error = rpc_error(getattr(served.tasks, method), request, timeout=5)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "FailingConnector has no get_" in error.details()


def test_connector_errors_carry_a_message_and_correlation_id_not_a_traceback(
    served, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="headwater.tasks")
    error = rpc_error(served.tasks.CreateTask, served.create_request("failing"), timeout=5)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "ValueError: the warehouse refused the query" in error.details()
    assert "Traceback" not in error.details() and ".py" not in error.details()
    cid = correlation_id(error)
    # The server logged the traceback under the same id.
    [record] = [r for r in caplog.records if cid in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[0] is ValueError


def test_a_wrong_return_type_is_an_internal_error_naming_the_method(served) -> None:
    request = adm.GetTaskRequest(
        task_category=served.category("failing"), resource_meta=b'{"job_id": "j", "x": 1}'
    )
    error = rpc_error(served.tasks.GetTask, request, timeout=5)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "FailingConnector.get returned dict, not a headwater.tasks.Resource" in error.details()


@pytest.mark.parametrize(
    "meta", [b"not json", b"[1]", b'{"job_id": "j"}', b'{"job_id": "j", "x": 1, "y": 2}']
)
def test_bad_resource_meta_is_invalid_argument(served, meta) -> None:
    request = adm.GetTaskRequest(task_category=served.category(), resource_meta=meta)
    error = rpc_error(served.tasks.GetTask, request, timeout=5)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "JobMeta" in error.details()


def test_sync_and_async_connectors_refuse_the_other_protocol(served) -> None:
    error = rpc_error(served.tasks.CreateTask, served.create_request("echo"), timeout=5)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ExecuteTaskSync" in error.details()
    header = adm.CreateRequestHeader(template=served.create_request("job").template)
    error = rpc_error(
        served.sync.ExecuteTaskSync, iter([adm.ExecuteTaskSyncRequest(header=header)]), timeout=5
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_sync_connector_must_finish(served) -> None:
    request = served.create_request("echo", pending=1)
    messages = [
        adm.ExecuteTaskSyncRequest(header=adm.CreateRequestHeader(template=request.template)),
        adm.ExecuteTaskSyncRequest(inputs=request.inputs),
    ]
    error = rpc_error(served.sync.ExecuteTaskSync, iter(messages), timeout=5)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert (
        "EchoConnector.do returned phase RUNNING; a sync connector must finish" in error.details()
    )


def test_a_sync_call_without_its_header_is_invalid(served) -> None:
    inputs = adm.ExecuteTaskSyncRequest(inputs=served.create_request("echo", x=1).inputs)
    error = rpc_error(served.sync.ExecuteTaskSync, iter([inputs]), timeout=5)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    correlation_id(error)


def test_deadline_cancels_an_async_call_and_the_server_stays_healthy(served) -> None:
    slow = served.connector("slow")
    request = adm.DeleteTaskRequest(
        task_category=served.category("slow"), resource_meta=b'{"job_id": "s", "x": 0}'
    )
    error = rpc_error(served.tasks.DeleteTask, request, timeout=0.2)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert slow.cancelled.wait(10), "the connector's coroutine was not cancelled"
    health = served.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    served.tasks.CreateTask(served.create_request(x=1), timeout=5)


def test_a_blocking_connector_holds_a_thread_not_the_server(served) -> None:
    slow = served.connector("slow")
    request = adm.GetTaskRequest(
        task_category=served.category("slow"), resource_meta=b'{"job_id": "s", "x": 0}'
    )
    pending = served.tasks.GetTask.future(request, timeout=10)
    # While `get` blocks in its thread, other calls are answered.
    created = served.tasks.CreateTask(served.create_request(x=5), timeout=5)
    served.tasks.GetTask(
        adm.GetTaskRequest(task_category=served.category(), resource_meta=created.resource_meta),
        timeout=5,
    )
    assert not pending.done()
    slow.release.set()
    assert pending.result().resource.message == "released=True"


def test_a_short_deadline_on_a_blocking_connector(served) -> None:
    request = adm.GetTaskRequest(
        task_category=served.category("slow"), resource_meta=b'{"job_id": "s", "x": 0}'
    )
    assert (
        rpc_error(served.tasks.GetTask, request, timeout=0.2).code()
        == grpc.StatusCode.DEADLINE_EXCEEDED
    )
    served.connector("slow").release.set()
    health = served.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_outputs_over_4_mib_with_the_limit_raised(start) -> None:
    served = start(
        max_message_mb=16, channel_options=[("grpc.max_receive_message_length", 16 * MIB)]
    )
    meta = served.tasks.CreateTask(served.create_request("big"), timeout=10).resource_meta
    request = adm.GetTaskRequest(task_category=served.category("big"), resource_meta=meta)
    resource = served.tasks.GetTask(request, timeout=10).resource
    assert len(resource.outputs.literals["blob"].scalar.primitive.string_value) == 5 * MIB


def test_a_client_with_the_default_limit_cannot_read_them(start) -> None:
    served = start(max_message_mb=16)
    request = adm.GetTaskRequest(
        task_category=served.category("big"), resource_meta=b'{"job_id": "b", "x": 0}'
    )
    error = rpc_error(served.tasks.GetTask, request, timeout=10)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(("limit_mb", "accepted"), [(4, False), (16, True)])
def test_inputs_over_4_mib_need_the_server_limit_raised(start, limit_mb, accepted) -> None:
    served = start(
        max_message_mb=limit_mb, channel_options=[("grpc.max_send_message_length", 16 * MIB)]
    )
    request = served.create_request("big", blob="x" * (5 * MIB))
    if accepted:
        meta = served.tasks.CreateTask(request, timeout=10).resource_meta
        assert meta == b'{"job_id": "big", "x": %d}' % (5 * MIB)
    else:
        error = rpc_error(served.tasks.CreateTask, request, timeout=10)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_busy_port_is_a_settings_error(served) -> None:
    with pytest.raises(SettingsError, match=r"cannot listen on 127\.0\.0\.1:"):
        ConnectorServer(served.registry, port=served.server.port).start()


@pytest.mark.parametrize("settings", [{"port": 70000}, {"max_message_mb": 0}, {"max_workers": 0}])
def test_bad_settings_fail_at_once(served, settings) -> None:
    with pytest.raises(SettingsError):
        ConnectorServer(served.registry, **settings)
