"""`run_statement`: one processor run, from source text to a verdict, through every layer.

Arguments are checked first (schema, processing type, checkpoint column, JSON-ready input), then
the sandbox is proven to work (fail closed), then the static gate runs here in the parent, so a
rejected statement never starts a worker. A passing statement runs in one sandboxed worker for
all its executions, and its report is held to the output schema here, in the trusted parent.

Row-by-row runs with no input rows execute the statement zero times: the verdict is ok with no
rows, and the checkpoint is unchanged (there is no last row to take it from).
"""

from __future__ import annotations

import datetime
import decimal
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from headwater.processor import probe, sandbox, warm
from headwater.processor.contract import MalformedReport, WorkerReport, check_rows, read_report
from headwater.processor.errors import ProcessorConfigError, SandboxUnavailableError
from headwater.processor.gate import StatementRejected, check_statement
from headwater.processor.protocol import DEBUG_PREVIEW_ROWS
from headwater.processor.result import ProcessorResult, Verdict
from headwater.processor.schema import OutputSchema
from headwater.processor.seccomp import build_filter
from headwater.processor.settings import ProcessorSettings

Processing = Literal["row", "bulk"]


def run_statement(
    statement: str,
    schema: Mapping[str, str] | OutputSchema,
    input_rows: Sequence[Mapping[str, Any]] = (),
    *,
    processing: Processing = "row",
    checkpoint: Any = None,
    checkpoint_column: str | None = None,
    debug: bool = False,
    settings: ProcessorSettings | None = None,
) -> ProcessorResult:
    """Run a processor statement in the sandbox and validate what it returns.

    The statement is the body of an async function: it sees `INPUT_DATA`, `DATA_CHECKPOINT`,
    `sleep(seconds)` and `log`, and its last line returns a list of rows (dicts).

    Args:
        statement: the statement's source.
        schema: the output schema, `{column: "int"|"float"|"bool"|"string"|"json"}`, with a
            trailing "?" for nullable columns.
        input_rows: the rows handed to the statement as `INPUT_DATA`.
        processing: "row" runs the statement once per input row (INPUT_DATA is a one-row
            list); "bulk" runs it once with every row.
        checkpoint: the stored data checkpoint, handed to the statement as `DATA_CHECKPOINT`.
        checkpoint_column: the output column whose value in the last row becomes the new
            checkpoint after a successful run with at least one row.
        debug: a debug run: the first rows even if validation fails, all schema problems and a
            traceback of the statement's frames; the checkpoint is never marked for saving.
        settings: imports, network and limits; the defaults suit a shared runner.

    Returns:
        A ProcessorResult; statement errors are verdicts ("failed", "rejected"), not exceptions.

    Raises:
        SandboxUnavailableError: the OS sandbox cannot start here (the message says how to fix
            it). Statements never run unsandboxed.
        ProcessorConfigError: the schema, processing type, checkpoint column, input rows or
            checkpoint cannot be used.

    Example:
        result = run_statement(
            "row = INPUT_DATA[0]\\nreturn [{'id': row['id'] + 1}]",
            {"id": "int"},
            [{"id": 1}, {"id": 2}],
            checkpoint_column="id",
        )
        assert result.rows == [{"id": 2}, {"id": 3}] and result.checkpoint == 3
    """
    started = time.monotonic()
    settings = ProcessorSettings() if settings is None else settings
    if not isinstance(settings, ProcessorSettings):
        raise ProcessorConfigError(f"settings must be ProcessorSettings, got {settings!r}")
    output_schema = OutputSchema.parse(schema)
    if processing not in ("row", "bulk"):
        raise ProcessorConfigError(f"processing must be 'row' or 'bulk', got {processing!r}")
    if checkpoint_column is not None and checkpoint_column not in output_schema:
        raise ProcessorConfigError(
            f"the checkpoint column '{checkpoint_column}' is not a column of the output schema "
            f"({', '.join(output_schema.names)}); name one of them, or leave it unset"
        )
    rows = _input_rows(input_rows)
    _check_checkpoint(checkpoint)
    sandbox.ensure_sandbox(settings)

    def result(verdict: Verdict, **fields: Any) -> ProcessorResult:
        fields.setdefault("checkpoint", checkpoint)
        return ProcessorResult(verdict, duration_s=time.monotonic() - started, **fields)

    try:
        gated = check_statement(statement, settings.allowed_imports, settings.max_statement_bytes)
    except StatementRejected as exc:
        return result("rejected", error=str(exc), problems=exc.problems)
    notes = [{"level": "warn", "message": note} for note in gated.warnings]
    batches = [[row] for row in rows] if processing == "row" else [rows]
    if not batches:
        return result("ok", logs=notes)
    outcome = warm.run_job(
        _job(statement, batches, checkpoint, processing, debug, settings), settings
    )
    if outcome.payload is None:
        if not outcome.started and not outcome.timed_out:
            sandbox.forget(settings)
            raise SandboxUnavailableError(probe.diagnose(outcome))
        return result("failed", error=_crash_message(outcome, settings), logs=notes)
    try:
        report = read_report(outcome.payload)
    except MalformedReport as exc:
        error = f"the sandboxed worker sent a malformed result: {exc}"
        return result("failed", error=error, logs=notes)
    verdict, rows_out, fields = _conclude(report, output_schema, settings.max_rows)
    fields.update(logs=notes + report.logs, dropped_logs=report.dropped_logs)
    if debug:
        fields["traceback"] = report.traceback
    if verdict == "ok" and checkpoint_column is not None and rows_out:
        fields.update(checkpoint=rows_out[-1][checkpoint_column], checkpoint_changed=not debug)
    if debug or verdict == "ok":
        fields["rows"] = rows_out[:DEBUG_PREVIEW_ROWS] if debug else rows_out
    return result(verdict, **fields)


def _conclude(
    report: WorkerReport, schema: OutputSchema, max_rows: int
) -> tuple[Verdict, list[dict[str, Any]], dict[str, Any]]:
    """The verdict on a worker's report: (verdict, rows to show, result fields)."""
    if report.status != "ok":
        error = report.error or "the statement failed"
        return report.status, report.rows, {"error": error, "problems": report.problems}
    if len(report.rows) > max_rows:
        error = f"the statement returned more than {max_rows:,} rows, the limit per run"
        return "failed", [], {"error": error}
    clean, problems, count = check_rows(report.rows, schema, report.row_sources)
    if problems:
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        return "failed", report.rows, {"error": problems[0] + more, "problems": problems}
    return "ok", clean, {}


def _job(
    statement: str,
    batches: list[list[dict[str, Any]]],
    checkpoint: Any,
    processing: Processing,
    debug: bool,
    settings: ProcessorSettings,
) -> bytes:
    program = build_filter(settings.network)
    job = {
        "statement": statement,
        "batches": batches,
        "checkpoint": checkpoint,
        "processing": processing,
        "debug": debug,
        "allowed_imports": list(settings.allowed_imports),
        "max_statement_bytes": settings.max_statement_bytes,
        "max_rows": settings.max_rows,
        "max_output_bytes": settings.max_output_bytes,
        "wall_limit_s": settings.timeout_s,
        "limits": {
            "cpu_s": int(settings.cpu_s),
            "memory_mb": int(settings.memory_mb),
            "tmpfs_mb": int(settings.tmpfs_mb),
            "max_processes": int(settings.max_processes),
            "max_open_files": int(settings.max_open_files),
        },
        "seccomp": program.bpf.hex(),
        "seccomp_nr": program.seccomp_nr,
    }
    return json.dumps(job, default=_json_default).encode()


def _crash_message(outcome: sandbox.WorkerOutcome, settings: ProcessorSettings) -> str:
    if outcome.timed_out:
        return (
            f"the statement exceeded the wall-clock limit of {settings.timeout_s:g} s and was "
            "stopped (blocked in a call such as time.sleep, or too much work); process less "
            "data per run"
        )
    if outcome.too_large:
        return (
            f"output too large: the result exceeded {settings.max_output_bytes:,} bytes; return "
            "fewer or smaller rows"
        )
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    last = lines[-1][:300] if lines else "no diagnostics"
    code = outcome.exit_code
    # The soft CPU limit's signal can also land after the statement returned, while the worker
    # checks or writes out its rows: the worker then dies of the same CpuLimitExceeded.
    cpu = "CpuLimitExceeded" in outcome.stderr
    if cpu or (code in (128 + 24, 128 + 9) and outcome.elapsed_s >= settings.cpu_s * 0.9):
        return (
            f"the statement exceeded the CPU limit of {settings.cpu_s} s and was killed; "
            "process less data per run or make the computation cheaper"
        )
    if "MemoryError" in outcome.stderr or code == 128 + 9:
        return (
            f"the statement exceeded the memory limit of {settings.memory_mb} MB and was "
            "killed; hold less data at once"
        )
    return f"the sandboxed worker stopped unexpectedly (exit code {code}): {last}"


def _input_rows(input_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows as plain dicts, checked to be JSON-ready (dates travel as ISO strings)."""
    if isinstance(input_rows, str | bytes | Mapping):
        raise ProcessorConfigError("input_rows must be a sequence of row mappings")
    rows: list[dict[str, Any]] = []
    for number, row in enumerate(input_rows, 1):
        if not isinstance(row, Mapping):
            raise ProcessorConfigError(
                f"input row {number} is a {type(row).__name__}, not a mapping of columns"
            )
        rows.append(dict(row))
    try:
        json.dumps(rows, default=_json_default)
    except (TypeError, ValueError, RecursionError):
        for number, row in enumerate(rows, 1):
            try:
                json.dumps(row, default=_json_default)
            except (TypeError, ValueError, RecursionError) as exc:
                raise ProcessorConfigError(
                    f"input row {number} cannot be handed to a statement: {exc}"
                ) from None
        raise
    return rows


def _check_checkpoint(checkpoint: Any) -> None:
    try:
        json.dumps(checkpoint, default=_json_default)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProcessorConfigError(f"the checkpoint is not a JSON value: {exc}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    raise TypeError(f"a {type(value).__name__} is not a JSON value")
