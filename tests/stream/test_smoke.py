"""The seed's example, end to end: a subject over cats.jsonl, upserts, a delete, CSV output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from headwater import stream

CATS = [
    {"key": 1, "genus": "otocolobus", "epithet": "manul"},
    {"key": 2, "genus": "felis", "epithet": "catus"},
    {"key": 3, "genus": "lynx", "epithet": "lynx"},
    {"key": 2, "genus": "felis", "epithet": "silvestris"},  # an update
    {"key": 3, "genus": "lynx", "epithet": "lynx"},  # an identical re-send: no change
]


class InputSchema(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    genus: str
    epithet: str


class FileStreamSubject(stream.ConnectorSubject):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def run(self) -> None:
        with open(self.path) as file:
            for line in file:
                self.next(**json.loads(line))
                self.commit()
        self.delete(key=1)


def test_cats_change_stream(tmp_path: Path) -> None:
    source = tmp_path / "cats.jsonl"
    source.write_text("".join(json.dumps(c) + "\n" for c in CATS))
    table = stream.read(FileStreamSubject(source), schema=InputSchema)
    stream.write_csv(table, tmp_path / "output.csv")
    stream.run()
    with open(tmp_path / "output.csv") as f:
        rows = list(csv.DictReader(f))
    changes = [(int(r["key"]), r["epithet"], int(r["diff"])) for r in rows]
    assert changes == [
        (1, "manul", 1),
        (2, "catus", 1),
        (3, "lynx", 1),
        (2, "catus", -1),
        (2, "silvestris", 1),
        (1, "manul", -1),
    ]
    times = [int(r["time"]) for r in rows]
    assert all(t % 2 == 0 for t in times)
    assert times == sorted(times)
    assert times[3] == times[4]  # an update's -1 and +1 share their commit's time
    assert len(set(times)) == 5
