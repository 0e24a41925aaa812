"""run_statement end to end, through the real sandbox: semantics, checkpoint, debug, limits."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from headwater.processor import ProcessorResult, ProcessorSettings, run_statement
from headwater.processor.errors import ProcessorConfigError

FAST = ProcessorSettings(timeout_s=5, cpu_s=2)
ROWS = [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}]
ID_NAME = {"id": "int", "name": "string"}


def run(statement: str, schema: Any = None, rows: Any = ROWS, **kwargs: Any) -> ProcessorResult:
    return run_statement(statement, schema or {"out": "string?"}, rows, settings=FAST, **kwargs)


def test_row_by_row_runs_once_per_row_with_fresh_globals() -> None:
    result = run(
        "global previous\n"
        "row = INPUT_DATA[0]\n"
        "seen = len(INPUT_DATA)\n"
        "try:\n    before = previous\nexcept NameError:\n    before = None\n"
        "previous = row['id']\n"
        "return [{'id': row['id'], 'name': f\"{row['name']}:{seen}:{before}\"}]",
        ID_NAME,
    )
    assert result.verdict == "ok", result.error
    assert result.rows == [{"id": 1, "name": "alpha:1:None"}, {"id": 2, "name": "beta:1:None"}]


def test_bulk_runs_once_with_every_row() -> None:
    result = run("return [{'id': len(INPUT_DATA), 'name': 'n'}]", ID_NAME, processing="bulk")
    assert result.rows == [{"id": 2, "name": "n"}]


def test_outputs_are_concatenated_in_input_order_with_many_rows_per_input() -> None:
    result = run("r = INPUT_DATA[0]\nreturn [dict(r), dict(r)]", ID_NAME)
    assert [r["id"] for r in result.rows] == [1, 1, 2, 2]


def test_row_mode_without_input_runs_zero_times() -> None:
    result = run(
        "log.error('never runs')\nreturn []", rows=[], checkpoint=7, checkpoint_column="out"
    )
    assert (result.verdict, result.rows, result.checkpoint, result.checkpoint_changed) == (
        "ok",
        [],
        7,
        False,
    )
    assert run("return [{'out': str(INPUT_DATA)}]", rows=[], processing="bulk").rows == [
        {"out": "[]"}
    ]


def test_checkpoint_is_the_last_rows_value_after_a_successful_run() -> None:
    statement = (
        "start = DATA_CHECKPOINT or 0\n"
        "return [{'id': i, 'name': 'n'} for i in range(start + 1, start + 4)]"
    )
    first = run(statement, ID_NAME, processing="bulk", checkpoint_column="id")
    assert (first.checkpoint, first.checkpoint_changed) == (3, True)
    second = run(statement, ID_NAME, processing="bulk", checkpoint=3, checkpoint_column="id")
    assert [r["id"] for r in second.rows] == [4, 5, 6] and second.checkpoint == 6


def test_checkpoint_is_kept_on_failure_empty_output_and_in_debug() -> None:
    kept = {"last": "2024-01-01"}
    failed = run("log.error('no')\nreturn [{'out': 'x'}]", checkpoint=kept, checkpoint_column="out")
    empty = run("return []", checkpoint=kept, checkpoint_column="out")
    assert failed.checkpoint == kept and not failed.checkpoint_changed
    assert empty.checkpoint == kept and not empty.checkpoint_changed
    debug = run("return [{'out': 'x'}]", checkpoint=kept, checkpoint_column="out", debug=True)
    assert debug.checkpoint == "x" and not debug.checkpoint_changed  # reported, not persisted


def test_container_checkpoints_are_fresh_for_every_row() -> None:
    result = run(
        "DATA_CHECKPOINT['n'] += 1\nreturn [{'out': str(DATA_CHECKPOINT['n'])}]",
        checkpoint={"n": 0},
    )
    assert [r["out"] for r in result.rows] == ["1", "1"]


def test_a_checkpoint_column_outside_the_schema_is_refused_before_running() -> None:
    with pytest.raises(ProcessorConfigError, match="'nope' is not a column"):
        run("return []", checkpoint_column="nope")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"processing": "batch"}, "processing must be 'row' or 'bulk'"),
        ({"rows": [[1, 2]]}, "input row 1 is a list"),
        ({"rows": [{"when": object()}]}, "input row 1 cannot be handed"),
        ({"checkpoint": object()}, "the checkpoint is not a JSON value"),
    ],
)
def test_unusable_arguments_are_refused(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ProcessorConfigError, match=expected):
        run("return []", **kwargs)


def test_log_levels_print_and_log_error() -> None:
    result = run(
        "log.trace('t')\nlog.debug('d')\nlog.info('i')\nlog.warn('w')\nprint('p', 1, sep='-')\n"
        "return [{'out': 'x'}]",
        processing="bulk",
    )
    assert result.verdict == "ok"
    assert result.logs == [
        {"level": "trace", "message": "t"},
        {"level": "debug", "message": "d"},
        {"level": "info", "message": "i"},
        {"level": "warn", "message": "w"},
        {"level": "debug", "message": "p-1"},
    ]
    failed = run("log.error('upstream refused')\nreturn [{'out': 'x'}]", processing="bulk")
    assert failed.verdict == "failed" and failed.rows == []
    assert failed.error == "the statement called log.error: upstream refused"


def test_log_floods_are_capped_and_counted() -> None:
    result = run("for i in range(5000):\n    log.info(i)\nreturn []", processing="bulk")
    assert (len(result.logs), result.dropped_logs) == (1000, 4000)


def test_errors_name_the_line_and_input_row() -> None:
    result = run('text = """a\nb"""\nrow = INPUT_DATA[0]\nx = 1 / (row["id"] - 2)\nreturn []')
    assert result.error == "ZeroDivisionError at line 4 (input row 2): division by zero"
    assert result.traceback is None  # only debug runs carry a traceback


def test_debug_shows_rows_problems_and_a_traceback_of_statement_frames() -> None:
    bad = run(
        "return [{'id': i, 'name': i} for i in range(30)]",
        ID_NAME,
        processing="bulk",
        debug=True,
    )
    assert bad.verdict == "failed" and len(bad.rows) == 20 and len(bad.problems) == 30
    assert bad.error is not None and bad.error.endswith("(and 29 more problems)")
    raised = run(
        "def helper(n):\n    return 1 / n\nrows = []\nrows.append({'out': 'x'})\n"
        "return [{'out': str(helper(0))}]",
        processing="bulk",
        debug=True,
    )
    assert raised.traceback == (
        "Traceback (most recent call last; statement frames only):\n"
        "  line 5, in <statement>\n"
        "    return [{'out': str(helper(0))}]\n"
        "  line 2, in helper\n"
        "    return 1 / n\n"
        "ZeroDivisionError: division by zero"
    )


def test_debug_shows_rows_of_earlier_inputs_when_a_later_one_fails() -> None:
    result = run(
        "r = INPUT_DATA[0]\nassert r['id'] == 1, 'second row'\nreturn [{'out': r['name']}]",
        debug=True,
    )
    assert result.rows == [{"out": "alpha"}]
    assert result.error == "AssertionError at line 2 (input row 2): second row"


def test_rejections_never_start_a_worker_and_carry_line_numbers() -> None:
    started = time.monotonic()
    result = run("x = 1\nimport os\nreturn []")
    assert time.monotonic() - started < 0.05
    assert result.verdict == "rejected" and result.error is not None
    assert result.error.startswith("line 2: `import os` is not allowed")


def test_sleep_awaits_and_refuses_bad_values() -> None:
    assert run("await sleep(0.01)\nawait sleep(0)\nreturn []").verdict == "ok"
    for value in ("True", "-1", "float('nan')", "float('inf')", "'1'"):
        result = run(f"await sleep({value})\nreturn []", processing="bulk")
        assert result.verdict == "failed" and "sleep()" in (result.error or "")


def test_statements_importing_async_libraries_run_on_asyncio() -> None:
    result = run(
        "import httpx\nasync def twice(x):\n    await sleep(0.01)\n    return x * 2\n"
        "return [{'out': str(await twice(21))}]",
        processing="bulk",
    )
    assert result.rows == [{"out": "42"}], result.error


def test_pandas_round_trip_with_numpy_scalars() -> None:
    result = run(
        "import pandas as pd\ndf = pd.DataFrame(INPUT_DATA)\ndf['id'] = df['id'] * 10\n"
        "return df.to_dict('records')",
        ID_NAME,
        processing="bulk",
    )
    assert result.rows == [{"id": 10, "name": "alpha"}, {"id": 20, "name": "beta"}]


def test_compiler_warnings_reach_the_log_not_the_host() -> None:
    result = run('s = "\\d"\nreturn [{"out": s}]', processing="bulk")
    assert result.rows == [{"out": "\\d"}]
    assert result.logs == [
        {"level": "warn", "message": "line 1: DeprecationWarning: invalid escape sequence '\\d'"}
    ]


def test_limits_end_runaway_statements_with_clear_messages() -> None:
    busy = run("while True:\n    pass", processing="bulk")
    assert busy.error == (
        "the statement exceeded the CPU limit of 2 s at line 1; process less data per run or "
        "make the loop cheaper"
    )
    stuck = run_statement(
        "import time\ntime.sleep(60)\nreturn []",
        {"out": "string"},
        processing="bulk",
        settings=ProcessorSettings(timeout_s=1.5, cpu_s=2),
    )
    assert stuck.error is not None and "wall-clock limit of 1.5 s" in stuck.error
    hungry = run("x = 'a' * (8 * 1024 ** 3)\nreturn []", processing="bulk")
    assert hungry.error is not None and "memory limit of 1536 MB at line 1" in hungry.error


def test_output_caps() -> None:
    small = ProcessorSettings(max_rows=10, max_output_bytes=10_000, timeout_s=5, cpu_s=2)
    many = run_statement(
        "return [{'out': 'x'}] * 11", {"out": "string"}, processing="bulk", settings=small
    )
    assert many.error is not None and "more than 10 rows" in many.error
    big = run_statement(
        "return [{'out': 'x' * 20000}]", {"out": "string"}, processing="bulk", settings=small
    )
    assert big.error is not None and big.error.startswith("output too large")


def test_result_to_json_is_serialisable() -> None:
    payload = run("return [{'out': 'x'}]", processing="bulk").to_json()
    assert set(payload) == {
        "verdict",
        "rows",
        "logs",
        "dropped_logs",
        "checkpoint",
        "checkpoint_changed",
        "error",
        "problems",
        "traceback",
    }
    json.dumps(payload)


def test_ten_thousand_rows_row_by_row_in_one_worker() -> None:
    rows = [{"id": i, "name": f"n{i}"} for i in range(10_000)]
    started = time.monotonic()
    result = run(
        "row = INPUT_DATA[0]\nreturn [{'id': row['id'], 'name': row['name'].upper()}]",
        ID_NAME,
        rows,
        checkpoint_column="id",
    )
    elapsed = time.monotonic() - started
    assert result.verdict == "ok" and len(result.rows) == 10_000 and result.checkpoint == 9999
    assert elapsed < 2.0  # the target is >= 5,000 rows/s; measured ~60,000


def test_library_c_code_can_import_and_open_on_the_statements_behalf() -> None:
    # datetime.strptime imports _strptime, and numpy's tofile opens files, through the calling
    # frame's builtins: the statement's restricted ones.
    result = run(
        "import datetime\nimport numpy as np\n"
        "day = datetime.datetime.strptime('2024-02-03', '%Y-%m-%d')\n"
        "np.arange(3).tofile('/tmp/a.bin')\n"
        "return [{'out': f\"{day.date()} {np.fromfile('/tmp/a.bin', dtype=np.int64)}\"}]",
        processing="bulk",
    )
    assert result.rows == [{"out": "2024-02-03 [0 1 2]"}], result.error


def test_open_is_limited_to_the_private_tmp() -> None:
    ok = run("open('/tmp/x', 'w').write('hi')\nreturn [{'out': open('x').read()}]", rows=[{}])
    assert ok.rows == [{"out": "hi"}]
    for path in ("'/etc/hostname'", "'/tmp/../etc/hostname'", "0"):
        refused = run(f"return [{{'out': open({path}).read()}}]", processing="bulk")
        assert refused.verdict == "failed" and "PermissionError at line 1" in (refused.error or "")


def test_a_worker_the_cpu_limit_stopped_after_the_statement_says_so() -> None:
    """The soft CPU limit's signal may land after the statement returned (while the worker
    writes out its rows): the worker dies of CpuLimitExceeded, and the error says which
    limit, as when it lands inside the statement."""
    from headwater.processor.run import _crash_message
    from headwater.processor.sandbox import WorkerOutcome

    died = WorkerOutcome(
        started=True,
        payload=None,
        exit_code=1,
        timed_out=False,
        too_large=False,
        stderr="Traceback (most recent call last):\nheadwater.processor.failure.CpuLimitExceeded\n",
        elapsed_s=2.5,
    )
    assert _crash_message(died, FAST).startswith(
        "the statement exceeded the CPU limit of 2 s and was killed"
    )
