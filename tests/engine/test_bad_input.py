"""Bad connector definitions and bad listings (issue 2): each gets an error naming the
component, the function and what to do, and no committed partition is harmed.

Every test first commits a good version of component "c" (partitions a and b), then runs a bad
version into the same component and checks the committed partitions, files and rows are exactly
as they were. Per-partition read failures are in test_bad_reads.py.
"""

from __future__ import annotations

import importlib.util
import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater import Workspace
from headwater.catalog import PartitionRecord
from headwater.errors import ConnectorLoadError

GOOD = """
def list_objects(context, metadata):
    yield {"name": "a", "fingerprint": "1", "is_prefix": False}
    yield {"name": "b", "fingerprint": "1", "is_prefix": False}

def read_records(context, metadata):
    yield {"part": metadata["name"], "x": 1}
    yield {"part": metadata["name"], "x": 2}
"""

READ = """
def read_records(context, metadata):
    yield {"part": metadata["name"], "x": 3}
"""


@dataclass(frozen=True)
class Snapshot:
    """Everything a bad run must leave alone."""

    partitions: list[PartitionRecord]
    data: pa.Table
    runs: int


def snapshot(ws: Workspace) -> Snapshot:
    return Snapshot(ws.partitions("c"), ws.read_arrow("c"), len(ws.runs("c")))


def parquet_files(ws: Workspace) -> set[str]:
    """The component's Parquet files on disk, relative to the store root."""
    root = Path(ws.store.root)
    folder = root / ws.catalog.component("c").id
    return {p.relative_to(root).as_posix() for p in folder.rglob("*.parquet")}


def assert_untouched(ws: Workspace, before: Snapshot) -> None:
    after = snapshot(ws)
    assert [(p.name, p.fingerprint) for p in after.partitions] == [("a", "1"), ("b", "1")]
    assert after.partitions == before.partitions  # files, row counts, run ids, commit times
    assert after.data.equals(before.data)
    assert sorted(after.data.column("x").to_pylist()) == [1, 1, 2, 2]
    assert parquet_files(ws) == {f for p in before.partitions for f in p.files}


@pytest.fixture
def committed(workspace: Workspace, write_connector: Callable[..., Path]) -> Snapshot:
    """Component "c" with partitions a and b committed by the good connector."""
    result = workspace.refresh(write_connector(GOOD, "good"), component="c")
    assert (result.status, result.landed) == ("succeeded", 2)
    return snapshot(workspace)


def lister(body: str, extra: str = "") -> str:
    """A connector whose list_objects runs `body`, with a working read_records."""
    indented = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    return f"{extra}\ndef list_objects(context, metadata):\n{indented}\n{READ}"


# -- definition problems: ConnectorLoadError before anything is touched --------------------------

LIST = lister('yield {"name": "a", "fingerprint": "2"}')
ONLY_LIST = LIST.replace(READ, "")

LOAD_CASES = [
    # (connector code, function named in the error's location, substrings, setting changes)
    pytest.param(
        READ,
        None,
        ["defines no list_objects function", "fix: add `def list_objects(context, metadata):`"],
        {},
        id="no-list_objects",
    ),
    pytest.param(
        ONLY_LIST,
        None,
        ["defines no read function", "fix: add exactly one of", "read_records(context, metadata)"],
        {},
        id="no-read-function",
    ),
    pytest.param(
        LIST + "\ndef read_arrow(context, metadata):\n    return None\n",
        None,
        ["defines 2 read functions", "read_arrow", "read_records", "fix: keep exactly one"],
        {},
        id="two-read-functions",
    ),
    pytest.param(
        "def list_objects(context):\n    yield {}\n" + READ,
        "list_objects",
        [
            "list_objects(context) cannot be called as list_objects(context, metadata)",
            "fix: define it as `def list_objects(context, metadata):`",
        ],
        {},
        id="list_objects-one-parameter",
    ),
    pytest.param(
        "list_objects = [{'name': 'a', 'fingerprint': '1'}]\n" + READ,
        "list_objects",
        ["list_objects is a list, not a function", "fix: define it as `def list_objects("],
        {},
        id="list_objects-not-callable",
    ),
    pytest.param(
        ONLY_LIST + "\ndef read_records(metadata):\n    yield {}\n",
        "read_records",
        ["read_records(metadata) cannot be called", "def read_records(context, metadata):"],
        {},
        id="read-missing-parameter",
    ),
    pytest.param(
        ONLY_LIST + "\ndef read_arrow(context, metadata, limit):\n    return None\n",
        "read_arrow",
        ["read_arrow(context, metadata, limit) cannot be called", "def read_arrow(context"],
        {},
        id="read-extra-parameter",
    ),
    pytest.param(
        ONLY_LIST + "\ndef read_records(context, metadata, *, page):\n    yield {}\n",
        "read_records",
        ["read_records(context, metadata, *, page) cannot be called"],
        {},
        id="read-keyword-only-parameter",
    ),
    pytest.param(
        "def context():\n    return None\n" + LIST,
        "context",
        ["context() cannot be called as context(credentials)", "def context(credentials):"],
        {},
        id="context-no-parameter",
    ),
    pytest.param(
        "context = 'a token'\n" + LIST,
        "context",
        ["context is a str, not a function", "def context(credentials):"],
        {},
        id="context-not-callable",
    ),
    pytest.param(
        LIST + "\ndef infer_schema(context):\n    return {}\n",
        "infer_schema",
        ["infer_schema(context) cannot be called", "def infer_schema(context, metadata):"],
        {},
        id="infer_schema-one-parameter",
    ),
    pytest.param(
        ONLY_LIST
        + "\ndef read_bytes(context, metadata):\n    yield b''\n"
        + "\ndef parser_function(reader):\n    pass\n",
        "parser_function",
        ["parser_function(reader) cannot be called", "def parser_function(reader, on_next):"],
        {},
        id="parser_function-one-parameter",
    ),
    pytest.param(
        ONLY_LIST + "\ndef read_bytes(context, metadata):\n    yield b'x\\n1\\n'\n",
        "read_bytes",
        ["no parser is chosen", "fix: set the parser setting to csv", "parser_function"],
        {},
        id="read_bytes-without-parser",
    ),
    pytest.param(
        ONLY_LIST
        + "\ndef read_bytes(context, metadata):\n    yield b''\n"
        + "\ndef parser_function(reader, on_next):\n    pass\n",
        "parser_function",
        ["parser setting is 'csv'; only one can parse", "fix: remove the parser setting"],
        {"parser": "csv"},
        id="parser_function-and-parser-setting",
    ),
    pytest.param(
        LIST + "\ndef parser_function(reader, on_next):\n    pass\n",
        None,
        ["parser_function is only used with read_bytes", "read_records", "fix: remove"],
        {},
        id="parser_function-without-read_bytes",
    ),
    pytest.param(
        "import os\n\ndef list_objects(context, metadata)\n    yield {}\n" + READ,
        "<module>",
        ["bad.py at line 3", "fix: fix the Python syntax"],
        {},
        id="syntax-error",
    ),
    pytest.param(
        "raise RuntimeError('no network at import time')\n" + LIST,
        "<module>",
        ["raised RuntimeError: no network at import time"],
        {},
        id="module-code-raises",
    ),
    pytest.param(
        "import headwater_test_no_such_module\n" + LIST,
        "<module>",
        ["ModuleNotFoundError", "headwater_test_no_such_module"],
        {},
        id="module-imports-missing-package",
    ),
]


def unmarked(cases: list[Any]) -> list[Any]:
    """The cases without their xfail marks: a message bug must not hide harm done."""
    return [pytest.param(*case.values, id=case.id) for case in cases]


def refresh_bad(ws: Workspace, write: Callable[..., Path], code: str, **changes: Any) -> Any:
    return ws.refresh(write(code, "bad"), component="c", **changes)


@pytest.mark.parametrize(("code", "function", "expected", "changes"), LOAD_CASES)
def test_load_error_names_component_function_and_fix(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: Snapshot,
    code: str,
    function: str | None,
    expected: list[str],
    changes: dict[str, Any],
) -> None:
    with pytest.raises(ConnectorLoadError) as caught:
        refresh_bad(workspace, write_connector, code, **changes)
    error = caught.value
    text = str(error)
    for part in expected:
        assert part in text
    assert error.where.function == function
    if function is not None:
        assert f"{function}()" in text
    assert error.where.component == "c"
    assert text.startswith("component 'c'")
    assert "fix: " in text
    assert error.hint


@pytest.mark.parametrize(("code", "function", "expected", "changes"), unmarked(LOAD_CASES))
def test_load_error_touches_nothing(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: Snapshot,
    code: str,
    function: str | None,
    expected: list[str],
    changes: dict[str, Any],
) -> None:
    with pytest.raises(ConnectorLoadError):
        refresh_bad(workspace, write_connector, code, **changes)
    assert_untouched(workspace, committed)
    assert len(workspace.runs("c")) == committed.runs  # not even a run was started
    assert workspace.stored_settings("c").parser is None  # the bad run's settings not stored


def test_load_error_creates_no_component(
    workspace: Workspace, write_connector: Callable[..., Path]
) -> None:
    with pytest.raises(ConnectorLoadError, match="defines no read function"):
        workspace.refresh(write_connector(ONLY_LIST, "bad"), component="fresh")
    assert workspace.components() == []
    assert workspace.runs() == []


def test_syntax_error_names_the_line(
    workspace: Workspace, write_connector: Callable[..., Path]
) -> None:
    code = "import os\n\n\ndef list_objects(context, metadata)\n    yield {}\n" + READ
    with pytest.raises(ConnectorLoadError) as caught:
        workspace.refresh(write_connector(code, "bad"), component="c")
    assert "bad.py at line 4" in str(caught.value)
    assert caught.value.where.function == "<module>"


@pytest.fixture
def no_pyspark(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyspark looks uninstalled, whether or not it is."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name.split(".")[0] == "pyspark" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_read_spark_dataframe_without_pyspark_says_how_to_install(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: Snapshot,
    no_pyspark: None,
) -> None:
    code = ONLY_LIST + "\ndef read_spark_dataframe(spark, context, metadata):\n    return None\n"
    with pytest.raises(ConnectorLoadError) as caught:
        refresh_bad(workspace, write_connector, code)
    text = str(caught.value)
    assert text.startswith("component 'c', read_spark_dataframe(): ")
    assert "needs pyspark, which is not installed" in text
    assert "fix: install the Spark extra: pip install 'headwater[spark]'" in text
    assert "read_arrow" in text  # and the alternatives that need no Spark
    assert_untouched(workspace, committed)


def test_the_spark_extra_in_the_install_hint_exists() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("pyspark") for dep in extras.get("spark", []))


# -- context and listing problems: the run fails before planning ---------------------------------

RAISES_IN_CONTEXT = "def context(credentials):\n    raise ConnectionError('login refused')\n"
CYCLE = """
if metadata is None:
    yield {"name": "a", "fingerprint": "2"}
    yield {"name": "p", "is_prefix": True}
else:
    yield {"name": "p", "is_prefix": True}
"""
CYCLE_TWO_LEVELS = """
if metadata is None:
    yield {"name": "a", "fingerprint": "2"}
    yield {"name": "p", "is_prefix": True}
elif metadata["name"] == "p":
    yield {"name": "q", "is_prefix": True}
else:
    yield {"name": "p", "is_prefix": True}
"""
ENDLESS = """
depth = 0 if metadata is None else metadata["depth"] + 1
yield {"name": f"p{depth}", "is_prefix": True, "depth": depth}
"""
DUPLICATE_UNDER_PREFIX = """
if metadata is None:
    yield {"name": "a", "fingerprint": "2"}
    yield {"name": "p", "is_prefix": True}
else:
    yield {"name": "a", "fingerprint": "2"}
"""
NOT_A_DICT_UNDER_PREFIX = """
if metadata is None:
    yield {"name": "p", "is_prefix": True}
else:
    yield ("a", "2")
"""


def after_a(line: str) -> str:
    """A listing that yields a good object 'a' (changed), then `line`, then 'b'."""
    return lister(
        f'yield {{"name": "a", "fingerprint": "2"}}\n{line}\n'
        'yield {"name": "b", "fingerprint": "2"}'
    )


RUN_CASES = [
    # (connector code, function, substrings in the error, whether it carries a fix)
    pytest.param(
        lister('yield {"name": "a", "fingerprint": "2"}', RAISES_IN_CONTEXT),
        "context",
        ["raised ConnectionError: login refused"],
        False,
        id="context-raises",
    ),
    pytest.param(
        lister("raise TimeoutError('listing timed out')\nyield {}"),
        "list_objects",
        ["raised TimeoutError: listing timed out"],
        False,
        id="list_objects-raises",
    ),
    pytest.param(
        lister('yield {"name": "a", "fingerprint": "2"}\nraise TimeoutError("page 2 timed out")'),
        "list_objects",
        ["raised TimeoutError: page 2 timed out"],
        False,
        id="list_objects-raises-after-first-page",
    ),
    pytest.param(
        lister('return [{"name": "a", "fingerprint": "2"}]'),
        "list_objects",
        ["returned a list at the root, not a generator", "fix: yield each object"],
        True,
        id="list_objects-returns-list",
    ),
    pytest.param(
        lister("return None"),
        "list_objects",
        ["returned a NoneType at the root, not a generator", "fix: yield each object"],
        True,
        id="list_objects-returns-none",
    ),
    pytest.param(
        after_a('yield "b.csv"'),
        "list_objects",
        ["item 1 at the root is a str, not a dict", 'fix: yield {"name": "...", "fingerprint"'],
        True,
        id="item-not-a-dict",
    ),
    pytest.param(
        lister(NOT_A_DICT_UNDER_PREFIX),
        "list_objects",
        ["item 0 under prefix 'p' is a tuple, not a dict", "fix: yield {"],
        True,
        id="item-not-a-dict-under-prefix",
    ),
    pytest.param(
        after_a('yield {"fingerprint": "1"}'),
        "list_objects",
        ["item 1 at the root has no 'name'", "non-empty string name", "fix: yield {"],
        True,
        id="name-missing",
    ),
    pytest.param(
        after_a('yield {"name": "", "fingerprint": "1"}'),
        "list_objects",
        ["item 1 at the root has name='' (str)", "non-empty string name"],
        True,
        id="name-empty",
    ),
    pytest.param(
        after_a('yield {"name": 7, "fingerprint": "1"}'),
        "list_objects",
        ["item 1 at the root has name=7 (int)", "non-empty string name"],
        True,
        id="name-not-a-string",
    ),
    pytest.param(
        after_a('yield {"name": "c"}'),
        "list_objects",
        ["object 'c' (item 1 at the root) has no 'fingerprint'", "fix: use anything that changes"],
        True,
        id="fingerprint-missing",
    ),
    pytest.param(
        after_a('yield {"name": "c", "fingerprint": ""}'),
        "list_objects",
        ["object 'c' (item 1 at the root) has fingerprint='' (str)", "non-empty string"],
        True,
        id="fingerprint-empty",
    ),
    pytest.param(
        after_a('yield {"name": "c", "fingerprint": 1712000000}'),
        "list_objects",
        ["object 'c' (item 1 at the root) has fingerprint=1712000000 (int)", "str(mtime)"],
        True,
        id="fingerprint-not-a-string",
    ),
    pytest.param(
        after_a('yield {"name": "c", "fingerprint": "1", "is_prefix": "false"}'),
        "list_objects",
        ["object 'c' (item 1 at the root) has is_prefix='false'; it must be", "fix: use a bool"],
        True,
        id="is_prefix-a-string",
    ),
    pytest.param(
        after_a('yield {"name": "c", "fingerprint": "1", "is_prefix": 0}'),
        "list_objects",
        ["object 'c' (item 1 at the root) has is_prefix=0", "fix: use a bool"],
        True,
        id="is_prefix-an-int",
    ),
    pytest.param(
        after_a('yield {"name": "a", "fingerprint": "3"}'),
        "list_objects",
        ["name 'a' was listed twice at the root;", "fix: make names unique"],
        True,
        id="duplicate-names",
    ),
    pytest.param(
        lister(DUPLICATE_UNDER_PREFIX),
        "list_objects",
        ["name 'a' was listed twice (at the root and under prefix 'p')", "fix: make names"],
        True,
        id="duplicate-names-across-prefixes",
    ),
    pytest.param(
        lister(CYCLE),
        "list_objects",
        ["prefix 'p' lists itself again (cycle: p -> p)", "fix: a prefix's children"],
        True,
        id="prefix-lists-itself",
    ),
    pytest.param(
        lister(CYCLE_TWO_LEVELS),
        "list_objects",
        ["prefix 'p' lists itself again (cycle: p -> q -> p)", "fix: "],
        True,
        id="prefix-cycle-through-another",
    ),
    pytest.param(
        lister(ENDLESS),
        "list_objects",
        ["prefixes nest deeper than 256 levels under 'p256'", "fix: check that list_objects"],
        True,
        id="prefixes-never-end",
    ),
]


@pytest.mark.parametrize(("code", "function", "expected", "has_fix"), RUN_CASES)
def test_run_error_names_component_function_and_run(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: Snapshot,
    code: str,
    function: str,
    expected: list[str],
    has_fix: bool,
) -> None:
    result = refresh_bad(workspace, write_connector, code)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith(f"component 'c', {function}(), run {result.run_id}: ")
    for part in expected:
        assert part in result.error
    if has_fix:
        assert "fix: " in result.error
    [failure] = result.failures
    assert (failure.partition, failure.function, failure.attempts) == (None, function, 1)
    assert expected[0] in failure.message
    if has_fix:
        assert "fix: " in failure.message  # `headwater runs --run N` shows the fix too
    # The run's record says the same, for `headwater runs --run N` later.
    assert workspace.run(result.run_id).error == result.error
    assert [f.function for f in workspace.failures(result.run_id)] == [function]


@pytest.mark.parametrize(("code", "function", "expected", "has_fix"), unmarked(RUN_CASES))
def test_run_error_harms_nothing(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: Snapshot,
    code: str,
    function: str,
    expected: list[str],
    has_fix: bool,
) -> None:
    result = refresh_bad(workspace, write_connector, code)
    assert result.status == "failed"
    assert (result.counts, result.landed, result.failed) == ({}, 0, 0)  # nothing was planned
    assert_untouched(workspace, committed)
    assert len(workspace.runs("c")) == committed.runs + 1
    # The good connector, run again, finds nothing to do: the bad run left nothing to repair.
    again = workspace.refresh(write_connector(GOOD, "good"), component="c")
    assert again.ok
    assert again.counts == {"added": 0, "changed": 0, "removed": 0, "unchanged": 2}


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            lister('yield {"name": "a", "fingerprint": "2"}', RAISES_IN_CONTEXT), id="context"
        ),
        pytest.param(lister("raise TimeoutError('listing timed out')\nyield {}"), id="listing"),
    ],
)
def test_raised_exception_in_context_or_listing_says_what_to_do(
    workspace: Workspace, write_connector: Callable[..., Path], committed: Snapshot, code: str
) -> None:
    result = refresh_bad(workspace, write_connector, code)
    assert result.error is not None
    assert "fix: " in result.error


def test_bad_is_prefix_names_the_object(
    workspace: Workspace, write_connector: Callable[..., Path], committed: Snapshot
) -> None:
    code = after_a('yield {"name": "c.csv", "fingerprint": "1", "is_prefix": "no"}')
    result = refresh_bad(workspace, write_connector, code)
    assert result.error is not None
    assert "'c.csv'" in result.error


SECRET = "hunter2-s3cr3t-token"


def test_credential_in_a_context_exception_is_scrubbed(
    workspace: Workspace, write_connector: Callable[..., Path], committed: Snapshot
) -> None:
    context = (
        "def context(credentials):\n"
        "    raise PermissionError(f'token {credentials} was refused by the API')\n"
    )
    result = refresh_bad(
        workspace,
        write_connector,
        lister('yield {"name": "a", "fingerprint": "2"}', context),
        credential=SECRET,
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith(
        f"component 'c', context(), run {result.run_id}: "
        "raised PermissionError: token *** was refused by the API (fix: "
    )
    [failure] = result.failures
    assert failure.message.startswith("raised PermissionError: token *** was refused by the API")
    assert failure.detail is not None
    assert "PermissionError: token *** was refused" in failure.detail
    assert SECRET not in repr(result.to_json())
    assert SECRET not in repr(result)
    stored = workspace.failures(result.run_id)
    assert SECRET not in repr(stored)
    assert "***" in stored[0].message
    assert SECRET not in (workspace.run(result.run_id).error or "")
    assert_untouched(workspace, committed)
