"""Layer 1, the static gate, without a sandbox: the seed's rules and the user's line numbers."""

from __future__ import annotations

import pytest

from headwater.processor.gate import GatedStatement, StatementRejected, check_statement
from headwater.processor.settings import DEFAULT_ALLOWED_IMPORTS


def gate(
    source: str, allowed: tuple[str, ...] = DEFAULT_ALLOWED_IMPORTS, max_bytes: int = 4096
) -> GatedStatement:
    return check_statement(source, allowed, max_bytes)


def rejected(source: str, **kwargs: object) -> str:
    with pytest.raises(StatementRejected) as caught:
        gate(source, **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "import string",
        "import pandas as pd",
        "from json import dumps",
        "from xml import etree",
        "import passlib.hash",
        "import jose.backends",
        "from jose import jwt",
        "import matplotlib.pyplot as plt",
    ],
)
def test_the_seeds_allowed_imports_pass(source: str) -> None:
    gate(source + "\nreturn []")


@pytest.mark.parametrize(
    ("source", "fix"),
    [
        ("import os", "remove the import"),
        ("import sys", "remove the import"),
        ("from xml.etree import ElementTree", "from xml import etree"),
        ("import passlib", "import passlib.hash"),
        ("from passlib import hash", "import passlib.hash"),
        ("import jose.jwt", "from jose import jwt"),
    ],
)
def test_imports_follow_the_seeds_literal_rule(source: str, fix: str) -> None:
    message = rejected(f"x = 1\n{source}\nreturn []")
    assert message.startswith("line 2: ") and "not allowed" in message and fix in message


def test_relative_and_star_imports_are_rejected() -> None:
    assert "relative imports" in rejected("from . import x\nreturn []")
    assert "import *" in rejected("from json import *\nreturn []")


def test_a_deployment_can_change_the_allow_list() -> None:
    gate("import re\nreturn []", allowed=("re",))
    assert "'json' is not in the allowed imports (re)" in rejected(
        "import json\nreturn []", allowed=("re",)
    )


@pytest.mark.parametrize(
    "source",
    [
        "number: int = 1\nreturn []",
        "x: int\nreturn []",
        "def f(a: int):\n    return a\nreturn []",
        "def f(*args: int, **kw: str):\n    return 1\nreturn []",
        "def f(a) -> list:\n    return [a]\nreturn []",
        "async def f() -> None:\n    pass\nreturn []",
        "class A:\n    x: int = 0\nreturn []",
    ],
)
def test_every_type_hint_is_rejected(source: str) -> None:
    assert "type hints are not supported" in rejected(source)


def test_problems_are_reported_in_source_order_with_the_users_line_numbers() -> None:
    with pytest.raises(StatementRejected) as caught:
        gate('"""a\ndocstring"""\nimport os\nx: int = 1\nsleep(1)\nreturn []')
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 5"]
    assert str(caught.value).endswith("(and 2 more problems)")


def test_a_bare_sleep_call_and_yield_in_the_body_are_rejected() -> None:
    assert "await sleep" in rejected("sleep(1)\nreturn []")
    assert "yield" in rejected("x = 1\nyield x")
    gate("def gen():\n    yield 1\nreturn [{'n': n} for n in gen()]")  # nested generators are fine


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("return [", "line 1: SyntaxError"),
        ("x = 1\n  y = 2\nreturn []", "line 2: IndentationError"),
        ("x = 1\n\x00\nreturn []", "line 2: the statement contains a NUL byte"),
        ("x = (" * 300 + ")" * 300 + "\nreturn []", "nested"),
        ("def f():\n    await sleep(1)\nreturn []", "line 2: SyntaxError"),
        ("x = __import__('os')", "line 1:"),
        ("exec('1')", "exec"),
        ("g = (i for i in [1])\nf = g.gi_frame", "line 2:"),
        ("match 1:\n    case 1:\n        pass", "match"),
        ("nonlocal x", "nonlocal"),
        ("class A(metaclass=type):\n    pass", "metaclass"),
    ],
)
def test_syntax_and_restricted_python_errors_are_rejected_with_line_numbers(
    source: str, expected: str
) -> None:
    assert expected in rejected(source)


def test_the_size_cap_is_checked_before_parsing() -> None:
    assert "over the limit of 100 bytes" in rejected("x = 1\n" * 50, max_bytes=100)


def test_async_features_and_augmented_assignment_compile() -> None:
    gate(
        "async def f(x):\n    return x\n"
        "class Acc:\n    def __init__(self):\n        self.n = 0\n"
        "a = Acc()\na.n += await f(1)\nd = {'k': 1}\nd['k'] += 1\n"
        "return [{'n': a.n}]"
    )


def test_compiler_warnings_are_recorded_not_raised() -> None:
    # The suite turns warnings into errors; the gate must not let them escape.
    gated = gate('s = "\\d"\nreturn []')
    assert gated.warnings and "line 1: DeprecationWarning" in gated.warnings[0]


def test_imports_are_listed_for_the_worker_to_preload() -> None:
    gated = gate("import pandas as pd\nfrom xml import etree\nreturn []")
    assert gated.imports == (("pandas", ()), ("xml", ("etree",)))
