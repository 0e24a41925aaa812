"""The API's resources and messages, shared by the server and the client (pydantic v2).

Every model takes keyword arguments, and nested models nest, as in the Ascend SDK:

    >>> Component(
    ...     id="orders",
    ...     partitioned=PartitionedDefinition(
    ...         code="def list_objects(context, metadata): ...",
    ...         settings=PartitionedSettings(parser="csv"),
    ...     ),
    ... ).kind
    'partitioned'

Fields the server fills in (timestamps, the data service a dataflow belongs to, a component's
kind) are optional; the server ignores them in requests. This module imports pydantic only, so
the client does not load the server.
"""

from __future__ import annotations

import datetime
import json
import math
import urllib.parse
import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    model_validator,
)

ID_PATTERN = r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*$"
CREDENTIAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
MAX_CODE = 1024 * 1024  # characters of connector code or a statement
MAX_JSON = 256 * 1024  # characters of a settings or inputs object, as JSON
MAX_DEPTH = 32

RunStatus = Literal[
    "queued", "running", "succeeded", "partial", "failed", "cancelled", "interrupted", "abandoned"
]
ComponentKind = Literal["partitioned", "processor", "task", "stream", "transform", "write"]
KINDS: tuple[ComponentKind, ...] = (
    "partitioned",
    "processor",
    "task",
    "stream",
    "transform",
    "write",
)


def _text(value: str) -> str:
    """Text the catalog can store on every database: no NUL, valid Unicode."""
    if "\x00" in value:
        raise ValueError("text cannot contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


def _json_value(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        _text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("JSON numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _text(key)
            _json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_value(item, depth + 1)


def _no_password(value: str, where: str) -> None:
    """Refuse a URL that carries a password: definitions are exported, planned and shown."""
    if "://" not in value:
        return
    try:
        password = urllib.parse.urlsplit(value).password
    except ValueError:
        return
    if password:
        raise ValueError(
            f"{where} holds a URL with a password; keep secrets out of definitions: drop it "
            "from the URL, store it as a credential and name that credential in the "
            "connection (the component gets it as the password)"
        )


def _without_passwords(value: dict[str, Any]) -> dict[str, Any]:
    for key, item in value.items():
        if isinstance(item, str):
            _no_password(item, f"setting '{key}'")
        elif isinstance(item, dict):
            _without_passwords(item)
    return value


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON object the catalog can store: clean text, finite numbers, bounded size."""
    _json_value(value)
    if len(json.dumps(value)) > MAX_JSON:
        raise ValueError(f"the object is larger than {MAX_JSON} characters as JSON")
    return value


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=63)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_text)]
Description = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(_text)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CODE), AfterValidator(_text)]
CredentialName = Annotated[str, StringConstraints(pattern=CREDENTIAL_PATTERN, max_length=100)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_text)]
ConnectionSettings = Annotated[JsonObject, AfterValidator(_without_passwords)]
ClassName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]


class Model(BaseModel):
    """The base of every API model: unknown fields are ignored, so old clients keep working
    when the server adds fields."""

    # Errors never quote what was given: a value may be a secret (a password in a URL).
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)


# -- data services and dataflows ----------------------------------------------------------------


class DataService(Model):
    """A namespace (a team, a domain) holding dataflows, connections and credentials.

    Example:
        >>> DataService(id="sales", name="Sales", description="orders and invoices").id
        'sales'
    """

    id: Id
    name: Name | None = None  # defaults to the id
    description: Description | None = None
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None


class Dataflow(Model):
    """A graph of components inside a data service.

    Example:
        >>> Dataflow(id="daily", description="the nightly load").id
        'daily'
    """

    id: Id
    name: Name | None = None
    description: Description | None = None
    data_service: str | None = None  # filled in by the server
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None


# -- connections and credentials ----------------------------------------------------------------


class Connection(Model):
    """Settings and a credential shared by components of a data service. A partitioned
    component using it gets the credential's secret in `context(credentials)`.

    Example:
        >>> Connection(id="warehouse", settings={"host": "db.internal"}, credential="wh").id
        'warehouse'
    """

    id: Id
    name: Name | None = None
    description: Description | None = None
    settings: ConnectionSettings = Field(default_factory=dict)
    credential: CredentialName | None = None  # a credential of the same data service
    data_service: str | None = None
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None


class CredentialSecret(Model):
    """The secret to store under a credential's name. Sent, never returned."""

    secret: Annotated[
        str, StringConstraints(min_length=1, max_length=64 * 1024), AfterValidator(_text)
    ] = Field(repr=False)


class Credential(Model):
    """A stored credential: its name and timestamps, never its secret."""

    name: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


# -- components ---------------------------------------------------------------------------------


class RetrySettings(Model):
    """How often a failing read (or task job) is tried, and the backoff between tries."""

    attempts: int = Field(default=3, ge=1, le=100)
    backoff_seconds: float = Field(default=1.0, ge=0, le=3600)
    backoff_max_seconds: float = Field(default=30.0, ge=0, le=86_400)


class CsvOptions(Model):
    delimiter: Annotated[str, StringConstraints(min_length=1, max_length=1)] | None = None
    quote_char: Annotated[str, StringConstraints(min_length=1, max_length=1)] | None = None
    header: bool | None = None
    column_names: list[ColumnName] | None = Field(default=None, max_length=10_000)


class PartitionedSettings(Model):
    """How a partitioned connector's partitions are parsed, read, retried and kept (see
    `headwater.ComponentSettings`)."""

    parser: Literal["csv", "jsonl", "parquet"] | None = None
    parser_options: CsvOptions = Field(default_factory=CsvOptions)
    keep_removed: bool = False
    reprocess_on_code_change: bool = True
    widen_types: bool = False
    executor: Literal["thread", "process", "spark"] = "thread"
    concurrency: int = Field(default=4, ge=1, le=256)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    batch_rows: int = Field(default=65_536, ge=1, le=10_000_000)


class PartitionedDefinition(Model):
    """A partitioned (pull) read connector: its Python source and its settings."""

    code: Code
    settings: PartitionedSettings = Field(default_factory=PartitionedSettings)


class ProcessorDefinition(Model):
    """A processor: a sandboxed statement over the rows of an input component (or inline rows).

    `output_schema` maps each output column to "int", "float", "bool", "string" or "json"
    (a trailing "?" allows null); `input` names a component of the same dataflow.
    """

    statement: Code
    output_schema: dict[ColumnName, Annotated[str, StringConstraints(max_length=16)]] = Field(
        min_length=1, max_length=1000
    )
    processing: Literal["row", "bulk"] = "row"
    checkpoint_column: ColumnName | None = None
    input: Id | None = None
    input_rows: list[JsonObject] = Field(default_factory=list, max_length=10_000)


class TaskDefinition(Model):
    """A task (async job) connector: its Python source and the task it runs."""

    code: Code
    task_type: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    task_type_version: int = Field(default=0, ge=0, le=2**31 - 1)
    inputs: JsonObject = Field(default_factory=dict)
    custom: JsonObject = Field(default_factory=dict)
    output: ColumnName | None = None
    retry: RetrySettings = Field(default_factory=RetrySettings)


class StreamDefinition(Model):
    """A stream (push) connector: `code` defines a `headwater.stream.ConnectorSubject` subclass
    (the one named `subject`, or the only one it defines), constructed with no arguments, and
    optionally a `headwater.stream.Schema` subclass (named `schema`, or the only one; none: a
    single `data: str` column). A run lasts until the subject finishes or the run is cancelled;
    each commit lands as one partition, and the next run resumes from the last offset.

    Example:
        >>> StreamDefinition(code="...", subject="Ticks", autocommit_duration_ms=None).on_bad_row
        'raise'
    """

    # `schema` in JSON; `schema_` in Python, as pydantic's BaseModel has a `schema` attribute.
    model_config = ConfigDict(
        extra="ignore",
        hide_input_in_errors=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    code: Code
    subject: ClassName | None = None
    schema_: ClassName | None = Field(default=None, alias="schema")
    autocommit_duration_ms: int | None = Field(default=1500, ge=1, le=86_400_000)
    max_backlog_size: int | None = Field(default=None, ge=0, le=1_000_000_000)
    on_bad_row: Literal["raise", "skip", "dead_letter"] = "raise"


class TransformDefinition(Model):
    """A transform over components of the same dataflow: DuckDB SQL (one SELECT naming the
    inputs by id) or Python (`python` defines `transform(...)`, called with one argument per
    input, in order, each a pyarrow Table — or a pandas DataFrame when it is annotated
    `pandas.DataFrame` — and returning a pyarrow Table or a pandas DataFrame).

    `partition_wise`: the output has one partition per partition of the first input, and only
    the partitions whose input partition changed are recomputed (the other inputs are read
    whole; a change in any of them recomputes every partition). Otherwise the output is one
    partition, recomputed when any input changed.

    Example:
        >>> TransformDefinition(inputs=["orders"], sql="SELECT * FROM orders WHERE total > 100")
        ... .partition_wise
        False
    """

    inputs: list[Id] = Field(min_length=1, max_length=100)
    sql: Code | None = None
    python: Code | None = None
    partition_wise: bool = False

    @model_validator(mode="after")
    def _sql_or_python(self) -> TransformDefinition:
        if (self.sql is None) == (self.python is None):
            raise ValueError("a transform has exactly one of sql or python")
        return self


class FilesTarget(Model):
    """Files on any fsspec path (`/local/dir`, `s3://bucket/prefix`, `memory://x`): one file
    per upstream partition, named after it; a removed partition's file is deleted."""

    path: Annotated[str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_text)]
    format: Literal["parquet", "csv"] = "parquet"
    storage_options: JsonObject = Field(default_factory=dict)


class PostgresTarget(Model):
    """A PostgreSQL table. `append` inserts the rows of new and changed upstream partitions;
    `upsert` inserts or updates them by `key` (and deletes the rows of removed partitions by
    key). The database URL is `url`, or the component's connection's `url` setting, with the
    connection's credential as the password."""

    table: Annotated[
        str,
        StringConstraints(
            pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", max_length=127
        ),
    ]
    mode: Literal["append", "upsert"] = "append"
    key: list[ColumnName] = Field(default_factory=list, max_length=32)
    url: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_text)] | None = None

    @model_validator(mode="after")
    def _key_for_upsert(self) -> PostgresTarget:
        if self.mode == "upsert" and not self.key:
            raise ValueError("an upsert needs `key`: the columns that identify a row")
        if self.url is not None:
            _no_password(self.url, "`url`")
        return self


class PythonWrite(Model):
    """A custom write: `code` defines `write(...)`, called with the keyword arguments it
    declares of `data_provider` (the upstream partitions to write), `filesystem`,
    `output_directory`, `credentials` and `spark` (None outside Spark)."""

    code: Code
    output_directory: Annotated[str, StringConstraints(max_length=4096)] | None = None


class WriteDefinition(Model):
    """A write connector: the rows of one component of the same dataflow, written to exactly
    one of `files`, `postgres` or `python`; each run writes only what changed upstream since
    its last successful write."""

    input: Id
    files: FilesTarget | None = None
    postgres: PostgresTarget | None = None
    python: PythonWrite | None = None

    @model_validator(mode="after")
    def _one_target(self) -> WriteDefinition:
        given = [k for k in ("files", "postgres", "python") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a write connector writes to exactly one of files, postgres or python; "
                f"got {', '.join(given) or 'none'}"
            )
        return self


def _time_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'"
        ) from None
    return name


class Schedule(Model):
    """When the server refreshes a component by itself: every `interval_seconds`, or at the
    times of a five-field `cron` expression (minute hour day month weekday) read in
    `timezone`. Manual refreshes work either way.

    Example:
        >>> Schedule(cron="0 6 * * mon-fri", timezone="Europe/Paris").timezone
        'Europe/Paris'
    """

    interval_seconds: int | None = Field(default=None, ge=1, le=366 * 86_400)
    cron: (
        Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_text)]
        | None
    ) = None
    timezone: Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)] = "UTC"

    @model_validator(mode="after")
    def _one_rule(self) -> Schedule:
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError("a schedule has exactly one of interval_seconds or cron")
        return self


class Component(Model):
    """A component of a dataflow: a read connector (`partitioned`, `processor`, `task` or
    `stream`), a `transform` or a `write` connector (exactly one of them), optionally on a
    `schedule`. A stream component's run lasts until its subject finishes or the run is
    cancelled.

    Example:
        >>> Component(id="totals", processor=ProcessorDefinition(
        ...     statement="return [{'n': len(INPUT_DATA)}]", output_schema={"n": "int"},
        ...     processing="bulk", input="orders")).kind
        'processor'
    """

    id: Id
    name: Name | None = None
    description: Description | None = None
    connection: Id | None = None  # a connection of the same data service
    partitioned: PartitionedDefinition | None = None
    processor: ProcessorDefinition | None = None
    task: TaskDefinition | None = None
    stream: StreamDefinition | None = None
    transform: TransformDefinition | None = None
    write: WriteDefinition | None = None
    schedule: Schedule | None = None
    data_service: str | None = None
    dataflow: str | None = None
    catalog_name: str | None = None  # the catalog component holding its data
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Component:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a component is exactly one of {', '.join(KINDS)}; "
                f"got {', '.join(given) or 'none'}"
            )
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def kind(self) -> ComponentKind:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def inputs(self) -> list[str]:
        """The components of the dataflow this one reads."""
        if self.transform is not None:
            return list(self.transform.inputs)
        if self.write is not None:
            return [self.write.input]
        if self.processor is not None and self.processor.input is not None:
            return [self.processor.input]
        return []


# -- runs -------------------------------------------------------------------------------------


class RunPlan(Model):
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0


class RunFailure(Model):
    """One partition (or the whole run) that failed, with where it failed."""

    partition: str | None = None
    function: str | None = None
    message: str
    attempts: int = 1


class Run(Model):
    """One run of one component, requested through the API.

    `status` goes queued -> running -> succeeded, partial (some partitions failed), failed,
    cancelled, interrupted (stopped by the server's shutdown) or abandoned (the server died).
    `engine_run_id` is the catalog's run (as `headwater runs` lists it) once it has started;
    `triggered_by`, the upstream component's run whose success queued this one.
    """

    id: int
    data_service: str
    dataflow: str
    component: str
    status: RunStatus
    engine_run_id: int | None = None
    requested_by: str | None = None
    triggered_by: int | None = None
    cancel_requested: bool = False
    requested_at: datetime.datetime
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    plan: RunPlan | None = None
    landed: int = 0
    failed: int = 0
    rows: int = 0
    bytes: int = 0
    error: str | None = None
    failures: list[RunFailure] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "running")


class LogLine(Model):
    """One line of a run's log (credentials are masked as ***)."""

    seq: int
    at: datetime.datetime
    level: Literal["debug", "info", "warning", "error"]
    message: str


# -- data ---------------------------------------------------------------------------------------


class Partition(Model):
    """Stored data of one component: one listed object, stream commit or processor/task run."""

    name: str
    fingerprint: str
    code_version: str
    row_count: int
    byte_size: int
    files: int
    engine_run_id: int
    committed_at: datetime.datetime


class LineageInput(Model):
    """An input partition, at the fingerprint it had, that a partition was computed from."""

    component: str  # the input component's id in the dataflow
    partition: str
    fingerprint: str


class PartitionLineage(Model):
    """Where a transform's partition came from: the input partitions it was computed from."""

    partition: str
    inputs: list[LineageInput]


class SchemaField(Model):
    name: str
    type: str  # the Arrow type, e.g. "int64", "string", "timestamp[us, tz=UTC]"
    nullable: bool = True


class ComponentSchema(Model):
    """The columns readers see: every committed partition's schema, merged."""

    fields: list[SchemaField]


class Records(Model):
    """A page of a component's rows, in partition order. Pass `next_cursor` as `cursor` for
    the next page; it is None after the last. Values are JSON: dates and times as ISO text,
    decimals as text, binary as base64, non-finite floats as null. For exact types and bulk
    reads, ask for `application/vnd.apache.arrow.stream`."""

    rows: list[dict[str, Any]]
    next_cursor: str | None = None


class GraphNode(Model):
    id: str
    kind: ComponentKind
    name: str


class GraphEdge(Model):
    source: str  # the upstream component's id
    target: str
    kind: Literal["input"] = "input"


class ComponentGraph(Model):
    """A dataflow's components and the edges between them (each input a component reads)."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]


# -- service ------------------------------------------------------------------------------------


class ErrorDetail(Model):
    loc: list[str | int] = Field(default_factory=list)
    message: str
    type: str | None = None


class ErrorResponse(Model):
    """Every error the API answers: a code (not_found, conflict, unauthenticated, forbidden,
    invalid, unavailable, internal), the message, and for invalid requests what was wrong
    where (request values are never echoed back: one may be a secret)."""

    error: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class Health(Model):
    status: Literal["ok"] = "ok"
    version: str
