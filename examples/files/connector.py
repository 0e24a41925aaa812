"""A connector over a folder of CSV files: one partition per file, subfolders as prefixes.

It reads the `data/` folder next to this file, so the example works wherever it is copied.
Run it from the repository root (with the virtualenv active, or after `make demo`):

    headwater run examples/files/connector.py --parser csv
    headwater query "SELECT customer, sum(amount) AS total FROM connector GROUP BY 1 ORDER BY 2"
    headwater partitions connector

Run it again and nothing is read: every file's fingerprint is the same. Change, add or delete a
CSV file under `data/` and the next run reads just that file (or drops its partition).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
CHUNK_BYTES = 1 << 20  # read_bytes streams a file in chunks; it never holds a whole file


def context(credentials: str | None) -> dict[str, Any]:
    # Called once per run. A real connector opens its client here; this one needs only a folder.
    return {"root": DATA}


def list_objects(
    context: dict[str, Any], metadata: dict[str, Any] | None
) -> Iterator[dict[str, Any]]:
    # The root call gets metadata=None; each prefix yielded below is listed again with its dict.
    root: Path = context["root"]
    folder = root if metadata is None else root / metadata["name"]
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue  # .DS_Store and friends
        name = path.relative_to(root).as_posix()  # e.g. "2026/sales_01.csv": unique in the tree
        if path.is_dir():
            # A prefix is listed, never read, so it needs no fingerprint.
            yield {"name": name, "fingerprint": "", "is_prefix": True}
        elif path.suffix == ".csv":
            stat = path.stat()
            # The size too: a quick append can land within the same mtime tick on some filesystems.
            yield {
                "name": name,
                "fingerprint": f"{stat.st_mtime_ns}-{stat.st_size}",
                "is_prefix": False,
            }


def read_bytes(context: dict[str, Any], metadata: dict[str, Any]) -> Iterator[bytes]:
    # The bytes are parsed by the parser the run names (--parser csv).
    with open(context["root"] / metadata["name"], "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk
