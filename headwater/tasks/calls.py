"""Calling connector methods that may be plain or async, without blocking the event loop.

An `async def` runs on the service's event loop; a plain `def` runs in the service's thread
pool, so a connector that blocks (a slow HTTP call, a database driver) holds one thread, not
the server. Logs may come back as one message, a list, a generator or an async generator; each
message is handed on as soon as the connector produces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Executor
from typing import Any

from google.protobuf.message import Message

from headwater.tasks.errors import ConnectorContractError

_END = object()


async def call(pool: Executor, method: Callable[..., Any], **kwargs: Any) -> Any:
    """The result of `method(**kwargs)`: awaited if async, else run in `pool`."""
    if inspect.iscoroutinefunction(method):
        return await method(**kwargs)
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(pool, functools.partial(method, **kwargs))
    if inspect.isawaitable(result):  # a plain def that returns a coroutine
        result = await result
    return result


async def stream(pool: Executor, method: Callable[..., Any], **kwargs: Any) -> AsyncIterator[Any]:
    """The messages `method(**kwargs)` produces, one by one, as it produces them."""
    if inspect.isasyncgenfunction(method) or inspect.isgeneratorfunction(method):
        produced: Any = method(**kwargs)  # runs none of the body yet
    else:
        produced = await call(pool, method, **kwargs)
    if isinstance(produced, Message):
        yield produced
    elif inspect.isasyncgen(produced):
        try:
            async for item in produced:
                yield item
        finally:
            await produced.aclose()
    elif isinstance(produced, Iterable) and not isinstance(produced, str | bytes):
        async for item in _drain(pool, iter(produced)):
            yield item
    else:
        name = getattr(method, "__qualname__", repr(method))
        raise ConnectorContractError(
            f"{name} returned {type(produced).__name__}; return a message, a list of them, "
            "or yield them"
        )


async def _drain(pool: Executor, items: Iterator[Any]) -> AsyncIterator[Any]:
    # next() may block (a generator reading a remote log), so it runs in the pool too.
    loop = asyncio.get_running_loop()
    try:
        while (item := await loop.run_in_executor(pool, next, items, _END)) is not _END:
            yield item
    finally:
        close = getattr(items, "close", None)
        # A next() still running in the pool (the client went away mid-call) cannot be
        # interrupted: closing then raises ValueError, and the generator is left to finish.
        if close is not None:
            with contextlib.suppress(ValueError):
                await loop.run_in_executor(pool, close)
