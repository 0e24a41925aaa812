"""A component's settings: how its connector is parsed, read, retried and kept."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from headwater.errors import SettingsError

PARSERS = ("csv", "jsonl", "parquet")
EXECUTORS = ("thread", "process", "spark")
CSV_OPTIONS = {"delimiter", "quote_char", "header", "column_names"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class RetrySpec:
    """How often a failing partition read is tried, and how long to wait between tries.

    The wait doubles after each failure: backoff_seconds, 2x, 4x ... up to backoff_max_seconds.
    """

    attempts: int = 3
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise SettingsError(f"retry attempts must be at least 1, got {self.attempts}")
        if self.backoff_seconds < 0 or self.backoff_max_seconds < 0:
            raise SettingsError("retry backoff seconds cannot be negative")

    def wait(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failed attempt."""
        return float(min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (failures - 1)))


@dataclass(frozen=True)
class ComponentSettings:
    """Settings of one component; stored in the catalog with it.

    Args:
        parser: built-in parser for `read_bytes`: "csv", "jsonl" or "parquet"
            (not needed when the connector defines `parser_function`).
        parser_options: CSV only: delimiter, quote_char, header (bool), column_names (list).
        keep_removed: keep partitions whose objects are no longer listed (default: drop them).
        reprocess_on_code_change: re-read every partition when the connector code or a
            data-shaping setting changes (default: yes).
        widen_types: allow int -> float and anything -> string when partitions disagree.
        executor: "thread" (default), "process" for CPU-bound connectors, or "spark" to read
            partitions as tasks of a Spark job (needs `headwater[spark]`; see docs/spark.md).
        concurrency: partitions read at once (on Spark: partition jobs in flight).
        retry: attempts and backoff for a failing partition.
        batch_rows: rows per Arrow batch when converting records.

    Example:
        >>> ComponentSettings(parser="csv", concurrency=8).parser
        'csv'
    """

    parser: str | None = None
    parser_options: Mapping[str, Any] = field(default_factory=dict)
    keep_removed: bool = False
    reprocess_on_code_change: bool = True
    widen_types: bool = False
    executor: Literal["thread", "process", "spark"] = "thread"
    concurrency: int = 4
    retry: RetrySpec = RetrySpec()
    batch_rows: int = 65_536

    def __post_init__(self) -> None:
        if self.parser is not None and self.parser not in PARSERS:
            raise SettingsError(
                f"parser {self.parser!r} is unknown; choose one of {', '.join(PARSERS)}"
            )
        unknown = set(self.parser_options) - CSV_OPTIONS
        if unknown:
            raise SettingsError(
                f"parser option(s) {', '.join(sorted(unknown))} unknown; "
                f"the CSV parser takes {', '.join(sorted(CSV_OPTIONS))}"
            )
        if self.parser_options and self.parser != "csv":
            raise SettingsError("parser_options apply to the csv parser only")
        if self.executor not in EXECUTORS:
            raise SettingsError(
                f"executor {self.executor!r} is unknown; choose one of {', '.join(EXECUTORS)}"
            )
        if self.concurrency < 1:
            raise SettingsError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.batch_rows < 1:
            raise SettingsError(f"batch_rows must be at least 1, got {self.batch_rows}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["parser_options"] = dict(self.parser_options)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComponentSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("retry"), Mapping):
            values["retry"] = RetrySpec(**values["retry"])
        return cls(**values)

    def updated(self, **changes: Any) -> ComponentSettings:
        """These settings with the given ones changed; None values leave a setting as it is.
        `retry` may be a partial mapping, e.g. {"attempts": 5}, changing only those fields."""
        values = {k: v for k, v in changes.items() if v is not None}
        if values.get("parser") == "none":  # the CLI's way to clear it
            values["parser"] = None
        if "parser" in values and values["parser"] != "csv" and "parser_options" not in values:
            values["parser_options"] = {}  # CSV options do not carry over to another parser
        if isinstance(values.get("retry"), Mapping):
            retry = {k: v for k, v in values["retry"].items() if v is not None}
            values["retry"] = replace(self.retry, **retry)
        return replace(self, **values)


def code_version(source_text: str, settings: ComponentSettings) -> str:
    """Fingerprint of everything that shapes a partition's data: the code and its parser."""
    shaping = {"parser": settings.parser, "parser_options": dict(settings.parser_options)}
    digest = hashlib.sha256(source_text.encode())
    digest.update(json.dumps(shaping, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def check_component_name(name: str) -> str:
    """A component name is also its SQL view name, so it must be a plain identifier."""
    if not _NAME.match(name):
        raise SettingsError(
            f"component name {name!r} is not usable: it is also the SQL view name, so use "
            "letters, digits and underscores, starting with a letter (for example 'sales_files')"
        )
    return name


def component_name_from(stem: str) -> str:
    """A component name derived from a file or module name: 'my-connector' -> 'my_connector'."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem.rsplit(".", 1)[-1])
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = f"c_{name}"
    return check_component_name(name[:63])
