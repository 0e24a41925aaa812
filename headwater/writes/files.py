"""The files target: one file per upstream partition in a folder on any fsspec filesystem.

A partition's file is named `<slug>-<hash>.<parquet|csv>`:
- `slug` is the partition name made safe and readable: each run of characters other than
  letters, digits, `.`, `_` and `-` becomes `_`; leading `.`, `_` and `-` are dropped (tools
  such as Spark skip files whose names start with `.` or `_`); at most 60 characters; and
  `partition` when nothing is left. `2024/01/sales.csv` -> `2024_01_sales.csv`.
- `hash` is the first 16 hex digits of the SHA-256 of the exact name, so names that share a
  slug (`a/b`, `a b`) or differ only in case still get their own files. Before anything is
  written, the run checks that no two partitions map to one file name (case-insensitively, for
  filesystems that ignore case) and fails with both names if they ever did.

A file is written under a temporary hidden name (`.headwater-<component>-<uuid>.tmp`, in the
same folder; left-overs of a crashed run are deleted by the next one), made durable on a local
disk, then moved into place: readers see the old file or the new one, never half of one.

When the target moves (its path or format changes; or its input, which changes the partitions),
`remove_previous_files` deletes the files written at the previous place, but those the new
target writes over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyarrow.types as pat
from fsspec.implementations.local import LocalFileSystem

from headwater import failpoints
from headwater.client.models import FilesTarget
from headwater.store import fsync
from headwater.writes.errors import WriteError
from headwater.writes.plan import UpstreamPartition
from headwater.writes.targets import Written

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
SLUG_LENGTH = 60


def file_name(partition: str, format: str) -> str:
    """The file a partition is written to (see the module's docstring for the mapping).

    Example:
        >>> file_name("2024/01/sales.csv", "parquet")
        '2024_01_sales.csv-edd88a91a0c08b02.parquet'
    """
    slug = _UNSAFE.sub("_", partition).lstrip("._-")[:SLUG_LENGTH] or "partition"
    digest = hashlib.sha256(partition.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{slug}-{digest}.{format}"


class FilesWriter:
    """Writes partitions as files under `target.path`."""

    def __init__(self, component: str, target: FilesTarget) -> None:
        self.component = component
        self.format = target.format
        self.description = files_place(target)
        try:
            fs, root = fsspec.core.url_to_fs(target.path, **target.storage_options)
        except (ValueError, ImportError, TypeError, OSError) as exc:
            raise WriteError(
                f"write connector '{component}': cannot use path {target.path!r}: "
                f"{type(exc).__name__}: {exc} (fix: give a local folder or an fsspec URL whose "
                "filesystem is installed, with valid storage_options)"
            ) from None
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/") or "/"
        self.local = isinstance(fs, LocalFileSystem)
        self._tmp_prefix = f".headwater-{component}-"

    def path(self, partition: str) -> str:
        return f"{self.root.rstrip('/')}/{file_name(partition, self.format)}"

    def open(
        self, schema: pa.Schema, names: Sequence[str], marked: Mapping[str, str]
    ) -> dict[str, str]:
        self._check_names([*names, *marked])
        self.schema = schema
        if self.format == "csv":
            self.csv_schema = pa.schema([_csv_field(self.component, f) for f in schema])
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            present = {
                p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)
            }
        except OSError as exc:
            raise WriteError(
                f"write connector '{self.component}': cannot list {self.description}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        for leftover in present:  # temporary files of a run that crashed
            if leftover.startswith(self._tmp_prefix) and leftover.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(f"{self.root.rstrip('/')}/{leftover}")
        # A marked partition whose file is gone (deleted by hand) is written again.
        return {p: v for p, v in marked.items() if file_name(p, self.format) in present}

    def _check_names(self, names: Iterable[str]) -> None:
        seen: dict[str, str] = {}
        for name in names:
            key = file_name(name, self.format).casefold()
            if key in seen and seen[key] != name:
                raise WriteError(
                    f"write connector '{self.component}': partitions '{seen[key]}' and "
                    f"'{name}' map to the same file name in {self.description}; nothing was "
                    "written (fix: rename one of the upstream partitions)"
                )
            seen[key] = name

    def write(self, partition: UpstreamPartition, batches: Iterable[pa.RecordBatch]) -> Written:
        final = self.path(partition.name)
        tmp = f"{self.root.rstrip('/')}/{self._tmp_prefix}{uuid.uuid4().hex}.tmp"
        try:
            with self.fs.open(tmp, "wb") as handle:
                rows = self._write_file(handle, batches)
            if self.local:
                fsync(tmp)
            failpoints.hit("write.files_before_rename")
            if self.local:  # atomic, and never into a folder that has the file's name
                os.replace(tmp, final)
                fsync(self.root)
            else:
                self.fs.mv(tmp, final)
            size = int(self.fs.size(final))
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            if isinstance(exc, WriteError) or not isinstance(exc, Exception):
                raise
            raise WriteError(
                f"write connector '{self.component}': writing partition '{partition.name}' "
                f"to {final} failed: {type(exc).__name__}: {exc}"
            ) from None
        return Written(rows, size, final)

    def _write_file(self, handle: Any, batches: Iterable[pa.RecordBatch]) -> int:
        rows = 0
        if self.format == "parquet":
            with pq.ParquetWriter(handle, self.schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
                    rows += batch.num_rows
            return rows
        options = pacsv.WriteOptions(include_header=True)
        with pacsv.CSVWriter(handle, self.csv_schema, write_options=options) as writer:
            for batch in _as_csv(batches, self.csv_schema):
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows

    def remove(self, partition: str) -> str:
        path = self.path(partition)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            return f"removed partition '{partition}': {path} was already gone"
        except OSError as exc:
            raise WriteError(
                f"write connector '{self.component}': deleting {path} of removed partition "
                f"'{partition}' failed: {type(exc).__name__}: {exc}"
            ) from None
        return f"removed partition '{partition}': deleted {path}"

    def close(self) -> None:
        pass


def remove_previous_files(
    component: str,
    previous: FilesTarget,
    marked: Iterable[str],
    current: FilesTarget | None,
    rewritten: Collection[str],
    log: Callable[[str], None],
) -> None:
    """Delete the files of the `marked` partitions at the `previous` target, logging each, but
    the files the `current` target (None: not a files target) writes over for the partitions
    `rewritten`. A previous place that cannot be reached is named in a warning and left as is.
    """
    try:
        old = FilesWriter(component, previous)
    except WriteError as exc:
        log(f"warning: cannot reach the previous target, {files_place(previous)}: {exc}")
        return
    kept: set[str] = set()
    if current is not None:
        with contextlib.suppress(WriteError):  # the run itself fails on it, and says why
            new = FilesWriter(component, current)
            kept = {new.fs.unstrip_protocol(new.path(p)) for p in rewritten}
    for partition in sorted(marked):
        path = old.path(partition)
        if old.fs.unstrip_protocol(path) in kept:
            continue
        try:
            old.fs.rm_file(path)
        except FileNotFoundError:
            continue
        except Exception as exc:  # OSError, or a remote filesystem's own
            log(
                f"warning: cannot delete {path} of partition '{partition}' at the previous "
                f"target, {old.description}: {type(exc).__name__}: {exc}; its files stay there"
            )
            return
        log(f"deleted {path}: partition '{partition}' at the previous target, {old.description}")


def files_place(target: FilesTarget) -> str:
    """A files target as logs and errors name it."""
    return f"files at {target.path} ({target.format})"


def _csv_field(component: str, field: pa.Field) -> pa.Field:
    """How a column is written to CSV: nested values as JSON text, bytes as text (invalid
    UTF-8 escaped), dictionaries as their values; other types as Arrow writes them."""
    t = field.type
    if pat.is_dictionary(t):
        t = t.value_type
    if (
        pat.is_nested(t)
        or pat.is_binary(t)
        or pat.is_large_binary(t)
        or pat.is_fixed_size_binary(t)
    ):
        return field.with_type(pa.string())
    if pat.is_union(t) or isinstance(t, pa.ExtensionType) or pat.is_interval(t):
        raise WriteError(
            f"write connector '{component}': column '{field.name}' has type {t}, which CSV "
            "cannot hold (fix: write parquet, or cast the column in an upstream transform)"
        )
    return field.with_type(t)


def _as_csv(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        columns = []
        for field, column in zip(schema, batch.columns, strict=True):
            if pat.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            if pat.is_nested(column.type) and not pat.is_union(column.type):
                column = pa.array(
                    [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()],
                    pa.string(),
                )
            elif not column.type.equals(field.type):  # bytes
                column = pa.array(
                    [
                        None if v is None else v.decode("utf-8", "backslashreplace")
                        for v in column.to_pylist()
                    ],
                    pa.string(),
                )
            columns.append(column)
        yield pa.RecordBatch.from_arrays(columns, schema=schema)
