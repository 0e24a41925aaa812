"""Flyte 2's connector protocol (flyteidl2), imported in one place; see `headwater.tasks.idl`.

Flyte 2 renamed the services (`flyteidl2.connector.AsyncConnectorService`) but kept the messages
wire-compatible with Flyte 1's: the same field numbers and types, minus the deprecated fields,
plus a `connection` (field 5) on the task requests. So a Flyte 2 message re-parses as its Flyte 1
twin, which is how `headwater.tasks.flyte2` serves both protocols with one implementation.
"""

from __future__ import annotations

from flyteidl2.connector import (  # type: ignore[import-untyped]  # no py.typed marker
    connector_pb2,
    service_pb2,
    service_pb2_grpc,
)

__all__ = ["connector_pb2", "service_pb2", "service_pb2_grpc"]
