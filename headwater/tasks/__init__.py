"""Task connectors: jobs in external systems, with Flyte's connector API and protocol.

A task connector starts a job (`create`), reports on it (`get`) and cancels it (`delete`), or
answers in one call (`do`). The names and signatures are flytekit's, so a flytekit connector
moves over by changing its imports:

    from dataclasses import dataclass
    from headwater.tasks import AsyncConnector, Resource, ResourceMeta, TaskExecution

    @dataclass
    class JobMeta(ResourceMeta):
        job_id: str

    class JobConnector(AsyncConnector):
        name = "Job Connector"
        task_type_name = "job"
        metadata_type = JobMeta

        def create(self, task_template, output_prefix, inputs=None, **kwargs):
            return JobMeta(job_id=submit(inputs))

        def get(self, resource_meta, **kwargs):
            return Resource(phase=TaskExecution.SUCCEEDED, outputs={"rows": 3})

        def delete(self, resource_meta, **kwargs):
            cancel(resource_meta.job_id)

`headwater serve-connectors --connectors FILE` serves them to Flyte over gRPC
(`headwater.tasks.server`); `headwater.tasks.component.run_task` runs one in Headwater's own
runs, its outputs landed as a partition. `idempotency_key(task_execution_metadata)` is what a
`create` deduplicates on; `PollSpec` sets how Headwater polls a connector's jobs. The names
below load on first use, so importing this package does not import gRPC.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.tasks.connector import AsyncConnector, SyncConnector
    from headwater.tasks.execution import idempotency_key
    from headwater.tasks.poll import PollSpec
    from headwater.tasks.registry import ConnectorRegistry
    from headwater.tasks.resource import Resource, ResourceMeta, TaskExecution

_HOMES = {
    "AsyncConnector": "headwater.tasks.connector",
    "ConnectorRegistry": "headwater.tasks.registry",
    "PollSpec": "headwater.tasks.poll",
    "Resource": "headwater.tasks.resource",
    "ResourceMeta": "headwater.tasks.resource",
    "SyncConnector": "headwater.tasks.connector",
    "TaskExecution": "headwater.tasks.resource",
    "idempotency_key": "headwater.tasks.execution",
}
__all__ = [
    "AsyncConnector",
    "ConnectorRegistry",
    "PollSpec",
    "Resource",
    "ResourceMeta",
    "SyncConnector",
    "TaskExecution",
    "idempotency_key",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'headwater.tasks' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
