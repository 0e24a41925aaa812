"""A transform component: DuckDB SQL or a Python function over upstream components, landed as
Parquet partitions with their lineage.

A run plans like a refresh: the output partitions it wants (each fingerprinted by the code and
the input partitions it is computed from) are diffed against the stored ones by name and
fingerprint, and only the added and changed ones are computed. Each lands with its lineage in
the same transaction; a failing partition fails alone.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from headwater.catalog import ComponentRecord, Failure, Lineage, PartitionRecord
from headwater.catalog.lease import Lease
from headwater.component import check_component_name
from headwater.engine.listing import ListedObject
from headwater.engine.plan import plan
from headwater.engine.refresh import sweep_orphans
from headwater.errors import (
    ComponentBusyError,
    ConnectorError,
    HeadwaterError,
    SettingsError,
    StoreError,
    Where,
)
from headwater.transforms import python, sql
from headwater.transforms.plan import Input, Output, list_inputs, outputs
from headwater.workspace import Workspace

KIND = "transform"
_COUNTS = ("added", "changed", "removed", "unchanged", "landed", "failed", "rows", "bytes")


@dataclass(frozen=True)
class TransformSpec:
    """A transform's declaration: its inputs, and exactly one of `sql` or `python`.

    Args:
        inputs: the catalog names of the upstream components, in declared order.
        names: the ids the code knows them by, in the same order (the SQL's table names, the
            Python function's arguments).
        sql: one DuckDB SELECT over the inputs, named by id.
        python: source text defining `transform(...)`: one argument per input (a pyarrow
            Table, or a pandas DataFrame when annotated so), returning a pyarrow Table,
            RecordBatch or pandas DataFrame.
        partition_wise: one output partition per partition of the first input, recomputed
            only when that partition changed (or the code, or another input); otherwise one
            output partition.

    Example:
        >>> TransformSpec(("orders",), ("orders",), sql="SELECT * FROM orders").executor
        'duckdb'
    """

    inputs: tuple[str, ...]
    names: tuple[str, ...]
    sql: str | None = None
    python: str | None = None
    partition_wise: bool = False

    def __post_init__(self) -> None:
        if (self.sql is None) == (self.python is None):
            raise SettingsError("a transform has exactly one of sql or python")
        if not self.inputs or len(self.inputs) != len(self.names):
            raise SettingsError(
                f"a transform needs one or more inputs, each with a name: got {len(self.inputs)} "
                f"input(s) and {len(self.names)} name(s)"
            )
        lowered = [n.lower() for n in self.names]
        if len(set(lowered)) != len(lowered):
            raise SettingsError(
                f"the names of a transform's inputs must differ (SQL ignores case): {self.names}"
            )

    @property
    def code_version(self) -> str:
        """Changes when anything that shapes the output changes (the inputs' data aside)."""
        shape = [self.sql, self.python, list(self.names), self.partition_wise]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]

    @property
    def executor(self) -> str:
        return "duckdb" if self.sql is not None else "python"

    def stored(self) -> dict[str, Any]:
        return {
            "inputs": list(self.inputs),
            "names": list(self.names),
            "partition_wise": self.partition_wise,
            "language": "sql" if self.sql is not None else "python",
        }


@dataclass(frozen=True)
class TransformRun:
    """One transform run: how it ended and what it did, as recorded in the catalog."""

    run_id: int
    status: str  # "succeeded", "partial", "failed" or "interrupted"
    added: int
    changed: int
    removed: int
    unchanged: int
    landed: int
    failed: int
    rows: int
    error: str | None  # the first failure, naming component, function and partition
    failures: tuple[Failure, ...]
    message: str | None = None  # why nothing was computed (an input without partitions)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def run_transform(
    workspace: Workspace,
    component: str,
    spec: TransformSpec,
    *,
    log: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> TransformRun:
    """Run a transform component once: compute and land the output partitions whose inputs or
    code changed, each with its lineage, and drop those whose input partition is gone.

    Failures of the transform's code (and of its inputs) are recorded in the run and returned,
    not raised; what committed before stays. `cancel` stops the run between partitions.

    Raises:
        ComponentBusyError: another run of this component holds its lease.
        SettingsError: `component` exists as another kind of component, or is its own input.

    Example:
        >>> spec = TransformSpec(("orders",), ("orders",), sql="SELECT * FROM orders")
        >>> run_transform(workspace, "big_orders", spec).status  # doctest: +SKIP
        'succeeded'
    """
    if component in spec.inputs:
        raise SettingsError(f"transform '{component}' cannot read itself; drop it from its inputs")
    say = log or _silent
    catalog, clock = workspace.catalog, workspace.clock
    record = catalog.ensure_component(
        check_component_name(component),
        kind=KIND,
        source_ref=KIND,
        settings=spec.stored(),
        code_version=spec.code_version,
        now=clock(),
    )
    with catalog.lease(record, clock) as lease:
        sweep_orphans(catalog, workspace.store, record.id, clock)
        # The server made the row (source_ref names its definition): keep its source_ref.
        catalog.update_component(
            record.id,
            source_ref=record.source_ref,
            settings=spec.stored(),
            code_version=spec.code_version,
            now=clock(),
        )
        record = replace(record, code_version=spec.code_version)
        run_id = catalog.start_run(
            record.id, executor=spec.executor, holder=lease.holder, now=clock()
        )
        tally = _Tally()
        try:
            _execute(_Context(workspace, record, spec, run_id, lease, say), tally, cancel)
        except KeyboardInterrupt:
            tally.interrupted = True
            raise
        except ComponentBusyError as exc:  # the lease was lost: stop writing, and say so
            tally.fail(exc, None)
            raise
        except HeadwaterError as exc:  # a missing input, refused SQL, code that does not load
            tally.fail(exc, None)
            say(f"failed: {exc}")
        except BaseException as exc:
            tally.fail(exc, None)
            raise
        finally:
            counts = {k: tally.counts[k] for k in _COUNTS}
            catalog.finish_run(
                run_id,
                status=tally.status,
                counts=counts,
                failures=tally.failures,
                error=tally.error,
                now=clock(),
            )
    c = tally.counts
    say(
        f"{tally.status}: {c['landed']} partition(s) landed, {c['failed']} failed, {c['rows']} rows"
    )
    return TransformRun(
        run_id=run_id,
        status=tally.status,
        added=c["added"],
        changed=c["changed"],
        removed=c["removed"],
        unchanged=c["unchanged"],
        landed=c["landed"],
        failed=c["failed"],
        rows=c["rows"],
        error=tally.error,
        failures=tuple(tally.failures),
        message=tally.message,
    )


def lineage(workspace: Workspace, component: str) -> dict[str, list[Lineage]]:
    """Each output partition of a transform and the input partitions (at the fingerprints they
    had) it was computed from, by partition name."""
    return workspace.catalog.lineage(workspace.catalog.component(component).id)


@dataclass(frozen=True)
class _Context:
    workspace: Workspace
    record: ComponentRecord
    spec: TransformSpec
    run_id: int
    lease: Lease
    say: Callable[[str], None]


@dataclass
class _Tally:
    """What a run did so far; what `finish_run` records however the run ends."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTS, 0))
    failures: list[Failure] = field(default_factory=list)
    error: str | None = None
    message: str | None = None
    interrupted: bool = False

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if not self.failures:
            return "succeeded"
        return "partial" if self.counts["landed"] else "failed"

    def fail(self, exc: BaseException, partition: str | None) -> None:
        if isinstance(exc, ConnectorError):
            function, message, detail = exc.where.function, exc.explained, exc.detail
        else:
            function, message, detail = None, str(exc) or type(exc).__name__, None
        self.failures.append(Failure(partition, function, message, detail))
        if partition is not None:
            self.counts["failed"] += 1
        self.error = self.error or str(exc) or type(exc).__name__


def _execute(run: _Context, tally: _Tally, cancel: threading.Event | None) -> None:
    workspace, record, spec = run.workspace, run.record, run.spec
    compute = _Computation(spec, record.name, workspace)
    inputs = list_inputs(workspace.catalog, spec.inputs, spec.names)
    stored = workspace.catalog.stored_partitions(record.id)
    # An input that never ran has nothing to say yet; one that ran and now holds no partitions
    # was emptied, and so is the output (its rows must not outlive the input's).
    never = [
        i.name
        for i in inputs
        if not i.partitions and workspace.catalog.last_run_status(i.component.id) is None
    ]
    if never:
        tally.counts["unchanged"] = len(stored)
        tally.message = (
            f"nothing computed: input {', '.join(never)} "
            f"{'has' if len(never) == 1 else 'have'} never run (run "
            f"{'it' if len(never) == 1 else 'them'} first); the output stays as it was"
        )
        run.say(tally.message)
        return
    emptied = [i.name for i in inputs if not i.partitions]
    if emptied:
        tally.message = (
            f"input {', '.join(emptied)} {'holds' if len(emptied) == 1 else 'hold'} no "
            "partitions: the output is empty"
        )
        run.say(tally.message)
    wanted = [] if emptied else outputs(spec.code_version, inputs, spec.partition_wise)
    the_plan = plan(
        [ListedObject(o.name, o.fingerprint, {}) for o in wanted], stored, spec.code_version
    )
    tally.counts.update(the_plan.counts())
    run.say(
        "plan: {added} added, {changed} changed, {removed} removed, {unchanged} unchanged".format(
            **the_plan.counts()
        )
    )
    todo = {o.name for o in the_plan.to_read}
    for output in (o for o in wanted if o.name in todo):
        if cancel is not None and cancel.is_set():
            tally.interrupted = True
            run.say(
                f"stopping: cancelled, {tally.counts['landed']} of {len(todo)} partition(s) landed"
            )
            return
        run.lease.check()
        where = Where(
            component=record.name, function="transform", partition=output.name, run_id=run.run_id
        )
        try:
            written = workspace.land_table(
                record,
                output.name,
                compute(inputs, output, where),
                fingerprint=output.fingerprint,
                run_id=run.run_id,
                holder=run.lease.holder,
                lineage=output.lineage,
            )
        except (ConnectorError, StoreError) as exc:
            tally.fail(exc, output.name)
            run.say(f"partition '{output.name}' failed: {exc}")
            continue
        tally.counts.update(
            landed=tally.counts["landed"] + 1,
            rows=tally.counts["rows"] + written.rows,
            bytes=tally.counts["bytes"] + written.bytes,
        )
        run.say(f"landed partition '{output.name}': {written.rows} rows")
    if the_plan.removed:
        dropped = workspace.catalog.drop_partitions(record.id, the_plan.removed, run.lease.holder)
        workspace.store.delete(dropped)
        run.say(f"removed partition(s) {', '.join(map(repr, the_plan.removed))}")


class _Computation:
    """The transform's code, loaded (Python) or checked (SQL) once per run, and the inputs
    read as it needs them: partition-wise, the first input one partition at a time."""

    def __init__(self, spec: TransformSpec, component: str, workspace: Workspace) -> None:
        self.spec = spec
        self.store = workspace.store
        self.function: python.PythonTransform | None = None
        self.others: list[pa.Table] | None = None
        if spec.python is not None:
            self.function = python.load(spec.python, component, spec.names)
        else:
            assert spec.sql is not None
            sql.check_inputs(spec.sql, spec.names, component=component)

    def __call__(self, inputs: list[Input], output: Output, where: Where) -> pa.Table:
        if output.source is None:
            tables = [self._read(i, None, where) for i in inputs]
        else:
            if self.others is None:  # read once per run: every partition joins the same rows
                self.others = [self._read(i, None, where) for i in inputs[1:]]
            tables = [self._read(inputs[0], [output.source], where), *self.others]
        if self.function is not None:
            result = self.function(tables, where)
        else:
            assert self.spec.sql is not None
            names = dict(zip(self.spec.names, tables, strict=True))
            result = sql.run_sql(self.spec.sql, names, where)
        # Columns are found by name everywhere downstream (schemas, views, writes).
        repeated = sorted({n for n in result.column_names if result.column_names.count(n) > 1})
        if repeated:
            raise ConnectorError(
                f"the result has more than one column named {', '.join(map(repr, repeated))}",
                where,
                hint="give every column its own name (in SQL: `AS other_name`)",
            )
        return result

    def _read(
        self, source: Input, partitions: list[PartitionRecord] | None, where: Where
    ) -> pa.Table:
        try:
            return source.read(self.store, partitions)
        except FileNotFoundError as exc:
            raise StoreError(
                f"{where.describe()}: a file of input '{source.name}' is gone ({exc}); an "
                "upstream run replaced it while this run read it, and the next run computes "
                "this partition from the new data"
            ) from None


def _silent(message: str) -> None:
    pass
