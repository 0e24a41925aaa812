"""Memory is bounded by the partitions in flight, not by the size of the dataset.

Each run happens in a fresh process so that Arrow's memory pool starts empty; its peak counts
every Arrow buffer the refresh held at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROWS_PER_PARTITION = 250_000
PARTITION_BYTES = ROWS_PER_PARTITION * 16  # two 8-byte columns
CONCURRENCY = 2

CONNECTOR = f"""
import os
import pyarrow as pa
import pyarrow.compute as pc

def list_objects(context, metadata):
    for p in range(int(os.environ["PARTS"])):
        yield {{"name": f"p{{p:03d}}", "fingerprint": "1", "is_prefix": False, "p": p}}

def read_arrow(context, metadata):
    base = metadata["p"] * {ROWS_PER_PARTITION}
    for start in range(0, {ROWS_PER_PARTITION}, 25_000):
        ids = pa.array(range(base + start, base + start + 25_000), pa.int64())
        yield pa.record_batch({{"id": ids, "value": pc.multiply(ids, 0.5)}})
"""

MEASURE = """
import json, sys
import pyarrow as pa
from headwater import Workspace
with Workspace(home=sys.argv[2]) as ws:
    result = ws.refresh(sys.argv[1], concurrency=int(sys.argv[3])).raise_for_status()
print(json.dumps({"rows": result.rows, "peak": pa.default_memory_pool().max_memory()}))
"""


def peak_arrow_bytes(tmp_path: Path, parts: int) -> int:
    connector = tmp_path / "conn.py"
    connector.write_text(textwrap.dedent(CONNECTOR))
    home = tmp_path / f"home{parts}"
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(connector), str(home), str(CONCURRENCY)],
        env={**os.environ, "PARTS": str(parts)},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["rows"] == parts * ROWS_PER_PARTITION
    return int(report["peak"])


def test_peak_memory_does_not_grow_with_the_dataset(tmp_path: Path) -> None:
    small = peak_arrow_bytes(tmp_path, 4)
    large = peak_arrow_bytes(tmp_path, 32)  # 8x the data: 128 MB of Arrow buffers in all
    in_flight = CONCURRENCY * PARTITION_BYTES
    assert large < in_flight, f"peak {large:,} B is more than {CONCURRENCY} whole partitions"
    assert large < 1.5 * small, f"peak grew with the dataset: {small:,} B -> {large:,} B"
