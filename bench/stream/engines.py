"""The one subject and schema both contenders run, written once against Pathway's API.

Headwater reproduces `pw.io.python` as `headwater.stream`, so `load("pathway")` and
`load("headwater")` return the same six names and the benchmark code is identical for both;
only the import differs. Standard library only at import time: the project venv has no
Pathway and Pathway's venv has no Headwater, so each engine is imported only when asked for.

No `from __future__ import annotations` here: the schema classes are read from their
annotations, which must be real types, not strings.
"""

import contextlib
import os
import resource
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENGINES = ("headwater", "pathway")
WORK = Path(os.environ.get("BENCH_WORK", Path(__file__).parent.parent / "out" / "work"))


@dataclass(frozen=True)
class Api:
    """An engine's streaming API, under Pathway's names."""

    engine: str
    version: str
    ConnectorSubject: Any
    Schema: Any
    column_definition: Any
    read: Any  # read(subject, schema=..., autocommit_duration_ms=...) -> table
    write_csv: Any  # write_csv(table, path)
    run: Any  # run(): until every subject has finished


def load(engine: str) -> Api:
    """Import one engine (this is what the `import_s` of a run measures).

    pandas is imported here for both (the issue-2 benchmark's convention): pyarrow imports it
    lazily on its first `pa.array`, about 0.25 s, which would otherwise land inside
    Headwater's first batch, while `import pathway` imports it anyway. Both venvs have it (a
    dependency of each engine); its import is in `import_s` and the process wall either way.
    """
    with contextlib.suppress(ImportError):
        import pandas  # noqa: F401
    if engine == "pathway":
        import pathway as pw

        return Api(
            engine,
            pw.__version__,
            pw.io.python.ConnectorSubject,
            pw.Schema,
            pw.column_definition,
            pw.io.python.read,
            pw.io.csv.write,
            # Pathway at its best: no monitoring dashboard or its per-run bookkeeping.
            lambda: pw.run(monitoring_level=pw.MonitoringLevel.NONE),
        )
    if engine == "headwater":
        from importlib.metadata import version

        from headwater import stream

        return Api(
            engine,
            version("headwater"),
            stream.ConnectorSubject,
            stream.Schema,
            stream.column_definition,
            stream.read,
            stream.write_csv,
            stream.run,
        )
    raise SystemExit(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")


def rows_schema(api: Api, primary_key: bool) -> Any:
    """`key` int (the primary key, or not), `name` str, `value` float."""
    if primary_key:

        class KeyedRows(api.Schema):
            key: int = api.column_definition(primary_key=True)
            name: str
            value: float

        return KeyedRows

    class Rows(api.Schema):
        key: int
        name: str
        value: float

    return Rows


def append_only(api: Api, subject_class: Any) -> Any:
    """Give Pathway its documented performance hint: the subject never deletes, so the
    engine may skip tracking deletions (`_deletions_enabled = False`, as in the research
    scripts). Headwater has no such switch; its class is returned unchanged."""
    if api.engine == "pathway":
        subject_class._deletions_enabled = property(lambda self: False)
    return subject_class


def work_dir(prefix: str) -> Path:
    """A fresh folder on local disk for one run's output (removed by `cleanup`)."""
    WORK.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}_", dir=WORK))


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, every thread included (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def python_version() -> str:
    return sys.version.split()[0]
