"""`headwater apply` and `headwater export`: definition files to and from a server (see
`headwater.client.applier` and `headwater.client.render`).

Wired into the CLI with `register(app)`. Both commands reach the server named by
HEADWATER_HOSTNAME with the access key the Python client finds (HEADWATER_ACCESS_KEY_ID and
HEADWATER_SECRET_ACCESS_KEY, or ~/.headwater/credentials).
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
import types
import uuid
from pathlib import Path

import typer
from rich.markup import escape

from headwater.console import err, one_line_errors, state
from headwater.errors import SettingsError


def register(app: typer.Typer) -> None:
    """Add `apply` and `export` to the `headwater` command."""
    app.command("apply")(apply)
    app.command("export")(export)


def apply(
    file: Path = typer.Argument(
        ..., help="A definition file (Python): module-level DataService or Dataflow objects."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    no_delete: bool = typer.Option(
        False,
        "--no-delete",
        help="Keep what the server has and the file does not declare (default: delete it).",
    ),
    data_service: str | None = typer.Option(
        None,
        "--data-service",
        help="The data service of the file's Dataflow objects (default: the file's "
        "`data_service_id`).",
    ),
) -> None:
    """Make the server hold what a definition file declares, printing the plan: what is
    created, updated, replaced (a component whose kind changes) and deleted. The whole file is
    checked first; when anything is wrong, every problem is listed and nothing is changed.

    The file's module-level DataService objects are applied; when it has none, its Dataflow
    objects are, to the data service given by --data-service or `data_service_id`. The server
    and access key come from HEADWATER_HOSTNAME, HEADWATER_ACCESS_KEY_ID and
    HEADWATER_SECRET_ACCESS_KEY (or ~/.headwater/credentials).

    Example: headwater apply sales.py --dry-run
    """
    with one_line_errors():
        from headwater.client import Client
        from headwater.client.applier import Target, apply_all, execute
        from headwater.client.definitions import Dataflow, DataService

        module = _load(file)
        values = list({id(v): v for v in vars(module).values()}.values())  # (aliases once)
        targets: list[Target] = [v for v in values if isinstance(v, DataService)]
        if not targets:
            dataflows = [v for v in values if isinstance(v, Dataflow)]
            ds = data_service or getattr(module, "data_service_id", None)
            if dataflows and not isinstance(ds, str):
                raise SettingsError(
                    f"{file} defines Dataflow objects but no `data_service_id`: pass "
                    "--data-service ID"
                )
            targets = [(str(ds), d) for d in dataflows]
        if not targets:
            raise SettingsError(
                f"{file} defines no DataService or Dataflow at module level (e.g. "
                "`data_service = DataService(...)`)"
            )
        with Client() as client:
            plans = apply_all(client, targets, delete=not no_delete, dry_run=True)
            for plan in plans:
                typer.echo(str(plan))
            if dry_run:
                typer.echo("Dry run: nothing was changed.")
                return
            for plan in plans:
                execute(client, plan)
    typer.echo("Applied.")


def export(
    data_service: str = typer.Argument(..., help="The data service to export."),
    dataflow: str | None = typer.Argument(
        None, help="Export this dataflow only (applied to the data service as it is)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the file here (default: print it)."
    ),
) -> None:
    """Print (or write) a data service, or one of its dataflows, as a definition file:
    Python that `headwater apply` (or running it) applies to a server, to make the same.
    Code is inline; secrets are not exported: each credential reads its value from the
    environment variable HEADWATER_CREDENTIAL_<DATA SERVICE>_<NAME> when applied.

    Example: headwater export sales --output sales.py
    """
    with one_line_errors():
        from headwater.client import Client
        from headwater.client.render import download_data_service, download_dataflow

        with Client() as client:
            if dataflow is None:
                source = download_data_service(client, data_service)
            else:
                source = download_dataflow(client, data_service, dataflow)
        if output is not None:
            output.write_text(source, encoding="utf-8")
    if output is None:
        sys.stdout.write(source)
    else:
        err.print(f"wrote {escape(str(output))}")


def _load(path: Path) -> types.ModuleType:
    """Run a definition file as a module (not as __main__, so it does not apply itself); an
    error in it is reported with the file's line, or its traceback with --debug."""
    if not path.is_file():
        raise SettingsError(f"no definition file at {path}")
    name = f"headwater_definition_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SettingsError(f"{path} cannot be loaded as Python (name it *.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (classes defined in the file resolve their annotations here)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        if state.debug:
            raise
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f" (line {frames[-1].lineno})" if frames else ""
        message = str(exc).strip().replace("\n", "; ")
        raise SettingsError(f"{path}{where}: {type(exc).__name__}: {message}") from None
    finally:
        del sys.modules[name]
    return module
