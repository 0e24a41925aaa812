"""Headwater connector for the benchmark: 8 partitions, `read_records` yielding one dict per row."""

import common


def list_objects(context, metadata):
    for part in range(common.PARTS):
        yield {"name": f"part_{part}", "fingerprint": "v1", "is_prefix": False, "part": part}


def read_records(context, metadata):
    yield from common.partition_records(metadata["part"])
