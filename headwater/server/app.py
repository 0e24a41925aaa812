"""The app factory: `create_app(settings)` builds the FastAPI app; nothing happens at import.

The catalog and store open, runs a killed server left behind are closed, and the run pool and
the scheduler start when the app starts (its lifespan); the scheduler stops, then the pool,
cancelling its runs, when it stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

import headwater
from headwater.server import errors
from headwater.server.routes import (
    components,
    connections,
    credentials,
    data,
    data_services,
    dataflows,
    health,
    runs,
)
from headwater.server.settings import ServerSettings
from headwater.server.state import Server

DESCRIPTION = """\
Headwater's management plane: data services, dataflows, components (read connectors with their
code as text), connections, credentials, runs, and the data components store.

Every route but `/health`, `/docs` and `/openapi.json` needs a signed request:
`Authorization: HWR1-HMAC-SHA256 Credential=..., Timestamp=..., Nonce=..., Signature=...`
(see docs/security.md; `headwater.signing.sign` makes the header).
"""


def _operation_id(route: APIRoute) -> str:
    # The function's name (create_data_service, get_records, ...): the client's method names.
    return route.name


def create_app(settings: ServerSettings) -> FastAPI:
    """A Headwater server app for `settings`; serve it with uvicorn (`headwater server`).

    Example:
        >>> app = create_app(ServerSettings.from_env())               # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8000)
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server = await run_in_threadpool(Server, settings)
        try:
            await run_in_threadpool(server.start)
            app.state.headwater = server
            yield
        finally:
            app.state.headwater = None
            await run_in_threadpool(server.close)

    app = FastAPI(
        title="Headwater",
        version=headwater.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    errors.install(app)
    for module in (
        health,
        data_services,
        dataflows,
        connections,
        credentials,
        components,
        data,
        runs,
    ):
        app.include_router(module.router)
    return app
