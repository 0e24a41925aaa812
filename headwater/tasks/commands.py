"""`headwater task ...`: run a task component (start a job, poll it, land its outputs), list
its job attempts, and reset an attempt that a crashed run left unresolved."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from headwater.component import RetrySpec
from headwater.console import err, json_argument, out, workspace

if TYPE_CHECKING:  # the task machinery imports gRPC: only when a task command runs
    from headwater.tasks.component import TaskRun

app = typer.Typer(
    help="Task connectors in Headwater's own runs: start a job, poll it, land its outputs.\n\n"
    "Example: headwater task run examples/tasks/postgres_query.py -c answers "
    '--inputs \'{"sql": "SELECT 42 AS answer"}\' --output rows',
    no_args_is_help=True,
    rich_markup_mode=None,
)

JSON = typer.Option(False, "--json", help="Print one JSON object.")


@app.command("run")
def run_command(
    connector: str = typer.Argument(..., help="A .py file or module defining the connector."),
    component: str = typer.Option(..., "--component", "-c", help="The task component."),
    task_type: str | None = typer.Option(
        None, "--task-type", help="The task type to run (when the file defines several)."
    ),
    task_type_version: int = typer.Option(0, "--task-type-version", help="Its version."),
    inputs: str | None = typer.Option(
        None, "--inputs", help="The task's inputs: a JSON object, inline or @FILE."
    ),
    custom: str | None = typer.Option(
        None, "--custom", help="The task template's custom fields: a JSON object or @FILE."
    ),
    output: str | None = typer.Option(
        None, "--output", help="The output to land (default: the outputs dict itself)."
    ),
    attempts: int = typer.Option(3, "--attempts", help="Jobs to start on retryable failures."),
    poll_first: float | None = typer.Option(
        None, "--poll-first", help="Seconds between the first polls (they grow from there)."
    ),
    poll_max: float | None = typer.Option(None, "--poll-max", help="Longest wait between polls."),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Seconds before the job is cancelled and the run fails."
    ),
    as_json: bool = JSON,
) -> None:
    """Run a task component: start the connector's job (or resume the one a crashed run left),
    poll it until it ends, and land its outputs as a new partition. Ctrl-C cancels the job.

    Exits 1 unless the run succeeded, 130 when interrupted.

    Example: headwater task run examples/tasks/postgres_query.py -c answers --inputs
    '{"sql": "SELECT 42 AS answer"}' --output rows
    """
    from headwater.tasks.component import TaskSpec, run_task
    from headwater.tasks.poll import PollSpec

    poll = None
    if poll_first is not None or poll_max is not None or timeout is not None:
        first = 1.0 if poll_first is None else poll_first
        poll = PollSpec(
            first_seconds=first,
            max_seconds=max(first, 30.0 if poll_max is None else poll_max),
            timeout_seconds=timeout,
        )
    with workspace() as ws:
        spec = TaskSpec(
            connector,
            task_type,
            task_type_version,
            json_argument(inputs, "--inputs", {}, kind=dict),
            json_argument(custom, "--custom", {}, kind=dict),
            output,
            poll,
            RetrySpec(attempts=attempts),
        )
        try:
            done = run_task(ws, component, spec)
        except KeyboardInterrupt:
            err.print("interrupted: the job was cancelled and the run recorded as interrupted")
            raise typer.Exit(130) from None
    _report(done, as_json)
    if not done.ok:
        raise typer.Exit(1)


@app.command("attempts")
def attempts_command(
    component: str = typer.Argument(..., help="The task component."),
    as_json: bool = JSON,
) -> None:
    """List a task component's job attempts: run, attempt, state and idempotency key.

    Example: headwater task attempts answers
    """
    with workspace() as ws:
        record = ws.catalog.component(component)
        found = ws.catalog.task_attempts(record.id)
    rows = [
        {
            "run_id": a.run_id,
            "attempt": a.attempt,
            "state": a.state,
            "idempotency_key": a.idempotency_key,
            "message": a.message,
        }
        for a in found
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for row in rows:
        line = f"run {row['run_id']} attempt {row['attempt']}: {row['state']}"
        out.print(escape(f"{line}  {row['idempotency_key']}  {row['message'] or ''}".rstrip()))


@app.command("reset")
def reset_command(component: str = typer.Argument(..., help="The task component.")) -> None:
    """Forget a task component's open job attempts, after checking their jobs by hand (a run
    that stopped inside create, with a connector that cannot recover). The next run starts a
    new job.

    Example: headwater task reset answers
    """
    from headwater.tasks.component import reset_task

    with workspace() as ws:
        reset = reset_task(ws, component)
    if not reset:
        out.print("nothing to reset: no open attempts")
    for attempt in reset:
        out.print(
            escape(f"reset run {attempt.run_id} attempt {attempt.attempt} ({attempt.state}): ")
            + escape(attempt.idempotency_key)
        )


def _report(done: TaskRun, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(done.to_json(), default=str))
        return
    colour = {"succeeded": "green", "failed": "red"}.get(done.status, "yellow")
    landed = f", {done.rows} row(s) in partition {done.partition}" if done.partition else ""
    out.print(f"[{colour}]{done.status}[/{colour}]: run {done.run_id}{landed}", markup=True)
    if done.message:
        out.print(f"message: {escape(done.message)}", markup=True)
    if done.error:
        out.print(f"error: {escape(done.error)}", markup=True)


if __name__ == "__main__":  # `python -m headwater.tasks.commands` (HEADWATER_HOME sets the home)
    app()
