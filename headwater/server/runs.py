"""The server's run pool: runs execute on its own worker threads, one writer per component.

A trigger records a queued server run (refused with 409 while the component has one queued or
running, on any server sharing the catalog) and hands it to the pool. The engine then takes
the component's lease as it does for the CLI, so a refresh started elsewhere (`headwater run`)
is not overwritten either: that run fails with the lease holder named.

Cancelling sets the run's event (and a flag in the catalog, which a watcher thread of the
server running it picks up within a second). Where it is honoured:
- queued: the run ends "cancelled" before it starts;
- partitioned: between partitions (after the partition in hand commits; reads in flight are
  abandoned, pending ones never start), and after listing, before any read;
- task: while the job is polled or waited for (the job is cancelled with its `delete`);
- stream: at once (within 50 ms), as Ctrl-C stops a stream: the committed batches stay landed,
  the open one is discarded, the subject's on_stop() runs; a run() that on_stop() does not end
  is left behind after a grace of 5 s;
- processor: not while the statement runs (its sandbox's time limit bounds it).

Propagation. A run that succeeds and changed its component's data (landed or removed a
partition, or followed a run that did not succeed and may have landed some) queues a run of
every component that reads it (transforms, write connectors, processors), recorded as
`triggered_by` that run; so an upstream refresh flows down the whole graph. A reader whose
last run did not succeed (or that never ran) is queued too, even when nothing changed, so it
catches up. A reader that already has a run queued or running gets one more run after that one
ends. A run that fails (or ends partial, cancelled or interrupted) stops propagation there:
its log names the readers left as they were, and they keep their last good data.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from headwater.catalog.definitions import DefinitionRecord
from headwater.catalog.lease import holder_is_dead
from headwater.catalog.server_runs import RunConflictError, ServerRunRecord
from headwater.errors import HeadwaterError
from headwater.secrets import scrub
from headwater.server.runlog import CapturedLogs, RunLog

if TYPE_CHECKING:
    from headwater.server.state import Server

log = logging.getLogger("headwater.server")
WATCH_SECONDS = 1.0


@dataclass
class ActiveRun:
    """A run this server process holds: queued or running."""

    record: ServerRunRecord
    definition: DefinitionRecord
    log: RunLog
    cancel: threading.Event = field(default_factory=threading.Event)
    shutdown: bool = False  # cancelled because the server is stopping, not by a request

    @property
    def id(self) -> int:
        return self.record.id


@dataclass(frozen=True)
class Outcome:
    """How a run ended: its server status, the engine's run, and the error if any."""

    status: str
    engine_run_id: int | None = None
    error: str | None = None
    changed: bool | None = None  # whether it changed its data (None: read the engine's run)


class RunPool:
    """Executes runs on `workers` threads; more wait queued."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._executor: ThreadPoolExecutor | None = None
        self._active: dict[int, ActiveRun] = {}
        self._lock = threading.Lock()
        self._captured = CapturedLogs()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        # Readers that were busy when an upstream run asked for them: component id -> the
        # upstream server run, to queue once their current run ends.
        self._again: dict[str, int] = {}

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(
            self.server.settings.workers, thread_name_prefix="headwater-run"
        )
        logging.getLogger("headwater").addHandler(self._captured)
        self._watcher = threading.Thread(
            target=self._watch, name="headwater-run-cancels", daemon=True
        )
        self._watcher.start()

    def trigger(
        self,
        definition: DefinitionRecord,
        requested_by: str | None,
        *,
        triggered_by: int | None = None,
    ) -> ServerRunRecord:
        """Queue a run of `definition`; RunConflictError while one is queued or running.
        `triggered_by`: the upstream server run whose success asks for this one."""
        if self._executor is None:
            raise HeadwaterError("the server's run pool is not started")
        server = self.server
        # A run held by a server process on this host that died must not block the component.
        server.runs.abandon(holder_is_dead, server.clock())
        record = server.runs.create(
            definition.component_id,
            holder=server.holder,
            requested_by=requested_by,
            now=server.clock(),
            triggered_by=triggered_by,
        )
        active = ActiveRun(record, definition, RunLog(record.id, server.runs, server.clock))
        why = (
            f"triggered by run {triggered_by} upstream"
            if triggered_by is not None
            else f"requested by {requested_by or 'the server'}"
        )
        active.log.info(
            f"queued: {definition.kind} component '{definition.id}' (catalog component "
            f"'{definition.catalog_name}'), {why}"
        )
        with self._lock:
            self._active[record.id] = active
        self._executor.submit(self._run, active)
        return record

    def cancel(self, run_id: int) -> ServerRunRecord:
        """Ask a run to stop (see the module docstring for where it is honoured)."""
        record = self.server.runs.request_cancel(run_id)
        with self._lock:
            active = self._active.get(run_id)
        if active is not None:
            active.log.info("cancel requested")
            active.cancel.set()
        return record

    def follow(self, run_id: int) -> RunLog | None:
        """The live log of a run this process holds (None: read the catalog instead)."""
        with self._lock:
            active = self._active.get(run_id)
        return active.log if active is not None else None

    def _run(self, active: ActiveRun) -> None:
        from headwater.server.execute import execute

        server = self.server
        self._captured.attach(active.log)
        outcome = Outcome("failed", error="the run ended without an outcome")
        try:
            if active.cancel.is_set():
                outcome = Outcome(self._stopped(active), error="cancelled before it started")
                return
            server.runs.start(active.id, server.clock())
            active.log.info("started")
            active.log.flush()
            outcome = execute(server, active)
        except BaseException as exc:  # the run fails; the worker thread lives on
            outcome = Outcome("failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            if outcome.status == "interrupted" and active.cancel.is_set():
                outcome = Outcome(self._stopped(active), outcome.engine_run_id, outcome.error)
            self._captured.detach()
            self._finish(active, outcome)

    def _stopped(self, active: ActiveRun) -> str:
        return "interrupted" if active.shutdown else "cancelled"

    def _finish(self, active: ActiveRun, outcome: Outcome) -> None:
        server = self.server
        error = scrub(outcome.error, active.log.secret) if outcome.error else None
        try:
            if error:
                active.log.error(error)
            # Readers are queued before this run is recorded as ended, so whoever waits for its
            # end finds the runs it caused already queued.
            if not self._stop.is_set():
                try:
                    self._propagate(active, outcome)
                except Exception as exc:  # the run itself ended as it did
                    log.exception("run %d could not queue its readers", active.id)
                    active.log.error(f"could not queue the components that read this one: {exc}")
            active.log.info(f"ended {outcome.status}")
            server.runs.finish(
                active.id,
                status=outcome.status,
                run_id=outcome.engine_run_id,
                error=error,
                now=server.clock(),
            )
            log.info(
                "run %d of %s ended %s", active.id, active.definition.catalog_name, outcome.status
            )
            active.log.end()
        except Exception:
            log.exception("could not record the end of run %d", active.id)
        finally:
            with self._lock:
                self._active.pop(active.id, None)
            if not self._stop.is_set():
                self._run_again(active.definition)

    def _propagate(self, active: ActiveRun, outcome: Outcome) -> None:
        """Queue the readers of a component whose run changed its data, and the readers whose
        last run did not succeed (module docstring)."""
        definition = active.definition
        readers = self.server.definitions.readers(
            definition.data_service, definition.dataflow, definition.id
        )
        if not readers:
            return
        names = ", ".join(f"'{r.id}'" for r in readers)
        if outcome.status != "succeeded":
            active.log.warning(
                f"propagation stops at '{definition.id}' ({outcome.status}): {names} not "
                "refreshed; they keep their last good data"
            )
            return
        changed = self._changed(definition, outcome)
        behind = [r for r in readers if changed or not self._caught_up(r)]
        if not behind:
            active.log.info(f"nothing changed: {names} not refreshed")
            return
        for reader in behind:
            self._queue(reader, active)

    def _queue(self, reader: DefinitionRecord, active: ActiveRun) -> None:
        try:
            queued = self.trigger(reader, None, triggered_by=active.id)
            active.log.info(f"queued run {queued.id} of '{reader.id}'")
            return
        except RunConflictError as busy:
            conflict = busy
        # Whether it is still running here, and the note to run it again, in one step: a
        # reader that ends in between finds the note, or is no longer running here.
        with self._lock:
            here = any(
                a.definition.component_id == reader.component_id for a in self._active.values()
            )
            if here:
                self._again[reader.component_id] = active.id
        if here:
            active.log.info(
                f"'{reader.id}' is busy (run {conflict.run_id}); it runs again after that run"
            )
            return
        try:  # its run ended meanwhile (or it runs on another server): ask once more
            queued = self.trigger(reader, None, triggered_by=active.id)
            active.log.info(f"queued run {queued.id} of '{reader.id}'")
        except RunConflictError as busy:
            active.log.warning(
                f"'{reader.id}' is busy on another server (run {busy.run_id}); refresh it "
                "when that run ends"
            )

    def _changed(self, definition: DefinitionRecord, outcome: Outcome) -> bool:
        """Whether the run changed its component's data, or may have left data its readers
        have not seen: an earlier run that did not succeed (partial, failed, killed) may have
        landed partitions without queueing anyone."""
        if outcome.changed is not None:
            return outcome.changed
        if outcome.engine_run_id is None:
            return False
        catalog = self.server.workspace.catalog
        run = catalog.run(outcome.engine_run_id)
        if run.landed + run.removed > 0:
            return True
        earlier = [r for r in catalog.runs(definition.component_id, limit=2) if r.id != run.id]
        return bool(earlier) and earlier[0].status != "succeeded"

    def _caught_up(self, reader: DefinitionRecord) -> bool:
        """Whether the reader's last run through the server succeeded (or is on its way)."""
        last = self.server.runs.list(reader.component_id, 1)
        return bool(last) and last[0].status in ("succeeded", "queued", "running")

    def _run_again(self, definition: DefinitionRecord) -> None:
        """Queue the run an upstream asked for while this component was busy."""
        with self._lock:
            upstream = self._again.pop(definition.component_id, None)
        if upstream is None:
            return
        try:
            current = self.server.definitions.component_by_catalog_id(definition.component_id)
            self.trigger(current, None, triggered_by=upstream)
        except RunConflictError:  # someone queued it meanwhile: that run covers it
            pass
        except Exception:
            log.exception("could not queue the run %s asked for", definition.catalog_name)

    def _watch(self) -> None:
        """Pick up cancels asked of another server process sharing the catalog."""
        while not self._stop.wait(WATCH_SECONDS):
            with self._lock:
                running = [a for a in self._active.values() if not a.cancel.is_set()]
            for active in running:
                try:
                    if self.server.runs.cancel_requested(active.id):
                        active.cancel.set()
                except Exception as exc:  # a passing database error: look again next time
                    log.debug("could not check run %d for a cancel: %s", active.id, exc)

    def close(self) -> None:
        """Stop: cancel every run (they end "interrupted") and wait for the workers."""
        self._stop.set()
        with self._lock:
            active = list(self._active.values())
        for run in active:
            run.shutdown = True
            run.cancel.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._watcher is not None:
            self._watcher.join()
        logging.getLogger("headwater").removeHandler(self._captured)
