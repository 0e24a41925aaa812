"""The pyarrow floor: the least any Python program does to put these rows in Parquet.

    python bench/bench_floor.py records   # dicts -> Table.from_pylist -> write_table, per partition
    python bench/bench_floor.py arrow     # three Python lists -> pa.table -> write_table

One process, one thread, one file per partition, no catalog and no fsync.
"""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from common import (
    PARTS,
    Timer,
    check,
    cleanup,
    partition_columns,
    partition_records,
    peak_rss_mb,
    report,
    warm_up,
    work_dir,
)

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("value", pa.float64())])


def build(variant: str, part: int) -> pa.Table:
    if variant == "records":
        return pa.Table.from_pylist(list(partition_records(part)), schema=SCHEMA)
    return pa.table(partition_columns(part), schema=SCHEMA)


def main(variant: str) -> None:
    if variant not in ("records", "arrow"):
        raise SystemExit(f"unknown variant {variant!r}; use records or arrow")
    warm_up()
    out = work_dir(f"floor_{variant}")
    timer = Timer()
    for part in range(PARTS):
        pq.write_table(build(variant, part), out / f"part_{part}.parquet")
    seconds = timer.mark("total_s")
    peak = peak_rss_mb()
    table = pq.read_table(out)
    check(table.num_rows, pc.sum(table["id"]).as_py())
    cleanup(out)
    report(f"floor_{variant}", seconds, peak, pyarrow=pa.__version__)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "records")
