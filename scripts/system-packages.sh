#!/usr/bin/env bash
# Debian packages Headwater needs beyond Python: bubblewrap, the processor sandbox (runs are
# refused without it), libseccomp2, its syscall filter, gcc, which builds the streams' C hot
# paths (without it they fall back to Python, slower), and g++, pkg-config and libgrpc++-dev,
# which build the task connectors' gRPC front end (without them the service runs on grpc.aio,
# slower). Installed once, as root, with apt; elsewhere this only says what is missing, and
# processor runs explain how to fix it.
set -euo pipefail
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
command -v cc >/dev/null || missing+=(gcc)
command -v c++ >/dev/null || missing+=(g++)
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists grpc++ 2>/dev/null || missing+=(libgrpc++-dev)
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "system-packages: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "system-packages: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})." >&2
  echo "system-packages: without them processor runs are refused and streams and task connectors run slower; everything else works." >&2
fi
