"""The task execution id Headwater hands to `create`, and the idempotency key read from it.

Flyte passes `create` a `TaskExecutionMetadata` whose `task_execution_id` names the execution,
the node and the retry attempt: the one thing a connector can deduplicate on. Headwater's own
runs pass the same message, naming the component, the run and the attempt, so a connector
written to deduplicate under Flyte does so under Headwater too, with one helper for both.
"""

from __future__ import annotations

from typing import Any

from headwater.tasks.idl import agent_pb2, identifier_pb2

PROJECT = "headwater"


def execution_metadata(
    *,
    component: str,
    component_id: str,
    run_id: int,
    attempt: int,
    task_type: str,
    task_type_version: int,
) -> Any:
    """The flyteidl `TaskExecutionMetadata` for attempt `attempt` (1, 2, ...) of a run.

    The execution name holds the component's catalog id, so two workspaces whose runs share
    numbers never share a key.
    """
    task_id = identifier_pb2.Identifier(
        resource_type=identifier_pb2.TASK,
        project=PROJECT,
        domain=component,
        name=task_type,
        version=str(task_type_version),
    )
    execution = identifier_pb2.WorkflowExecutionIdentifier(
        project=PROJECT, domain=component, name=f"{component_id}-{run_id}"
    )
    return agent_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(
            task_id=task_id,
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(
                node_id=component, execution_id=execution
            ),
            retry_attempt=attempt - 1,  # Flyte counts retries from 0
        ),
        namespace=f"{PROJECT}-{component}",
        labels={"headwater-component": component, "headwater-run": str(run_id)},
    )


def idempotency_key(task_execution_metadata: Any | None) -> str | None:
    """The key of one attempt of one task execution, for `create` to deduplicate on.

    `project/domain/execution/node/retry_attempt` from the `task_execution_id` that Flyte (or
    a Headwater run) passes to `create`; None when the caller passed none. Headwater records the
    same key before calling `create`, and hands it to `recover` after a crash.

    Example:
        def create(self, task_template, output_prefix, inputs=None,
                   task_execution_metadata=None, **kwargs):
            key = idempotency_key(task_execution_metadata)
            job = find_job(key) if key else None   # started already: return the same job
            return JobMeta(job_id=job.id if job else submit(inputs, key=key))
    """
    if task_execution_metadata is None or not task_execution_metadata.HasField("task_execution_id"):
        return None
    attempt = task_execution_metadata.task_execution_id
    node = attempt.node_execution_id
    execution = node.execution_id
    parts = (execution.project, execution.domain, execution.name, node.node_id)
    return "/".join((*parts, str(attempt.retry_attempt)))
