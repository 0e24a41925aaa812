"""The generated Flyte protobuf modules the task connectors use, imported in one place.

flyteidl (Flyte 1) and flyteidl2 (Flyte 2) ship `.pyi` stubs but no `py.typed` marker, so mypy
treats them as untyped: every message class here is `Any` to the type checker. Keeping the
imports (and their ignores) in this module keeps the rest of the package free of ignores.
"""

from __future__ import annotations

# Flyte 1: flyteidl.admin holds the messages, flyteidl.service the gRPC services.
from flyteidl.admin import agent_pb2  # type: ignore[import-untyped]  # no py.typed marker
from flyteidl.core import (  # type: ignore[import-untyped]  # no py.typed marker
    execution_pb2,
    identifier_pb2,
    literals_pb2,
    tasks_pb2,
)
from flyteidl.service import (  # type: ignore[import-untyped]  # no py.typed marker
    agent_pb2 as agent_service_pb2,
)
from flyteidl.service import (
    agent_pb2_grpc,
)

__all__ = [
    "agent_pb2",
    "agent_pb2_grpc",
    "agent_service_pb2",
    "execution_pb2",
    "identifier_pb2",
    "literals_pb2",
    "tasks_pb2",
]
