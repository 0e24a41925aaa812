"""A whole dataflow as code: a folder of CSV files -> a SQL transform -> Parquet files and a
PostgreSQL table, refreshed on a schedule.

    orders (read connector: one partition per CSV file, every 5 minutes)
      └─ monthly (SQL transform: revenue per month and customer)
           ├─ monthly_files (write connector: Parquet files)
           └─ monthly_table (write connector: upsert into PostgreSQL)

With a server running (`bash examples/dataflow/run.sh` does it all, in a temporary home):

    headwater apply examples/dataflow/dataflow.py --dry-run   # the plan, changing nothing
    headwater apply examples/dataflow/dataflow.py             # create / update / delete
    headwater refresh shop/daily/orders --downstream           # now, not in 5 minutes

A refresh of `orders` that lands something queues `monthly`, whose success queues both writers.
Settings come from the environment, so the same file deploys to a laptop and to production:
SHOP_DATA (the CSV folder), SHOP_OUTPUT (where the Parquet files go, any fsspec URL),
SHOP_WAREHOUSE_URL and SHOP_TABLE (PostgreSQL), SHOP_REFRESH_SECONDS (the schedule), and the
warehouse's password in SHOP_WAREHOUSE_PASSWORD (by reference: the value never sits here).
"""

import os
from pathlib import Path

from headwater.client.definitions import (
    Connection,
    Credential,
    Dataflow,
    DataService,
    FilesTarget,
    PartitionedDefinition,
    PartitionedSettings,
    PostgresTarget,
    ReadConnector,
    Schedule,
    Transform,
    WriteConnector,
)

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SHOP_DATA", HERE.parent / "files" / "data"))
OUTPUT = os.environ.get("SHOP_OUTPUT", str(HERE / "output"))
WAREHOUSE = os.environ.get("SHOP_WAREHOUSE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TABLE = os.environ.get("SHOP_TABLE", "shop_monthly_revenue")
EVERY = int(os.environ.get("SHOP_REFRESH_SECONDS", "300"))

# The folder-of-files connector (examples/files/connector.py), its folder fixed at apply time.
ORDERS = f"""
from pathlib import Path

ROOT = Path({str(DATA)!r})


def list_objects(context, metadata):
    folder = ROOT if metadata is None else ROOT / metadata["name"]
    for path in sorted(folder.iterdir()):
        name = path.relative_to(ROOT).as_posix()
        if path.is_dir():
            yield {{"name": name, "fingerprint": "", "is_prefix": True}}
        elif path.suffix == ".csv":
            stat = path.stat()
            yield {{"name": name, "fingerprint": f"{{stat.st_mtime_ns}}-{{stat.st_size}}"}}


def read_bytes(context, metadata):
    return (ROOT / metadata["name"]).read_bytes()
"""

MONTHLY = """
SELECT strftime(day, '%Y-%m') AS month,
       customer,
       count(*) AS orders,
       round(sum(amount), 2) AS revenue
FROM orders
GROUP BY month, customer
"""

data_service = DataService(
    id="shop",
    name="Shop",
    description="orders and what is made of them",
    credentials=[Credential(name="warehouse", env="SHOP_WAREHOUSE_PASSWORD")],
    connections=[
        Connection(id="warehouse", settings={"url": WAREHOUSE}, credential="warehouse"),
    ],
    dataflows=[
        Dataflow(
            id="daily",
            description="orders -> monthly revenue -> Parquet and PostgreSQL",
            components=[
                ReadConnector(
                    id="orders",
                    partitioned=PartitionedDefinition(
                        code=ORDERS, settings=PartitionedSettings(parser="csv")
                    ),
                    schedule=Schedule(interval_seconds=EVERY),
                ),
                Transform(id="monthly", inputs=["orders"], sql=MONTHLY),
                WriteConnector(
                    id="monthly_files",
                    input="monthly",
                    files=FilesTarget(path=OUTPUT, format="parquet"),
                ),
                WriteConnector(
                    id="monthly_table",
                    input="monthly",
                    connection="warehouse",
                    postgres=PostgresTarget(table=TABLE, mode="upsert", key=["month", "customer"]),
                ),
            ],
        )
    ],
)
