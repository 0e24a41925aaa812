"""A processor component: its statement run over its input in the sandbox, the rows it returns
landed as one partition per run, and its data checkpoint stored in the same transaction.

Each successful run with rows appends a partition (`000000000001`, ...): a statement that uses
DATA_CHECKPOINT returns only what is new since the last run, as in the product it reproduces.
A failed or rejected run lands nothing and leaves the checkpoint as it was; a debug run goes
through the same sandbox and never writes anything.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pyarrow as pa

from headwater.catalog.catalog import Checkpoint, Failure
from headwater.component import check_component_name
from headwater.errors import HeadwaterError
from headwater.processor import (
    OutputSchema,
    ProcessorResult,
    ProcessorSettings,
    run_statement,
)
from headwater.workspace import Workspace

KIND = "processor"
_ARROW = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "string": pa.string()}


class ProcessorComponentError(HeadwaterError, ValueError):
    """A processor component's declaration or input cannot be used."""


@dataclass(frozen=True)
class ProcessorSpec:
    """A processor component's declaration.

    Args:
        statement: the statement's source (the body of an async function returning rows).
        schema: output columns: column -> "int", "float", "bool", "string" or "json"
            (a trailing "?" allows null).
        processing: "row" (once per input row, the default) or "bulk" (once, all rows).
        checkpoint_column: the output column whose value in the last row becomes the next
            run's DATA_CHECKPOINT.
        input_component: an upstream component whose rows are the input.
        input_rows: rows given inline (when there is no upstream component).
        settings: the sandbox's limits, allow-list and network grant.

    Example:
        >>> spec = ProcessorSpec("return [{'n': len(INPUT_DATA)}]", {"n": "int"}, "bulk")
    """

    statement: str
    schema: Mapping[str, str]
    processing: Literal["row", "bulk"] = "row"
    checkpoint_column: str | None = None
    input_component: str | None = None
    input_rows: Sequence[Mapping[str, Any]] = ()
    settings: ProcessorSettings = field(default_factory=ProcessorSettings)

    def __post_init__(self) -> None:
        if self.input_component is not None and self.input_rows:
            raise ProcessorComponentError(
                "a processor takes its input from an upstream component or inline rows, not "
                "both; drop input_rows or input_component"
            )
        OutputSchema.parse(self.schema)  # a bad type name fails here, before any run

    @property
    def code_version(self) -> str:
        """Changes when anything that shapes the output changes."""
        shape = [self.statement, dict(self.schema), self.processing, self.checkpoint_column]
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]

    def stored(self) -> dict[str, Any]:
        return {
            "schema": dict(self.schema),
            "processing": self.processing,
            "checkpoint_column": self.checkpoint_column,
            "input_component": self.input_component,
        }


@dataclass(frozen=True)
class ProcessorRun:
    """One processor run: the sandbox's result and what was stored of it."""

    component: str
    run_id: int | None  # None for a debug run (nothing recorded)
    result: ProcessorResult
    partition: str | None  # the partition landed, if any
    checkpoint_before: Any

    @property
    def ok(self) -> bool:
        return self.result.verdict == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "run_id": self.run_id,
            "partition": self.partition,
            "checkpoint_before": self.checkpoint_before,
            **self.result.to_json(),
        }


def run_processor(
    workspace: Workspace, name: str, spec: ProcessorSpec, *, debug: bool = False
) -> ProcessorRun:
    """Run a processor component once: read its input and checkpoint, run the statement in
    the sandbox, and land the rows and the new checkpoint together (not for a debug run).

    Raises:
        SandboxUnavailableError: the OS sandbox cannot start (nothing is run).
        ComponentBusyError: another run of this component holds its lease.
        NotFoundError: the input component does not exist.
    """
    name = check_component_name(name)
    catalog, clock = workspace.catalog, workspace.clock
    record = catalog.ensure_component(
        name,
        kind=KIND,
        source_ref="statement",
        settings=spec.stored(),
        code_version=spec.code_version,
        now=clock(),
    )
    rows = _input_rows(workspace, spec, name)
    if debug:  # the same sandbox; nothing is recorded, so no lease either
        before = _checkpoint_value(catalog.checkpoint(record.id))
        result = _run(spec, rows, before, debug=True)
        return ProcessorRun(name, None, result, None, before)
    with catalog.lease(record, clock) as lease:
        catalog.abandon_runs(record.id, clock())
        catalog.update_component(
            record.id,
            source_ref="statement",
            settings=spec.stored(),
            code_version=spec.code_version,
            now=clock(),
        )
        stored = catalog.checkpoint(record.id)
        before = _checkpoint_value(stored)
        run_id = catalog.start_run(record.id, executor="sandbox", holder=lease.holder, now=clock())
        counts = dict.fromkeys(
            ("added", "changed", "removed", "unchanged", "landed", "failed", "rows", "bytes"), 0
        )
        try:
            result = _run(spec, rows, before, debug=False)
            partition = None
            if result.verdict == "ok" and result.rows:
                seq = (stored.seq if stored else 0) + 1
                partition = f"{seq:012d}"
                at = workspace.clock()
                written = workspace.land_table(
                    replace(record, code_version=spec.code_version),
                    partition,
                    _as_arrow(result.rows, OutputSchema.parse(spec.schema)),
                    fingerprint=str(run_id),
                    run_id=run_id,
                    checkpoint=Checkpoint(
                        seq, int(at.timestamp() * 1000), {"value": result.checkpoint}
                    ),
                    holder=lease.holder,
                )
                counts.update(added=1, landed=1, rows=written.rows, bytes=written.bytes)
        except BaseException as exc:
            catalog.finish_run(
                run_id, status="failed", counts=counts, failures=[], error=str(exc), now=clock()
            )
            raise
        failures = []
        if result.verdict != "ok":
            counts["failed"] = 1
            failures.append(
                Failure(None, "statement", result.error or result.verdict, result.traceback)
            )
        catalog.finish_run(
            run_id,
            status="succeeded" if result.verdict == "ok" else "failed",
            counts=counts,
            failures=failures,
            error=result.error,
            now=clock(),
        )
    return ProcessorRun(name, run_id, result, partition, before)


def reset_checkpoint(workspace: Workspace, name: str) -> Any:
    """Forget a processor component's data checkpoint: its next run gets DATA_CHECKPOINT None.
    Returns the value it had. The landed partitions stay."""
    record = workspace.catalog.component(name)
    if record.kind != KIND:
        raise ProcessorComponentError(
            f"component '{name}' is a {record.kind} component; only a processor has a data "
            "checkpoint to reset"
        )
    with workspace.catalog.lease(record, workspace.clock):
        return _checkpoint_value(workspace.catalog.reset_checkpoint(record.id, workspace.clock()))


def _run(
    spec: ProcessorSpec, rows: list[dict[str, Any]], checkpoint: Any, *, debug: bool
) -> ProcessorResult:
    return run_statement(
        spec.statement,
        spec.schema,
        rows,
        processing=spec.processing,
        checkpoint=checkpoint,
        checkpoint_column=spec.checkpoint_column,
        debug=debug,
        settings=spec.settings,
    )


def _checkpoint_value(stored: Checkpoint | None) -> Any:
    return stored.offset.get("value") if stored is not None and stored.offset else None


def _input_rows(workspace: Workspace, spec: ProcessorSpec, name: str) -> list[dict[str, Any]]:
    if spec.input_component is None:
        return [dict(row) for row in spec.input_rows]
    table = workspace.read_arrow(spec.input_component)
    return [{k: _jsonable(v) for k, v in row.items()} for row in table.to_pylist()]


def _jsonable(value: Any) -> Any:
    """An upstream value as INPUT_DATA holds it: JSON types; dates and times as ISO text,
    decimals as float, bytes as text (invalid UTF-8 escaped)."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _as_arrow(rows: list[dict[str, Any]], schema: OutputSchema) -> pa.Table:
    """The validated rows as Arrow, in the schema's column order; JSON columns as JSON text."""
    arrays = []
    fields = []
    for column in schema.columns:
        values = [row[column.name] for row in rows]
        if column.type == "json":
            values = [None if v is None else json.dumps(v, sort_keys=True) for v in values]
            arrow_type = pa.string()
        else:
            arrow_type = _ARROW[column.type]
        arrays.append(pa.array(values, arrow_type))
        fields.append(pa.field(column.name, arrow_type, nullable=column.nullable))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
