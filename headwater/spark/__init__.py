"""Headwater on Apache Spark (the `headwater[spark]` extra): the Spark executor, and stored
components read back as Spark DataFrames.

Nothing else in Headwater imports this package unless a component's executor is "spark", so
the embedded default never imports pyspark nor starts a JVM. See docs/spark.md.

Example:
    >>> from headwater.spark import read_component, session        # doctest: +SKIP
    >>> ws.refresh("orders.py", executor="spark").raise_for_status()
    >>> read_component(session(), ws, "orders").count()
"""

from __future__ import annotations

from headwater.spark.read import read_component
from headwater.spark.session import SparkError, session

__all__ = ["SparkError", "read_component", "session"]
