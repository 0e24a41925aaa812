"""A transform's code: SQL over its inputs only (checked before it runs, and locked away from
files inside DuckDB), Python called with Arrow or pandas, and a clear error for each way the
code can be wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from headwater import Workspace
from headwater.errors import SettingsError
from headwater.transforms import sql
from headwater.transforms.component import TransformRun, TransformSpec, run_transform
from headwater.transforms.sql import TransformSqlError

Land = Callable[[Workspace, str, dict[str, list[dict[str, Any]]]], None]

ORDERS = {
    "2024-01": [
        {"id": 1, "customer": 10, "total": 50.0},
        {"id": 2, "customer": 11, "total": 150.0},
    ],
    "2024-02": [{"id": 3, "customer": 10, "total": 300.0}],
}
CUSTOMERS = {"all": [{"customer": 10, "name": "Ada"}, {"customer": 11, "name": "Bo"}]}


@pytest.fixture
def inputs(workspace: Workspace, land: Land) -> Workspace:
    land(workspace, "orders", ORDERS)
    land(workspace, "customers", CUSTOMERS)
    return workspace


def python(ws: Workspace, code: str, names: tuple[str, ...] = ("orders",)) -> TransformRun:
    return run_transform(ws, "out", TransformSpec(names, names, python=code))


def sql_run(ws: Workspace, text: str, names: tuple[str, ...] = ("orders",)) -> TransformRun:
    return run_transform(ws, "out", TransformSpec(names, names, sql=text))


def rows(ws: Workspace, order_by: str = "id") -> list[dict[str, Any]]:
    return ws.read_arrow("out").sort_by(order_by).to_pylist()


def failed_with(run: TransformRun, *parts: str) -> None:
    assert run.status == "failed", run
    assert run.error is not None
    for part in parts:
        assert part in run.error, run.error


# -- SQL ------------------------------------------------------------------------------------


def test_sql_joins_two_inputs_named_by_their_ids(inputs: Workspace) -> None:
    run = sql_run(
        inputs,
        "SELECT name, sum(total) AS spent FROM orders JOIN customers USING (customer) "
        "GROUP BY name",
        ("orders", "customers"),
    )
    assert (run.status, run.rows) == ("succeeded", 2)
    assert rows(inputs, "name") == [{"name": "Ada", "spent": 350.0}, {"name": "Bo", "spent": 150.0}]
    assert len(inputs.catalog.lineage(inputs.catalog.component("out").id)["all"]) == 3


def test_sql_names_can_differ_from_component_names(inputs: Workspace) -> None:
    spec = TransformSpec(
        ("orders",), ("o",), sql="WITH big AS (SELECT * FROM O) SELECT id FROM big"
    )
    assert run_transform(inputs, "out", spec).rows == 3


def test_sql_reading_a_table_that_is_not_an_input_is_refused_before_it_runs(
    inputs: Workspace,
) -> None:
    run = sql_run(inputs, "SELECT * FROM orders JOIN customers USING (customer)")
    failed_with(run, "reads customers, which is not an input", "its inputs are orders")
    assert (run.landed, run.failed, inputs.partitions("out")) == (0, 0, [])
    [failure] = inputs.failures(run.run_id)
    assert failure.partition is None


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM orders, read_parquet('/tmp/x.parquet')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM main.orders",
    ],
)
def test_sql_reading_files_or_other_tables_is_refused(inputs: Workspace, text: str) -> None:
    failed_with(sql_run(inputs, text), "the SQL of transform 'out'")
    assert inputs.partitions("out") == []


def test_sql_that_is_not_one_select_is_refused(inputs: Workspace) -> None:
    failed_with(sql_run(inputs, "DROP TABLE orders"), "only a SELECT statement")
    failed_with(sql_run(inputs, "SELECT 1; SELECT 2"), "holds 2 statements")


def test_the_sql_sandbox_has_no_file_access_and_cannot_be_unlocked(tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    hidden = pa.table({"x": [1]})  # noqa: F841 (DuckDB would find a local variable by name)
    with sql.connect({"orders": pa.table({"id": [1, 2]})}) as con:
        assert con.sql("SELECT sum(id) FROM orders").fetchall() == [(3,)]
        with pytest.raises(duckdb.PermissionException):
            con.sql(f"SELECT * FROM read_csv('{secret}')").fetchall()
        with pytest.raises(duckdb.Error):
            con.sql("SELECT * FROM hidden").fetchall()
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute("SET enable_external_access = true")


def test_sql_failing_as_it_runs_names_component_function_and_partition(
    inputs: Workspace,
) -> None:
    run = sql_run(inputs, "SELECT nope FROM orders")
    failed_with(run, "component 'out', transform(), partition 'all'", "the SQL failed", "nope")
    assert run.failed == 1


def test_sql_result_with_repeated_column_names_is_refused(inputs: Workspace) -> None:
    run = sql_run(
        inputs,
        "SELECT o.customer, c.customer FROM orders o JOIN customers c USING (customer)",
        ("orders", "customers"),
    )
    failed_with(run, "more than one column named 'customer'", "AS other_name")


def test_sql_table_names_ignore_case(inputs: Workspace) -> None:
    assert sql_run(inputs, "SELECT id FROM ORDERS").rows == 3


# -- Python ---------------------------------------------------------------------------------

ARROW_JOIN = """
def transform(orders, customers):
    return orders.join(customers, "customer").select(["id", "name"])
"""

PANDAS = """
from __future__ import annotations

import pandas as pd

def transform(orders: pd.DataFrame, customers) -> pd.DataFrame:
    assert isinstance(orders, pd.DataFrame), type(orders)
    assert not isinstance(customers, pd.DataFrame), type(customers)
    return orders[orders.total > 100][["id", "total"]]
"""


def test_python_gets_arrow_tables_one_per_input(inputs: Workspace) -> None:
    run = python(inputs, ARROW_JOIN, ("orders", "customers"))
    assert (run.status, run.rows) == ("succeeded", 3)
    assert rows(inputs) == [
        {"id": 1, "name": "Ada"},
        {"id": 2, "name": "Bo"},
        {"id": 3, "name": "Ada"},
    ]
    assert inputs.run(run.run_id).executor == "python"


def test_python_gets_pandas_where_annotated(inputs: Workspace) -> None:
    run = python(inputs, PANDAS, ("orders", "customers"))
    assert run.status == "succeeded", run.error
    assert rows(inputs) == [{"id": 2, "total": 150.0}, {"id": 3, "total": 300.0}]
    assert inputs.schema("out").names == ["id", "total"]  # the row index is not a column


@pytest.mark.parametrize(
    "annotation", ["pandas.DataFrame", "'pd.DataFrame'", "DataFrame", "pd.core.frame.DataFrame"]
)
def test_pandas_annotation_spellings(inputs: Workspace, annotation: str) -> None:
    code = f"""
import pandas as pd
import pandas
from pandas import DataFrame

def transform(orders: {annotation}):
    assert isinstance(orders, pd.DataFrame), type(orders)
    return orders
"""
    assert python(inputs, code).rows == 3


def test_pandas_imported_for_type_checking_only_still_counts(inputs: Workspace) -> None:
    code = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import pandas as pd

def transform(orders: "pd.DataFrame") -> "pd.DataFrame":
    assert type(orders).__name__ == "DataFrame", type(orders)
    return orders
"""
    assert python(inputs, code).rows == 3


def test_another_class_named_dataframe_gets_arrow(inputs: Workspace) -> None:
    code = """
import pyarrow as pa

class DataFrame:
    pass

def transform(orders: DataFrame):
    assert isinstance(orders, pa.Table), type(orders)
    return orders
"""
    assert python(inputs, code).rows == 3


def test_a_grouped_pandas_result_keeps_its_keys(inputs: Workspace) -> None:
    code = """
import pandas

def transform(orders: "pandas.DataFrame"):
    return orders.groupby("customer")[["total"]].sum()
"""
    python(inputs, code)
    assert rows(inputs, "customer") == [
        {"customer": 10, "total": 350.0},
        {"customer": 11, "total": 150.0},
    ]


def test_python_may_return_a_record_batch(inputs: Workspace) -> None:
    code = """
import pyarrow as pa

def transform(orders):
    return pa.record_batch({"n": [orders.num_rows]})
"""
    python(inputs, code)
    assert rows(inputs, "n") == [{"n": 3}]


@pytest.mark.parametrize(
    ("returned", "named"),
    [("[1, 2]", "a builtins.list"), ("{'id': [1]}", "a builtins.dict"), ("None", "None")],
)
def test_a_wrong_return_type_says_what_came_back_and_what_is_accepted(
    inputs: Workspace, returned: str, named: str
) -> None:
    run = python(inputs, f"def transform(orders):\n    return {returned}\n")
    failed_with(
        run,
        "component 'out', transform(), partition 'all'",
        f"transform() returned {named}; it must return a pyarrow Table, a pyarrow "
        "RecordBatch or a pandas DataFrame",
    )
    if returned == "None":
        assert run.error is not None and "is a `return` statement missing?" in run.error


def test_a_dataframe_arrow_cannot_store_is_explained(inputs: Workspace) -> None:
    code = """
import pandas as pd

def transform(orders):
    return pd.DataFrame({"mixed": [1, "two"]})
"""
    failed_with(python(inputs, code), "a pandas DataFrame that Arrow cannot store")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "def other(orders):\n    return orders\n",
            "must define a function `transform`; it is not defined",
        ),
        ("transform = 42\n", "it is not callable"),
        ("def transform(orders", "syntax error"),
        ("import no_such_module_here\n", "ModuleNotFoundError"),
        ("def transform():\n    return None\n", "cannot be called with its 1 input(s) (orders)"),
    ],
)
def test_unusable_python_fails_the_run_naming_the_component(
    inputs: Workspace, code: str, expected: str
) -> None:
    run = python(inputs, code)
    failed_with(run, "component 'out'", expected)
    assert inputs.partitions("out") == []


def test_spec_needs_one_kind_of_code_and_a_name_per_input() -> None:
    with pytest.raises(SettingsError, match="exactly one of sql or python"):
        TransformSpec(("a",), ("a",))
    with pytest.raises(SettingsError, match="exactly one of sql or python"):
        TransformSpec(("a",), ("a",), sql="SELECT 1", python="def transform(a): ...")
    with pytest.raises(SettingsError, match="each with a name"):
        TransformSpec(("a", "b"), ("a",), sql="SELECT 1")
    with pytest.raises(SettingsError, match="must differ"):
        TransformSpec(("a", "b"), ("x", "X"), sql="SELECT 1")


def test_check_inputs_is_the_parser_check(inputs: Workspace) -> None:
    sql.check_inputs("SELECT * FROM Orders", ["orders"], component="c")
    with pytest.raises(TransformSqlError, match="reads customers, which is not an input"):
        sql.check_inputs("SELECT * FROM customers", ["orders"], component="c")
