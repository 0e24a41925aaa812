"""What connector authors use: the contract's types and loading.

Authors write plain functions (see `headwater.connectors.partitioned`); nothing needs importing.
These names are for type hints and for loading a connector from Python.
"""

from headwater.connectors.loading import ConnectorSource
from headwater.connectors.partitioned import ObjectMetadata, PartitionedConnector, load_partitioned

__all__ = ["ConnectorSource", "ObjectMetadata", "PartitionedConnector", "load_partitioned"]
