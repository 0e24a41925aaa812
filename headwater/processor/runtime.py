"""What a statement sees besides its input: `log`, `sleep`, and the loop that awaits it.

The statement is an async function, but most statements never await anything but `sleep`. Importing
asyncio costs about 40 ms, close to half of the latency budget of a trivial run, so statements
run on a tiny driver where `await sleep(s)` is a plain blocking sleep, unless they import a
library with async APIs (httpx, openai) or one that loaded asyncio anyway: those get a real
asyncio event loop. Either way, all executions of one run share one loop.

This module is imported by the sandboxed worker only.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any

MAX_LOG_ENTRIES = 1000
MAX_LOG_CHARS = 256 * 1024
MAX_MESSAGE_CHARS = 4096
LEVELS = ("trace", "debug", "info", "warn", "error")


class Log:
    """`log.trace/debug/info/warn/error` for a statement; `error` fails the run.

    Entries are capped (count, total size, size per message) and the overflow is counted, so a
    statement that logs in a tight loop cannot exhaust memory or the result frame. The state is
    kept in underscore slots, which a statement can neither read nor overwrite.
    """

    __slots__ = ("_chars", "_dropped", "_entries", "_first_error")

    def __init__(self) -> None:
        self._entries: list[list[str]] = []
        self._chars = 0
        self._dropped = 0
        self._first_error: str | None = None

    def trace(self, message: object) -> None:
        self._add("trace", message)

    def debug(self, message: object) -> None:
        self._add("debug", message)

    def info(self, message: object) -> None:
        self._add("info", message)

    def warn(self, message: object) -> None:
        self._add("warn", message)

    def error(self, message: object) -> None:
        self._add("error", message)

    def _add(self, level: str, message: object) -> None:
        text = message if type(message) is str else str(message)
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + f"... (truncated from {len(text):,} characters)"
        if level == "error" and self._first_error is None:
            self._first_error = text
        if len(self._entries) >= MAX_LOG_ENTRIES or self._chars + len(text) > MAX_LOG_CHARS:
            self._dropped += 1
            return
        self._entries.append([level, text])
        self._chars += len(text)

    def snapshot(self) -> tuple[list[list[str]], int, str | None]:
        """(entries, dropped count, first error message or None) for the result frame."""
        return self._entries, self._dropped, self._first_error


class _Pause:
    """What `await sleep(s)` yields to the light driver."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __await__(self) -> Generator[_Pause, None, None]:
        yield self


# Libraries with async APIs that do not import asyncio themselves (httpx finds the running loop
# through sniffio only when an AsyncClient is used).
ASYNC_LIBRARIES = frozenset({"asyncio", "httpx", "httpcore", "anyio", "openai", "aiohttp"})


def needs_event_loop(modules: Iterable[str], asyncio_loaded: bool | None = None) -> bool:
    """True when a statement importing `modules` (already imported) may need asyncio's loop.

    Either a library loaded asyncio while being imported, so the loop costs nothing more, or the
    statement imports a library known to offer async APIs. `asyncio_loaded` overrides the look
    at sys.modules (a warm worker's preload may have loaded asyncio for modules not imported).
    """
    roots = {m.split(".", 1)[0] for m in modules}
    loaded = "asyncio" in sys.modules if asyncio_loaded is None else asyncio_loaded
    return loaded or not roots.isdisjoint(ASYNC_LIBRARIES)


def make_sleep(
    use_asyncio: bool, wall_limit_s: float
) -> Callable[[Any], Coroutine[Any, Any, None]]:
    """The statement's `sleep(seconds)`: a coroutine refusing bool, NaN, inf and negatives."""
    started = time.monotonic()

    async def sleep(seconds: Any) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"sleep() takes a number of seconds, got {type(seconds).__name__}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"sleep() takes a finite number of seconds >= 0, got {seconds!r}")
        left = wall_limit_s - (time.monotonic() - started)
        if seconds > left:
            raise TimeoutError(
                f"sleep({seconds!r}) would pass the wall-clock limit of {wall_limit_s:g} s"
            )
        if use_asyncio:
            import asyncio

            await asyncio.sleep(seconds)
        else:
            await _Pause(seconds)

    return sleep


def run_coroutine(coroutine: Coroutine[Any, Any, Any], use_asyncio: bool) -> Any:
    """Run `coroutine` to completion on asyncio or on the light driver; return its value."""
    if use_asyncio:
        import asyncio

        return asyncio.run(coroutine)
    error: BaseException | None = None
    while True:
        try:
            signal = coroutine.throw(error) if error else coroutine.send(None)
        except StopIteration as done:
            return done.value
        error = None
        if type(signal) is _Pause:
            time.sleep(signal.seconds)
        else:
            error = RuntimeError(
                "the statement awaited an object that needs an event loop; only sleep() and "
                "async functions of the imported libraries can be awaited"
            )
