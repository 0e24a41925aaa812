"""The statement contract, continued: print and the log API (levels, order, log.error failing the
run, caps with a count of what was dropped), debug runs (first rows, schema problems, a traceback
of the statement's own frames in the user's line numbers), and failing closed when bubblewrap is
not there.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest

from headwater.processor import (
    ProcessorResult,
    ProcessorSettings,
    SandboxUnavailableError,
    run_statement,
)

LEVELS = {"trace", "debug", "info", "warn", "error"}
ROWS = [{"id": 1}, {"id": 2}, {"id": 3}]


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def ok_rows(result: ProcessorResult) -> list[dict[str, Any]]:
    assert result.verdict == "ok", (result.error, result.problems, result.logs[-5:])
    return result.rows


def messages(result: ProcessorResult) -> list[str]:
    return [entry["message"].rstrip("\n") for entry in result.logs]


# --- print and log ---------------------------------------------------------------------------


def test_print_and_every_log_level_are_kept_in_order() -> None:
    statement = src(
        """
        log.trace('t1')
        print('p1')
        log.debug('d1')
        log.info('i1')
        print('p2', 3)
        log.warn('w1')
        return [{'out': 'x'}]
        """
    )
    result = run_statement(statement, {"out": "string"}, processing="bulk")
    assert ok_rows(result) == [{"out": "x"}]
    assert messages(result) == ["t1", "p1", "d1", "i1", "p2 3", "w1"]
    assert all(set(entry) == {"level", "message"} for entry in result.logs)
    levels = [entry["level"] for entry in result.logs]
    assert [levels[i] for i in (0, 2, 3, 5)] == ["trace", "debug", "info", "warn"]
    assert {levels[1], levels[4]} <= LEVELS - {"error"}  # print is logged, and does not fail
    assert result.dropped_logs == 0


def test_row_mode_logs_follow_the_input_order() -> None:
    statement = "log.info(f\"row {INPUT_DATA[0]['id']}\")\nreturn []"
    result = run_statement(statement, {"out": "string"}, ROWS, processing="row")
    assert ok_rows(result) == []
    assert messages(result) == ["row 1", "row 2", "row 3"]


def test_log_error_fails_the_run_even_with_valid_rows() -> None:
    statement = "log.info('before')\nlog.error('upstream refused')\nreturn [{'out': 'x'}]"
    result = run_statement(statement, {"out": "string"}, processing="bulk")
    assert result.verdict == "failed"
    assert result.rows == []
    assert result.error
    assert {"level": "error", "message": "upstream refused"} in result.logs
    assert {"level": "info", "message": "before"} in result.logs


def test_log_error_in_one_row_fails_the_whole_run() -> None:
    statement = src(
        """
        if INPUT_DATA[0]['id'] == 2:
            log.error('row two is bad')
        return [{'out': str(INPUT_DATA[0]['id'])}]
        """
    )
    result = run_statement(statement, {"out": "string"}, ROWS, processing="row")
    assert result.verdict == "failed"
    assert result.rows == []


def test_logs_written_before_a_failure_are_kept() -> None:
    statement = "log.info('before the failure')\nraise ValueError('boom')"
    result = run_statement(statement, {"out": "string"}, processing="bulk")
    assert result.verdict == "failed"
    assert "before the failure" in messages(result)
    assert "boom" in (result.error or "")


def test_a_log_flood_is_capped_and_counted_in_order() -> None:
    statement = "for i in range(5000):\n    log.info(str(i))\nreturn [{'out': 'done'}]"
    result = run_statement(statement, {"out": "string"}, processing="bulk")
    assert ok_rows(result) == [{"out": "done"}]
    kept = [int(m) for m in messages(result)]
    assert 0 < len(kept) < 5000
    assert len(kept) + result.dropped_logs == 5000
    assert kept == sorted(set(kept))  # order kept, nothing doubled


def test_prints_count_against_the_same_cap() -> None:
    statement = src(
        """
        for i in range(3000):
            print('p', i)
            log.info('l')
        return [{'out': 'done'}]
        """
    )
    result = run_statement(statement, {"out": "string"}, processing="bulk")
    assert ok_rows(result) == [{"out": "done"}]
    assert len(result.logs) + result.dropped_logs == 6000
    assert result.dropped_logs > 0


def test_a_huge_log_message_is_cut_or_dropped() -> None:
    statement = "log.info('x' * 1000000)\nlog.info('after')\nreturn [{'out': 'done'}]"
    result = run_statement(statement, {"out": "string"}, processing="bulk")
    assert ok_rows(result) == [{"out": "done"}]
    assert sum(len(m) for m in messages(result)) < 1_000_000
    assert "after" in messages(result)


def test_a_failing_run_without_debug_still_says_where() -> None:
    result = run_statement("x = 1\nraise KeyError('nope')", {"out": "string"}, processing="bulk")
    assert result.verdict == "failed"
    assert re.search(r"(?i)\bline 2\b", result.error or ""), result.error
    assert "KeyError" in (result.error or "")


# --- debug runs ------------------------------------------------------------------------------

DEBUG_STATEMENT = src(
    '''
    doc = """one
    two"""
    def inner(x):
        return 1 / x
    rows = [{'v': 1}]
    log.info('before')
    inner(0)
    return rows
    '''
)


def test_debug_traceback_has_only_the_statements_frames_in_user_lines() -> None:
    result = run_statement(DEBUG_STATEMENT, {"v": "int"}, processing="bulk", debug=True)
    assert result.verdict == "failed"
    assert "before" in messages(result)
    trace = result.traceback
    assert trace is not None
    assert "ZeroDivisionError" in trace
    assert "inner" in trace
    assert re.search(r"\bline 4\b", trace), trace
    assert re.search(r"\bline 7\b", trace), trace
    statement_lines = DEBUG_STATEMENT.count("\n") + 1
    assert all(int(n) <= statement_lines for n in re.findall(r"\bline (\d+)", trace)), trace
    for internal in ("site-packages", "headwater/", "asyncio", "RestrictedPython", '.py"', "/hw/"):
        assert internal not in trace, f"{internal!r} in the debug traceback:\n{trace}"


def test_debug_returns_the_first_twenty_rows() -> None:
    statement = "return [{'n': i} for i in range(30)]"
    result = run_statement(statement, {"n": "int"}, processing="bulk", debug=True)
    assert ok_rows(result) == [{"n": i} for i in range(20)]


def test_debug_shows_rows_and_schema_problems_of_a_failing_run() -> None:
    statement = "return [{'num': 'bad' if i == 24 else i} for i in range(30)]"
    result = run_statement(statement, {"num": "int"}, processing="bulk", debug=True)
    assert result.verdict == "failed"
    assert result.rows == [{"num": i} for i in range(20)]
    assert any(re.search(r"\brow 25\b", p) and "num" in p for p in result.problems), result.problems


def test_debug_rows_of_a_run_failed_by_log_error() -> None:
    statement = "log.error('no')\nreturn [{'n': 1}, {'n': 2}]"
    result = run_statement(statement, {"n": "int"}, processing="bulk", debug=True)
    assert result.verdict == "failed"
    assert result.rows == [{"n": 1}, {"n": 2}]


def test_debug_runs_pass_the_same_gate() -> None:
    result = run_statement("x = 1\nimport os\nreturn []", {"n": "int"}, debug=True)
    assert result.verdict == "rejected"
    assert re.search(r"(?i)\bline 2\b", result.error or ""), result.error
    assert result.rows == []


# --- failing closed --------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["run", "debug"])
def test_a_missing_bubblewrap_refuses_to_run(debug: bool) -> None:
    missing = "/nonexistent/headwater-test/bwrap"
    settings = ProcessorSettings(bwrap=missing)
    with pytest.raises(SandboxUnavailableError) as caught:
        run_statement("return [{'n': 1}]", {"n": "int"}, debug=debug, settings=settings)
    message = str(caught.value)
    assert missing in message  # why
    assert "bubblewrap" in message.lower() and "install" in message.lower()  # how to fix


@pytest.mark.parametrize("binary", ["/bin/false", "/bin/true"])
def test_a_bubblewrap_that_does_not_sandbox_never_gives_rows(binary: str) -> None:
    settings = ProcessorSettings(bwrap=binary)
    try:
        result = run_statement("return [{'n': 1}]", {"n": "int"}, processing="bulk",
                               settings=settings)  # fmt: skip
    except SandboxUnavailableError as exc:
        assert binary in str(exc) or "bubblewrap" in str(exc).lower()
    else:
        assert result.verdict == "failed"
        assert result.rows == []
