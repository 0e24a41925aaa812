"""Pathway's custom Python connector tutorial, on Headwater: a subject that turns cats.jsonl
into a stream, upserted by its `key` and written as a change stream (CSV and JSON Lines).

    python examples/streams/cats/cats.py              # prints the change stream (temp folder)
    python examples/streams/cats/cats.py out/         # also keeps out/output.csv, output.jsonl
    python examples/streams/cats/cats.py --delay 0    # no pause between lines

The code is the tutorial's, with `import pathway as pw` replaced by `from headwater import
stream` and `pw.io.python.` / `pw.` by `stream.`. Beyond that (each marked "added" below):
cats.jsonl is found next to this file, the pause between lines can be changed, a line with
`"deleted": true` removes a cat, and each line is committed on its own, so every run prints the
same changes, however short the pause: the tutorial's three cats, an update (-1 old, +1 new at
the same time) and a delete (-1).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from headwater import stream

CATS = Path(__file__).parent / "cats.jsonl"  # added: the tutorial opens "cats.jsonl" in the cwd


class FileStreamSubject(stream.ConnectorSubject):
    def __init__(self, delay: float = 1.0) -> None:
        super().__init__()
        self.delay = delay  # added: the tutorial sleeps one second per line

    def run(self):
        with open(CATS) as file:
            for line in file:
                data = json.loads(line)
                if data.pop("deleted", False):  # added: a line can remove a cat by its key
                    self.delete(**data)
                else:
                    self.next(**data)
                self.commit()  # added: one micro-batch per line: the same output every run
                time.sleep(self.delay)


class InputSchema(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    genus: str
    epithet: str


def write_and_run(output: Path, delay: float) -> None:
    table = stream.read(
        FileStreamSubject(delay),
        schema=InputSchema,
    )

    stream.write_csv(table, output / "output.csv")
    stream.write_jsonlines(table, output / "output.jsonl")

    stream.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", type=Path, help="folder to keep the output in")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds between lines")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        output = args.output or Path(temporary)
        write_and_run(output, args.delay)
        sys.stdout.write((output / "output.csv").read_text())
    if args.output:
        print(f"wrote {args.output / 'output.csv'} and {args.output / 'output.jsonl'}")


if __name__ == "__main__":
    main()
