"""Connectors whose read function is the seed's `read_spark_dataframe(spark, context, metadata)`.

`headwater.connectors.partitioned` checks every other shape; this checks the same things of a
module it refused only because its read function needs Spark.
"""

from __future__ import annotations

import types

from headwater.connectors.loading import ConnectorSource
from headwater.connectors.partitioned import (
    OPTIONAL_FUNCTIONS,
    READ_FUNCTIONS,
    PartitionedConnector,
    _check_signature,
)
from headwater.errors import ConnectorLoadError, Where

READ = "read_spark_dataframe"


def spark_dataframe_connector(
    module: types.ModuleType, source: ConnectorSource, where: Where
) -> PartitionedConnector:
    """The connector `module` defines, reading with `read_spark_dataframe`.

    Raises:
        ConnectorLoadError: a function has the wrong signature, or `parser_function` is
            defined (it parses bytes; a DataFrame has none).
    """
    _check_signature(module, "list_objects", "context, metadata", where)
    _check_signature(module, READ, READ_FUNCTIONS[READ][1], where)
    optional = {}
    for name, params in OPTIONAL_FUNCTIONS.items():
        if hasattr(module, name):
            _check_signature(module, name, params, where)
            optional[name] = getattr(module, name)
    if "parser_function" in optional:
        raise ConnectorLoadError(
            f"parser_function is only used with read_bytes, but the connector uses {READ}",
            where.at(function="parser_function"),
            hint="remove parser_function, or read with read_bytes",
        )
    return PartitionedConnector(
        source=source,
        list_objects=module.list_objects,
        read=getattr(module, READ),
        read_function=READ,
        context=optional.get("context"),
        infer_schema=optional.get("infer_schema"),
    )
