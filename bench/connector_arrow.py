"""Headwater connector for the benchmark: 8 partitions, `read_arrow` returning one Table each,
built from Python lists (like dlt's Arrow variant)."""

import common
import pyarrow as pa

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("value", pa.float64())])


def list_objects(context, metadata):
    for part in range(common.PARTS):
        yield {"name": f"part_{part}", "fingerprint": "v1", "is_prefix": False, "part": part}


def read_arrow(context, metadata):
    return pa.table(common.partition_columns(metadata["part"]), schema=SCHEMA)
