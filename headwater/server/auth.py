"""Authentication: every API route depends on `principal`, which verifies the request's
HWR1-HMAC-SHA256 signature (see `headwater.signing`) and returns who made it, with its scopes.

Routes then call `principal.require(data_service, write=...)`: read-only keys cannot change
anything, and keys limited to some data services see and touch only those (403 otherwise).
The check comes before any lookup, so a limited key cannot probe what other data services hold.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from headwater.keys import Principal
from headwater.server.state import Server, server


async def authenticate(request: Request) -> Principal:
    """The principal of a signed request (AuthenticationError, so 401, when it is not one)."""
    state = server(request)
    body = await request.body()
    # The path as sent (raw_path), so what the client signed and what is checked agree.
    raw = request.scope.get("raw_path") or request.url.path.encode()
    target = raw.decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    if query:
        target = f"{target}?{query}"
    return await run_in_threadpool(
        state.keys.authenticate, request.method, target, body, request.headers
    )


Caller = Annotated[Principal, Depends(authenticate)]
ServerDep = Annotated[Server, Depends(server)]
