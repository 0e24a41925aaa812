"""dlt 1.31 (the peer): the same rows into its default duckdb destination, in a fresh folder.

    bench/.venvs/dlt/bin/python bench/bench_dlt.py dicts           # dicts, default insert_values
    bench/.venvs/dlt/bin/python bench/bench_dlt.py dicts_parquet   # dicts, Parquet loader files
    bench/.venvs/dlt/bin/python bench/bench_dlt.py arrow           # one Arrow table per partition

One resource walks the 8 partitions in order. The timed region is extract + normalize + load
(each phase marked); creating the pipeline object is not timed. Telemetry is off and the
pipelines folder lives in the run's folder, so nothing is written to ~/.dlt.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt
import duckdb
import pyarrow as pa
from common import (
    PARTS,
    Timer,
    all_records,
    check,
    cleanup,
    partition_columns,
    peak_rss_mb,
    report,
    warm_up,
    work_dir,
)

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("value", pa.float64())])
VARIANTS = ("dicts", "dicts_parquet", "arrow")


def arrow_tables():
    for part in range(PARTS):
        yield pa.table(partition_columns(part), schema=SCHEMA)


def main(variant: str) -> None:
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    warm_up()
    work = work_dir(f"dlt_{variant}")
    database = str(work / "peer.duckdb")
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{variant}",
        pipelines_dir=str(work / "pipelines"),
        destination=dlt.destinations.duckdb(database),
        dataset_name="bench",
    )
    data = arrow_tables if variant == "arrow" else all_records
    resource = dlt.resource(data, name="rows", write_disposition="replace")
    options = {"loader_file_format": "parquet"} if variant == "dicts_parquet" else {}

    timer = Timer()
    pipeline.extract(resource, **options)
    timer.mark("extract_s")
    pipeline.normalize()
    timer.mark("normalize_s")
    info = pipeline.load()
    seconds = timer.mark("load_s")
    peak = peak_rss_mb()
    formats = sorted(
        {
            job.job_file_info.file_format
            for package in info.load_packages
            for job in package.jobs["completed_jobs"]
            if not job.job_file_info.table_name.startswith("_dlt")
        }
    )

    with duckdb.connect(database, read_only=True) as con:
        rows, id_sum = con.execute("SELECT count(*), sum(id) FROM bench.rows").fetchone()
    check(rows, int(id_sum))
    cleanup(work)
    report(
        f"dlt_{variant}",
        seconds,
        peak,
        phases_cumulative_s=timer.marks,
        loader_file_formats=formats,
        dlt=dlt.__version__,
        duckdb=duckdb.__version__,
        pyarrow=pa.__version__,
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dicts_parquet")
