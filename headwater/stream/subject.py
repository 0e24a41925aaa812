"""ConnectorSubject: the push-style connector an author subclasses (Pathway's API).

class FileStreamSubject(ConnectorSubject):
    def run(self):
        with open("cats.jsonl") as file:
            for line in file:
                self.next(**json.loads(line))
"""

from __future__ import annotations

import abc
import json
import threading
from typing import Any

from headwater.errors import HeadwaterError
from headwater.stream.buffer import RowBuffer


class SubjectError(HeadwaterError, RuntimeError):
    """A subject used outside a running stream, or read twice."""


class ConnectorSubject(abc.ABC):
    """A source that pushes rows: implement `run()` (and optionally `on_stop()`, `seek()`).

    Inside `run()`, call `next(**values)` per row, `delete(**key)` to remove a row by primary
    key, `commit()` to close an atomic micro-batch, and `report_offset(value)` to close one
    together with a position to resume from after a restart (then handed to `seek(value)`).
    """

    def __init__(self, datasource_name: str = "python") -> None:
        self._datasource_name = datasource_name
        self._buffer: RowBuffer | None = None
        self._stopped = threading.Lock()
        self._stop_called = False

    @abc.abstractmethod
    def run(self) -> None:
        """Read the source and push rows; runs in its own thread. Returning ends the stream."""

    def on_stop(self) -> None:  # noqa: B027 - an optional hook: doing nothing is its default
        """Called once when the stream ends, fails or is stopped: release resources here.
        When the stream is stopped from outside (Ctrl-C, another stream failing) it is called
        while `run()` may still be running, so it should make `run()` return."""

    def seek(self, offset: Any) -> None:
        """Called before `run()` after a restart, with the last offset reported by
        `report_offset` and landed with its commit. Continue from there in `run()`."""
        raise SubjectError(
            f"{type(self).__name__} reported offsets (report_offset) but does not define "
            "seek(offset), so it cannot resume after a restart; define seek() to continue "
            "from the offset"
        )

    # -- what run() calls ---------------------------------------------------------------------

    def next(self, *positional: Any, **values: Any) -> None:
        """Push one row: one keyword per column. Upserts when the schema has a primary key."""
        buffer = self._buffer  # (the per-row path: one lookup, one call)
        if positional:
            raise TypeError("next() takes keyword arguments only, one per column: next(key=1, ...)")
        if buffer is None:
            self._attached()
        else:
            buffer.add(values)

    def next_json(self, message: dict[str, Any]) -> None:
        """Push one row given as a dict (or JSON text) of column -> value."""
        if isinstance(message, str | bytes):
            message = json.loads(message)
        self._attached().add(dict(message))

    def next_str(self, message: str) -> None:
        """Push a string into the `data` column."""
        self._attached().add({"data": self._as_data(message)})

    def next_bytes(self, message: bytes) -> None:
        """Push bytes into the `data` column."""
        self._attached().add({"data": self._as_data(message)})

    def delete(self, **key: Any) -> None:
        """Remove the row with this primary key (a no-op for a key the stream never had)."""
        self._attached().delete(key)

    def commit(self) -> None:
        """Close the current micro-batch: its rows land together, atomically."""
        self._attached().commit()

    def report_offset(self, offset: Any) -> None:
        """Close the current micro-batch, storing `offset` (any JSON value) with it. After a
        restart, `seek(offset)` receives the last one that landed."""
        try:
            json.dumps(offset)
        except (TypeError, ValueError) as exc:
            raise SubjectError(f"report_offset() needs a JSON value: {exc}") from None
        self._attached().commit(offset)

    def close(self) -> None:
        """No more rows: commit what is pending and end the stream."""
        self._attached().commit(close=True)

    # -- plumbing -----------------------------------------------------------------------------

    def _attached(self) -> RowBuffer:
        if self._buffer is None:
            raise SubjectError(
                f"{type(self).__name__} is not part of a stream yet: pass it to "
                "stream.read(subject, schema=...) and call stream.run()"
            )
        return self._buffer

    def _as_data(self, message: str | bytes) -> Any:
        column = next((c for c in self._attached().columns if c.name == "data"), None)
        if column is None:
            return message  # the schema check names the missing column
        if column.python_type is str and isinstance(message, bytes):
            return message.decode("utf-8")
        if column.python_type is bytes and isinstance(message, str):
            return message.encode("utf-8")
        return message

    def _stop_once(self) -> None:
        """Call on_stop() exactly once, whichever thread gets here first."""
        with self._stopped:
            if self._stop_called:
                return
            self._stop_called = True
        self.on_stop()

    @property
    def _name(self) -> str:
        return type(self).__name__
