"""The benchmark's CPU-bound connector: BENCH_PARTS partitions (default 8) of
BENCH_ROWS_PER_PART rows (default 1,000,000), each row built by a Python loop, as a connector
that parses or computes its rows does. `read_arrow` yields one RecordBatch per 100,000 rows,
so memory stays bounded whatever the size. Nothing in it knows which executor runs it."""

import os

import pyarrow as pa

PARTS = int(os.environ.get("BENCH_PARTS", "8"))
ROWS_PER_PART = int(os.environ.get("BENCH_ROWS_PER_PART", "1000000"))
BATCH = 100_000
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("value", pa.float64())])


def list_objects(context, metadata):
    for part in range(PARTS):
        yield {
            "name": f"part_{part}",
            "fingerprint": "v1",
            "is_prefix": False,
            "part": part,
            "rows": ROWS_PER_PART,
        }


def read_arrow(context, metadata):
    start = metadata["part"] * metadata["rows"]
    end = start + metadata["rows"]
    for low in range(start, end, BATCH):
        ids = list(range(low, min(low + BATCH, end)))
        yield pa.record_batch(
            [ids, [f"name_{i}" for i in ids], [i * 0.5 for i in ids]], schema=SCHEMA
        )
