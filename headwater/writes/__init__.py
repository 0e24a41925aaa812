"""Write connectors: a component's rows written out to files, a PostgreSQL table or a custom
Python `write()`, each run sending only what changed upstream since the last one."""

from headwater.writes.component import WriteRun, WriteSpec, run_write
from headwater.writes.errors import WriteError

__all__ = ["WriteError", "WriteRun", "WriteSpec", "run_write"]
