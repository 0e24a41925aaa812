#!/usr/bin/env bash
# Create the venvs the issue-3 benchmark needs, under bench/.venvs (gitignored):
#   pathway  pathway==0.33.0, the peer (BSL licensed: it lives only here, never in the project)
#   tools    py-spy==0.4.3 (shared with bench/setup_peers.sh), for run.sh's profile; optional
# Idempotent: a working venv is left alone. Headwater itself runs from the project's .venv.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV="$(dirname "$HERE")/.venvs/pathway"
PIN="pathway==0.33.0"
PYTHON=${PYTHON:-python3}

if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c "import pathway" 2>/dev/null; then
  echo "stream/setup: $VENV already present"
else
  echo "stream/setup: creating $VENV with $PIN (about 1 minute)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "$PIN"
fi
"$VENV/bin/python" -c 'import sys, pathway
print("stream/setup: python", sys.version.split()[0], "pathway", pathway.__version__)'

# py-spy, for run.sh's profile of Headwater's threads: bench/setup_peers.sh's tools venv.
TOOLS="$(dirname "$HERE")/.venvs/tools"
if [[ -x $TOOLS/bin/py-spy ]]; then
  echo "stream/setup: $TOOLS already present ($("$TOOLS/bin/py-spy" --version))"
elif "$PYTHON" -m venv "$TOOLS" && "$TOOLS/bin/python" -m pip install --quiet "py-spy==0.4.3"; then
  echo "stream/setup: installed $("$TOOLS/bin/py-spy" --version) in $TOOLS"
else
  echo "stream/setup: could not install py-spy==0.4.3; run.sh will skip the py-spy profile" >&2
fi
