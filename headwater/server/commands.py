"""`headwater server`: serve the HTTP API with uvicorn.

Wired into the CLI as `app.command()(server)`. Nothing heavy is imported until it runs, so the
CLI starts as fast without the server's packages.
"""

from __future__ import annotations

import typer

from headwater.console import err, one_line_errors, state


def server(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."
    ),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        help="Runs executed at once; more wait queued (default: $HEADWATER_SERVER_WORKERS or 4).",
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
) -> None:
    """Serve the HTTP API (data services, dataflows, components, runs, records) and run
    components in a worker pool. The catalog and store come from --home or $HEADWATER_HOME
    (or $HEADWATER_CATALOG_URL, e.g. PostgreSQL, and $HEADWATER_STORE_URL);
    HEADWATER_SECRET_KEY is required. Requests are signed with access keys from
    `headwater keys create`. The API is described at /docs and /openapi.json.

    Example: headwater server --host 0.0.0.0 --port 8000
    """
    import dataclasses

    with one_line_errors():
        from headwater.server.settings import ServerSettings

        settings = ServerSettings.from_env(home=state.home)
        if workers is not None:
            settings = dataclasses.replace(settings, workers=workers)
        import uvicorn

        from headwater.server import create_app
        from headwater.workspace import Workspace

        Workspace(settings.workspace).close()  # an unreachable catalog fails here, in one line
        app = create_app(settings)
    _log_to_stderr()
    err.print(
        f"Headwater server on http://{host}:{port} (API docs at /docs), catalog "
        f"{_safe_url(settings.workspace.catalog_url)}, store {settings.workspace.store_url}"
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def _log_to_stderr() -> None:
    """Headwater's own log records (runs ending, refused requests) beside uvicorn's."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logger = logging.getLogger("headwater")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _safe_url(url: str) -> str:
    """The catalog URL without its password."""
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)
