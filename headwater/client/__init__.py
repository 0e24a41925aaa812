"""The Python client of Headwater's server: `Client`, its typed errors, and the models it takes
and returns (shared with the server, which it never imports).

Example:
    >>> from headwater.client import Client, DataService
    >>> client = Client(hostname="headwater.example.com")                    # doctest: +SKIP
    >>> client.create_data_service(DataService(id="demos", description="test data service"))

See docs/client.md: credentials file, environment variables, proxies and CA bundles.
"""

from headwater.client.client import Client
from headwater.client.errors import (
    APIError,
    ClientError,
    ConfigError,
    ConflictError,
    ConnectionFailedError,
    CredentialsNotFoundError,
    ForbiddenError,
    NotFoundError,
    RunTimeoutError,
    ServerError,
    UnauthorizedError,
    ValidationError,
)
from headwater.client.models import (
    Component,
    ComponentGraph,
    ComponentSchema,
    Connection,
    Credential,
    CsvOptions,
    Dataflow,
    DataService,
    ErrorDetail,
    GraphEdge,
    GraphNode,
    Health,
    LogLine,
    Partition,
    PartitionedDefinition,
    PartitionedSettings,
    ProcessorDefinition,
    Records,
    RetrySettings,
    Run,
    RunFailure,
    RunPlan,
    SchemaField,
    TaskDefinition,
)

__all__ = [
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
]
