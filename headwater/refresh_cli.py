"""`headwater refresh`: run a component on a server and follow it (and, if asked, the runs it
queues downstream) to the end."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from headwater.console import err, one_line_errors, out
from headwater.errors import SettingsError

if (
    TYPE_CHECKING
):  # the client (httpx, pydantic) is imported when the command runs, not with the CLI
    from headwater.client import Client
    from headwater.client.models import Run

OK = ("succeeded",)


def refresh(
    component: str = typer.Argument(
        ..., help="The component as DATA_SERVICE/DATAFLOW/COMPONENT.", show_default=False
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Follow the run's log until it ends (default)."
    ),
    downstream: bool = typer.Option(
        False,
        "--downstream",
        help="Also follow the runs it queues downstream (its readers), to the end of the graph.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON, no log lines."),
) -> None:
    """Refresh a component on the server (from HEADWATER_HOSTNAME and your access key, as the
    Python client finds them) and print its log. Exits 1 unless every run followed succeeded.

    Example: headwater refresh sales/daily/orders --downstream
    """
    with one_line_errors():
        from headwater.client import Client

        data_service, dataflow, id = _path(component)
        with Client() as client:
            run = client.refresh_component(data_service, dataflow, id)
            if not wait:
                _report([run], as_json)
                return
            finished = _follow(client, run, downstream, as_json)
    _report(finished, as_json)
    if any(r.status not in OK for r in finished):
        raise typer.Exit(1)


def _path(component: str) -> tuple[str, str, str]:
    parts = component.split("/")
    if len(parts) != 3 or not all(parts):
        raise SettingsError(
            f"component {component!r} is not DATA_SERVICE/DATAFLOW/COMPONENT "
            "(e.g. sales/daily/orders)"
        )
    return parts[0], parts[1], parts[2]


def _follow(client: Client, first: Run, downstream: bool, quiet: bool) -> list[Run]:
    """Follow `first` to its end, then (with `downstream`) each run it queued, breadth first."""
    from headwater.client.models import LogLine, Run

    pending, finished = [first], []
    while pending:
        run = pending.pop(0)
        name = f"{run.data_service}/{run.dataflow}/{run.component}"
        for item in client.follow_run_logs(run.id):
            if isinstance(item, LogLine) and not quiet:
                out.print(f"[dim]{name} run {run.id}[/dim] {escape(item.message)}")
            elif isinstance(item, Run):
                finished.append(item)
                if downstream:
                    pending.extend(client.list_triggered_runs(item.id))
    return finished


def _report(runs: list[Run], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps([r.model_dump(mode="json") for r in runs]))
        return
    for run in runs:
        colour = "green" if run.status in OK else "red"
        line = (
            f"{run.data_service}/{run.dataflow}/{run.component}: run {run.id} "
            f"[{colour}]{run.status}[/{colour}]"
        )
        if run.finished:
            line += f", {run.landed} landed, {run.rows} rows"
        (out if run.status in OK or not run.finished else err).print(
            line + (f" — {escape(run.error)}" if run.error else "")
        )
