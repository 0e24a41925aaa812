"""The store: partition files as Parquet on any fsspec filesystem (a local folder by default).

A partition's files are written under `<component>/_tmp/`, made durable, then renamed into
`<component>/`. Only the catalog makes them visible; a file no committed partition names is an
orphan (left by a crash) and `sweep` removes it while the component's lease is held.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from headwater import schema as schemas
from headwater.errors import SchemaError, Where

TMP = "_tmp"


@dataclass(frozen=True)
class WrittenPartition:
    """Files of one partition, renamed into place but not yet committed to the catalog."""

    files: list[str]  # relative to the store root
    rows: int
    bytes: int
    schema: pa.Schema


class Store:
    """Partition files under one root URL (a local path, or e.g. `s3://bucket/prefix`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        fs, root = fsspec.core.url_to_fs(url)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/")
        self.local = isinstance(fs, LocalFileSystem)
        self.arrow_fs = (
            pafs.LocalFileSystem() if self.local else pafs.PyFileSystem(pafs.FSSpecHandler(fs))
        )
        self.fs.makedirs(self.root, exist_ok=True)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def query_path(self, relative: str) -> str:
        """The file's address for DuckDB: a plain path locally, else protocol://path."""
        if self.local:
            return self.path(relative)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{self.path(relative)}"

    def writer(
        self, component_id: str, *, widen: bool, where: Where, declared: pa.Schema | None = None
    ) -> PartitionWriter:
        return PartitionWriter(self, component_id, widen=widen, where=where, declared=declared)

    def read_batches(self, files: Iterable[str], target: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Batches of `files`, each laid out as `target` (the component's merged schema)."""
        for relative in files:
            with self.arrow_fs.open_input_file(self.path(relative)) as handle:
                for batch in pq.ParquetFile(handle).iter_batches():
                    yield schemas.conform(batch, target, reading=True)

    def delete(self, files: Iterable[str]) -> None:
        for relative in files:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(relative))

    def sweep(
        self, component_id: str, keep: set[str], *, temporary_only: bool = False
    ) -> list[str]:
        """Remove the component's files that no committed partition names (with
        `temporary_only`, just the never-renamed ones under _tmp/). Returns them."""
        folder = self.path(f"{component_id}/{TMP}" if temporary_only else component_id)
        if not self.fs.exists(folder):
            return []
        prefix = self.root + "/"
        found = [p[len(prefix) :] if p.startswith(prefix) else p for p in self.fs.find(folder)]
        orphans = [p for p in found if p not in keep]
        self.delete(orphans)
        return orphans


def fsync(path: str) -> None:
    """Flush a local file, or a folder (the renames in it), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartitionWriter:
    """Writes one partition's batches as Parquet, under temporary names until `finish`.

    Batches whose schema differs are merged by the schema policy: a batch that fits the
    current file (a missing column, an all-null column) is conformed to it; a new column or a
    widened type starts a new file with the merged schema. Readers conform every file to the
    component's schema, so a partition may span files of different (compatible) schemas.
    """

    def __init__(
        self,
        store: Store,
        component_id: str,
        *,
        widen: bool,
        where: Where,
        declared: pa.Schema | None = None,
    ) -> None:
        self.store = store
        self.component_id = component_id
        self.widen = widen
        self.where = where
        self.declared = declared
        self.schema: pa.Schema | None = declared
        self.rows = 0
        self._tmp: list[str] = []
        self._writer: pq.ParquetWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self.declared is not None:
            batch = schemas.conform(batch, self.declared, self.where)
        elif self.schema is not None and not batch.schema.equals(self.schema):
            merged = schemas.merge(self.schema, batch.schema, widen=self.widen, where=self.where)
            if not merged.equals(self.schema):
                self._close_file()
                self.schema = merged
            batch = schemas.conform(batch, self.schema, self.where)
        if self.schema is None:
            self.schema = batch.schema
        if self._writer is None:
            self._open_file(self.schema)
        assert self._writer is not None
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def finish(self) -> WrittenPartition:
        """Close, make durable and rename the files into place. Not yet visible to readers."""
        if self.declared is not None and not self._tmp:
            self._open_file(self.declared)  # an empty partition still records its columns
        self._close_file()
        final = []
        total = 0
        for tmp in self._tmp:
            relative = f"{self.component_id}/{tmp.rsplit('/', 1)[-1]}"
            self.store.fs.mv(self.store.path(tmp), self.store.path(relative))
            final.append(relative)
            total += self.store.fs.size(self.store.path(relative))
        if final and self.store.local:
            fsync(self.store.path(self.component_id))  # the renames, durable
        self._tmp = []
        return WrittenPartition(final, self.rows, total, self.schema or schemas.EMPTY)

    def abort(self) -> None:
        """Discard everything written (an error, or a retry about to start over)."""
        try:
            self._close_file()
        except Exception:  # the file is being thrown away; its close error does not matter
            self._writer = None
        self.store.delete(self._tmp)
        self._tmp = []
        self.schema = self.declared
        self.rows = 0

    def _open_file(self, schema: pa.Schema) -> None:
        relative = f"{self.component_id}/{TMP}/{uuid.uuid4().hex}.parquet"
        self.store.fs.makedirs(self.store.path(f"{self.component_id}/{TMP}"), exist_ok=True)
        try:
            self._writer = pq.ParquetWriter(
                self.store.path(relative), schema, filesystem=self.store.arrow_fs
            )
        except pa.ArrowException as exc:
            raise SchemaError(
                f"the schema cannot be stored as Parquet: {exc}", self.where
            ) from None
        self._tmp.append(relative)

    def _close_file(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        if self.store.local:
            # The file must be durable before the catalog row that names it.
            fd = os.open(self.store.path(self._tmp[-1]), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
