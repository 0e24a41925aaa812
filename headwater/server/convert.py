"""Between the API's models (pydantic, at the edge) and what the catalog and engine hold
(frozen dataclasses and specs inside)."""

from __future__ import annotations

from typing import Any

from headwater.catalog.catalog import Failure, PartitionRecord, RunRecord
from headwater.catalog.definitions import ComponentFields, DefinitionRecord
from headwater.catalog.resources import (
    ConnectionRecord,
    DataflowRecord,
    DataServiceRecord,
)
from headwater.catalog.server_runs import LogRecord, ServerRunRecord
from headwater.client import models
from headwater.component import ComponentSettings, RetrySpec
from headwater.connectors.loading import ConnectorSource
from headwater.errors import ConnectorLoadError


def data_service(record: DataServiceRecord) -> models.DataService:
    return models.DataService(**record.__dict__)


def dataflow(record: DataflowRecord) -> models.Dataflow:
    return models.Dataflow(**record.__dict__)


def connection(record: ConnectionRecord) -> models.Connection:
    return models.Connection(**record.__dict__)


def component(record: DefinitionRecord) -> models.Component:
    declared: dict[str, Any] = {record.kind: record.definition, "schedule": record.schedule}
    return models.Component.model_validate(
        {
            "id": record.id,
            "name": record.name,
            "description": record.description,
            "connection": record.connection,
            "data_service": record.data_service,
            "dataflow": record.dataflow,
            "catalog_name": record.catalog_name,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            **declared,
        }
    )


def component_fields(body: models.Component) -> ComponentFields:
    """What the catalog stores of a component, checked as far as it can be without running
    anything (connector code is compiled, never executed, here)."""
    kind = body.kind
    declared = getattr(body, kind)
    definition: dict[str, Any] = declared.model_dump(mode="json")
    if isinstance(declared, models.PartitionedDefinition):
        component_settings(declared.settings)  # SettingsError (422) for a bad combination
        _compile(declared.code, body.id)
    elif isinstance(declared, models.TaskDefinition):
        _compile(declared.code, body.id)
        if body.connection is not None:
            raise ConnectorLoadError(
                "a task component cannot use a connection yet: task connectors get no "
                "credential from Headwater's runs; drop `connection`"
            )
    elif isinstance(declared, models.ProcessorDefinition):
        from headwater.processor import OutputSchema

        OutputSchema.parse(declared.output_schema)  # ProcessorConfigError (422) when bad
        if declared.input is not None and declared.input_rows:
            raise ConnectorLoadError(
                "a processor reads an input component or inline input_rows, not both"
            )
        if body.connection is not None:
            raise ConnectorLoadError(
                "a processor cannot use a connection: its statement runs sandboxed, without "
                "credentials; drop `connection`"
            )
    elif isinstance(declared, models.TransformDefinition):
        check_transform(body.id, declared)
        if body.connection is not None:
            raise ConnectorLoadError(
                "a transform cannot use a connection: it reads components of its dataflow "
                "only; drop `connection`"
            )
    elif isinstance(declared, models.StreamDefinition):
        _compile(declared.code, body.id)  # (its classes are looked up when it runs)
        if body.connection is not None:
            raise ConnectorLoadError(
                "a stream component cannot use a connection: its subject is built with no "
                "arguments and gets no credential from Headwater's runs; drop `connection`"
            )
    elif isinstance(declared, models.WriteDefinition) and declared.python is not None:
        _compile(declared.python.code, body.id)
    schedule = body.schedule.model_dump(mode="json") if body.schedule else None
    if body.schedule is not None:
        check_schedule(body.id, body.schedule)
    return ComponentFields(
        name=body.name or body.id,
        description=body.description,
        kind=kind,
        definition=definition,
        connection=body.connection,
        inputs=tuple(body.inputs),
        schedule=schedule,
    )


def check_transform(id: str, transform: models.TransformDefinition) -> None:
    """A transform's code parses, and its SQL reads its declared inputs only."""
    if transform.python is not None:
        _compile(transform.python, id)
        return
    from headwater.transforms.sql import check_inputs

    assert transform.sql is not None  # (the model holds exactly one of sql and python)
    check_inputs(transform.sql, transform.inputs, component=id)


def check_schedule(id: str, schedule: models.Schedule) -> None:
    """A schedule the scheduler can keep: five cron fields that fire (ScheduleError, 422)."""
    from headwater.schedule import check

    check(schedule, component=id)


def _compile(code: str, component: str) -> None:
    try:
        compile(code, f"<{component}>", "exec")
    except SyntaxError as exc:
        raise ConnectorLoadError(
            f"the code of component '{component}' has a syntax error at line {exc.lineno}: "
            f"{exc.msg}"
        ) from None
    except ValueError as exc:  # e.g. source that cannot be compiled at all
        raise ConnectorLoadError(
            f"the code of component '{component}' is unusable: {exc}"
        ) from None


def component_settings(settings: models.PartitionedSettings | dict[str, Any]) -> ComponentSettings:
    """The engine's settings for a partitioned component."""
    model = models.PartitionedSettings.model_validate(settings)
    csv = {k: v for k, v in model.parser_options.model_dump().items() if v is not None}
    return ComponentSettings(
        parser=model.parser,
        parser_options=csv,
        keep_removed=model.keep_removed,
        reprocess_on_code_change=model.reprocess_on_code_change,
        widen_types=model.widen_types,
        executor=model.executor,
        concurrency=model.concurrency,
        retry=RetrySpec(**model.retry.model_dump()),
        batch_rows=model.batch_rows,
    )


def source(record: DefinitionRecord) -> ConnectorSource:
    return ConnectorSource.from_text(
        record.definition["code"], f"{record.data_service}/{record.dataflow}/{record.id}"
    )


def run(record: ServerRunRecord, engine: RunRecord | None, failures: list[Failure]) -> models.Run:
    counts: dict[str, Any] = {}
    if engine is not None:
        counts = {
            "plan": models.RunPlan(
                added=engine.added,
                changed=engine.changed,
                removed=engine.removed,
                unchanged=engine.unchanged,
            ),
            "landed": engine.landed,
            "failed": engine.failed,
            "rows": engine.rows,
            "bytes": engine.bytes,
        }
    return models.Run(
        id=record.id,
        data_service=record.data_service,
        dataflow=record.dataflow,
        component=record.component,
        status=record.status,  # type: ignore[arg-type]
        engine_run_id=record.run_id,
        requested_by=record.requested_by,
        triggered_by=record.triggered_by,
        cancel_requested=record.cancel_requested,
        requested_at=record.requested_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        error=record.error,
        failures=[
            models.RunFailure(
                partition=f.partition, function=f.function, message=f.message, attempts=f.attempts
            )
            for f in failures
        ],
        **counts,
    )


def log_line(record: LogRecord) -> models.LogLine:
    return models.LogLine(
        seq=record.seq,
        at=record.at,
        level=record.level,  # type: ignore[arg-type]
        message=record.message,
    )


def partition(record: PartitionRecord) -> models.Partition:
    return models.Partition(
        name=record.name,
        fingerprint=record.fingerprint,
        code_version=record.code_version,
        row_count=record.row_count,
        byte_size=record.byte_size,
        files=len(record.files),
        engine_run_id=record.run_id,
        committed_at=record.committed_at,
    )
