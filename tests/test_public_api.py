"""What is promised to users: the connector-author APIs, the client and the top-level names."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            "headwater",
            {
                "ComponentSettings",
                "HeadwaterError",
                "RetrySpec",
                "RunResult",
                "Settings",
                "Workspace",
                "__version__",
            },
        ),
        (
            "headwater.connectors",
            {"ConnectorSource", "ObjectMetadata", "PartitionedConnector", "load_partitioned"},
        ),
        (
            "headwater.client",
            {
                "APIError",
                "Client",
                "ClientError",
                "Component",
                "ComponentGraph",
                "ComponentSchema",
                "ConfigError",
                "ConflictError",
                "Connection",
                "ConnectionFailedError",
                "Credential",
                "CredentialsNotFoundError",
                "CsvOptions",
                "DataService",
                "Dataflow",
                "ErrorDetail",
                "ForbiddenError",
                "GraphEdge",
                "GraphNode",
                "Health",
                "LogLine",
                "NotFoundError",
                "Partition",
                "PartitionedDefinition",
                "PartitionedSettings",
                "ProcessorDefinition",
                "Records",
                "RetrySettings",
                "Run",
                "RunFailure",
                "RunPlan",
                "RunTimeoutError",
                "SchemaField",
                "ServerError",
                "TaskDefinition",
                "UnauthorizedError",
                "ValidationError",
            },
        ),
        (
            "headwater.stream",
            {
                "BadRowError",
                "ConnectorSubject",
                "Schema",
                "StreamClosedError",
                "StreamError",
                "Table",
                "column_definition",
                "read",
                "run",
                "write_component",
                "write_csv",
                "write_jsonlines",
                "write_parquet",
                "write_postgres",
            },
        ),
    ],
)
def test_public_names(module: str, names: set[str]) -> None:
    loaded = importlib.import_module(module)
    assert set(loaded.__all__) == names
    for name in names:
        assert getattr(loaded, name) is not None, f"{module}.{name} is listed but missing"


def test_importing_the_stream_api_does_not_load_the_catalog() -> None:
    import subprocess
    import sys

    code = "import sys, headwater.stream; print('sqlalchemy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_importing_headwater_starts_nothing_heavy() -> None:
    # The embedded default never needs pyspark; the CLI must not pay for pandas at import.
    import subprocess
    import sys

    code = (
        "import sys, headwater.cli; print(sorted(m for m in ('pyspark', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
