"""Leases: one component, one writer.

A refresh holds a row in `leases` for its component and renews it from a heartbeat thread.
A lease is free when it has expired, or when its holder was a process on this host that no
longer exists (a runner killed with SIGKILL), so the next refresh need not wait for the expiry.
The same rows work on SQLite and PostgreSQL; the takeover is a compare-and-swap on the holder.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import uuid
from collections.abc import Callable
from types import TracebackType

import sqlalchemy as sa

from headwater.catalog.tables import leases
from headwater.errors import ComponentBusyError

Clock = Callable[[], datetime.datetime]
HOST = socket.gethostname()


def new_holder() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True when `holder` names a process on this host that has exited."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Lease:
    """The right to write one component, held for the length of a refresh."""

    def __init__(
        self,
        engine: sa.Engine,
        component_id: str,
        component_name: str,
        clock: Clock,
        *,
        ttl: datetime.timedelta = datetime.timedelta(seconds=60),
    ) -> None:
        self.engine = engine
        self.component_id = component_id
        self.component_name = component_name
        self.clock = clock
        self.ttl = ttl
        self.holder = new_holder()
        self.lost = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        now = self.clock()
        with self.engine.begin() as connection:
            row = connection.execute(
                sa.select(leases.c.holder, leases.c.expires_at).where(
                    leases.c.component_id == self.component_id
                )
            ).first()
            values = {"holder": self.holder, "acquired_at": now, "expires_at": now + self.ttl}
            if row is None:
                try:
                    with connection.begin_nested():
                        connection.execute(
                            leases.insert().values(component_id=self.component_id, **values)
                        )
                except sa.exc.IntegrityError:
                    raise self._busy("another runner", None) from None
            elif row.expires_at <= now or holder_is_dead(row.holder):
                taken = connection.execute(
                    leases.update()
                    .where(leases.c.component_id == self.component_id)
                    .where(leases.c.holder == row.holder)
                    .values(**values)
                )
                if taken.rowcount != 1:
                    raise self._busy("another runner", None)
            else:
                raise self._busy(row.holder, row.expires_at)
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"lease-{self.component_name}", daemon=True
        )
        self._heartbeat.start()

    def _busy(self, holder: str, until: datetime.datetime | None) -> ComponentBusyError:
        expiry = f" (its lease runs until {until:%Y-%m-%d %H:%M:%S} UTC)" if until else ""
        return ComponentBusyError(
            f"component '{self.component_name}' is being refreshed by {holder}{expiry}; "
            "one component has one writer at a time. Wait for that refresh to end; if its "
            "process is gone, the lease is taken over once it expires"
        )

    def _beat(self) -> None:
        interval = self.ttl.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                self.renew()
            except sa.exc.SQLAlchemyError:
                continue  # a passing database error: try again at the next beat
            if self.lost:
                return

    def renew(self) -> None:
        now = self.clock()
        with self.engine.begin() as connection:
            result = connection.execute(
                leases.update()
                .where(leases.c.component_id == self.component_id)
                .where(leases.c.holder == self.holder)
                .values(expires_at=now + self.ttl)
            )
        if result.rowcount != 1:
            self.lost = True

    def check(self) -> None:
        """Raise when the lease was taken over: this runner must stop writing."""
        if self.lost:
            raise ComponentBusyError(
                f"the lease on component '{self.component_name}' was taken over by another "
                "runner (this one stalled past its expiry); stopping without writing more"
            )

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self.engine.begin() as connection:
            connection.execute(
                leases.delete()
                .where(leases.c.component_id == self.component_id)
                .where(leases.c.holder == self.holder)
            )
