"""A task connector whose jobs finish after a number of seconds: the smallest complete example.

Written as a flytekit connector is, and moved over by changing only its imports. The job's end
time lives in its ResourceMeta, so `get` needs no state: any replica of the service can answer.

Serve it (Flyte's connector plugin then calls it at 127.0.0.1:8000):

    headwater serve-connectors --connectors examples/tasks/countdown_connector.py
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from headwater.tasks import AsyncConnector, ConnectorRegistry, Resource, ResourceMeta, TaskExecution


@dataclass
class CountdownMeta(ResourceMeta):
    finish_at: float
    seconds: float


class CountdownConnector(AsyncConnector):
    name = "Countdown Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="countdown", metadata_type=CountdownMeta)

    def create(
        self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs
    ) -> CountdownMeta:
        seconds = float((inputs or {}).get("seconds", 5))
        return CountdownMeta(finish_at=time.time() + seconds, seconds=seconds)

    def get(self, resource_meta: CountdownMeta, **kwargs) -> Resource:
        left = resource_meta.finish_at - time.time()
        if left > 0:
            return Resource(phase=TaskExecution.RUNNING, message=f"{left:.0f} s to go")
        return Resource(
            phase=TaskExecution.SUCCEEDED,
            message="done",
            outputs={"waited_seconds": resource_meta.seconds},
        )

    def delete(self, resource_meta: CountdownMeta, **kwargs) -> None:
        pass  # nothing runs remotely; deleting is trivially idempotent


# flytekit's module-level registration; `load_connectors` would also find the class without it.
ConnectorRegistry.register(CountdownConnector())
