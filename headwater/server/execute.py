"""How a run of each kind of component executes, on a pool thread, through the public entry
points: `Workspace.refresh` (partitioned), `run_processor`, `run_task`, `run_stream`,
`run_transform` and `run_write`."""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.catalog.definitions import DefinitionRecord
from headwater.catalog.resources import catalog_name
from headwater.engine.plan import Plan
from headwater.errors import NotFoundError
from headwater.server import convert
from headwater.server.runs import ActiveRun, Outcome

if TYPE_CHECKING:
    from headwater.server.state import Server


class RunCancelled(KeyboardInterrupt):
    """Raised from a refresh's progress callback when its run is cancelled. A KeyboardInterrupt,
    because that is what the engine already treats as "stop here": it records the run as
    interrupted, releases the lease and leaves every committed partition in place."""


def execute(server: Server, active: ActiveRun) -> Outcome:
    kind = active.definition.kind
    if kind == "partitioned":
        return _partitioned(server, active)
    if kind == "processor":
        return _processor(server, active)
    if kind == "transform":
        return _transform(server, active)
    if kind == "write":
        return _write(server, active)
    if kind == "stream":
        return _stream(server, active)
    return _task(server, active)


class _LoggedProgress:
    """A refresh's progress as log lines; where a cancel is noticed, between partitions."""

    def __init__(self, active: ActiveRun) -> None:
        self.active = active

    def planned(self, plan: Plan) -> None:
        counts = plan.counts()
        self.active.log.info(
            "plan: {added} added, {changed} changed, {removed} removed, "
            "{unchanged} unchanged".format(**counts)
        )
        self._check()

    def landed(self, name: str, rows: int, size: int) -> None:
        self.active.log.info(f"landed partition '{name}': {rows} rows, {size} bytes")
        self._check()

    def failed(self, name: str, message: str) -> None:
        self.active.log.warning(f"partition '{name}' failed: {message}")
        self._check()

    def _check(self) -> None:
        self.active.log.flush()
        if self.active.cancel.is_set():
            self.active.log.info("stopping: cancelled")
            raise RunCancelled


def _credential(server: Server, definition: DefinitionRecord) -> str | None:
    if definition.connection is None:
        return None
    found = server.resources.connection(definition.data_service, definition.connection)
    if found.credential is None:
        return None
    try:
        return server.vault.get(f"{definition.data_service}/{found.credential}")
    except NotFoundError:  # (the vault's own message lists every data service's credentials)
        raise NotFoundError(
            f"connection '{found.id}' uses credential '{found.credential}', which data service "
            f"'{definition.data_service}' no longer has; store it again"
        ) from None


def _partitioned(server: Server, active: ActiveRun) -> Outcome:
    definition = active.definition
    credential = _credential(server, definition)
    active.log.secret = credential
    started = server.clock()
    try:
        result = server.workspace.refresh(
            convert.source(definition),
            component=definition.catalog_name,
            settings=convert.component_settings(definition.definition["settings"]),
            credential=credential,
            progress=_LoggedProgress(active),
        )
    except RunCancelled:
        return Outcome("cancelled", _engine_run(server, definition, started), "cancelled")
    for failure in result.failures:
        where = f"partition '{failure.partition}'" if failure.partition else "the run"
        active.log.warning(f"{where} failed in {failure.function or '?'}(): {failure.message}")
    active.log.info(
        f"{result.landed} partition(s) landed, {result.failed} failed, {result.rows} rows, "
        f"{result.bytes} bytes in {result.seconds:.2f} s"
    )
    error = result.error or (result.failures[0].message if result.failures else None)
    return Outcome(result.status, result.run_id, error)


def _engine_run(
    server: Server, definition: DefinitionRecord, since: datetime.datetime
) -> int | None:
    """The engine's run of a refresh that ended by an exception: the component's newest run
    begun since `since` (the lease makes it this one)."""
    runs = server.workspace.catalog.runs(definition.component_id, limit=1)
    return runs[0].id if runs and runs[0].started_at >= since else None


def _processor(server: Server, active: ActiveRun) -> Outcome:
    from headwater.processor.component import ProcessorSpec, run_processor

    definition = active.definition
    declared = definition.definition
    upstream = declared.get("input")
    spec = ProcessorSpec(
        statement=declared["statement"],
        schema=declared["output_schema"],
        processing=declared["processing"],
        checkpoint_column=declared.get("checkpoint_column"),
        input_component=_upstream(definition, upstream) if upstream else None,
        input_rows=declared.get("input_rows") or (),
        settings=server.settings.processor,
    )
    run = run_processor(server.workspace, definition.catalog_name, spec)
    result = run.result
    for entry in result.logs:
        active.log.info(f"statement {entry.get('level', 'info')}: {entry.get('message', '')}")
    active.log.info(
        f"statement {result.verdict}: {len(result.rows)} row(s)"
        + (f", partition '{run.partition}'" if run.partition else "")
    )
    if result.verdict == "ok":
        return Outcome("succeeded", run.run_id)
    problems = "; ".join(str(p) for p in result.problems)
    return Outcome("failed", run.run_id, result.error or problems or result.verdict)


def _task(server: Server, active: ActiveRun) -> Outcome:
    from headwater.component import RetrySpec
    from headwater.tasks.component import TaskSpec, run_task

    definition = active.definition
    declared = definition.definition
    spec = TaskSpec(
        str(_code_file(server, declared["code"])),
        task_type=declared.get("task_type"),
        task_type_version=declared.get("task_type_version", 0),
        inputs=declared.get("inputs") or {},
        custom=declared.get("custom") or {},
        output=declared.get("output"),
        retry=RetrySpec(**declared["retry"]),
    )
    run = run_task(server.workspace, definition.catalog_name, spec, cancel=active.cancel)
    for attempt in run.attempts:
        active.log.info(
            f"job attempt {attempt.attempt}: {attempt.state}"
            + (f" ({attempt.message})" if attempt.message else "")
        )
    if run.message:
        active.log.info(f"connector: {run.message}")
    if run.partition:
        active.log.info(f"landed partition '{run.partition}': {run.rows} rows")
    return Outcome(run.status, run.run_id, run.error)


def _stream(server: Server, active: ActiveRun) -> Outcome:
    from headwater.client.models import StreamDefinition
    from headwater.stream.component import StreamSpec, run_stream

    definition = active.definition
    declared = StreamDefinition.model_validate(definition.definition)
    spec = StreamSpec(
        convert.source(definition),
        subject=declared.subject,
        schema=declared.schema_,
        autocommit_duration_ms=declared.autocommit_duration_ms,
        max_backlog_size=declared.max_backlog_size,
        on_bad_row=declared.on_bad_row,
    )
    # A local graph on the server's workspace (its catalog may be PostgreSQL), never the
    # module-level one of `stream.read()`: other runs use the pool at the same time.
    run = run_stream(
        server.workspace,
        definition.catalog_name,
        spec,
        name=definition.id,
        log=active.log.info,
        cancel=active.cancel,
    )
    # Streams record no engine run (a commit's partition is its record): no engine_run_id,
    # and whether it changed anything is said here. "interrupted" (cancelled) becomes
    # "cancelled" in the pool unless the server is stopping.
    return Outcome(run.status, None, run.error, changed=run.commits > 0)


def _upstream(definition: DefinitionRecord, id: str) -> str:
    return catalog_name(definition.data_service, definition.dataflow, id)


def _transform(server: Server, active: ActiveRun) -> Outcome:
    from headwater.transforms.component import TransformSpec, run_transform

    definition = active.definition
    declared = definition.definition
    spec = TransformSpec(
        inputs=tuple(_upstream(definition, i) for i in definition.inputs),
        names=definition.inputs,
        sql=declared.get("sql"),
        python=declared.get("python"),
        partition_wise=bool(declared.get("partition_wise")),
    )
    run = run_transform(
        server.workspace, definition.catalog_name, spec, log=active.log.info, cancel=active.cancel
    )  # (it logs each partition's outcome itself)
    return Outcome(run.status, run.run_id, run.error)


def _write(server: Server, active: ActiveRun) -> Outcome:
    from headwater.writes.component import WriteSpec, run_write

    definition = active.definition
    declared = definition.definition
    credential = _credential(server, definition)
    active.log.secret = credential
    settings = (
        server.resources.connection(definition.data_service, definition.connection).settings
        if definition.connection is not None
        else {}
    )
    spec = WriteSpec(
        input=_upstream(definition, declared["input"]),
        target={k: v for k, v in declared.items() if k != "input" and v is not None},
        connection_settings=settings,
    )
    run = run_write(
        server.workspace,
        definition.catalog_name,
        spec,
        credential=credential,
        log=active.log.info,
        cancel=active.cancel,
    )
    for failure in run.failures:
        where = f"partition '{failure.partition}'" if failure.partition else "the write"
        active.log.warning(f"{where} failed: {failure.message}")
    return Outcome(run.status, run.run_id, run.error)


def _code_file(server: Server, code: str) -> Path:
    """A task connector's code as a file (task connectors load from files or modules), named
    by its content so a file is written once and never changes under a running job."""
    folder = server.settings.workspace.home / "server" / "code"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"task_{hashlib.sha256(code.encode()).hexdigest()[:20]}.py"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(code, encoding="utf-8")
        partial.replace(path)
    return path
