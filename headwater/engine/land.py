"""Landing one partition: read it, write it to the store under temporary names, rename it into
place; retry with backoff when the connector's own code fails. Committing is the refresh's job."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headwater import failpoints
from headwater import schema as schemas
from headwater.component import ComponentSettings
from headwater.connectors.partitioned import PartitionedConnector
from headwater.engine.boundary import guard
from headwater.engine.listing import ListedObject
from headwater.engine.read import read_partition
from headwater.errors import ConnectorError, HeadwaterError, Where
from headwater.secrets import scrub
from headwater.store import Store, WrittenPartition


@dataclass(frozen=True)
class Landed:
    """A partition whose files are in place, waiting for its catalog commit."""

    obj: ListedObject
    written: WrittenPartition
    attempts: int
    seconds: float


@dataclass(frozen=True)
class NotLanded:
    """A partition that failed after its last attempt; nothing of it was kept."""

    obj: ListedObject
    error: HeadwaterError
    attempts: int


Outcome = Landed | NotLanded


def land(
    connector: PartitionedConnector,
    context: Any,
    obj: ListedObject,
    settings: ComponentSettings,
    store: Store,
    component_id: str,
    where: Where,
    secret: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Read `obj` into the store, trying up to `settings.retry.attempts` times."""
    where = where.at(partition=obj.name)
    started = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        writer = None
        try:
            declared = None
            if connector.infer_schema is not None:
                with guard(where.at(function="infer_schema"), secret):
                    answer = connector.infer_schema(context, obj.metadata)
                    declared = schemas.as_arrow_schema(answer, where)
            writer = store.writer(
                component_id, widen=settings.widen_types, where=where, declared=declared
            )
            read_partition(connector, context, obj.metadata, settings, writer.write, where, secret)
            failpoints.hit("land.before_rename")
            written = writer.finish()
            failpoints.hit("land.after_rename")
            return Landed(obj, written, attempt, time.perf_counter() - started)
        except HeadwaterError as exc:
            if writer is not None:
                writer.abort()
            retry = isinstance(exc, ConnectorError) and exc.retryable
            if not retry or attempt >= settings.retry.attempts:
                return NotLanded(obj, exc, attempt)
            sleep(settings.retry.wait(attempt))
        except Exception as exc:  # a fault in Headwater itself: this partition fails alone
            if writer is not None:
                writer.abort()
            error = ConnectorError(
                scrub(f"internal error while landing: {type(exc).__name__}: {exc}", secret),
                where,
                detail=scrub("".join(traceback.format_exception(exc)), secret),
            )
            return NotLanded(obj, error, attempt)
