#!/usr/bin/env bash
# The demo: run the folder-of-files example twice and watch the second run read only what changed.
# Everything happens in a temporary folder (a copy of examples/files and a fresh Headwater home),
# so the repository is left as it was. Run it with `make demo`, or `bash examples/demo.sh` with
# the virtualenv's bin folder on PATH.
set -euo pipefail

if ! command -v headwater >/dev/null; then
    echo "demo: 'headwater' is not on PATH; run 'make demo', or activate .venv first" >&2
    exit 1
fi

examples="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp -R "$examples/files" "$work/files"
export HEADWATER_HOME="$work/home"  # a fresh catalog and store, just for this demo
connector="$work/files/connector.py"
data="$work/files/data"

say() { printf '\n== %s ==\n' "$*"; }

say "first run: every CSV file under data/ is new, so each one is read into its own partition"
headwater run "$connector" --parser csv

say "change the folder: append a row to 2026/sales_02.csv, add 2026/sales_03.csv, delete 2025/sales_11.csv"
printf '4028,Harbor,61.50,2026-02-28\n' >>"$data/2026/sales_02.csv"
cat >"$data/2026/sales_03.csv" <<'CSV'
order_id,customer,amount,day
5001,Acme,120.00,2026-03-01
5002,Cobalt,45.25,2026-03-02
5003,Fjord,99.90,2026-03-02
CSV
rm "$data/2025/sales_11.csv"

say "second run: only the new and the changed file are read; the deleted file's partition is dropped"
headwater run "$connector" --parser csv

say "query the component (a DuckDB view named after the connector file): November is gone, March is new"
headwater query "SELECT strftime(day, '%Y-%m') AS month, count(*) AS orders, round(sum(amount), 2) AS revenue
                 FROM connector GROUP BY month ORDER BY month"

say "its partitions: the run column shows which files the second run read"
headwater partitions connector

say "a processor: a sandboxed Python statement over the component's rows, with a data checkpoint"
statement="$examples/processor/large_orders.py"
schema="$examples/processor/schema.json"
if command -v bwrap >/dev/null; then
    headwater processor refresh "$statement" -c large_orders --schema "$schema" \
        --input-component connector --processing bulk --checkpoint-column order_id
    say "the processor again: its checkpoint says which orders it has seen, so nothing is new"
    headwater processor refresh "$statement" -c large_orders --schema "$schema" \
        --input-component connector --processing bulk --checkpoint-column order_id
else
    echo "skipped: the processor sandbox needs bubblewrap (Debian: apt-get install bubblewrap);"
    echo "processor runs are refused without it, never run unsandboxed"
fi

say "a dataflow as code: a server, one definition file applied, a refresh flowing downstream"
if python - <<'PY' 2>/dev/null; then
import os, psycopg
psycopg.connect(os.environ.get("SHOP_WAREHOUSE_URL", "postgresql://postgres@127.0.0.1:5432/test"), connect_timeout=3).close()
PY
    bash "$examples/dataflow/run.sh"
else
    echo "skipped: examples/dataflow writes to PostgreSQL, and none answers at"
    echo "${SHOP_WAREHOUSE_URL:-postgresql://postgres@127.0.0.1:5432/test} (set SHOP_WAREHOUSE_URL)"
fi
