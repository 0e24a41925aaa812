#!/usr/bin/env bash
# Create the venv the issue-5 benchmark's peer needs, under bench/.venvs (gitignored):
#   flytekit  flytekit[connector]==1.16.31 (the version the research ran, ../shared/research/flyte.md),
#             which brings `pyflyte serve connector`
#   tools     py-spy==0.4.3 (shared with bench/setup_peers.sh), for run.sh's profile; optional
# Idempotent: a working venv is left alone. Headwater itself runs from the project's .venv,
# and so does the driver (flyteidl's client stubs are installed there).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV="$(dirname "$HERE")/.venvs/flytekit"
PIN="flytekit[connector]==1.16.31"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3 # flytekit 1.16 needs Python >=3.10,<3.13

if [[ -x $VENV/bin/pyflyte ]] && "$VENV/bin/python" -c "import flytekit" 2>/dev/null; then
  echo "tasks/setup: $VENV already present"
else
  echo "tasks/setup: creating $VENV with $PIN (about 1 minute)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "$PIN"
fi
"$VENV/bin/python" -c 'import sys, importlib.metadata as m
print("tasks/setup: python", sys.version.split()[0], *(p + " " + m.version(p)
      for p in ("flytekit", "flyteidl", "grpcio", "protobuf")))'

# py-spy, for run.sh's profile of Headwater's server: bench/setup_peers.sh's tools venv.
TOOLS="$(dirname "$HERE")/.venvs/tools"
if [[ -x $TOOLS/bin/py-spy ]]; then
  echo "tasks/setup: $TOOLS already present ($("$TOOLS/bin/py-spy" --version))"
elif "$PYTHON" -m venv "$TOOLS" && "$TOOLS/bin/python" -m pip install --quiet "py-spy==0.4.3"; then
  echo "tasks/setup: installed $("$TOOLS/bin/py-spy" --version) in $TOOLS"
else
  echo "tasks/setup: could not install py-spy==0.4.3; run.sh will skip the py-spy profile" >&2
fi
