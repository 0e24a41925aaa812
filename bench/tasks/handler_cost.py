"""What each engine's CreateTask and GetTask handlers cost in Python, without gRPC: the servicer
methods the gRPC server would call, awaited directly in a loop on one event loop, with the
same requests the clients send.

    .venv/bin/python bench/tasks/handler_cost.py [--profile] [--cached-hints] # Headwater
    bench/.venvs/flytekit/bin/python bench/tasks/handler_cost.py [--profile]  # flytekit

Prints a RESULT line (microseconds per call, median of 5 rounds) and, with --profile, the top
of a cProfile of the loop (by own time and by cumulative time). --cached-hints: with
`typing.get_type_hints` cached per class (variant_server.py's `hints` experiment). Compare it
with the floor's and the engine's CPU per pair under load: the rest is gRPC.
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib.util
import io
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

from client import create_request, get_request

# Which venv this is; trivial_connector.py picks its imports the same way.
ENGINE = "headwater" if importlib.util.find_spec("headwater") else "flytekit"
CONNECTOR = Path(__file__).with_name("trivial_connector.py")

CALLS = 5000


class Context:
    """Enough of grpc.aio.ServicerContext for the success path."""

    def set_code(self, code):
        raise AssertionError(code)

    def set_details(self, details):
        raise AssertionError(details)

    async def abort(self, code, details="", trailing_metadata=()):
        raise AssertionError(f"{code}: {details}")

    def set_trailing_metadata(self, metadata):
        pass

    def invocation_metadata(self):
        return ()


def servicer():
    if ENGINE == "headwater":
        from concurrent.futures import ThreadPoolExecutor

        from headwater.tasks import flyte1
        from headwater.tasks.loading import load_connectors
        from headwater.tasks.service import TaskService

        registry = load_connectors([CONNECTOR])
        return flyte1.AsyncAgentService(TaskService(registry, ThreadPoolExecutor(4)))
    import trivial_connector  # noqa: F401 - registers itself with flytekit's global registry
    from flytekit.extend.backend.connector_service import AsyncConnectorService

    return AsyncConnectorService()


async def loop(service, requests, calls: int) -> tuple[float, float]:
    context = Context()
    create_s = get_s = 0.0
    clock = time.perf_counter
    for n in range(calls):
        request = requests[n % len(requests)]
        t = clock()
        meta = (await service.CreateTask(request, context)).resource_meta
        t2 = clock()
        got = await service.GetTask(get_request(meta, request.output_prefix), context)
        create_s, get_s = create_s + t2 - t, get_s + clock() - t2
        assert got.resource.phase == 3, got
    return create_s / calls * 1e6, get_s / calls * 1e6


def main() -> None:
    if "--cached-hints" in sys.argv:
        from variant_server import cache_type_hints

        cache_type_hints()
    service = servicer()
    requests = [create_request(0, n) for n in range(64)]
    asyncio.run(loop(service, requests, 500))  # warm-up
    rounds = [asyncio.run(loop(service, requests, CALLS)) for _ in range(5)]
    result = {
        "engine": ENGINE,
        "cached_hints": "--cached-hints" in sys.argv,
        "calls": CALLS,
        "create_us": round(statistics.median(r[0] for r in rounds), 1),
        "get_us": round(statistics.median(r[1] for r in rounds), 1),
    }
    print("RESULT " + json.dumps(result))
    if "--profile" in sys.argv:
        profile = cProfile.Profile()
        profile.enable()
        asyncio.run(loop(service, requests, CALLS))
        profile.disable()
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(order).print_stats(25)
            print(f"\n## cProfile of {CALLS} pairs, top 25 by {order}\n")
            print(out.getvalue().split("\n\n", 1)[-1].rstrip())


if __name__ == "__main__":
    main()
