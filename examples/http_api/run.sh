#!/usr/bin/env bash
# The HTTP API example, start to finish: start the orders API on a free localhost port, run the
# connector twice (adding an order to one day in between), query what landed, stop the API.
# Needs `headwater` on PATH (activate .venv). Everything lives in a temporary folder.
set -euo pipefail

if ! command -v headwater >/dev/null; then
    echo "run.sh: 'headwater' is not on PATH; activate .venv first" >&2
    exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
export HEADWATER_HOME="$work/home"  # a fresh catalog and store, just for this example
token="$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"

# Start the API as a coprocess: its first line of output is the address it listens on.
coproc API { ORDERS_API_TOKEN="$token" exec python3 "$here/server.py" --port 0; }
api_pid=$API_PID
trap 'kill "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
read -r -t 15 line <&"${API[0]}"  # "listening on http://127.0.0.1:PORT"
base_url="${line##* }"

# The credential file's text is what context(credentials) receives. Keep it private.
(umask 077 && printf '{"base_url": "%s", "token": "%s"}\n' "$base_url" "$token" >"$work/credential.json")
run() { headwater run "$here/connector.py" --component orders --credential-file "$work/credential.json"; }

say() { printf '\n== %s ==\n' "$*"; }

say "the API is listening on $base_url; first run: every day is new"
run

say "add an order to 2026-03-03 through the API: that day's updated_at (its fingerprint) moves"
python3 - "$base_url" "$token" <<'PY'
import json, sys, urllib.request

base_url, token = sys.argv[1:]
order = {"day": "2026-03-03", "customer": "Granite", "amount": 42.5}
request = urllib.request.Request(
    f"{base_url}/orders",
    data=json.dumps(order).encode(),
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
)
with urllib.request.urlopen(request) as response:
    print("added order", json.load(response)["order_id"], "on", order["day"])
PY

say "second run: only 2026-03-03 is read again"
run

say "query the component"
headwater query "SELECT day, count(*) AS orders, sum(amount) AS revenue FROM orders GROUP BY day ORDER BY day"
