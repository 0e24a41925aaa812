"""Tail a CSV that a stream is writing and record when each row first becomes visible.

    python poll.py OUT_CSV RESULT_JSON EXPECTED_ROWS READY_FILE

Run as its own process by bench_latency.py, so the engine's threads and this loop do not share
a GIL. It creates READY_FILE once it is polling, then reads whatever has been appended to
OUT_CSV every 0.5 ms. For each complete line it records `time.time()` when it was read minus
the send time the subject put in the `name` column (seconds, by key). It stops when it has seen
EXPECTED_ROWS keys, or 20 s after the file last grew, and writes {key: seconds} to RESULT_JSON.
Standard library only: it runs under either venv's interpreter.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

POLL_S = 0.0005
QUIET_S = 20.0


def poll(out: Path, expected: int) -> dict[int, float]:
    seen: dict[int, float] = {}
    while not out.exists():
        time.sleep(POLL_S)
    key = name = -1
    pending = b""
    last_growth = time.time()
    with out.open("rb") as f:
        while len(seen) < expected:
            chunk = f.read()
            now = time.time()
            if not chunk:
                if now - last_growth > QUIET_S:
                    break
                time.sleep(POLL_S)
                continue
            last_growth = now
            *lines, pending = (pending + chunk).split(b"\n")
            for row in csv.reader(line.decode() for line in lines if line):
                if key < 0:  # the header: both engines write one before the first row
                    key, name = row.index("key"), row.index("name")
                    continue
                seen.setdefault(int(row[key]), now - float(row[name]))
    return seen


def main() -> None:
    out, result, expected, ready = sys.argv[1:5]
    Path(ready).touch()
    seen = poll(Path(out), int(expected))
    Path(result).write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
