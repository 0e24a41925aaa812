"""Connectors whose read function is the seed's `read_spark_dataframe(spark, context, metadata)`.

`headwater.connectors.partitioned` checks every other shape; this checks the same things of a
module it refused only because its read function needs Spark.
"""

from __future__ import annotations

import types

from headwater.connectors.loading import ConnectorSource
from headwater.connectors.partitioned import PartitionedConnector, checked_functions
from headwater.errors import Where

READ = "read_spark_dataframe"


def spark_dataframe_connector(
    module: types.ModuleType, source: ConnectorSource, where: Where
) -> PartitionedConnector:
    """The connector `module` defines, reading with `read_spark_dataframe`.

    Raises:
        ConnectorLoadError: a function has the wrong signature, or `parser_function` is
            defined (it parses bytes; a DataFrame has none).
    """
    optional = checked_functions(
        module, READ, where, parser_at=where.at(function="parser_function")
    )
    return PartitionedConnector(
        source=source,
        list_objects=module.list_objects,
        read=getattr(module, READ),
        read_function=READ,
        context=optional.get("context"),
        infer_schema=optional.get("infer_schema"),
    )
