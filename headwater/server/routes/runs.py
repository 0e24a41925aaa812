"""Runs: their status, their logs followed live as server-sent events, and cancelling them.

`GET /api/v1/runs/{id}/logs` streams `text/event-stream`: one `log` event per line (its `id` is
the line's number, its data a `LogLine`), then one `end` event whose data is the finished `Run`.
A follower that reconnects sends `Last-Event-ID` (or `?after=N`) to get only newer lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from headwater.catalog.server_runs import ServerRunRecord
from headwater.client.models import Run
from headwater.server import convert
from headwater.server.auth import Caller, ServerDep
from headwater.server.routes.common import ERRORS, PREFIX, RunId, run_model
from headwater.server.state import Server

router = APIRouter(prefix=f"{PREFIX}/runs", tags=["runs"], responses=ERRORS)

KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 0.5  # following a run another server process executes: read the catalog
_EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events: `log` (data: a LogLine) until `end` (data: the Run).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _visible(
    server: Server, caller: Caller, run_id: int, *, write: bool = False
) -> ServerRunRecord:
    record = server.runs.get(run_id)
    caller.require(record.data_service, write=write)
    return record


@router.get("/{run_id}")
def get_run(run_id: RunId, caller: Caller, server: ServerDep) -> Run:
    """A run's status, plan, counts and failures."""
    return run_model(server, _visible(server, caller, run_id))


@router.get("/{run_id}/triggered")
def list_triggered_runs(run_id: RunId, caller: Caller, server: ServerDep) -> list[Run]:
    """The runs this run queued downstream (its component's readers), oldest first. A run
    queues them when it succeeded and changed its component's data; see each run's
    `triggered_by`."""
    _visible(server, caller, run_id)  # (readers are in the same dataflow, so as visible)
    return [run_model(server, r) for r in server.runs.triggered(run_id)]


@router.post("/{run_id}/cancel")
def cancel_run(run_id: RunId, caller: Caller, server: ServerDep) -> Run:
    """Ask a run to stop. It ends "cancelled" where it can stop: before it starts, between
    partitions, while a task's job is polled (not inside a processor's statement). Cancelling
    a finished run changes nothing."""
    _visible(server, caller, run_id, write=True)
    return run_model(server, server.pool.cancel(run_id))


@router.get("/{run_id}/logs", response_class=StreamingResponse, responses=_EVENTS)
async def follow_run_logs(
    run_id: RunId,
    caller: Caller,
    server: ServerDep,
    after: int = Query(0, ge=0, le=2**31 - 1, description="Send only lines after this one."),
    last_event_id: str | None = Header(None, max_length=20),
) -> StreamingResponse:
    """The run's log, line by line as it is written, until the run ends."""
    await run_in_threadpool(_visible, server, caller, run_id)
    if last_event_id is not None and last_event_id.isdigit():
        after = max(after, int(last_event_id))
    return StreamingResponse(
        _events(server, run_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(kind: str, data: str, id: int | None = None) -> bytes:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n".encode()


async def _events(server: Server, run_id: int, after: int) -> AsyncIterator[bytes]:
    live = server.pool.follow(run_id)
    idle = 0.0
    while True:
        if live is not None:
            lines, ended = live.since(after)
        else:
            record = await run_in_threadpool(server.runs.get, run_id)
            lines = await run_in_threadpool(server.runs.logs, run_id, after)
            ended = record.status not in ("queued", "running")
        for line in lines:
            yield _event("log", convert.log_line(line).model_dump_json(), line.seq)
            after = line.seq
        if ended:
            record = await run_in_threadpool(server.runs.get, run_id)
            run = await run_in_threadpool(run_model, server, record)
            yield _event("end", run.model_dump_json())
            return
        if live is not None:
            await live.wait(after, KEEPALIVE_SECONDS)
            fresh, done = live.since(after)
            if not fresh and not done:  # a comment keeps proxies from closing an idle stream
                yield b": keep-alive\n\n"
        else:
            idle = 0.0 if lines else idle + POLL_SECONDS
            if idle >= KEEPALIVE_SECONDS:
                idle = 0.0
                yield b": keep-alive\n\n"
            await asyncio.sleep(POLL_SECONDS)
