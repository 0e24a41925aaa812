"""The scheduler: a thread of the server that refreshes components on their schedules.

It keeps each scheduled component's next fire time (`headwater.schedule.next_fire`), sleeps
until the earliest, and then triggers a run in the pool, recorded as requested by "schedule".

- Changes: the definitions are read again every `reload_seconds` (2 s), so a schedule created,
  changed or removed through the API takes effect within that without a restart (`wake()`
  reads them at once). A component's definition is read once more just before it fires, so a
  run never uses stale code or a schedule that was removed a moment ago.
- No pile-up: a fire that finds the component's run still queued or running is skipped (and
  logged); the next fire comes at the next due time.
- No backlog: fire times are computed from the time the scheduler first sees a schedule (at
  start, after a change), and after each fire from the time it fired; slots missed while the
  server was down, or while the loop was held up, are not caught up.
- Several servers sharing a catalog compute the same fire times (the time logic depends on
  nothing else), so each tries every slot. The catalog allows one queued or running run per
  component, and before firing a server skips a slot when the component's newest run was
  requested at or after the slot's time (by any server, or by hand). What remains: two servers
  that both read "no such run" within the same moment both create one; the second is refused
  while the first is queued or running, so a slot can fire twice only if the first run ended
  within that moment. Closing that gap needs the last fired slot recorded per component, in
  the same transaction as the run (a catalog column, so a migration).
- Errors (a database hiccup) are logged and the pass retried after `RETRY_SECONDS`; the thread
  only ends when the server closes it.
"""

from __future__ import annotations

import datetime
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.catalog.definitions import DefinitionRecord
from headwater.catalog.server_runs import RunConflictError
from headwater.errors import NotFoundError
from headwater.schedule import ScheduleError, next_fire

if TYPE_CHECKING:
    from headwater.server.state import Server

log = logging.getLogger("headwater.server.scheduler")
REQUESTED_BY = "schedule"  # a run's `requested_by` (access keys start with "HW")
RELOAD_SECONDS = 2.0
RETRY_SECONDS = 5.0


@dataclass
class Planned:
    """A scheduled component and when it fires next."""

    definition: DefinitionRecord
    due: datetime.datetime

    @property
    def name(self) -> str:
        return self.definition.catalog_name

    @property
    def schedule(self) -> dict[str, Any]:
        assert self.definition.schedule is not None  # (only scheduled components are planned)
        return self.definition.schedule


class Scheduler:
    """Fires the runs of scheduled components. `start` it with the pool; `close` it first."""

    def __init__(self, server: Server, *, reload_seconds: float = RELOAD_SECONDS) -> None:
        self.server = server
        self.reload_seconds = reload_seconds
        self.planned: dict[str, Planned] = {}  # by catalog component id
        self.loaded_at: datetime.datetime | None = None  # the last read of the definitions
        self._invalid: dict[str, dict[str, Any]] = {}  # schedules already logged as unusable
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="headwater-scheduler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Read the definitions now (after a change), rather than at the next reload."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        woken = False
        while not self._stop.is_set():
            try:
                wake_at = self.tick(self.server.clock(), reload=woken)
                delay = (wake_at - self.server.clock()).total_seconds()
            except Exception:
                log.exception("the scheduler failed; trying again in %.0f s", RETRY_SECONDS)
                delay = RETRY_SECONDS
            woken = self._wake.wait(max(delay, 0.0))
            if woken:  # (a wake after this clear is not lost: the pass it asks for follows)
                self._wake.clear()

    def tick(self, now: datetime.datetime, *, reload: bool = False) -> datetime.datetime:
        """One pass at `now`: read the definitions if it is time (or `reload`), fire what is
        due. Returns when to look again."""
        if reload or self.loaded_at is None or now >= self.loaded_at + self._reload:
            self.load(now)
            next_load = now + self._reload
        else:
            next_load = self.loaded_at + self._reload
        for planned in [p for p in self.planned.values() if p.due <= now]:
            self._fire(planned, now)
        return min([next_load, *(p.due for p in self.planned.values())])

    @property
    def _reload(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.reload_seconds)

    def load(self, now: datetime.datetime) -> None:
        """Follow the catalog: plan new schedules from `now`, re-plan changed ones, drop
        removed ones; an unchanged schedule keeps its due time."""
        current = {d.component_id: d for d in self.server.definitions.scheduled()}
        for component_id in set(self.planned) - set(current):
            log.info("%s is no longer scheduled", self.planned.pop(component_id).name)
        for component_id, definition in current.items():
            planned = self.planned.get(component_id)
            if planned is not None and planned.schedule == definition.schedule:
                planned.definition = definition
            else:
                self._plan(definition, now)
        self.loaded_at = now

    def _plan(self, definition: DefinitionRecord, now: datetime.datetime) -> None:
        component_id = definition.component_id
        assert definition.schedule is not None
        try:
            due = next_fire(definition.schedule, now, component=definition.catalog_name)
        except ScheduleError as exc:
            self.planned.pop(component_id, None)
            if self._invalid.get(component_id) != definition.schedule:  # say it once
                self._invalid[component_id] = definition.schedule
                log.error("%s; it is not scheduled: fix its schedule", exc)
            return
        self._invalid.pop(component_id, None)
        self.planned[component_id] = Planned(definition, due)
        log.info("%s is scheduled; next run at %s", definition.catalog_name, _text(due))

    def _fire(self, planned: Planned, now: datetime.datetime) -> None:
        """Trigger a run for the slot `planned.due` unless it was served already or is refused,
        then plan the next slot after `now` (missed ones are not caught up). On an error, try
        this slot again soon, unless the next one comes first; the pass goes on."""
        try:
            if not self._trigger(planned, now):
                return
        except Exception:
            log.exception("%s: the run at %s could not be queued", planned.name, _text(planned.due))
            retry = now + datetime.timedelta(seconds=RETRY_SECONDS)
            planned.due = min(retry, next_fire(planned.schedule, now))
            return
        planned.due = next_fire(planned.schedule, now)

    def _trigger(self, planned: Planned, now: datetime.datetime) -> bool:
        """Queue the run of a due slot. False when the component was deleted or its schedule
        changed since the definitions were read (it is dropped or planned afresh)."""
        server, slot, component_id = self.server, planned.due, planned.definition.component_id
        try:
            definition = server.definitions.component_by_catalog_id(component_id)
        except NotFoundError:
            del self.planned[component_id]
            return False
        if definition.schedule != planned.schedule:
            del self.planned[component_id]
            if definition.schedule is not None:
                self._plan(definition, now)
            return False
        planned.definition = definition
        newest = server.runs.list(component_id, limit=1)
        if newest and newest[0].requested_at >= slot:  # served: by another server, or by hand
            log.info(
                "%s: the run at %s is skipped: run %d was requested at %s",
                planned.name, _text(slot), newest[0].id, _text(newest[0].requested_at),
            )  # fmt: skip
            return True
        try:
            record = server.pool.trigger(definition, REQUESTED_BY)
        except RunConflictError as exc:
            log.info(
                "%s: the run at %s is skipped: run %d is still queued or running",
                planned.name, _text(slot), exc.run_id,
            )  # fmt: skip
            return True
        log.info("%s: run %d queued for %s", planned.name, record.id, _text(slot))
        return True


def _text(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
