"""What a running server holds: the workspace, the access keys, the vault, the resource model
and the run pool. Opened when the app starts (its lifespan), closed when it stops."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from starlette.requests import HTTPConnection

from headwater.catalog.definitions import Definitions
from headwater.catalog.lease import holder_is_dead, new_holder
from headwater.catalog.resources import Resources
from headwater.catalog.server_runs import ServerRuns
from headwater.engine.refresh import utcnow
from headwater.errors import ComponentBusyError, HeadwaterError
from headwater.keys import AccessKeys
from headwater.server.runs import RunPool
from headwater.server.scheduler import Scheduler
from headwater.server.settings import ServerSettings
from headwater.vault import Vault
from headwater.workspace import Workspace

log = logging.getLogger("headwater.server")


class Server:
    """The server's open resources. One per app; shared by every request and run."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        clock: Callable[[], datetime.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.holder = new_holder()  # this process, as leases and server runs name it
        self.workspace = Workspace(settings.workspace, clock=clock)
        catalog = self.workspace.catalog
        self.keys = AccessKeys(
            catalog, settings.server_key, clock=clock, max_skew=settings.max_skew
        )
        self.vault = Vault(catalog, settings.server_key, clock=clock)
        self.resources = Resources(catalog)
        self.definitions = Definitions(catalog)
        self.runs = ServerRuns(catalog)
        self.pool = RunPool(self)
        self.scheduler = Scheduler(self)

    def start(self) -> None:
        """Close what a killed server left running, then start taking runs (and firing
        scheduled ones, unless the settings turn the scheduler off)."""
        abandoned = self.runs.abandon(holder_is_dead, self.clock())
        closed = self._abandon_engine_runs()
        if abandoned or closed:
            log.warning(
                "closed %d server run(s) and %d engine run(s) left running by a server that "
                "stopped", len(abandoned), closed,
            )  # fmt: skip
        self.pool.start()
        if self.settings.scheduler:
            self.scheduler.start()

    def _abandon_engine_runs(self) -> int:
        """Engine runs left 'running' whose lease is free (its holder died) are closed, and
        the files they left uncommitted removed, with the lease held, as the next refresh
        would do. A lease still held means a live runner: its runs are left alone."""
        catalog, store = self.workspace.catalog, self.workspace.store
        closed = 0
        for record in catalog.components():
            if catalog.last_run_status(record.id) != "running":
                continue
            try:
                with catalog.lease(record, self.clock):
                    closed += catalog.abandon_runs(record.id, self.clock())
                    store.sweep(record.id, catalog.committed_files(record.id))
            except ComponentBusyError:
                continue
        return closed

    def close(self) -> None:
        try:
            self.scheduler.close()  # first: it queues runs into the pool
            self.pool.close()
        finally:
            self.workspace.close()


def server(connection: HTTPConnection) -> Server:
    """The app's open server (a dependency of every route)."""
    found = getattr(connection.app.state, "headwater", None)
    if not isinstance(found, Server):
        raise HeadwaterError("the server is not started (its lifespan has not run)")
    return found
