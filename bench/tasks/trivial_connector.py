"""The one connector both engines serve: create answers at once, get says SUCCEEDED at once.

Written once. The only lines that differ between Headwater and flytekit are the imports just
below: the classes have the same names and signatures (flytekit calls its base class
`AsyncConnectorBase`, and takes `TaskExecution` from flyteidl). Each engine loads this file in
its own venv, where only its own package is installed:

    .venv/bin/headwater serve-connectors --connectors bench/tasks/trivial_connector.py
    cd bench/tasks && ../.venvs/flytekit/bin/pyflyte serve connector --modules trivial_connector

The module-level `ConnectorRegistry.register(...)` is flytekit's way to declare a connector;
Headwater's `serve-connectors` honours it (it would also find the class without it).

The connector reads none of the inputs (flytekit hands it a LiteralMap, Headwater a dict of
Python values, so reading them would be the one line of body that differs); each server still
decodes them, as it does for every request.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

try:  # Headwater (the project venv)
    from headwater.tasks import (
        AsyncConnector,
        ConnectorRegistry,
        Resource,
        ResourceMeta,
        TaskExecution,
    )

    ENGINE = "headwater"
except ImportError:  # flytekit (bench/.venvs/flytekit)
    from flyteidl.core.execution_pb2 import TaskExecution
    from flytekit.extend.backend.base_connector import (
        AsyncConnectorBase as AsyncConnector,
    )
    from flytekit.extend.backend.base_connector import (
        ConnectorRegistry,
        Resource,
        ResourceMeta,
    )

    ENGINE = "flytekit"

TASK_TYPE = "bench_trivial"
OUTPUT = 42  # what get reports as the task's output `o0`; the driver checks it


@dataclass
class TrivialMeta(ResourceMeta):
    job_id: str


class TrivialConnector(AsyncConnector):
    name = "Trivial Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name=TASK_TYPE, metadata_type=TrivialMeta)
        self._ids = itertools.count()

    async def create(
        self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs
    ) -> TrivialMeta:
        return TrivialMeta(job_id=f"job-{next(self._ids)}")

    async def get(self, resource_meta: TrivialMeta, **kwargs) -> Resource:
        return Resource(phase=TaskExecution.SUCCEEDED, message="done", outputs={"o0": OUTPUT})

    async def delete(self, resource_meta: TrivialMeta, **kwargs) -> None:
        return None


ConnectorRegistry.register(TrivialConnector())
