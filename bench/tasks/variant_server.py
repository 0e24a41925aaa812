"""Headwater's connector service with one change at a time, to price the changes the profile
suggests (an experiment: Headwater's code is not edited; these patch it in this process only).

    .venv/bin/python bench/tasks/variant_server.py VARIANT PORT

    direct   headwater.tasks.server.serve(load_connectors([trivial_connector.py])), as the CLI
             does but without the CLI (typer, logging setup, its imports)
    hints    direct, with `typing.get_type_hints` cached per class (ResourceMeta.decode calls
             it on every GetTask and DeleteTask)
    v1only   direct, without Flyte 2's services (flyteidl2 made unimportable)
"""

from __future__ import annotations

import functools
import sys
import typing
from pathlib import Path

CONNECTOR = Path(__file__).with_name("trivial_connector.py")
VARIANTS = ("direct", "hints", "v1only")


def cache_type_hints() -> None:
    plain = typing.get_type_hints

    @functools.cache
    def cached(obj: object) -> dict:
        return plain(obj)

    def get_type_hints(obj, globalns=None, localns=None, include_extras=False):
        if globalns is None and localns is None and not include_extras:
            return dict(cached(obj))
        return plain(obj, globalns, localns, include_extras)

    typing.get_type_hints = get_type_hints


def serve(port: int) -> None:
    from headwater.tasks.loading import load_connectors
    from headwater.tasks.server import serve as serve_registry

    serve_registry(load_connectors([CONNECTOR]), port=port)


def main() -> None:
    variant, port = sys.argv[1], int(sys.argv[2])
    if variant not in VARIANTS:
        raise SystemExit(f"variant_server.py: one of {VARIANTS}, not {variant!r}")
    if variant == "hints":
        cache_type_hints()
    if variant == "v1only":
        sys.modules["flyteidl2"] = None  # type: ignore[assignment]  # import now fails
    serve(port)


if __name__ == "__main__":
    main()
