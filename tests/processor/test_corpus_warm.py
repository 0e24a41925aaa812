"""The attack corpus's allow-list leaks and resource attacks on warm workers.

A warm worker has imported pandas and numpy before its job and waited for it; nothing else may
differ from a cold start. Each entry here runs on a warm worker (the test checks that one took
it) and must reach the corpus's expected verdict with no escape evidence, and then give the same
result, field for field, as a cold run of the same entry.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.processor import (
    ProcessorResult,
    ProcessorSettings,
    run_statement,
    shutdown_warm_workers,
    warm,
)

CORPUS: list[dict[str, Any]] = json.loads(
    Path(__file__).with_name("sandbox_attacks.json").read_text()
)
SUBSET = [entry for entry in CORPUS if entry["category"] in ("allowlist-leak", "resources")]
VERDICTS = {"reject": "rejected", "fail": "failed", "ok": "ok"}
# As in test_corpus.py (tight limits so the runaway entries end in seconds), plus a warm worker.
WARM = ProcessorSettings(timeout_s=6, cpu_s=3, warm_workers=1)
COLD = dataclasses.replace(WARM, warm_workers=0)
QUOTED_ABSOLUTE_PATH = re.compile(r"""['"](/[^'"\s]+)['"]""")
# Entries whose error names whichever limit the machine's speed and load reach first, warm or
# cold alike; for them the error must name a limit, not the same one.
RACES = {
    "output_many_rows": "about 2 s of CPU against cpu_s=3: the row cap or the CPU limit",
    "cpu_swallow_timeout": "the hard CPU limit (4 s of CPU) or the wall clock (6 s)",
    "bigint_power": "one C call: the hard CPU limit or the wall clock",
    "cpu_busy_loop": "the CPU limit, or the wall clock on a machine giving it under half a CPU",
}
LIMIT_ERROR = re.compile(r"exceeded the (CPU|wall-clock) limit|returned more than 100,000 rows")


@pytest.fixture(scope="module")
def pool() -> Iterator[warm.WarmPool]:
    yield warm.pool_for(WARM)
    shutdown_warm_workers()


def run(entry: dict[str, Any], settings: ProcessorSettings) -> ProcessorResult:
    setup = entry["setup"]
    return run_statement(
        entry["code"],
        setup["output_schema"],
        setup["input"],
        processing=setup["processing"],
        checkpoint=setup["data_checkpoint"],
        settings=settings,
    )


def test_the_subset_covers_both_categories() -> None:
    assert len(SUBSET) == 29
    assert {entry["category"] for entry in SUBSET} == {"allowlist-leak", "resources"}


@pytest.mark.parametrize("entry", SUBSET, ids=[entry["id"] for entry in SUBSET])
def test_warm_corpus_entry(
    entry: dict[str, Any], pool: warm.WarmPool, contained: Callable[..., None]
) -> None:
    absent = [p for p in QUOTED_ABSOLUTE_PATH.findall(entry["code"]) if not os.path.lexists(p)]
    assert pool.wait_until_ready(timeout_s=30), "the warm worker did not start"
    served = pool.served

    warmed = run(entry, WARM)

    assert pool.served == served + 1, "a cold worker ran the entry, not the warm one"
    assert warmed.verdict == VERDICTS[entry["expected"]], (entry["why"], warmed.error)
    if warmed.verdict == "ok" and "expect_rows" in entry:
        assert warmed.rows == entry["expect_rows"]
    if warmed.verdict != "ok":
        assert warmed.rows == [] and warmed.error
    contained(warmed)
    for path in absent:
        assert not os.path.lexists(path), f"the statement created {path} on the host"
    cold = run(entry, COLD)
    ignored = ("error",) if entry["id"] in RACES else ()
    if ignored:
        assert LIMIT_ERROR.search(warmed.error or ""), warmed.error
        assert LIMIT_ERROR.search(cold.error or ""), cold.error
    assert {k: v for k, v in warmed.to_json().items() if k not in ignored} == {
        k: v for k, v in cold.to_json().items() if k not in ignored
    }
