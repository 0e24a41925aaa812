"""The public attack corpus, one test per entry, through the real sandbox.

`sandbox_attacks.json` is a copy of the research corpus (shared/research/sandbox_attacks.json,
public research data for this project) so that a clean clone runs it. Each entry gives a
statement, its set-up (input rows, output schema, processing type, checkpoint) and the verdict
Headwater must reach; some give the rows. For every entry, whatever the verdict, the result must
hold no evidence of an escape and no file the statement names may appear on the host; a rejection
must name the user's line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater.processor import ProcessorSettings, run_statement

CORPUS: list[dict[str, Any]] = json.loads(
    Path(__file__).with_name("sandbox_attacks.json").read_text()
)
VERDICTS = {"reject": "rejected", "fail": "failed", "ok": "ok"}

# Tighter than the defaults so the runaway entries (busy loops, sleeping "forever") end in
# seconds; the heaviest legitimate entries (200 000 log calls, importing matplotlib) use well under
# a second of CPU. The limits still have to be hit, which is what those entries test.
SETTINGS = ProcessorSettings(timeout_s=6, cpu_s=3)

# The prototype's reason for each rejection names its line ("line 4: ...", "Line 1: ...",
# "(line 1)"). For the NUL-byte entry Python gives no line (None); the byte is on line 1.
LINE_OVERRIDES = {"nul_byte": 1}
QUOTED_ABSOLUTE_PATH = re.compile(r"""['"](/[^'"\s]+)['"]""")


def expected_line(entry: dict[str, Any]) -> int:
    if entry["id"] in LINE_OVERRIDES:
        return LINE_OVERRIDES[entry["id"]]
    match = re.search(r"(?i)\bline (\d+)", entry["observed_full_reason"])
    assert match, f"corpus entry {entry['id']} gives no line for its rejection"
    return int(match.group(1))


def test_the_corpus_is_the_public_one() -> None:
    ids = [entry["id"] for entry in CORPUS]
    assert len(ids) == 94
    assert len(set(ids)) == len(ids)
    assert {entry["expected"] for entry in CORPUS} == set(VERDICTS)


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["id"] for entry in CORPUS])
def test_corpus_entry(entry: dict[str, Any], contained: Callable[..., None]) -> None:
    setup = entry["setup"]
    # Absolute paths the statement names and the host does not have must still be absent after.
    absent = [p for p in QUOTED_ABSOLUTE_PATH.findall(entry["code"]) if not os.path.lexists(p)]

    result = run_statement(
        entry["code"],
        setup["output_schema"],
        setup["input"],
        processing=setup["processing"],
        checkpoint=setup["data_checkpoint"],
        settings=SETTINGS,
    )

    assert result.verdict == VERDICTS[entry["expected"]], (entry["why"], result.error)
    if result.verdict == "ok":
        if "expect_rows" in entry:
            assert result.rows == entry["expect_rows"]
        assert result.error is None
    else:
        assert result.rows == []
        assert result.error, "a run that is not ok must say why"
        assert result.checkpoint == setup["data_checkpoint"]
        assert result.checkpoint_changed is False
    if result.verdict == "rejected":
        line = expected_line(entry)
        assert re.search(rf"(?i)\bline {line}\b", result.error), result.error
    contained(result)
    for path in absent:
        assert not os.path.lexists(path), f"the statement created {path} on the host"
