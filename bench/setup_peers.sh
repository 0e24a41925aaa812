#!/usr/bin/env bash
# Create the isolated venvs the benchmark needs, under bench/.venvs (gitignored):
#   dlt    the peer: dlt[duckdb,parquet]==1.31.0
#   tools  py-spy==0.4.3, to profile the process executor's workers (optional: skipped on failure)
# Idempotent: a working venv is left alone. Headwater itself runs from the project's .venv.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV="$HERE/.venvs/dlt"
TOOLS="$HERE/.venvs/tools"
DLT_PIN="dlt[duckdb,parquet]==1.31.0"
PYSPY_PIN="py-spy==0.4.3"
PYTHON=${PYTHON:-python3}

if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c "import dlt, duckdb, pyarrow" 2>/dev/null; then
  echo "setup_peers: $VENV already present"
else
  echo "setup_peers: creating $VENV with $DLT_PIN"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "$DLT_PIN"
fi
"$VENV/bin/python" -c 'import dlt, duckdb, pyarrow
print("setup_peers: dlt", dlt.__version__, "duckdb", duckdb.__version__, "pyarrow", pyarrow.__version__)'

if [[ -x $TOOLS/bin/py-spy ]]; then
  echo "setup_peers: $TOOLS already present ($("$TOOLS/bin/py-spy" --version))"
elif "$PYTHON" -m venv "$TOOLS" && "$TOOLS/bin/python" -m pip install --quiet "$PYSPY_PIN"; then
  echo "setup_peers: installed $("$TOOLS/bin/py-spy" --version) in $TOOLS"
else
  echo "setup_peers: could not install $PYSPY_PIN; run.sh will skip the py-spy profile" >&2
fi
