"""The `headwater` command: thin commands over the workspace. Errors print one line and exit 1;
`--debug` shows the traceback."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from headwater.apply_cli import register as register_apply_commands
from headwater.console import err, one_line_errors, out, state, workspace
from headwater.credentials_cli import credentials_app
from headwater.errors import SettingsError
from headwater.keys_cli import app as keys_app
from headwater.processor.commands import app as processor_app
from headwater.refresh_cli import refresh as refresh_command
from headwater.server.commands import server as server_command
from headwater.tasks.commands import app as tasks_app

# Commands import the workspace, pyarrow and the engine when they run, not here: every command
# pays for this module's imports, and serve-connectors needs none of them.
if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.engine.plan import Plan
    from headwater.engine.refresh import RunResult

app = typer.Typer(
    help="Headwater: run custom Python data connectors incrementally; query what they stored.\n\n"
    'Example: headwater run my_connector.py && headwater query "SELECT count(*) FROM my_connector"',
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.callback()
def _options(
    home: Path | None = typer.Option(
        None, "--home", help="Headwater home directory (default: $HEADWATER_HOME or ./.headwater)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    state.debug = debug
    state.home = home


@app.command()
def run(
    connector: str = typer.Argument(..., help="A connector .py file or an importable module."),
    component: str | None = typer.Option(
        None, "--component", "-c", help="Component name (default: the file's name)."
    ),
    credential_file: Path | None = typer.Option(
        None,
        "--credential-file",
        help="A file whose text (without a final newline) is passed to context(credentials).",
    ),
    parser: str | None = typer.Option(
        None, "--parser", help="Parser for read_bytes: csv, jsonl or parquet (none: no parser)."
    ),
    csv_delimiter: str | None = typer.Option(None, "--csv-delimiter", help="CSV delimiter."),
    executor: str | None = typer.Option(
        None,
        "--executor",
        help="thread (default), process for CPU-bound connectors, or spark to read partitions "
        "as Spark tasks (needs headwater[spark]).",
    ),
    spark_master: str | None = typer.Option(
        None,
        "--spark-master",
        help="Spark master URL for this run, e.g. local[2] or spark://host:7077 "
        "(default: $HEADWATER_SPARK_MASTER, else local[*]). Not stored.",
    ),
    spark_conf: list[str] | None = typer.Option(
        None,
        "--spark-conf",
        help="A Spark property KEY=VALUE for this run, added to $HEADWATER_SPARK_CONF; "
        "repeatable. Not stored.",
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="Partitions read at once (on Spark: partition jobs)."
    ),
    retries: int | None = typer.Option(
        None, "--attempts", help="Attempts per partition before it fails (default 3)."
    ),
    backoff: float | None = typer.Option(
        None, "--backoff", help="Seconds before the first retry; doubles each time (default 1)."
    ),
    keep_removed: bool | None = typer.Option(
        None,
        "--keep-removed/--drop-removed",
        help="Keep partitions whose objects are no longer listed (default: drop them).",
    ),
    widen_types: bool | None = typer.Option(
        None,
        "--widen-types/--strict-types",
        help="Allow int->float and anything->string across partitions (default: strict).",
    ),
    reprocess: bool | None = typer.Option(
        None,
        "--reprocess-on-code-change/--keep-on-code-change",
        help="Re-read everything when the connector code changes (default: yes).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON, no bar."),
) -> None:
    """Refresh a component from a partitioned connector: read what is new or changed.

    Settings given here are stored with the component and used by later runs (the
    --spark-* options excepted: they say where this run's Spark starts, when none runs yet).
    Exits 1 when any partition failed.

    Example: headwater run examples/files/connector.py --parser csv
    Example: headwater run big.py --executor spark --spark-master local[2]
    """
    credential = _read_credential(credential_file)
    with workspace() as ws:
        spark = ws.settings.spark.updated(master=spark_master, conf=spark_conf or [])
        changes: dict[str, Any] = {
            "parser": parser,
            "executor": executor,
            "concurrency": concurrency,
            "keep_removed": keep_removed,
            "widen_types": widen_types,
            "reprocess_on_code_change": reprocess,
        }
        if csv_delimiter is not None:
            changes["parser_options"] = {"delimiter": csv_delimiter}
        changes["retry"] = {"attempts": retries, "backoff_seconds": backoff}
        bar = None if as_json else BarProgress(err)
        try:
            result = ws.refresh(
                connector,
                component=component,
                credential=credential,
                progress=bar,
                spark=spark,
                **changes,
            )
        finally:
            if bar is not None:
                bar.stop()
    if as_json:
        out.print_json(json.dumps(result.to_json()))
    else:
        _print_summary(result)
    if not result.ok:
        raise typer.Exit(1)


def _read_credential(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        err.print(f"error: cannot read the credential file {str(path)!r}: {exc.strerror}")
        raise typer.Exit(1) from None
    # Secret files usually end in a newline (echo, editors); it is not part of the secret.
    return text.removesuffix("\n").removesuffix("\r")


class BarProgress:
    """A rich progress bar: partitions, rows and MB/s."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.rows = 0
        self.bytes = 0
        self.started = time.perf_counter()

    def planned(self, plan: Plan) -> None:
        if not plan.to_read:
            return  # nothing to read: no bar
        self.bar.start()
        self.started = time.perf_counter()
        self.task = self.bar.add_task("reading", total=len(plan.to_read), rows=0, rate="")

    def landed(self, name: str, rows: int, size: int) -> None:
        self.rows += rows
        self.bytes += size
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = f"{self.bytes / elapsed / 1e6:.1f} MB/s"
        self.bar.update(self.task, advance=1, rows=self.rows, rate=rate)

    def failed(self, name: str, message: str) -> None:
        self.bar.update(self.task, advance=1)
        self.bar.console.print(f"failed: partition '{name}': {message}", markup=False)

    def stop(self) -> None:
        self.bar.stop()


def _print_summary(result: RunResult) -> None:
    c = result.counts
    if c:  # no counts: context() or listing failed before there was a plan
        out.print(
            f"plan: {c['added']} added, {c['changed']} changed, "
            f"{c['removed']} removed, {c['unchanged']} unchanged"
            + (f" ({result.recoded} re-read: the code changed)" if result.recoded else "")
        )
    out.print(
        f"run {result.run_id} {result.status}: {result.landed} partition(s) landed, "
        f"{result.rows:,} rows, {_size(result.bytes)} in {result.seconds:.2f}s"
    )
    if result.error:
        out.print(f"error: {result.error}")
    if result.failures and not result.error:
        table = Table("partition", "function", "attempts", "error", title="failures")
        for f in result.failures:
            table.add_row(f.partition or "-", f.function or "-", str(f.attempts), f.message)
        out.print(table)
        out.print(f"details: headwater runs --run {result.run_id}")


@app.command()
def components() -> None:
    """List the components in this workspace.

    Example: headwater components
    """
    with workspace() as ws:
        table = Table("name", "kind", "source", "updated")
        for c in ws.components():
            table.add_row(c.name, c.kind, c.source_ref, f"{c.updated_at:%Y-%m-%d %H:%M:%S}")
        out.print(table)


@app.command()
def partitions(
    component: str = typer.Argument(..., help="Component name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a component's committed partitions.

    Example: headwater partitions my_connector
    """
    with workspace() as ws:
        records = ws.partitions(component)
    if as_json:
        rows = [
            {
                "name": p.name,
                "fingerprint": p.fingerprint,
                "rows": p.row_count,
                "bytes": p.byte_size,
                "files": p.files,
                "run_id": p.run_id,
                "committed_at": p.committed_at.isoformat(),
            }
            for p in records
        ]
        out.print_json(json.dumps(rows))
        return
    table = Table("partition", "fingerprint", "rows", "size", "run", "committed")
    for p in records:
        table.add_row(
            p.name,
            p.fingerprint,
            f"{p.row_count:,}",
            _size(p.byte_size),
            str(p.run_id),
            f"{p.committed_at:%Y-%m-%d %H:%M:%S}",
        )
    out.print(table)
    out.print(f"{len(records)} partition(s), {sum(p.row_count for p in records):,} rows")


@app.command()
def runs(
    component: str | None = typer.Argument(None, help="Only this component's runs."),
    run_id: int | None = typer.Option(None, "--run", help="Show one run with its failures."),
    limit: int = typer.Option(20, "--limit", help="How many runs to list."),
) -> None:
    """List recent runs, or show one run's failures in full.

    Example: headwater runs my_connector   |   headwater runs --run 7
    """
    with workspace() as ws:
        if run_id is not None:
            record = ws.run(run_id)
            failures = ws.failures(run_id)
            out.print(
                f"run {record.id} of '{record.component}': {record.status}; "
                f"{record.landed} landed, {record.failed} failed, {record.rows:,} rows"
            )
            if record.error:
                out.print(f"error: {record.error}")
            for f in failures:
                out.print(
                    f"\n- partition {f.partition or '-'} in {f.function or '-'}() "
                    f"after {f.attempts} attempt(s): {f.message}"
                )
                if f.detail:
                    out.print(f.detail.rstrip(), markup=False)
            return
        records = ws.runs(component, limit)
    table = Table(
        "run",
        "component",
        "status",
        "started",
        "seconds",
        "added",
        "changed",
        "removed",
        "unchanged",
        "failed",
        "rows",
    )
    for r in records:
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
        table.add_row(
            str(r.id),
            r.component,
            r.status,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            f"{seconds:.2f}" if seconds is not None else "-",
            str(r.added),
            str(r.changed),
            str(r.removed),
            str(r.unchanged),
            str(r.failed),
            f"{r.rows:,}",
        )
    out.print(table)


@app.command()
def schema(
    component: str = typer.Argument(..., help="Component name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a component's schema: its columns, types and nullability.

    Example: headwater schema my_connector
    """
    from headwater import schema as schemas

    with workspace() as ws:
        columns = schemas.describe(ws.schema(component))
    if as_json:
        out.print_json(json.dumps(columns))
        return
    table = Table("column", "type", "nullable")
    for c in columns:
        table.add_row(c["name"], c["type"], "yes" if c["nullable"] else "no")
    out.print(table)


@app.command()
def preview(
    component: str = typer.Argument(..., help="Component name."),
    limit: int = typer.Option(10, "--limit", "-n", help="Rows to show."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """Show the first rows of a component.

    Example: headwater preview my_connector --limit 5
    """
    with workspace() as ws:
        ws.catalog.component(component)  # a clear error for an unknown name
        table = ws.query(f'SELECT * FROM "{component}" LIMIT {int(limit)}')
        _print_table(table, fmt)


@app.command()
def query(
    sql: str = typer.Argument(..., help="SQL (DuckDB); each component is a view of its name."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """Run SQL over committed data. Each component is a view named after it.

    Example: headwater query "SELECT name, count(*) FROM my_connector GROUP BY 1" --format csv
    """
    with workspace() as ws:
        try:
            table = ws.query(sql)
        except Exception as exc:  # DuckDB's parser and binder errors name the problem well
            if state.debug or not type(exc).__module__.startswith(("duckdb", "_duckdb")):
                raise
            err.print(f"error: the query failed: {exc}")
            raise typer.Exit(1) from None
        _print_table(table, fmt)


def _print_table(table: pa.Table, fmt: Format) -> None:
    if fmt is Format.csv:
        import pyarrow.csv as pacsv

        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer)
        sys.stdout.write(buffer.getvalue().decode())
    elif fmt is Format.json:
        sys.stdout.write(json.dumps(table.to_pylist(), default=str) + "\n")
    else:
        view = Table(*table.column_names)
        for row in table.to_pylist():
            view.add_row(*("" if v is None else str(v) for v in row.values()))
        out.print(view)
        out.print(f"{table.num_rows} row(s)")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


app.add_typer(processor_app, name="processor")
app.add_typer(tasks_app, name="task")
app.add_typer(keys_app, name="keys")
app.add_typer(credentials_app, name="credentials")
app.command("server")(server_command)
app.command("refresh")(refresh_command)
register_apply_commands(app)


@app.command("serve-connectors")
def serve_connectors(
    connectors: list[str] = typer.Option(
        [],
        "--connectors",
        help="A file or module whose connector classes are served (repeat for more).",
    ),
    port: int = typer.Option(8000, "--port", help="The port to listen on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="The address to listen on (0.0.0.0 in a container)."
    ),
    max_message_mb: int = typer.Option(
        64, "--max-message-mb", help="Largest message either way, in MiB (gRPC's default: 4)."
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="native (the compiled gRPC front end), aio (grpcio) or auto (native where built).",
    ),
) -> None:
    """Serve task connectors over gRPC: Flyte 1's agent services and Flyte 2's connector
    service side by side, plus gRPC health. Runs until Ctrl-C or SIGTERM.

    Every AsyncConnector or SyncConnector class defined in the given files or modules is
    registered; a Flyte deployment points its connector configuration at host:port.

    Example: headwater serve-connectors --connectors examples/tasks/countdown_connector.py
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with one_line_errors():
        from headwater.tasks.loading import load_connectors
        from headwater.tasks.server import serve

        if not connectors:
            raise SettingsError(
                "no connectors to serve; name a file or module with --connectors FILE"
            )
        serve(
            load_connectors(connectors),
            port=port,
            host=host,
            max_message_mb=max_message_mb,
            engine=engine,
        )


def main() -> None:
    app()
