"""`headwater processor ...`: run a statement in the sandbox (for scripts and tests), run a
processor component against the catalog, and reset its data checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import typer
from rich.markup import escape

from headwater.console import json_argument, one_line_errors, out, workspace
from headwater.processor import ProcessorSettings, run_statement

# processor.component (the workspace: SQLAlchemy, pyarrow, DuckDB) is imported by the commands
# that use it: importing this module is part of every `headwater` command's startup.

app = typer.Typer(
    help="Processor connectors: a sandboxed Python statement over input rows.\n\n"
    'Example: headwater processor run statement.py --schema \'{"n": "int"}\' --json',
    no_args_is_help=True,
    rich_markup_mode=None,
)

VERDICT_EXIT = {"ok": 0, "failed": 1, "rejected": 2}


def _statement(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read the statement file {path}: {exc}") from None


def _settings(network: bool, timeout: float | None) -> ProcessorSettings:
    changes: dict[str, Any] = {"network": network}
    if timeout is not None:
        changes["timeout_s"] = timeout
    return ProcessorSettings(**changes)


def _report(payload: dict[str, Any], as_json: bool) -> None:
    """The result as one JSON object, or as a few readable lines."""
    if as_json:
        out.print_json(json.dumps(payload, default=str))
        return
    verdict = payload["verdict"]
    colour = {"ok": "green", "failed": "red", "rejected": "yellow"}.get(verdict, "white")
    out.print(f"[{colour}]{verdict}[/{colour}]: {len(payload['rows'])} row(s)", markup=True)
    if payload.get("error"):
        out.print(f"error: {escape(payload['error'])}", markup=True)
    for entry in payload["logs"]:
        out.print(f"  {entry['level']:<5} {escape(entry['message'])}", markup=True)
    if payload.get("dropped_logs"):
        out.print(f"  ... {payload['dropped_logs']} more log entries dropped")
    for row in payload["rows"][:20]:
        out.print("  " + escape(json.dumps(row, default=str)), markup=True)
    if len(payload["rows"]) > 20:
        out.print(f"  ... {len(payload['rows']) - 20} more rows")
    if payload.get("traceback"):
        out.print(escape(payload["traceback"]), markup=True)
    out.print(f"checkpoint: {json.dumps(payload['checkpoint'], default=str)}")


def _exit(verdict: str) -> None:
    if verdict != "ok":
        raise typer.Exit(1)


# Options both commands take, declared once.
STATEMENT = typer.Argument(..., help="The statement file (an async function's body).")
SCHEMA = typer.Option(
    ...,
    "--schema",
    help='Output schema: JSON {"column": "int|float|bool|string|json"} (a trailing ? allows '
    "null), inline or a file.",
)
PROCESSING = typer.Option(
    "row", "--processing", help="row (once per input row, the default) or bulk (once, all rows)."
)
CHECKPOINT_COLUMN = typer.Option(
    None, "--checkpoint-column", help="Output column whose last value is the new checkpoint."
)
NETWORK = typer.Option(False, "--network", help="Let the statement use the network.")
TIMEOUT = typer.Option(None, "--timeout", help="Wall-clock limit in seconds.")
JSON = typer.Option(False, "--json", help="Print one JSON object.")


@app.command("run")
def run_command(
    statement: Path = STATEMENT,
    schema: str = SCHEMA,
    input_rows: str | None = typer.Option(
        None, "--input", help="Input rows: a JSON list of objects, inline or a file."
    ),
    processing: str = PROCESSING,
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", help="DATA_CHECKPOINT as a JSON value (default: null)."
    ),
    checkpoint_column: str | None = CHECKPOINT_COLUMN,
    debug: bool = typer.Option(
        False, "--debug", help="Debug run: first rows, every schema problem, the traceback."
    ),
    network: bool = NETWORK,
    timeout: float | None = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Run a statement once in the sandbox, on rows given here; nothing is stored.

    Prints the verdict (ok, failed or rejected), the rows, the logs, the new checkpoint and the
    error; exits 1 unless the verdict is ok.

    Example: headwater processor run add_one.py --schema '{"id": "int"}' --input rows.json
    """
    text = _statement(statement)
    with one_line_errors():
        result = run_statement(
            text,
            json_argument(schema, "--schema", None),
            json_argument(input_rows, "--input", []),
            processing=_processing(processing),
            checkpoint=json_argument(checkpoint, "--checkpoint", None),
            checkpoint_column=checkpoint_column,
            debug=debug,
            settings=_settings(network, timeout),
        )
    _report(result.to_json(), as_json)
    _exit(result.verdict)


@app.command("refresh")
def refresh_command(
    statement: Path = STATEMENT,
    component: str = typer.Option(..., "--component", "-c", help="The processor component."),
    schema: str = SCHEMA,
    input_component: str | None = typer.Option(
        None, "--input-component", help="Upstream component whose rows are the input."
    ),
    input_rows: str | None = typer.Option(
        None, "--input", help="Input rows given inline or as a file, instead of a component."
    ),
    processing: str = PROCESSING,
    checkpoint_column: str | None = CHECKPOINT_COLUMN,
    debug: bool = typer.Option(
        False, "--debug", help="Debug run: nothing is stored, the checkpoint is not moved."
    ),
    network: bool = NETWORK,
    timeout: float | None = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Run a processor component: its statement over its input with its stored checkpoint;
    the rows land as a new partition together with the new checkpoint.

    Example: headwater processor refresh new.py -c new --schema s.json --input-component orders
    """
    from headwater.processor.component import ProcessorSpec, run_processor

    text = _statement(statement)
    with workspace() as ws:
        spec = ProcessorSpec(
            text,
            json_argument(schema, "--schema", None),
            _processing(processing),
            checkpoint_column,
            input_component,
            json_argument(input_rows, "--input", []),
            _settings(network, timeout),
        )
        done = run_processor(ws, component, spec, debug=debug)
    _report(done.to_json(), as_json)
    _exit(done.result.verdict)


@app.command("reset-checkpoint")
def reset_checkpoint_command(
    component: str = typer.Argument(..., help="The processor component."),
) -> None:
    """Forget a processor component's data checkpoint: its next run gets DATA_CHECKPOINT null.
    Its stored partitions stay.

    Example: headwater processor reset-checkpoint new_orders
    """
    from headwater.processor.component import reset_checkpoint

    with workspace() as ws:
        before = reset_checkpoint(ws, component)
    out.print(f"checkpoint of '{component}' reset (it was {json.dumps(before, default=str)})")


def _processing(value: str) -> Literal["row", "bulk"]:
    if value == "row":
        return "row"
    if value == "bulk":
        return "bulk"
    raise typer.BadParameter(f"--processing must be row or bulk, not {value!r}")
