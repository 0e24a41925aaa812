"""Spark is optional: without the extra nothing imports pyspark and no JVM starts, and asking
for the Spark executor without pyspark says how to install it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater import Workspace
from headwater.errors import SettingsError

LOCAL_RUN = """
import sys
from headwater import Workspace

if __name__ == "__main__":  # the process executor's workers import this module
    with Workspace(home=sys.argv[1]) as ws:
        for executor in ("thread", "process"):
            ws.refresh(sys.argv[2], component=executor, executor=executor).raise_for_status()
        assert ws.query("SELECT count(*) AS n FROM process").to_pylist() == [{"n": 2}]
    print(sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "py4j")))
"""


def test_local_executors_never_import_pyspark(
    tmp_path: Path, write_connector: Callable[..., Path]
) -> None:
    path = write_connector("""
        def list_objects(context, metadata):
            yield {"name": "a", "fingerprint": "1", "is_prefix": False}
            yield {"name": "b", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"x": 1}
    """)
    script = tmp_path / "local_run.py"
    script.write_text(LOCAL_RUN)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "home"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # no pyspark, no py4j: so no JVM either


@pytest.fixture
def no_pyspark(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyspark looks uninstalled, whether or not it is."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name.split(".")[0] == "pyspark" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_the_spark_executor_without_pyspark_says_how_to_install(
    workspace: Workspace, write_connector: Callable[..., Path], no_pyspark: None
) -> None:
    path = write_connector(
        textwrap.dedent("""
        def list_objects(context, metadata):
            yield {"name": "a", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"x": 1}
        """)
    )
    with pytest.raises(SettingsError) as caught:
        workspace.refresh(path, executor="spark")
    assert "pip install 'headwater[spark]'" in str(caught.value)
    assert workspace.components() == []  # refused before anything was touched
