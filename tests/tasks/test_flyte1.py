"""The Flyte 1 protocol, driven by flyteidl's own client stubs in flytepropeller's call order:
ListAgents, CreateTask, GetTask until terminal, DeleteTask; plus sync, logs and metrics."""

from __future__ import annotations

from flyteidl.admin import agent_pb2 as adm
from flyteidl.core import execution_pb2
from grpc_health.v1 import health_pb2

Phase = execution_pb2.TaskExecution


def test_list_agents_groups_categories_by_name_and_kind(served) -> None:
    agents = served.metadata.ListAgents(adm.ListAgentsRequest(), timeout=5).agents
    listed = {
        (agent.name, agent.is_sync): sorted(
            (c.name, c.version) for c in agent.supported_task_categories
        )
        for agent in agents
    }
    assert listed[("Job Connector", False)] == [("job", 0), ("job", 1)]
    assert listed[("Echo Connector", True)] == [("echo", 0)]
    assert len(listed) == 6 - 1  # six connectors, the two job versions share one entry
    job = next(agent for agent in agents if agent.name == "Job Connector")
    assert list(job.supported_task_types) == ["job", "job"]  # the deprecated field, still read


def test_get_agent_by_name(served) -> None:
    agent = served.metadata.GetAgent(adm.GetAgentRequest(name="Echo Connector"), timeout=5).agent
    assert agent.is_sync
    assert [(c.name, c.version) for c in agent.supported_task_categories] == [("echo", 0)]


def test_create_poll_delete_like_propeller(served) -> None:
    created = served.tasks.CreateTask(served.create_request(x=21), timeout=10)
    assert created.resource_meta == b'{"job_id": "job-0", "x": 21}'  # flytekit's JSON bytes

    phases, resource = [], None
    for _ in range(5):
        resource = served.tasks.GetTask(
            adm.GetTaskRequest(
                task_type="job",  # deprecated, but propeller still fills it
                task_category=served.category(),
                resource_meta=created.resource_meta,
                output_prefix="s3://bucket/prefix/n0/0",
            ),
            timeout=10,
        ).resource
        phases.append(Phase.Phase.Name(resource.phase))
        if resource.phase == Phase.SUCCEEDED:
            break
    assert phases == ["RUNNING", "SUCCEEDED"]
    outputs = resource.outputs.literals
    assert outputs["o0"].scalar.primitive.integer == 42
    assert outputs["ok"].scalar.primitive.boolean is True
    assert outputs["rows"].collection.literals[0].scalar.generic["a"] == 1
    assert resource.custom_info["polls"] == 2
    assert resource.message == "done"

    delete = adm.DeleteTaskRequest(
        task_category=served.category(), resource_meta=created.resource_meta
    )
    served.tasks.DeleteTask(delete, timeout=10)
    served.tasks.DeleteTask(delete, timeout=10)  # idempotent: the second delete succeeds too
    after = served.tasks.GetTask(
        adm.GetTaskRequest(task_category=served.category(), resource_meta=created.resource_meta),
        timeout=10,
    )
    assert after.resource.phase == Phase.ABORTED
    assert [name for name, _ in served.jobs.calls] == [
        "create",
        "get",
        "get",
        "delete",
        "delete",
        "get",
    ]


def test_create_passes_python_inputs_and_the_execution_metadata(served) -> None:
    first = served.tasks.CreateTask(served.create_request(x=1, attempt=0), timeout=10)
    again = served.tasks.CreateTask(served.create_request(x=1, attempt=0), timeout=10)
    retry = served.tasks.CreateTask(served.create_request(x=1, attempt=1), timeout=10)
    # The connector deduplicates on the task execution id it received.
    assert first.resource_meta == again.resource_meta != retry.resource_meta
    assert served.jobs.calls[0] == ("create", {"inputs": {"x": 1}})


def test_the_deprecated_task_type_alone_routes_to_version_0(served) -> None:
    created = served.tasks.CreateTask(served.create_request(x=2), timeout=10)
    resource = served.tasks.GetTask(
        adm.GetTaskRequest(task_type="job", resource_meta=created.resource_meta), timeout=10
    ).resource
    assert resource.phase == Phase.RUNNING


def test_versions_of_one_task_type_route_apart(served) -> None:
    created = served.tasks.CreateTask(served.create_request(version=1, x=3), timeout=10)
    v1 = served.tasks.GetTask(
        adm.GetTaskRequest(
            task_category=served.category(version=1), resource_meta=created.resource_meta
        ),
        timeout=10,
    ).resource
    v0 = served.tasks.GetTask(
        adm.GetTaskRequest(
            task_category=served.category(version=0), resource_meta=created.resource_meta
        ),
        timeout=10,
    ).resource
    assert (v1.message, v1.phase) == ("v1", Phase.SUCCEEDED)
    assert (v0.message, v0.phase) == ("poll 1", Phase.RUNNING)


def test_execute_task_sync_is_one_bidirectional_call(served) -> None:
    request = served.create_request(task_type="echo", x=41)
    messages = iter(
        [
            adm.ExecuteTaskSyncRequest(
                header=adm.CreateRequestHeader(
                    template=request.template,
                    output_prefix=request.output_prefix,
                    task_execution_metadata=request.task_execution_metadata,
                )
            ),
            adm.ExecuteTaskSyncRequest(inputs=request.inputs),
        ]
    )
    answers = list(served.sync.ExecuteTaskSync(messages, timeout=10))
    assert [answer.WhichOneof("res") for answer in answers] == ["header"]
    resource = answers[0].header.resource
    assert resource.phase == Phase.SUCCEEDED
    assert resource.message == "s3://bucket/prefix/n0/0"
    assert resource.outputs.literals["o0"].scalar.primitive.integer == 42
    assert resource.outputs.literals["custom"].scalar.primitive.string_value == "select 1"


def test_logs_stream_each_message_as_the_connector_yields_it(served) -> None:
    meta = served.tasks.CreateTask(served.create_request(x=1), timeout=10).resource_meta
    stream = served.tasks.GetTaskLogs(
        adm.GetTaskLogsRequest(task_category=served.category(), resource_meta=meta, token="t"),
        timeout=10,
    )
    first = next(stream)
    # The connector is now blocked before its next message: the first arrived on its own.
    assert first.header.token == "t1"
    served.connector("job").logs_gate.set()
    rest = [message.body.results[0] for message in stream]
    assert rest == ["released=True", "job=job-0"]


def test_async_generator_logs_stream_too(served) -> None:
    meta = served.tasks.CreateTask(served.create_request(version=1, x=1), timeout=10).resource_meta
    stream = served.tasks.GetTaskLogs(
        adm.GetTaskLogsRequest(task_category=served.category(version=1), resource_meta=meta),
        timeout=10,
    )
    assert next(stream).body.results[0] == "line 0 released=False"
    served.connector("job", 1).logs_gate.set()
    assert [message.body.results[0] for message in stream] == [
        "line 1 released=True",
        "line 2 released=True",
    ]


def test_metrics(served) -> None:
    meta = served.tasks.CreateTask(served.create_request(x=1), timeout=10).resource_meta
    response = served.tasks.GetTaskMetrics(
        adm.GetTaskMetricsRequest(
            task_category=served.category(), resource_meta=meta, queries=["cpu", "mem"]
        ),
        timeout=10,
    )
    [result] = response.results
    assert result.metric == "cpu,mem"
    assert result.data["job"] == "job-0"


def test_health_reports_serving_for_each_service(served) -> None:
    for service in [
        "",
        "flyteidl.service.AsyncAgentService",
        "flyteidl.service.SyncAgentService",
        "flyteidl.service.AgentMetadataService",
        "flyteidl2.connector.AsyncConnectorService",
    ]:
        answer = served.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service


def test_create_without_inputs_passes_none(served) -> None:
    request = served.create_request(task_type="big")
    request.ClearField("inputs")
    created = served.tasks.CreateTask(request, timeout=10)
    assert created.resource_meta == b'{"job_id": "big", "x": -1}'  # -1: inputs was None
