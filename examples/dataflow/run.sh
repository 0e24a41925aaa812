#!/usr/bin/env bash
# The dataflow example end to end: start a server in a temporary home, apply dataflow.py with one
# command, refresh it (the schedule would too), look at what the writers wrote, change a file and
# watch only the change flow down, then export the server's state back as code.
# Needs PostgreSQL for the table writer (SHOP_WAREHOUSE_URL; default: 127.0.0.1:5432, db test).
set -euo pipefail

if ! command -v headwater >/dev/null; then
    echo "dataflow example: 'headwater' is not on PATH; activate .venv first" >&2
    exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
port="${SHOP_PORT:-8765}"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null && wait "$server_pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cp -R "$here/../files/data" "$work/data"
export HEADWATER_HOME="$work/home"
export HEADWATER_SECRET_KEY="$(python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
export SHOP_DATA="$work/data" SHOP_OUTPUT="$work/output"
export SHOP_WAREHOUSE_PASSWORD="${SHOP_WAREHOUSE_PASSWORD:-unused-with-trust-auth}"

say() { printf '\n== %s ==\n' "$*"; }

say "a server on port $port (its log: $work/server.log), and an access key for this shell"
headwater server --port "$port" >"$work/server.log" 2>&1 &
server_pid=$!
export HEADWATER_HOSTNAME="http://127.0.0.1:$port"
python - <<'PY'  # wait until it answers (it creates the catalog as it starts)
import os, time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(os.environ["HEADWATER_HOSTNAME"] + "/health", timeout=1)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise SystemExit("the server did not start; see its log")
        time.sleep(0.1)
PY
keys="$(headwater keys create --json)"
export HEADWATER_ACCESS_KEY_ID="$(python -c 'import json, sys; print(json.load(sys.stdin)["access_key"])' <<<"$keys")"
export HEADWATER_SECRET_ACCESS_KEY="$(python -c 'import json, sys; print(json.load(sys.stdin)["secret_key"])' <<<"$keys")"
python - <<'PY'  # a clean table for the example (it is upserted into, run after run)
import os, psycopg
url = os.environ.get("SHOP_WAREHOUSE_URL", "postgresql://postgres@127.0.0.1:5432/test")
with psycopg.connect(url) as db:
    db.execute("DROP TABLE IF EXISTS shop_monthly_revenue")
PY

say "the plan, then the apply: one command deploys the whole data service"
headwater apply "$here/dataflow.py" --dry-run
headwater apply "$here/dataflow.py"

say "applied again: nothing changes"
headwater apply "$here/dataflow.py"

say "refresh the read connector now; its change flows down to the transform and both writers"
headwater refresh shop/daily/orders --downstream

say "what the writers wrote: Parquet files (one per partition of 'monthly') and a table"
ls "$SHOP_OUTPUT"
python - <<'PY'
import os
import psycopg
url = os.environ.get("SHOP_WAREHOUSE_URL", "postgresql://postgres@127.0.0.1:5432/test")
with psycopg.connect(url) as db:
    for row in db.execute("SELECT month, count(*) AS customers, round(sum(revenue)::numeric, 2) FROM shop_monthly_revenue GROUP BY 1 ORDER BY 1"):
        print(*row)
PY

say "a new file: only it is read, and the transform and the writers run again"
printf 'order_id,customer,amount,day\n5001,Acme,120.00,2026-03-01\n' >"$SHOP_DATA/2026/sales_03.csv"
headwater refresh shop/daily/orders --downstream

say "the server's state as code: apply this file to another server to reproduce it"
headwater export shop
