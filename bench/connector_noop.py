"""Headwater connector for the no-op benchmark: 10,000 partitions of one row each."""

PARTITIONS = 10_000


def list_objects(context, metadata):
    for part in range(PARTITIONS):
        yield {"name": f"part_{part:05d}", "fingerprint": "v1", "is_prefix": False, "part": part}


def read_records(context, metadata):
    part = metadata["part"]
    yield {"id": part, "name": f"name_{part}", "value": part * 0.5}
